"""Stage `baselines`: the paper's comparison arms, trained on the same data without reasoning.

- `safety_sft`: SFT on the RIT-D prompts with the direct answer only (refusals for harmful and
  jailbreak prompts, answers for benign and borderline ones), no reasoning block.
- `dpo`: plain DPO on the OP-COT pairs with the answers only (no reasoning), starting from the base.
  Its reference is the base model with adapters disabled — the one place where that is right.

Only the arms named in `eval.arms` are trained; without any, the stage has nothing to do. Writes
baselines/<arm>/adapter (or /model) and baselines/<arm>/metrics.jsonl.

    python run_all.py --set "eval.arms=[base, rw, saro, safety_sft, dpo]"
"""
from __future__ import annotations

from .data_sources.records import load_op
from .fileio import read_jsonl
from .modeling.qlora import cast_trainable_to_fp32
from .modeling.loading import load_model
from .training.examples import dpo_dataset, pair_row, prompt_completion_dataset
from .training.trainer import TrainingRun, dpo_config, load_base_for_training, train_sft
from .vocabulary import STARTER_DIR, BASELINE_ARMS


def run(ctx) -> None:
    r = ctx.recipe
    arms = requested(r)
    if not arms:
        ctx.console.print("no baseline arms requested (add safety_sft and/or dpo to eval.arms)")
        return
    renderer = ctx.renderer()
    if "safety_sft" in arms:
        rows = read_jsonl(ctx.path("data/rit_d.jsonl"))
        train_sft(ctx, direct_sft_dataset(renderer, rows), "baselines/safety_sft", "baseline safety_sft")
    if "dpo" in arms:
        op = read_jsonl(ctx.path("data/op_cot.jsonl"), allow_empty=True) or load_op(STARTER_DIR / "op_cot.jsonl")
        train_dpo_from_base(ctx, direct_dpo_rows(renderer, op), "baselines/dpo")


def requested(recipe) -> list[str]:
    return [a for a in recipe.eval.arms if a in BASELINE_ARMS]


def direct_sft_dataset(renderer, rows: list[dict]):
    return prompt_completion_dataset(renderer, [(renderer.prompt(x["prompt"]),
                                                 x["answer"].strip() + renderer.end_of_turn) for x in rows])


def direct_dpo_rows(renderer, op: list[dict]) -> list[dict]:
    """Answer against answer; a pair whose rejected side never answered (pairs.unanswered_as_rejected) has
    nothing to prefer against here and is left out."""
    return [pair_row(renderer, x["id"], "op", x, renderer.prompt(x["prompt"]),
                     x["chosen"]["answer"].strip() + renderer.end_of_turn,
                     x["rejected"]["answer"].strip() + renderer.end_of_turn) for x in op
            if x.get("rejected_from") != "unanswered"]


# A fresh adapter needs ~3.5x SRPO's rate to move as far as SRPO moves the trained RW adapter (train
# reward margin; measured on SmolLM2-135M, see recipe.Baselines).
FRESH_ADAPTER_LR_SCALE = 3.5


def dpo_learning_rate(recipe) -> float:
    """The plain-DPO arm's rate: baselines.dpo_learning_rate, else FRESH_ADAPTER_LR_SCALE x srpo's."""
    return recipe.baselines.dpo_learning_rate or FRESH_ADAPTER_LR_SCALE * recipe.srpo.learning_rate


def train_dpo_from_base(ctx, rows: list[dict], stage_dir: str) -> dict:
    """Plain DPO from the base: a fresh adapter whose reference is the base with adapters disabled (full
    fine-tuning: a second, frozen copy of the base), at dpo_learning_rate."""
    from trl import DPOTrainer

    r = ctx.recipe
    lr = dpo_learning_rate(r)
    run = TrainingRun(ctx, stage_dir, "dpo baseline", progress="baseline dpo")
    model, peft_config = load_base_for_training(ctx, r.srpo)
    reference = None
    if peft_config is None:
        reference = load_model(r, ctx.model_path, for_training=True).eval()
        reference.requires_grad_(False)
    trainer = DPOTrainer(model=model, ref_model=reference, args=dpo_config(r, run.ckpt_dir, learning_rate=lr),
                         train_dataset=dpo_dataset(rows), processing_class=ctx.tokenizer(),
                         peft_config=peft_config, callbacks=[run.logger])
    cast_trainable_to_fp32(trainer.model)
    run.train(trainer)
    run.save(trainer)
    return run.finish(trainer, {"pairs": len(rows), "learning_rate": lr})
