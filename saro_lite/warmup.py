"""Stage `warmup` — Reasoning-style Warmup (RW): QLoRA SFT on RIT-D, loss on the response only.

Each record becomes a prompt/completion pair of strings rendered by modeling.rendering.Renderer (the prompt
through the model's chat template, the completion = <think>steps</think> answer + end-of-turn), so
TRL switches on completion-only loss by itself and no template needs {% generation %} markers.
Writes warmup/adapter (PEFT; warmup/model with `model.finetune: full`) and warmup/metrics.jsonl
(TRL's keys per logged step).

    python run_all.py --stages warmup --recipe recipes/tiny-cpu.yaml
"""
from __future__ import annotations

from .errors import UserError
from .fileio import read_jsonl
from .training.examples import sft_dataset
from .training.trainer import train_sft


def run(ctx) -> None:
    r = ctx.recipe
    rows = read_jsonl(ctx.path("data/rit_d.jsonl"))
    dataset = sft_dataset(ctx.renderer(), rows)
    check_lengths(ctx.tokenizer(), dataset, r.warmup.max_length, ctx.console)
    train_sft(ctx, dataset, "warmup", "warmup (RW)")


def check_lengths(tok, dataset, max_length: int, console) -> None:
    """Refuse a max_length the prompts alone fill (nothing left to learn); warn when answers get cut."""
    import numpy as np

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
