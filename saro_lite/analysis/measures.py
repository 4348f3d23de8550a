"""Analyses behind Figures 3 and 5: reflection / self-correction in reasoning traces, intervals for rates
and paired differences, and the embedding geometry of eval prompts (base vs saro).

Reflection (Figure 5). A step "reflects" when it matches `REFLECTION_RE` below (wait, hmm, hold on,
on second thought, let me check, actually, ...). Per trace:

- reflection                 any step reflects (same rule as `analysis.scoring.has_reflection`);
- first_reflection_position  index of the first reflecting step / max(1, len(steps) - 1): 0 = the
                             first step, 1 = the last (SRPO is meant to move it earlier);
- self_correction            the decision changes across the first reflection: the last decision cue
                             BEFORE the first reflection marker (earlier steps, plus the text of the
                             reflecting step before the marker) differs from the last decision cue AT
                             OR AFTER it. Cues are phrases of help intent ("I'll help", "fine to
                             answer", "this is routine", "sure", ...) or refuse intent ("decline",
                             "refuse", "won't help", "not provide", "must not", ...). A cue negated in
                             its own clause ("no need to refuse", "not fine to answer", "make sure")
                             is not a cue. This is a net change: help -> refuse -> help counts as none.

Intervals. The report's rates (attack success, over-refusal, accuracy) carry Wilson score intervals
(`wilson_ci`), and two arms are compared on the same prompts with a paired interval (`paired_difference`,
Newcombe's score method for paired proportions). `bootstrap_ci`, a percentile bootstrap of the mean,
serves the other measures (reflection). With small sets every interval is wide (n=4 gives roughly ±0.4
on a rate near 0.5); the percentile bootstrap also collapses to a point when every value agrees (0 of 4
traces reflect: [0, 0]) although the rate is far from pinned down, which is why the rates use score
intervals. Read every interval together with its n.

Embeddings (Figure 3). `prompt_embeddings` mean-pools the last layer's hidden states over the non-pad
tokens of each prompt (rendered with the chat template by the caller, as the model sees it).
`separation` measures how far prompt kinds lie apart: a silhouette score, a centroid-distance table
and a harmful-vs-benign ratio. The default metric is COSINE distance on embeddings centred by their
global mean: raw LLM hidden states share a large common direction (and a few huge-activation
dimensions) that makes every raw cosine ≈ 1; centring removes it. `metric="euclidean"` is available.

numpy + matplotlib (Agg) only; torch is imported inside `prompt_embeddings`.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..fileio import save_figure

# Reflection markers (Figure 5): the reasoning pauses to re-examine itself.
REFLECTION_RE = re.compile(
    r"\b(wait|hmm+|hold on|on second thought|let me (?:double[- ])?check|let me reconsider|re-?consider|"
    r"actually|but then again|however, (?:the|this|that)|looking again|stepping back)\b", re.I)

# ------------------------------------------------------------------------------------------
# Reflection and self-correction
# ------------------------------------------------------------------------------------------
# Marker types for Figure 5, in display order; `marker_type` maps a REFLECTION_RE match onto them.
MARKER_TYPES = ("wait", "hmm", "hold on", "on second thought", "let me check", "reconsider", "actually",
                "but then again", "however", "looking again", "stepping back")

HELP_CUE_RE = re.compile(
    r"\b(?:I(?:'ll| will) (?:help|outline|explain|walk)|I can (?:answer|help)|happy to help|fine to answer|"
    r"this is routine|go ahead|(?<!make )(?<!be )(?<!for )sure)\b", re.I)
REFUSE_CUE_RE = re.compile(
    r"\b(?:declin\w*|refus\w*|(?:won't|can't|cannot) (?:help|assist|provide)|not provide|must not)\b", re.I)
# A cue preceded by one of these in its own clause is negated ("no need to refuse", "not fine to answer").
_NEGATION_RE = re.compile(
    r"\b(?:no|not|never|without|rather than|instead of|don't|doesn't|shouldn't|needn't|won't|wouldn't|"
    r"isn't|can't|cannot)\b", re.I)
_CLAUSE_END = re.compile(r"[.;:!?,\n—–]")
_NEGATION_WINDOW = 30  # characters before a cue searched for a negation (within its clause)

HELP, REFUSE = "help", "refuse"


def _norm(text: str) -> str:
    return text.replace("\u2019", "'").replace("\u2018", "'")


def marker_type(match: str) -> str:
    """A REFLECTION_RE match -> one of MARKER_TYPES."""
    m = " ".join(_norm(match).lower().split())
    if m.startswith("hmm"):
        return "hmm"
    if m.startswith("let me") and "check" in m:
        return "let me check"
    if "consider" in m:
        return "reconsider"
    if m.startswith("however"):
        return "however"
    return m


def _negated(text: str, start: int) -> bool:
    before = text[max(0, start - _NEGATION_WINDOW):start]
    parts = _CLAUSE_END.split(before)
    return bool(_NEGATION_RE.search(parts[-1])) if parts else False


def decision_cues(text: str) -> list[tuple[int, str]]:
    """(position, HELP | REFUSE) for each non-negated decision cue in text, in order."""
    text = _norm(text)
    cues = [(m.start(), HELP) for m in HELP_CUE_RE.finditer(text)]
    cues += [(m.start(), REFUSE) for m in REFUSE_CUE_RE.finditer(text)]
    return sorted((pos, kind) for pos, kind in cues if not _negated(text, pos))


def reflection_stats(steps: list[str]) -> dict:
    """{reflection, first_reflection_position (0 = first step, 1 = last; None without reflection),
    self_correction} for one reasoning trace (its list of steps)."""
    steps = [_norm(s) for s in steps or []]
    first = next(((i, m.start()) for i, s in enumerate(steps) for m in [REFLECTION_RE.search(s)] if m), None)
    if first is None:
        return {"reflection": False, "first_reflection_position": None, "self_correction": False}
    k, at = first
    before = after = None
    for i, step in enumerate(steps):
        for pos, kind in decision_cues(step):
            if (i, pos) < (k, at):
                before = kind
            else:
                after = kind
    return {"reflection": True, "first_reflection_position": k / max(1, len(steps) - 1),
            "self_correction": before is not None and after is not None and before != after}


def _rows_of(rows) -> list[dict]:
    """A list of eval rows, or {set: rows} (as report.collect returns per arm) flattened."""
    if isinstance(rows, dict):
        return [r for rs in rows.values() for r in rs]
    return list(rows)


def pattern_counts(rows) -> dict:
    """Figure 5 counts per arm. `rows`: {arm: [eval rows]} or {arm: {set: [eval rows]}}.
    -> {arm: {n, traces_with_reflection, self_corrections, markers: {type: occurrences}}};
    markers count every occurrence of a marker type in the reasoning steps."""
    out = {}
    for arm, rs in rows.items():
        rs = _rows_of(rs)
        markers = dict.fromkeys(MARKER_TYPES, 0)
        reflective = corrected = 0
        for r in rs:
            steps = r.get("reasoning") or []
            for s in steps:
                for m in REFLECTION_RE.finditer(_norm(s)):
                    t = marker_type(m.group(0))
                    markers[t] = markers.get(t, 0) + 1
            st = reflection_stats(steps)
            reflective += st["reflection"]
            corrected += st["self_correction"]
        out[arm] = {"n": len(rs), "traces_with_reflection": reflective, "self_corrections": corrected,
                    "markers": markers}
    return out


# ------------------------------------------------------------------------------------------
# Bootstrap intervals
# ------------------------------------------------------------------------------------------
def bootstrap_ci(values, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean (None for no values). Deterministic for a seed.
    Small n gives wide intervals; identical values give a zero-width one (see the module docstring)."""
    x = np.asarray(list(values), dtype=float)
    n = x.size
    if n == 0:
        return None
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    chunk = max(1, 4_000_000 // n)  # bounded memory for large n
    for s in range(0, n_boot, chunk):
        m = min(chunk, n_boot - s)
        means[s:s + m] = x[rng.integers(0, n, size=(m, n))].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


Z95 = 1.959963984540054


def wilson_ci(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval of a proportion (None for n = 0). Unlike a percentile bootstrap it never
    collapses to a point: 0 of 16 gives [0.00, 0.19], not [0, 0]."""
    if n <= 0:
        return None
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def paired_difference(pairs: list[tuple[bool, bool]], z: float = Z95) -> dict | None:
    """The difference of two proportions measured on the same items (arm A − arm B on the same prompts),
    with Newcombe's hybrid score interval for paired data (Newcombe 1998, method 10): it uses the
    within-prompt correlation, so a paired comparison is tighter than two separate intervals, and it
    never collapses to a point when no pair differs. {diff, ci, n, a, b}; None for no pairs."""
    n = len(pairs)
    if not n:
        return None
    both = sum(1 for a, b in pairs if a and b)
    only_a = sum(1 for a, b in pairs if a and not b)
    only_b = sum(1 for a, b in pairs if b and not a)
    neither = n - both - only_a - only_b
    p1, p2 = (both + only_a) / n, (both + only_b) / n
    l1, u1 = wilson_ci(both + only_a, n, z)
    l2, u2 = wilson_ci(both + only_b, n, z)
    denom = (both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
    phi = (both * neither - only_a * only_b) / np.sqrt(denom) if denom > 0 else 0.0
    diff = p1 - p2
    lo = diff - np.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    hi = diff + np.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return {"diff": float(diff), "ci": [float(max(-1.0, lo)), float(min(1.0, hi))], "n": n, "a": p1, "b": p2}


def _rate(values, n_boot: int, seed: int) -> tuple[float | None, list[float] | None]:
    values = list(values)
    ci = bootstrap_ci(values, n_boot=n_boot, seed=seed)
    return (float(np.mean(values)) if values else None), (list(ci) if ci else None)


def reflection_metrics(rows, n_boot: int = 1000, seed: int = 0) -> dict:
    """Reflection metrics for one arm (rows: a list, or {set: rows}), each with a 95% bootstrap CI:
    reflection_rate and self_correction_rate over all traces; first_reflection_position averaged over
    the traces that reflect (n_reflective of them)."""
    stats = [reflection_stats(r.get("reasoning") or []) for r in _rows_of(rows)]
    out: dict = {"n": len(stats)}
    out["reflection_rate"], out["reflection_rate_ci"] = _rate((s["reflection"] for s in stats), n_boot, seed)
    out["self_correction_rate"], out["self_correction_rate_ci"] = _rate(
        (s["self_correction"] for s in stats), n_boot, seed)
    pos = [s["first_reflection_position"] for s in stats if s["reflection"]]
    out["n_reflective"] = len(pos)
    out["first_reflection_position"], out["first_reflection_position_ci"] = _rate(pos, n_boot, seed)
    return out


# ------------------------------------------------------------------------------------------
# Embeddings
# ------------------------------------------------------------------------------------------
def prompt_embeddings(model, tokenizer, prompts: list[str], batch_size: int = 16, padding_side: str | None = None,
                      max_length: int | None = None) -> np.ndarray:
    """(len(prompts), hidden) float32: the last layer's hidden states mean-pooled over each prompt's
    non-pad tokens. Works on plain and PEFT-wrapped causal LMs (for the base arm of a PEFT model, call
    it inside `model.disable_adapter()`). Prompts are fed as given: pass chat-rendered prompts
    (`renderer.prompt(text)`) to embed what the model sees; they are tokenized by the very call generation
    uses (generate.encode_prompts: special tokens added, so a template that relies on the tokenizer's BOS
    keeps it), and max_length truncates as it would. Position ids are derived from the
    attention mask, so left and right padding give the same vectors. No gradients; every module's
    train/eval mode and the tokenizer's padding side are restored afterwards."""
    import inspect

    import torch

    hidden = getattr(getattr(model, "config", None), "hidden_size", 0) or 0
    if not prompts:
        return np.zeros((0, hidden), dtype=np.float32)
    if tokenizer.pad_token_id is None:
        raise ValueError("prompt_embeddings: the tokenizer has no pad token")
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    params = inspect.signature(base.forward).parameters
    kwargs: dict = {"output_hidden_states": True, "use_cache": False}
    if "logits_to_keep" in params:  # the logits are not needed: skip the (B, T, vocab) head output
        kwargs["logits_to_keep"] = 1
    elif "num_logits_to_keep" in params:
        kwargs["num_logits_to_keep"] = 1
    with_positions = "position_ids" in params
    from ..modeling.generate import encode_prompts, prompt_length

    lengths = [prompt_length(tokenizer, p, max_length) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: lengths[i])  # similar lengths share a batch
    device = next(model.parameters()).device
    modes = [(m, m.training) for m in model.modules()]
    old_side = tokenizer.padding_side
    result: list[np.ndarray | None] = [None] * len(prompts)
    try:
        if padding_side:
            tokenizer.padding_side = padding_side
        model.eval()
        with torch.no_grad():
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                enc = encode_prompts(tokenizer, [prompts[i] for i in idx], max_length)
                ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)
                extra = {"position_ids": (mask.long().cumsum(-1) - 1).clamp(min=0)} if with_positions else {}
                out = model(input_ids=ids, attention_mask=mask, **extra, **kwargs)
                h = out.hidden_states[-1].float()
                keep = mask.bool().unsqueeze(-1)
                summed = torch.where(keep, h, torch.zeros((), dtype=h.dtype, device=h.device)).sum(dim=1)
                pooled = summed / mask.sum(dim=1, keepdim=True).clamp(min=1).to(h.dtype)
                for i, v in zip(idx, pooled.cpu().numpy()):
                    result[i] = v
    finally:
        tokenizer.padding_side = old_side
        for m, training in modes:
            m.training = training
    return np.stack(result).astype(np.float32)


def _prepare(emb: np.ndarray, metric: str, center: bool) -> np.ndarray:
    x = np.asarray(emb, dtype=np.float64)
    if center and len(x):
        x = x - x.mean(axis=0, keepdims=True)
    if metric == "cosine":
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    elif metric != "euclidean":
        raise ValueError(f"separation: metric must be 'cosine' or 'euclidean', got {metric!r}")
    return x


def _pairwise(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    """Distances between rows of a and rows of b (cosine: inputs are unit vectors)."""
    if metric == "cosine":
        return np.clip(1.0 - a @ b.T, 0.0, 2.0)
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(sq, 0.0))


def silhouette(x: np.ndarray, labels: np.ndarray, metric: str) -> tuple[float | None, dict]:
    """Mean silhouette over points (x already prepared for the metric) and its mean per label.
    Points alone in their label score 0 (the usual convention); None with fewer than 2 labels."""
    kinds = sorted(set(labels.tolist()))
    if len(kinds) < 2 or len(x) < 3:
        return None, {}
    d = _pairwise(x, x, metric)
    onehot = np.stack([labels == k for k in kinds], axis=1).astype(float)  # (n, K)
    counts = onehot.sum(0)
    sums = d @ onehot  # (n, K): total distance from each point to each label
    own = onehot.argmax(1)
    n_own = counts[own] - 1
    a = np.where(n_own > 0, sums[np.arange(len(x)), own] / np.maximum(n_own, 1), 0.0)
    mean_other = sums / counts[None, :]
    mean_other[np.arange(len(x)), own] = np.inf
    b = mean_other.min(1)
    s = np.where(n_own > 0, (b - a) / np.maximum(np.maximum(a, b), 1e-12), 0.0)
    return float(s.mean()), {k: float(s[labels == k].mean()) for k in kinds}


def separation(emb, labels, metric: str = "cosine", center: bool = True,
               harmful_kinds=("harmful", "jailbreak"), benign_kinds=("benign", "borderline"),
               max_points: int = 4000, seed: int = 0) -> dict:
    """How far prompt kinds lie apart in embedding space (Figure 3's table).

    - silhouette (+ per kind): in [-1, 1]; > 0.5 well separated, ≈ 0 overlapping. Computed on at most
      max_points points (a seeded random subset beyond that).
    - centroid_distance[a][b]: euclidean distance between the kinds' mean vectors in the prepared space
      (centred; unit-normalised for cosine); within_spread[k]: mean distance of k's points to their mean.
    - harmful_vs_benign: distance between the centroid of harmful_kinds and that of benign_kinds,
      divided by the mean of the two groups' within-group spreads (> 1: the groups are further apart
      than they are wide). None when either group is absent.
    Metric (silhouette and the prepared space): cosine distance (1 - cos) on mean-centred embeddings by
    default; see the module docstring.
    """
    labels = np.asarray([str(v) for v in labels])
    x = _prepare(emb, metric, center)
    if len(x) != len(labels):
        raise ValueError(f"separation: {len(x)} embeddings but {len(labels)} labels")
    kinds = sorted(set(labels.tolist()))
    out: dict = {"metric": metric, "centered": center, "n": int(len(x)),
                 "n_per_kind": {k: int((labels == k).sum()) for k in kinds}}
    xs, ls = x, labels
    if len(x) > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(len(x), max_points, replace=False))
        xs, ls = x[keep], labels[keep]
        out["silhouette_points"] = max_points
    out["silhouette"], out["silhouette_by_kind"] = silhouette(xs, ls, metric)
    # Centroids are plain means of the prepared vectors (unit vectors for cosine) and every centroid
    # distance and spread is euclidean in that space, so they are comparable and pure noise gives ≈ 0.
    cents = {k: x[labels == k].mean(axis=0) for k in kinds}
    out["within_spread"] = {k: float(_pairwise(x[labels == k], cents[k][None], "euclidean").mean()) for k in kinds}
    if kinds:
        c = np.stack([cents[k] for k in kinds])
        cd = _pairwise(c, c, "euclidean")
        np.fill_diagonal(cd, 0.0)
        out["centroid_distance"] = {a: {b: float(cd[i, j]) for j, b in enumerate(kinds)} for i, a in enumerate(kinds)}
    else:
        out["centroid_distance"] = {}
    hm, bm = np.isin(labels, list(harmful_kinds)), np.isin(labels, list(benign_kinds))
    out["harmful_kinds"], out["benign_kinds"] = list(harmful_kinds), list(benign_kinds)
    out["harmful_vs_benign"] = None
    if hm.any() and bm.any():
        ch, cb = x[hm].mean(axis=0), x[bm].mean(axis=0)
        between = float(np.linalg.norm(ch - cb))
        spread = (float(np.linalg.norm(x[hm] - ch, axis=1).mean())
                  + float(np.linalg.norm(x[bm] - cb, axis=1).mean())) / 2
        out["harmful_vs_benign"] = between / spread if spread > 0 else None
    return out


def _pca(emb) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(emb, dtype=np.float64)
    n = len(x)
    coords, ratio = np.zeros((n, 2)), np.zeros(2)
    if n < 2 or x.ndim != 2 or x.shape[1] == 0:
        return coords, ratio
    x = x - x.mean(axis=0, keepdims=True)
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    k = min(2, len(s))
    signs = np.sign(vt[np.arange(k), np.abs(vt[:k]).argmax(axis=1)])  # deterministic orientation
    signs[signs == 0] = 1
    coords[:, :k] = u[:, :k] * s[:k] * signs
    total = float((s ** 2).sum())
    if total > 0:
        ratio[:k] = s[:k] ** 2 / total
    return coords, ratio


def pca_2d(emb) -> np.ndarray:
    """(n, 2) coordinates on the first two principal components (numpy SVD of the centred data;
    column 0 has the most variance; zeros where there is nothing to project)."""
    return _pca(emb)[0]


# ------------------------------------------------------------------------------------------
# Figures
# ------------------------------------------------------------------------------------------
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt




def plot_embeddings(by_arm: dict, path, metric: str = "cosine") -> Path:
    """Figure 3: a 2-D PCA scatter of prompt embeddings per arm, side by side, coloured by kind, with
    the silhouette in each title. by_arm: {arm: (embeddings, kinds)}. Each arm has its own PCA axes."""
    plt = _pyplot()
    arms = list(by_arm)
    kinds = sorted({str(k) for _, labels in by_arm.values() for k in labels})
    cmap = plt.get_cmap("tab10")
    colour = {k: cmap(i % 10) for i, k in enumerate(kinds)}
    fig, axes = plt.subplots(1, max(1, len(arms)), figsize=(4.2 * max(1, len(arms)), 4.0), squeeze=False)
    for ax, arm in zip(axes[0], arms):
        emb, labels = by_arm[arm]
        labels = np.asarray([str(v) for v in labels])
        coords, ratio = _pca(emb)
        sil = separation(emb, labels, metric=metric)["silhouette"] if len(labels) else None
        for k in kinds:
            sel = labels == k
            if sel.any():
                ax.scatter(coords[sel, 0], coords[sel, 1], s=14, alpha=0.75, color=colour[k],
                           label=f"{k} ({int(sel.sum())})")
        ax.set_title(f"{arm}: silhouette {sil:.2f}" if sil is not None else f"{arm}: silhouette –", fontsize=10)
        ax.set_xlabel(f"PC1 ({ratio[0]:.0%})")
        ax.set_ylabel(f"PC2 ({ratio[1]:.0%})")
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(f"Eval prompt embeddings (mean-pooled last layer; {metric} silhouette)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_reflection(counts_by_arm: dict, path) -> Path:
    """Figure 5: grouped bars per arm — traces with reflection, self-corrections and each marker type
    that occurs (counts; n per arm in the legend). counts_by_arm: `pattern_counts` output."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    arms = list(counts_by_arm)
    present = [t for t in MARKER_TYPES if any(c["markers"].get(t, 0) for c in counts_by_arm.values())]
    extra = sorted({t for c in counts_by_arm.values() for t, v in c["markers"].items()
                    if v and t not in MARKER_TYPES})
    cats = ["traces with reflection", "self-corrections"] + present + extra
    values = {a: [c["traces_with_reflection"], c["self_corrections"]]
              + [c["markers"].get(t, 0) for t in present + extra] for a, c in counts_by_arm.items()}
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(cats) + 2), 3.6))
    width = 0.8 / max(1, len(arms))
    xs = np.arange(len(cats))
    for i, arm in enumerate(arms):
        ax.bar(xs + (i - (len(arms) - 1) / 2) * width, values[arm], width,
               label=f"{arm} (n={counts_by_arm[arm]['n']})")
    ax.set_xticks(xs)
    ax.set_xticklabels(cats, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("count")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    title = "Reflection and self-correction patterns"
    if not any(v for vs in values.values() for v in vs):
        title += " (none found)"
    ax.set_title(title, fontsize=10)
    if arms:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)
