"""Stage `warmup` — Reasoning-style Warmup (RW): QLoRA SFT on RIT-D, loss on the response only.

Each record becomes a prompt/completion pair of strings rendered by models.Renderer (the prompt
through the model's chat template, the completion = <think>steps</think> answer + end-of-turn), so
TRL switches on completion-only loss by itself and no template needs {% generation %} markers.
Writes warmup/adapter (PEFT; warmup/model with `model.finetune: full`) and warmup/metrics.jsonl
(TRL's keys per logged step).

    python -m saro_lite.warmup --recipe recipes/tiny-cpu.yaml
"""
from __future__ import annotations

import shutil

from .fileio import read_jsonl, write_json
from .modeling.loading import artifact, cast_trainable_to_fp32, load_model, lora_config, prepare_for_qlora
from .training.trainer import (cuda_memory, make_metrics_logger, make_progress, quiet_trainer, start_checkpoint_dir,
                       checkpoint_step, trim_metrics, trainer_args)


def sft_dataset(renderer, rows: list[dict]):
    return prompt_completion_dataset(renderer, [(renderer.prompt(x["prompt"]),
                                                 renderer.response(x["reasoning"], x["answer"])) for x in rows])


def prompt_completion_dataset(renderer, pairs: list[tuple[str, str]]):
    """SFT records {prompt, completion}, the prompt ending on a token boundary (see models.split_on_token_boundary)."""
    from datasets import Dataset

    rows = []
    for prompt, completion in pairs:
        prompt, (completion,) = renderer.on_token_boundary(prompt, completion)
        rows.append({"prompt": prompt, "completion": completion})
    return Dataset.from_list(rows)


def check_lengths(tok, dataset, max_length: int, console) -> None:
    """Refuse a max_length the prompts alone fill (nothing left to learn); warn when answers get cut."""
    import numpy as np

    from .errors import UserError

    prompt = [len(tok(x)["input_ids"]) for x in dataset["prompt"]]
    full = [len(tok(p + c)["input_ids"]) for p, c in zip(dataset["prompt"], dataset["completion"])]
    if sum(p >= max_length for p in prompt) * 2 > len(prompt):
        raise UserError(f"warmup.max_length: {max_length} is too small for the prompts (median prompt "
                        f"{int(np.median(prompt))} tokens, median example {int(np.median(full))} tokens)")
    cut = sum(n > max_length for n in full)
    if cut:
        console.print(f"[yellow]warning:[/] {cut}/{len(full)} RW examples exceed warmup.max_length={max_length} and "
                      f"lose their end (the verdict); p50/p90/max = {int(np.percentile(full, 50))}/"
                      f"{int(np.percentile(full, 90))}/{max(full)} tokens")


def train_sft(ctx, dataset, stage_dir: str, fingerprint: str, label: str) -> dict:
    """QLoRA (or full) SFT on prompt/completion strings, with checkpoint resume, the metrics log and a
    progress bar; saves the adapter (or model) to <stage_dir>/adapter (or /model). Used by the RW
    warmup and by the safety-SFT baseline."""
    from trl import SFTConfig, SFTTrainer

    r = ctx.recipe
    tok = ctx.tokenizer()
    ckpt_dir = ctx.path(f"{stage_dir}/checkpoints")
    resume = start_checkpoint_dir(ckpt_dir, fingerprint)
    metrics_path = ctx.path(f"{stage_dir}/metrics.jsonl")
    trim_metrics(metrics_path, checkpoint_step(resume))
    if resume:
        ctx.console.print(f"resuming {label} from {resume}")

    model = load_model(r, ctx.model_path, for_training=True)
    peft_config = None
    if r.model.finetune == "lora":
        peft_config = lora_config(r)
        if getattr(model, "is_loaded_in_4bit", False):
            prepare_for_qlora(model, r.warmup.gradient_checkpointing)
    args = SFTConfig(**trainer_args(r, r.warmup, ckpt_dir), completion_only_loss=True, eos_token=tok.eos_token,
                     dataset_num_proc=None)
    logger = make_metrics_logger(metrics_path, ctx.console, label)
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tok,
                         peft_config=peft_config, callbacks=[logger])
    quiet_trainer(trainer, make_progress(ctx.console, label))
    cast_trainable_to_fp32(trainer.model)
    trainer.train(resume_from_checkpoint=resume)

    out = ctx.path(artifact(r, stage_dir))
    shutil.rmtree(out, ignore_errors=True)
    trainer.save_model(str(out))
    summary = {**logger.summary, **cuda_memory(), "records": len(dataset)}
    write_json(ctx.path(f"{stage_dir}/summary.json"), summary)
    if logger.rows:
        ctx.console.print(f"{label}: loss {logger.rows[0]['loss']:.3f} -> {logger.rows[-1]['loss']:.3f} "
                          f"over {logger.rows[-1]['step']} steps")
    return summary


def run(ctx) -> None:
    from .pipeline import Pipeline

    r = ctx.recipe
    rows = read_jsonl(ctx.path("data/rit_d.jsonl"))
    dataset = sft_dataset(ctx.renderer(), rows)
    check_lengths(ctx.tokenizer(), dataset, r.warmup.max_length, ctx.console)
    train_sft(ctx, dataset, "warmup", Pipeline(r, ctx.console, ctx.run_dir).expected_fingerprint("warmup"),
              "warmup (RW)")


def main(argv=None):
    from .cli import run_single_stage

    run_single_stage("warmup", argv)


if __name__ == "__main__":
    main()
