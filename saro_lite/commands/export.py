"""`python run_all.py export`: the trained adapter with a model card, or a standalone merged model.

    python run_all.py export --run runs/tiny-cpu --output exported/saro-adapter
    python run_all.py export --run runs/tiny-cpu --output exported/saro-merged --merge

A full fine-tune (`model.finetune: full`) is exported whole, with or without --merge (nothing to merge).
For LoRA, --merge reloads the base in bf16 (fp32 on CPU), never in 4-bit: merging LoRA into a 4-bit base
re-quantizes and changes the model. The merged folder holds the weights, the tokenizer and its chat
template, and loads with `AutoModelForCausalLM.from_pretrained`.
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from ..errors import UserError

CAVEATS = """## Caveats
- SaRO's hyperparameters, data sizes and teacher prompts are not public; this model was trained with
  saro-lite's own defaults (see the recipe) and its starter data or the data named below.
- Safety numbers come from an automatic judge on a limited eval set; they are not a safety guarantee.
  Evaluate on your own data (and with a guard model) before any deployment.
- The model writes its reasoning inside the reasoning tags before the answer; strip it before showing
  answers to users if you do not want it shown."""


def base_model(ctx) -> str:
    """The base model as the user knows it: its hub id, the folder they gave, or the kit's tiny toy
    base, never the kit's resolved cache path."""
    from ..modeling.loading import is_local
    from ..recipe import resolved_origin

    r = ctx.recipe
    given = None
    if ctx.path("recipe.resolved.yaml").exists():
        given = resolved_origin(ctx.path("recipe.resolved.yaml"))["model"]
    if given is None and ctx.path("report.json").exists():  # runs made before the header recorded it
        given = json.loads(ctx.path("report.json").read_text()).get("model")
    given = given or r.model.name_or_path
    if given == "tiny" or Path(given).name.startswith("tiny-") and Path(given).parent.name == "models":
        steps = r.model.tiny.pretrain_steps
        made = f"builds and pretrains ({steps} steps) offline" if steps else "builds offline with random weights"
        return (f"the kit's tiny toy base (`model.name_or_path: tiny`: a small Llama that saro-lite {made}; "
                "not on the Hugging Face Hub)")
    if is_local(given) or given.startswith((".", "/", "~")):
        return f"`{given}` (a local folder)"
    return f"`{given}` (Hugging Face Hub" + (f", revision `{r.model.revision}`)" if r.model.revision else ")")


def recipe_name(ctx) -> str:
    from ..recipe import resolved_origin

    resolved = ctx.path("recipe.resolved.yaml")
    name = resolved_origin(resolved)["recipe"] if resolved.exists() else None
    return name or ctx.run_dir.name


def what_was_exported(ctx, merged_dtype: str | None) -> str:
    """What the folder holds, by what was trained: a full fine-tune is a whole model (nothing to
    merge); LoRA is an adapter, or merged into the base reloaded in `merged_dtype`."""
    if ctx.recipe.model.finetune == "full":
        return "full fine-tune: every weight was trained; a standalone model, no adapter, nothing to merge"
    if merged_dtype:
        return f"LoRA adapter merged into the base, reloaded in {merged_dtype} (never in 4-bit); a standalone model"
    return "PEFT LoRA adapter: load it on the base model above"


def model_card(ctx, arm: str, merged_dtype: str | None = None) -> str:
    r = ctx.recipe
    lines = [f"# saro-lite {arm} — {recipe_name(ctx)}", "",
             f"Trained with saro-lite (a SaRO reproduction kit): reasoning-style warmup "
             f"then SRPO (DPO on reasoning pairs).", "",
             f"- base model: {base_model(ctx)}",
             f"- arm: `{arm}` ({what_was_exported(ctx, merged_dtype)})",
             f"- recipe: `{recipe_name(ctx)}`; every setting used in `recipe.resolved.yaml`",
             f"- data: `data.source: {r.data.source}`, `pairs.source: {r.pairs.source}`",
             f"- reasoning tags: `{r.model.reasoning_open}` … `{r.model.reasoning_close}`", ""]
    report = ctx.path("report.json")
    if report.exists():
        from ..report import MAIN_METRICS, fmt

        rep = json.loads(report.read_text())
        lines += ["## Evaluation (from the run's report.json)", "",
                  "| arm | " + " | ".join(label for _, label in MAIN_METRICS) + " |",
                  "|---|" + "---|" * len(MAIN_METRICS)]
        for a, m in rep["arms"].items():
            lines.append(f"| {a} | " + " | ".join(fmt(m.get(k)) for k, _ in MAIN_METRICS) + " |")
        judge = rep.get("judge", {})
        lines += ["", f"Judge: {judge.get('refusal', 'refusal judge')}, scope {judge.get('scope', 'full')}. "
                      + judge.get("verdict", ""), ""]
    return "\n".join(lines + [CAVEATS, ""])


def export(ctx, arm: str, output: Path, merge: bool, console) -> Path:
    from .chat import check_arm
    from ..vocabulary import ARM_STAGES
    from ..fileio import atomic_write_text, set_open_permissions
    from ..modeling.loading import artifact

    if arm == "base":
        raise UserError("--arm base: the base model needs no export; use it from the hub or its folder")
    check_arm(ctx, arm)
    src = ctx.path(artifact(ctx.recipe, ARM_STAGES[arm]))
    output = Path(output)
    if output.exists() and any(output.iterdir()):
        raise UserError(f"--output {output}: folder exists and is not empty")
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    full = ctx.recipe.model.finetune == "full"
    merged_dtype = None
    try:
        if merge and not full:
            merged_dtype = merge_adapter(ctx, src, tmp)
        else:
            shutil.copytree(src, tmp, dirs_exist_ok=True)
            ctx.tokenizer().save_pretrained(tmp)
        shutil.copy(ctx.path("recipe.resolved.yaml"), tmp / "recipe.resolved.yaml")
        atomic_write_text(tmp / "README.md", model_card(ctx, arm, merged_dtype))
        set_open_permissions(tmp)  # mkdtemp and safetensors make owner-only folders and files
        if output.exists():
            output.rmdir()
        tmp.replace(output)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    if full:
        what = "full fine-tuned model" + ("; --merge: nothing to merge, every weight was trained" if merge else "")
    else:
        what = f"LoRA merged into the base in {merged_dtype}" if merged_dtype else "LoRA adapter"
    console.print(f"exported {arm} ({what}) to {output}")
    return output


def merge_adapter(ctx, adapter_dir: Path, out: Path) -> str:
    """Merge the LoRA adapter into the base reloaded in bf16 (fp16 on GPUs without bf16, fp32 on
    CPU); returns the dtype's name."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from ..modeling.loading import auto_dtype

    dtype = auto_dtype()
    base = AutoModelForCausalLM.from_pretrained(ctx.model_path, dtype=dtype,
                                                trust_remote_code=ctx.recipe.model.trust_remote_code)
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    tok = ctx.tokenizer()
    merged.generation_config.eos_token_id = tok.eos_token_id  # stop at the end of the turn
    merged.save_pretrained(out)
    tok.save_pretrained(out)
    return str(dtype).replace("torch.", "")


def cli(argv: list[str]) -> int:
    from ..errors import guarded

    p = argparse.ArgumentParser(prog="run_all.py export", description="export a trained arm")
    p.add_argument("--run", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--arm", default="saro")
    p.add_argument("--merge", action="store_true", help="LoRA runs: merge into the base reloaded in bf16 (standalone "
                                                        "model); a full fine-tune is exported whole either way")
    p.add_argument("--debug", action="store_true")
    args = p.parse_args(argv)

    def run(a, console):
        from .chat import open_run
        from ..pipeline import quiet_libraries

        quiet_libraries()
        export(open_run(a.run), a.arm, Path(a.output), a.merge, console)
        return 0

    return guarded(run, args, args.debug)
