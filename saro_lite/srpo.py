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

from .fileio import read_jsonl
from .recipe import artifact
from .modeling.loading import load_model
from .modeling.qlora import prepare_for_qlora
from .training.examples import dpo_dataset
from .training.tracking import RewardTracker, plot_reward_tracking
from .training.trainer import TrainingRun, dpo_config


def run(ctx) -> None:
    from trl import DPOTrainer

    r = ctx.recipe
    tok = ctx.tokenizer()
    train_rows = read_jsonl(ctx.path("data/srpo_train.jsonl"))
    val_rows = read_jsonl(ctx.path("data/srpo_val.jsonl"))
    run = TrainingRun(ctx, "srpo", "srpo", progress="srpo (DPO)")

    # 1. the policy (the RW model) and its reference (the RW model, frozen)
    policy, reference = load_policy_and_reference(ctx)
    # 2. reward tracking on the held-out pairs (Figure 4): step 0, every track_every steps, the final weights
    tracker = None
    callbacks = [run.logger]
    if r.srpo.track_every > 0:
        tracker = RewardTracker(tok, val_rows, r.srpo.beta, r.srpo.track_batch_size, run.metrics_path, ctx.console,
                                ref_model=reference, max_length=r.srpo.max_length)
        callbacks.append(tracker.callback(r.srpo.track_every, resumed=run.resume is not None))
    # 3. the trainer: DPO on OP-COT + PP-COT
    trainer = DPOTrainer(model=policy, ref_model=reference, args=dpo_config(r, run.ckpt_dir),
                         train_dataset=dpo_dataset(train_rows), processing_class=tok, callbacks=callbacks)
    if reference is None:
        reset_policy_to_reference(trainer.model)
    # 4. train, save the policy (without the frozen `ref` adapter), summarize
    run.train(trainer)

    def save(out) -> None:
        if reference is None:
            trainer.model.save_pretrained(str(out), selected_adapters=["default"])
        else:
            trainer.model.save_pretrained(str(out))
        tok.save_pretrained(str(out))

    run.save(trainer, save)
    extra = {"train_pairs": len(train_rows), "val_pairs": len(val_rows)}
    if tracker:
        final = tracker.score(trainer.model, trainer.state.global_step)  # exactly the weights just saved
        extra.update({"val_reward_accuracy": final["val/reward_accuracy"],
                      "val_reward_margin": final["val/reward_margin"],
                      "val_reward_margin_per_token": final["val/reward_margin_per_token"],
                      "val_reward_accuracy_per_token": final["val/reward_accuracy_per_token"]})
        ctx.console.print(f"srpo: held-out reward accuracy {tracker.rows[0]['val/reward_accuracy']:.2f} -> "
                          f"{final['val/reward_accuracy']:.2f}, margin {tracker.rows[0]['val/reward_margin']:.3f}"
                          f" -> {final['val/reward_margin']:.3f}, per token "
                          f"{final['val/reward_margin_per_token']:.4f} (accuracy per token "
                          f"{final['val/reward_accuracy_per_token']:.2f}; {len(val_rows)} pairs)")
    run.finish(trainer, extra)
    plot_reward_tracking(read_jsonl(run.metrics_path, torn_ok=True), ctx.path("figures/reward_tracking.png"),
                         f"SRPO reward tracking (beta={r.srpo.beta})")


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


def load_policy_and_reference(ctx):
    """The policy starts as the RW model. LoRA: one 4-bit base with the RW adapter, trainable; TRL copies it
    into the frozen `ref` adapter (reference None here). Full fine-tuning: two copies of the RW model, the
    second frozen as the reference."""
    from peft import PeftModel

    r = ctx.recipe
    rw_dir = str(ctx.path(artifact(r, "warmup")))
    if r.model.finetune == "lora":
        base = load_model(r, ctx.model_path, for_training=True)
        if getattr(base, "is_loaded_in_4bit", False):
            prepare_for_qlora(base, r.srpo.gradient_checkpointing)
        return PeftModel.from_pretrained(base, rw_dir, is_trainable=True), None
    policy = load_model(r, rw_dir, for_training=True)  # fp32 weights under mixed precision
    reference = load_model(r, rw_dir, for_training=True).eval()
    reference.requires_grad_(False)
    return policy, reference
