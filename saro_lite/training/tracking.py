"""Reward tracking on held-out pairs during SRPO (the paper's Figure 4), written by hand.

Implicit reward of a response: r(x, y) = beta * (log pi_theta(y|x) - log pi_ref(y|x)), summed over
the response tokens. On the validation pairs:
    val/reward_accuracy = share of pairs with r(chosen) > r(rejected)
    val/reward_margin   = mean of r(chosen) - r(rejected)
    val/reward_chosen, val/reward_rejected = means of each side
Length-controlled (a longer response sums more log-prob changes, so a summed margin can grow with
length alone; in the starter pack the chosen side is the longer one in every pair):
    val/reward_margin_per_token   = mean of r(chosen)/|chosen| - r(rejected)/|rejected|
    val/reward_accuracy_per_token = share of pairs where r/|y| is higher for the chosen side

Pairs are scored exactly as TRL's DPOTrainer scores them: append the end-of-turn token unless the
response already ends with it, tokenize `prompt` and `prompt + response` separately, and score from the
first position where the two token lists diverge; sequences longer than srpo.max_length are cut
as DPOConfig(truncation_mode="keep_start") cuts them (their end goes), and a pair whose prompt alone
fills max_length is left out, as TRL leaves it out of training. Reference log-probs are
computed once (the RW model, TRL's frozen `ref` adapter); policy log-probs are computed in batched
no-grad passes that return per-token log-probs without materialising full-vocabulary logits.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..fileio import append_jsonl
from ..ranks import is_main


@dataclass
class Encoded:
    input_ids: list[int]
    start: int  # first completion token (where prompt and prompt+response diverge)


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def encode_pairs(tokenizer, rows: list[dict], max_length: int | None = None) -> list[tuple[Encoded, Encoded]]:
    eos = tokenizer.eos_token
    out = []
    for r in rows:
        p = tokenizer(r["prompt"])["input_ids"]
        if max_length is not None and len(p) >= max_length:
            continue  # TRL drops it: nothing of the response would be left
        sides = []
        full = {}
        for side in ("chosen", "rejected"):
            text = r[side] if r[side].endswith(eos) else r[side] + eos
            full[side] = tokenizer(r["prompt"] + text)["input_ids"][:max_length]
        start = min(common_prefix(p, full["chosen"]), common_prefix(p, full["rejected"]))
        for side in ("chosen", "rejected"):
            sides.append(Encoded(full[side], start))
        out.append(tuple(sides))
    return out


def _batch(seqs: list[Encoded], pad_id: int, device):
    import torch

    width = max(len(s.input_ids) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    labels = torch.full((len(seqs), width), -100, dtype=torch.long)
    for i, s in enumerate(seqs):
        n = len(s.input_ids)
        ids[i, :n] = torch.tensor(s.input_ids)
        mask[i, :n] = 1
        labels[i, s.start:n] = ids[i, s.start:n]
    return ids.to(device), mask.to(device), labels.to(device)


def sequence_logps(model, seqs: list[Encoded], pad_id: int, batch_size: int = 8, fused: bool = True) -> list[float]:
    """Sum of log pi(y_t | x, y_<t) over completion tokens, per sequence, in no-grad batches.

    fused=True uses TRL's fused LM head (patched onto the model by DPOTrainer): per-token log-probs
    without a (batch, length, vocabulary) logits tensor. fused=False is the plain reference path."""
    import torch

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out: list[float] = []
    try:
        with torch.no_grad():
            for i in range(0, len(seqs), batch_size):
                ids, mask, labels = _batch(seqs[i:i + batch_size], pad_id, device)
                if fused:
                    lp = model(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True,
                               use_cache=False).log_probs
                    out.extend(lp.float().sum(dim=1).tolist())
                else:
                    logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits[:, :-1].float()
                    tgt = labels[:, 1:]
                    logp = torch.log_softmax(logits, dim=-1).gather(-1, tgt.clamp(min=0).unsqueeze(-1)).squeeze(-1)
                    out.extend((logp * (tgt != -100)).sum(dim=1).tolist())
    finally:
        model.train(was_training)
    return out


def reward_stats(beta: float, pol_c, pol_r, ref_c, ref_r, len_c=None, len_r=None) -> dict:
    """len_c / len_r: completion token counts per pair; given, the per-token (length-controlled) margin
    and accuracy are added."""
    rc = [beta * (a - b) for a, b in zip(pol_c, ref_c)]
    rr = [beta * (a - b) for a, b in zip(pol_r, ref_r)]
    n = len(rc)
    out = {"val/reward_accuracy": sum(c > r for c, r in zip(rc, rr)) / n,
           "val/reward_margin": sum(c - r for c, r in zip(rc, rr)) / n,
           "val/reward_chosen": sum(rc) / n,
           "val/reward_rejected": sum(rr) / n}
    if len_c is not None and len_r is not None:
        tc = [c / max(k, 1) for c, k in zip(rc, len_c)]
        tr = [r / max(k, 1) for r, k in zip(rr, len_r)]
        out["val/reward_margin_per_token"] = sum(c - r for c, r in zip(tc, tr)) / n
        out["val/reward_accuracy_per_token"] = sum(c > r for c, r in zip(tc, tr)) / n
    return out


class RewardTracker:
    """Scores the validation pairs at step 0, every `every` steps, and on the final weights."""

    def __init__(self, tokenizer, rows: list[dict], beta: float, batch_size: int, metrics_path: Path, console,
                 fused: bool = True, ref_model=None, max_length: int | None = None):
        pairs = encode_pairs(tokenizer, rows, max_length)
        self.chosen = [c for c, _ in pairs]
        self.rejected = [r for _, r in pairs]
        self.pad_id = tokenizer.pad_token_id
        self.beta, self.batch_size, self.fused = beta, batch_size, fused
        self.metrics_path, self.console = metrics_path, console
        self.ref: tuple[list[float], list[float]] | None = None
        self.ref_model = ref_model  # full fine-tuning: a separate frozen RW model; LoRA: the `ref` adapter
        self.rows: list[dict] = []

    def _logps(self, model) -> tuple[list[float], list[float]]:
        both = sequence_logps(model, self.chosen + self.rejected, self.pad_id, self.batch_size, self.fused)
        return both[:len(self.chosen)], both[len(self.chosen):]

    def compute_reference(self, model) -> None:
        """Once: the frozen RW model (TRL's `ref` adapter) on every validation response."""
        if self.ref_model is not None:
            self.ref = self._logps(self.ref_model)
            return
        from trl.trainer.utils import use_adapter

        with use_adapter(model, adapter_name="ref" if "ref" in model.peft_config else None):
            self.ref = self._logps(model)

    def score(self, model, step: int) -> dict:
        if self.ref is None:
            self.compute_reference(model)
        pol_c, pol_r = self._logps(model)
        row = {"step": step, **reward_stats(self.beta, pol_c, pol_r, *self.ref,
                                            len_c=[len(e.input_ids) - e.start for e in self.chosen],
                                            len_r=[len(e.input_ids) - e.start for e in self.rejected])}
        self.rows.append(row)
        if is_main():  # one writer under accelerate launch (every process scores the same weights)
            append_jsonl(self.metrics_path, row)
        return row

    def check_start(self, row: dict) -> None:
        """At step 0 the policy IS the reference: accuracy 1.0 or a margin far from 0 means the
        reference is wrong (e.g. the bare base with adapters disabled)."""
        if not all(math.isfinite(row[k]) for k in ("val/reward_margin", "val/reward_chosen", "val/reward_rejected")):
            raise UserError(f"SRPO step 0: the validation reward margin is {row['val/reward_margin']} (not a number): "
                            "the reference or the policy computes NaN/inf log-probs, as fp16 does on models that "
                            "overflow in it (Qwen2.5, Gemma); use model.dtype bfloat16 on a GPU that has it, or float32")
        if abs(row["val/reward_margin"]) > 1e-3 or row["val/reward_accuracy"] >= 1.0:
            self.console.print(f"[yellow]warning:[/] at SRPO step 0 the validation reward margin is "
                               f"{row['val/reward_margin']:.4g} and accuracy {row['val/reward_accuracy']:.2f}; both "
                               f"should be ~0 when the reference is the RW model. Check the reference model.")

    def callback(self, every: int, resumed: bool):
        from transformers import TrainerCallback

        tracker = self

        class TrackingCallback(TrainerCallback):
            def on_train_begin(self, args, state, control, model=None, **kw):
                if tracker.ref is None:
                    tracker.compute_reference(model)
                if not resumed:
                    tracker.check_start(tracker.score(model, 0))

            def on_step_end(self, args, state, control, model=None, **kw):
                if every and state.global_step % every == 0 and state.global_step < state.max_steps:
                    tracker.score(model, state.global_step)

        return TrackingCallback()


def smooth(values: list[float], weight: float = 0.6) -> list[float]:
    out, last = [], None
    for v in values:
        last = v if last is None else weight * last + (1 - weight) * v
        out.append(last)
    return out


def plot_reward_tracking(rows: list[dict], path: Path, title: str = "SRPO reward tracking") -> Path | None:
    """Figure 4: reward accuracy and margin on held-out pairs (bold), TRL's per-batch values (raw and
    smoothed) behind them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    val = [r for r in rows if "val/reward_accuracy" in r]
    train = [r for r in rows if "rewards/accuracies" in r]
    if not val and not train:
        return None
    per_token = any("val/reward_margin_per_token" in r for r in val)
    panels = [("val/reward_accuracy", "rewards/accuracies", "reward accuracy"),
              ("val/reward_margin", "rewards/margins", "reward margin")]
    if per_token:  # length-controlled: no per-batch TRL counterpart
        panels.append(("val/reward_margin_per_token", None, "reward margin per token (length-controlled)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.8))
    for ax, (vkey, tkey, label) in zip(axes, panels):
        if train and tkey:
            xs = [r["step"] for r in train]
            ys = [r[tkey] for r in train]
            ax.plot(xs, ys, color="tab:gray", alpha=0.3, lw=1, label="train batch (raw)")
            ax.plot(xs, smooth(ys), color="tab:gray", alpha=0.8, lw=1.2, label="train batch (smoothed)")
        if val:
            pts = [r for r in val if vkey in r]
            ax.plot([r["step"] for r in pts], [r[vkey] for r in pts], color="tab:blue", lw=2.2, marker="o",
                    ms=3, label="held-out pairs")
        ax.set_xlabel("SRPO step")
        ax.set_title(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylim(-0.05, 1.05)
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    from ..fileio import save_figure

    return save_figure(fig, path)
