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

import shutil

from .data_sources.records import STARTER_DIR, load_op
from .fileio import read_jsonl, write_json
from .modeling.loading import artifact, cast_trainable_to_fp32, load_model, lora_config, prepare_for_qlora
from .training.datasets import dpo_dataset, pair_row, prompt_completion_dataset
from .training.trainer import (checkpoint_step, cuda_memory, make_metrics_logger, make_progress, quiet_trainer,
                               start_checkpoint_dir, train_sft, trainer_args, trim_metrics)
from .vocabulary import BASELINE_ARMS


def requested(recipe) -> list[str]:
    return [a for a in recipe.eval.arms if a in BASELINE_ARMS]


def direct_sft_dataset(renderer, rows: list[dict]):
    return prompt_completion_dataset(renderer, [(renderer.prompt(x["prompt"]),
                                                 x["answer"].strip() + renderer.end_of_turn) for x in rows])


def direct_dpo_rows(renderer, op: list[dict]) -> list[dict]:
    return [pair_row(renderer, x["id"], "op", x, renderer.prompt(x["prompt"]),
                     x["chosen"]["answer"].strip() + renderer.end_of_turn,
                     x["rejected"]["answer"].strip() + renderer.end_of_turn) for x in op]


def train_dpo_from_base(ctx, rows: list[dict], stage_dir: str, fingerprint: str) -> dict:
    from trl import DPOConfig, DPOTrainer

    r = ctx.recipe
    ckpt_dir = ctx.path(f"{stage_dir}/checkpoints")
    resume = start_checkpoint_dir(ckpt_dir, fingerprint)
    metrics_path = ctx.path(f"{stage_dir}/metrics.jsonl")
    trim_metrics(metrics_path, checkpoint_step(resume))
    model = load_model(r, ctx.model_path, for_training=True)
    ref_model, peft_config = None, None
    if r.model.finetune == "lora":
        peft_config = lora_config(r)  # a fresh adapter; TRL's reference = adapters disabled = the base
        if getattr(model, "is_loaded_in_4bit", False):
            prepare_for_qlora(model, r.srpo.gradient_checkpointing)
    else:
        ref_model = load_model(r, ctx.model_path, for_training=True).eval()
        ref_model.requires_grad_(False)
    args = DPOConfig(**trainer_args(r, r.srpo, ckpt_dir), beta=r.srpo.beta, loss_type=list(r.srpo.loss_type),
                     truncation_mode="keep_start", dataset_num_proc=None)
    logger = make_metrics_logger(metrics_path, ctx.console, "dpo baseline")
    trainer = DPOTrainer(model=model, ref_model=ref_model, args=args, train_dataset=dpo_dataset(rows),
                         processing_class=ctx.tokenizer(), peft_config=peft_config, callbacks=[logger])
    cast_trainable_to_fp32(trainer.model)
    quiet_trainer(trainer, make_progress(ctx.console, "baseline dpo"))
    trainer.train(resume_from_checkpoint=resume)
    out = ctx.path(artifact(r, stage_dir))
    shutil.rmtree(out, ignore_errors=True)
    trainer.save_model(str(out))
    summary = {**logger.summary, **cuda_memory(), "pairs": len(rows)}
    write_json(ctx.path(f"{stage_dir}/summary.json"), summary)
    return summary


def run(ctx) -> None:
    r = ctx.recipe
    arms = requested(r)
    if not arms:
        ctx.console.print("no baseline arms requested (add safety_sft and/or dpo to eval.arms)")
        return
    fp = ctx.fingerprint
    renderer = ctx.renderer()
    if "safety_sft" in arms:
        rows = read_jsonl(ctx.path("data/rit_d.jsonl"))
        train_sft(ctx, direct_sft_dataset(renderer, rows), "baselines/safety_sft", fp, "baseline safety_sft")
    if "dpo" in arms:
        op = read_jsonl(ctx.path("data/op_cot.jsonl"), allow_empty=True) or load_op(STARTER_DIR / "op_cot.jsonl")
        train_dpo_from_base(ctx, direct_dpo_rows(renderer, op), "baselines/dpo", fp)

