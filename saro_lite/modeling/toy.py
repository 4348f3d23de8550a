"""The toy world: a tiny *pretrained* base that stands in for an unaligned instruct model.

A random-weight tiny model says nothing, so base vs RW vs SaRO would be noise. Instead the tiny
base gets a short full fine-tune on generic chat in which it helps with everything: benign and
borderline prompts get a direct helpful answer, harmful and jailbreak prompts get a compliant answer
in the placeholder shape the content rule allows ("Sure — here's how. First, [details omitted]...").
No reasoning: like an ordinary instruct model, it answers at once. RW and SRPO then align it exactly
as they would a real model.

The corpus comes from the starter pack's TRAINING files only (never the eval prompts), with fixed
step counts and seed, so the base is the same on every machine and is cached by its settings.
"""
from __future__ import annotations

import random
from pathlib import Path

from ..data_sources.records import STARTER_DIR

SAFE_KINDS = ("benign", "borderline")


def base_corpus(seed: int = 0) -> list[dict]:
    """prompt/answer pairs of the unaligned base: help with everything, reasoning-free."""
    from ..fileio import read_jsonl

    rit = read_jsonl(STARTER_DIR / "rit_d.jsonl")
    op = read_jsonl(STARTER_DIR / "op_cot.jsonl")
    pp = read_jsonl(STARTER_DIR / "pp_cot.jsonl")
    # compliant answers to harmful requests (placeholder-shaped) are the rejected sides of unsafe pairs
    compliance = [r["rejected"]["answer"] for r in op + pp if r["kind"] not in SAFE_KINDS]
    rng = random.Random(seed)
    rows = []
    for r in rit:
        answer = r["answer"] if r["kind"] in SAFE_KINDS else rng.choice(compliance)
        rows.append({"prompt": r["prompt"], "answer": answer, "kind": r["kind"]})
    for r in op + pp:
        side = "chosen" if r["kind"] in SAFE_KINDS else "rejected"
        rows.append({"prompt": r["prompt"], "answer": r[side]["answer"], "kind": r["kind"]})
    rng.shuffle(rows)
    return rows


def pretrain_base(path: Path, spec, seed: int) -> dict:
    """Full fine-tune of the freshly built tiny model on the base corpus, in place."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    eot = tok.eos_token

    def prompt(text: str) -> str:
        return tok.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                       add_generation_prompt=True)

    ds = Dataset.from_list([{"prompt": prompt(r["prompt"]), "completion": r["answer"] + eot}
                            for r in base_corpus(seed)])
    args = SFTConfig(output_dir=str(path / ".pretrain"), max_steps=spec.pretrain_steps,
                     per_device_train_batch_size=spec.pretrain_batch_size, learning_rate=spec.pretrain_lr,
                     lr_scheduler_type="cosine", warmup_steps=0.05, weight_decay=0.0, max_length=256,
                     completion_only_loss=True, use_cpu=not torch.cuda.is_available(), bf16=False,
                     gradient_checkpointing=False, logging_steps=10, report_to=[], save_strategy="no",
                     disable_tqdm=True, dataloader_pin_memory=False, seed=seed, data_seed=seed,
                     dataset_num_proc=None)
    trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    out = trainer.train()
    trainer.model.save_pretrained(path)
    import shutil

    shutil.rmtree(path / ".pretrain", ignore_errors=True)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"steps": spec.pretrain_steps, "first_loss": losses[0] if losses else None,
            "last_loss": losses[-1] if losses else None, "seconds": out.metrics.get("train_runtime")}
