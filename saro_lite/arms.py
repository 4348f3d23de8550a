"""The models the eval stage (and chat, and the self path) compares and uses (arms): `base`, the kit's own arms (one loaded base, adapters
switched per arm, never merged into a 4-bit base) and any other model as an extra arm."""
from __future__ import annotations

import contextlib

from .recipe import artifact
from .vocabulary import ARM_STAGES


def all_arms(recipe) -> list[str]:
    return list(recipe.eval.arms) + [a["name"] for a in recipe.eval.extra_arms]


class Arms:
    """Models for the arms. LoRA: ONE base with every adapter loaded under its arm's name, switched
    per arm (`base` = adapters disabled). Full fine-tuning: each arm is its own model, loaded in turn."""

    def __init__(self, ctx, arms: list[str]):
        self.ctx, self.arms = ctx, arms
        self.lora = ctx.recipe.model.finetune == "lora"
        self.model = None

    def release(self) -> None:
        """Drop the loaded base (and its adapters) and free its memory."""
        from .modeling.devices import release_memory

        self.model = None
        release_memory()

    def path(self, arm: str) -> str:
        return str(self.ctx.path(artifact(self.ctx.recipe, ARM_STAGES[arm])))

    @contextlib.contextmanager
    def use(self, arm: str):
        from .modeling.loading import load_model

        r = self.ctx.recipe
        if not self.lora:
            model = load_model(r, self.ctx.model_path if arm == "base" else self.path(arm))
            try:
                yield model
            finally:
                del model
            return
        if self.model is None:
            self.model = load_model(r, self.ctx.model_path)
            adapters = [a for a in self.arms if a != "base"]
            if adapters:
                from peft import PeftModel

                self.model = PeftModel.from_pretrained(self.model, self.path(adapters[0]), adapter_name=adapters[0])
                for a in adapters[1:]:
                    self.model.load_adapter(self.path(a), adapter_name=a)
        if arm == "base":
            ctxm = self.model.disable_adapter() if hasattr(self.model, "disable_adapter") else contextlib.nullcontext()
            with ctxm:
                yield self.model
        else:
            self.model.set_adapter(arm)
            yield self.model


@contextlib.contextmanager
def extra_arm(ctx, spec: dict):
    """Any model as an arm (eval.extra_arms): its own tokenizer and chat template, same sets and judges."""
    import copy

    from .context import Context
    from .modeling.loading import load_model

    sub = copy.deepcopy(ctx.recipe)
    m = sub.model
    m.name_or_path, m.chat_template, m.end_of_turn, m.chat_template_kwargs, m.finetune = \
        spec["model"], None, None, {}, "lora"
    m.system_prompt = None
    c = Context(sub, ctx.run_dir, ctx.console, model_path=spec["model"])
    model = load_model(sub, spec["model"])
    if spec.get("adapter"):
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, spec["adapter"])
    try:
        yield model, c.tokenizer(), c.renderer()
    finally:
        del model
