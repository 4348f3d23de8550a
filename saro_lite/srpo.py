"""Stage `srpo` — Safety-oriented Reasoning Process Optimization: DPO on OP-COT + PP-COT.

The policy starts from the RW adapter and the reference is the frozen RW model: TRL copies the
loaded adapter into a frozen adapter named `ref` (never the bare base with adapters disabled, which
would make every reward non-zero from step 0). One 4-bit base holds both adapters.
Writes srpo/adapter and srpo/metrics.jsonl: TRL's keys per logged step, plus the kit's validation
tracking rows (val/reward_accuracy, val/reward_margin, ...) at step 0, every srpo.track_every steps,
and after the final update; and figures/reward_tracking.png.

    python run_all.py --stages srpo --recipe recipes/tiny-cpu.yaml
    python run_all.py --stages srpo --set srpo.beta=0.05 --set srpo.track_every=5
"""
from __future__ import annotations

import shutil

from .fileio import read_jsonl, write_json
from .modeling.loading import artifact, load_model, prepare_for_qlora
from .training.datasets import dpo_dataset
from .training.tracking import RewardTracker, plot_reward_tracking
from .training.trainer import (checkpoint_step, cuda_memory, make_metrics_logger, make_progress, quiet_trainer,
                       start_checkpoint_dir, trainer_args, trim_metrics)


def reset_policy_to_reference(model) -> None:
    """Make the trainable adapter an exact fp32 copy of the frozen `ref` adapter (the RW weights).

    TRL casts trainable LoRA weights of quantized models to bf16, which rounds the RW weights (so the
    step-0 rewards are not 0) and swallows small DPO updates. `ref` kept the fp32 original."""
    import torch

    params = dict(model.named_parameters())
    for name, p in params.items():
        if p.requires_grad:
            ref_name = name.replace(".default.", ".ref.")
            src = params.get(ref_name)
            p.data = (src.data.detach().clone() if src is not None and ref_name != name else p.data).to(torch.float32)


def run(ctx) -> None:
    from peft import PeftModel
    from trl import DPOConfig, DPOTrainer

    r = ctx.recipe
    tok = ctx.tokenizer()
    train_rows = read_jsonl(ctx.path("data/srpo_train.jsonl"))
    val_rows = read_jsonl(ctx.path("data/srpo_val.jsonl"))

    ckpt_dir = ctx.path("srpo/checkpoints")
    resume = start_checkpoint_dir(ckpt_dir, ctx.fingerprint)
    metrics_path = ctx.path("srpo/metrics.jsonl")
    trim_metrics(metrics_path, checkpoint_step(resume))
    if resume:
        ctx.console.print(f"resuming srpo from {resume}")

    rw_dir = str(ctx.path(artifact(r, "warmup")))
    ref_model = None
    if r.model.finetune == "lora":
        base = load_model(r, ctx.model_path, for_training=True)
        if getattr(base, "is_loaded_in_4bit", False):
            prepare_for_qlora(base, r.srpo.gradient_checkpointing)
        policy = PeftModel.from_pretrained(base, rw_dir, is_trainable=True)
    else:  # full fine-tuning: the reference is a second, frozen copy of the RW model
        policy = load_model(r, rw_dir, for_training=True)  # fp32 weights under mixed precision
        ref_model = load_model(r, rw_dir, for_training=True).eval()
        ref_model.requires_grad_(False)

    args = DPOConfig(**trainer_args(r, r.srpo, ckpt_dir), beta=r.srpo.beta, loss_type=list(r.srpo.loss_type),
                     precompute_ref_log_probs=r.srpo.precompute_ref_log_probs, truncation_mode="keep_start",
                     dataset_num_proc=None)
    logger = make_metrics_logger(metrics_path, ctx.console, "srpo")
    callbacks = [logger]
    tracker = None
    if r.srpo.track_every > 0:
        tracker = RewardTracker(tok, val_rows, r.srpo.beta, r.srpo.track_batch_size, metrics_path, ctx.console,
                                ref_model=ref_model)
        callbacks.append(tracker.callback(r.srpo.track_every, resumed=resume is not None))
    trainer = DPOTrainer(model=policy, ref_model=ref_model, args=args, train_dataset=dpo_dataset(train_rows),
                         processing_class=tok, callbacks=callbacks)
    if ref_model is None:
        reset_policy_to_reference(trainer.model)
    quiet_trainer(trainer, make_progress(ctx.console, "srpo (DPO)"))
    trainer.train(resume_from_checkpoint=resume)

    out = ctx.path(artifact(r, "srpo"))
    shutil.rmtree(out, ignore_errors=True)
    if ref_model is None:
        trainer.model.save_pretrained(str(out), selected_adapters=["default"])
    else:
        trainer.model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    summary = {**logger.summary, **cuda_memory(), "train_pairs": len(train_rows), "val_pairs": len(val_rows)}
    if tracker:
        final = tracker.score(trainer.model, trainer.state.global_step)  # exactly the weights just saved
        summary.update({"val_reward_accuracy": final["val/reward_accuracy"],
                        "val_reward_margin": final["val/reward_margin"],
                        "val_reward_margin_per_token": final["val/reward_margin_per_token"],
                        "val_reward_accuracy_per_token": final["val/reward_accuracy_per_token"]})
        ctx.console.print(f"srpo: held-out reward accuracy {tracker.rows[0]['val/reward_accuracy']:.2f} -> "
                          f"{final['val/reward_accuracy']:.2f}, margin {tracker.rows[0]['val/reward_margin']:.3f} "
                          f"-> {final['val/reward_margin']:.3f}, per token {final['val/reward_margin_per_token']:.4f}"
                          f" (accuracy per token {final['val/reward_accuracy_per_token']:.2f}; {len(val_rows)} pairs)")
    write_json(ctx.path("srpo/summary.json"), summary)
    plot_reward_tracking(read_jsonl(metrics_path), ctx.path("figures/reward_tracking.png"),
                         f"SRPO reward tracking (beta={r.srpo.beta})")

