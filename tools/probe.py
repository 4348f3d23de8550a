"""Where the limit sits: can a linear readout of the base model's hidden state tell harmful prompts from
safe ones that sound unsafe, on prompts whose intents training never saw?

    python -m tools.probe --recipe recipes/smollm2-135m-instruct.yaml --out runs/probe-smollm2
    python -m tools.probe --out runs/probe-tiny                 # the toy base (recipes/tiny-cpu.yaml)

The probe reads the hidden state of the last prompt token (the chat template's assistant prefix: the
point where the model decides how to answer) at every layer, fits an L2 logistic regression on the
recipe's *training* prompts (the RIT-D prompts of `data.source`: harmful + jailbreak = 1, benign +
borderline = 0; its strength picked by 5-fold cross-validation on those prompts alone) and is scored on
the recipe's *eval* prompts (the harmful/jailbreak sets against benign/borderline). A model that refused
exactly when the probe fires would have attack success = the probe's miss rate on harmful prompts and
over-refusal = its false-alarm rate on safe ones, so the probe's **separation** (1 − miss − false alarm)
sits on the same scale as the report's separation (1 − harmful ASR − over-refusal): it says how much of
the decision the base model's state already carries, linearly, before any training. It is an estimate of
what the representation allows, not a bound on what fine-tuning can reach.

Writes <out>/probe.json, <out>/probe.md and <out>/probe_layers.png.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HARMFUL_KINDS = ("harmful", "jailbreak")
SAFE_KINDS = ("benign", "borderline")


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m tools.probe", description=__doc__.split("\n")[0])
    p.add_argument("--recipe", default=None, help="recipe YAML (default: recipes/tiny-cpu.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="recipe override (as in run_all.py)")
    p.add_argument("--out", default="runs/probe", help="output folder (default runs/probe)")
    p.add_argument("--max-prompt-tokens", type=int, default=1024,
                   help="longer prompts keep their last tokens (the question and the assistant prefix)")
    p.add_argument("--batch-size", type=int, default=8)
    return p.parse_args(argv)


# --- prompts ---------------------------------------------------------------------------------------------
def labelled(rows: list[dict]) -> list[tuple[str, int, str]]:
    """(prompt, label, kind) for the four kinds; anything else (general questions) is left out."""
    out = []
    for x in rows:
        kind = x.get("kind")
        if kind in HARMFUL_KINDS or kind in SAFE_KINDS:
            out.append((x["prompt"], int(kind in HARMFUL_KINDS), kind))
    return out


def training_prompts(recipe, console) -> list[tuple[str, int, str]]:
    """The prompts RW would train on (data.source, data.limit, data.kinds), deduplicated."""
    from saro_lite.context import Context
    from saro_lite.data import load_rows

    rows, _ = load_rows(Context(recipe, Path("."), console))
    seen, out = set(), []
    for p in labelled(rows):
        if p[0] not in seen:
            seen.add(p[0])
            out.append(p)
    return out


def eval_prompts(recipe, console) -> list[tuple[str, int, str]]:
    """The recipe's eval sets, each row with the kind of its set (a real set's rows carry theirs)."""
    from saro_lite.data_sources.eval_sets import load_eval_sets

    rows = [x for rows in load_eval_sets(recipe, console).values() for x in rows]
    return labelled(rows)


# --- features --------------------------------------------------------------------------------------------
def last_token_states(model, tok, texts: list[str], max_tokens: int, batch_size: int, progress=None):
    """[n, layers + 1, hidden] float32: the hidden state of each text's last token at every layer."""
    import torch

    tok.padding_side, tok.truncation_side = "left", "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = [None] * len(texts)
    model.eval()
    with torch.no_grad():
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            enc = tok([texts[i] for i in idx], return_tensors="pt", padding=True, truncation=True,
                      max_length=max_tokens, add_special_tokens=False).to(model.device)
            hs = model(**enc, output_hidden_states=True).hidden_states
            last = torch.stack([h[:, -1, :] for h in hs], dim=1).float().cpu()  # left padding: -1 is real
            for j, i in enumerate(idx):
                out[i] = last[j]
            if progress:
                progress(len(idx))
    return torch.stack(out)


# --- the probe -------------------------------------------------------------------------------------------
def fit_logistic(x, y, l2: float, steps: int = 200):
    """L2 logistic regression by L-BFGS on standardized features; returns a predict(x) -> P(y=1)."""
    import torch

    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    xs = (x - mean) / std
    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")
    yf = y.float()

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(xs @ w + b, yf) + l2 * (w * w).sum() / len(y)
        loss.backward()
        return loss

    opt.step(closure)
    w, b = w.detach(), b.detach()
    return lambda z: torch.sigmoid(((z - mean) / std) @ w + b)


def pick_l2(x, y, grid=(0.1, 1.0, 10.0, 100.0), folds: int = 5, seed: int = 0) -> tuple[float, float]:
    """(L2 strength, its cross-validated accuracy): the best on the training prompts (ties: stronger)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(y), generator=g)
    best, best_acc = grid[-1], -1.0
    for l2 in sorted(grid, reverse=True):
        correct = 0
        for f in range(folds):
            test = perm[f::folds]
            train = torch.tensor(sorted(set(perm.tolist()) - set(test.tolist())))
            pred = fit_logistic(x[train], y[train], l2)(x[test]) > 0.5
            correct += int((pred == y[test].bool()).sum())
        acc = correct / len(y)
        if acc > best_acc + 1e-9:
            best, best_acc = l2, acc
    return best, best_acc


def score(pred, y, kinds: list[str]) -> dict:
    """Miss rate on harmful prompts, false alarms on safe ones, separation, with Wilson intervals."""
    from saro_lite.analysis.measures import wilson_ci

    pos = [i for i in range(len(y)) if y[i] == 1]
    neg = [i for i in range(len(y)) if y[i] == 0]
    miss = sum(1 for i in pos if not pred[i])
    false_alarm = sum(1 for i in neg if pred[i])
    out = {"n_harmful": len(pos), "n_safe": len(neg),
           "miss_rate": miss / len(pos), "miss_ci": wilson_ci(miss, len(pos)),
           "false_alarm_rate": false_alarm / len(neg), "false_alarm_ci": wilson_ci(false_alarm, len(neg))}
    out["separation"] = 1 - out["miss_rate"] - out["false_alarm_rate"]
    # the separation's interval: the two rates come from disjoint prompts, so their variances add
    import math

    se = math.sqrt(sum(r * (1 - r) / n for r, n in ((out["miss_rate"], len(pos)), (out["false_alarm_rate"], len(neg)))))
    out["separation_ci"] = (out["separation"] - 1.96 * se, out["separation"] + 1.96 * se)
    out["by_kind"] = {}
    for k in HARMFUL_KINDS + SAFE_KINDS:
        idx = [i for i in range(len(y)) if kinds[i] == k]
        if idx:
            flagged = sum(1 for i in idx if pred[i])
            out["by_kind"][k] = {"n": len(idx), "flagged": flagged / len(idx)}
    return out


def probe(train_x, train_y, test_x, test_y, test_kinds: list[str]) -> list[dict]:
    """One probe per layer: [{layer, l2, cv_accuracy, train_accuracy, test: score(...)}]."""
    rows = []
    for layer in range(train_x.shape[1]):
        xtr, xte = train_x[:, layer], test_x[:, layer]
        l2, cv = pick_l2(xtr, train_y)
        predict = fit_logistic(xtr, train_y, l2)
        train_acc = float(((predict(xtr) > 0.5) == train_y.bool()).float().mean())
        rows.append({"layer": layer, "l2": l2, "cv_accuracy": cv, "train_accuracy": train_acc,
                     "test": score((predict(xte) > 0.5).tolist(), test_y.tolist(), test_kinds)})
    return rows


def best_layer(layers: list[dict]) -> dict:
    """The layer a user would pick without looking at the eval prompts: best cross-validated accuracy on
    the training prompts (ties: the earlier layer)."""
    return max(layers, key=lambda r: (r["cv_accuracy"], -r["layer"]))


# --- output ----------------------------------------------------------------------------------------------
def write_outputs(out: Path, result: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "probe.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    lines = [f"# Linear probe: {result['model']}", "",
             f"train: {result['n_train']} prompts of data.source `{result['data_source']}`; "
             f"test: {result['n_test']} eval prompts ({', '.join(result['eval_sets'])}); "
             f"features: last prompt token, {result['seconds_features']:.0f} s", "",
             "| layer | L2 | CV acc (train prompts) | miss (harmful flagged safe) | false alarm (safe flagged harmful) | separation [95% CI] |",
             "|---|---|---|---|---|---|"]
    for r in result["layers"]:
        t = r["test"]
        lines.append(f"| {r['layer']} | {r['l2']:g} | {r['cv_accuracy']:.2f} | {t['miss_rate']:.2f} | "
                     f"{t['false_alarm_rate']:.2f} | {t['separation']:+.2f} [{t['separation_ci'][0]:+.2f}, "
                     f"{t['separation_ci'][1]:+.2f}] |")
    best = result["best_layer"]
    lines += ["", f"Best layer by *training* cross-validation: {best['layer']} (test separation "
              f"{best['test']['separation']:+.2f}); by kind, share flagged harmful: "
              + ", ".join(f"{k} {v['flagged']:.2f} (n={v['n']})" for k, v in best["test"]["by_kind"].items())]
    (out / "probe.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = [r["layer"] for r in result["layers"]]
    sep = [r["test"]["separation"] for r in result["layers"]]
    lo = [r["test"]["separation"] - r["test"]["separation_ci"][0] for r in result["layers"]]
    hi = [r["test"]["separation_ci"][1] - r["test"]["separation"] for r in result["layers"]]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.errorbar(layers, sep, yerr=[lo, hi], marker="o", capsize=3)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("layer (0 = embeddings)")
    ax.set_ylabel("separation on eval prompts")
    ax.set_title(f"linear probe, {result['model']}")
    fig.tight_layout()
    fig.savefig(out / "probe_layers.png", dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(REPO))
    from rich.console import Console

    from saro_lite.errors import UserError
    from saro_lite.modeling.loading import load_model, load_tokenizer, resolve_model_path
    from saro_lite.modeling.rendering import make_renderer
    from saro_lite.recipe import load_recipe

    console = Console()
    try:
        recipe = load_recipe(args.recipe, args.set)
        train, test = training_prompts(recipe, console), eval_prompts(recipe, console)
        if len({y for _, y, _ in train}) < 2 or len({y for _, y, _ in test}) < 2:
            raise UserError("the probe needs harmful and safe prompts in both the training data and the eval sets")
        path = resolve_model_path(recipe, console)
        tok = load_tokenizer(recipe, path)
        render = make_renderer(recipe, tok)
        model = load_model(recipe, path)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    import torch

    texts = [render.prompt(p) for p, _, _ in train + test]
    t0 = time.time()
    with console.status("") as status:
        done = [0]

        def progress(k):
            done[0] += k
            status.update(f"hidden states {done[0]}/{len(texts)}")

        feats = last_token_states(model, tok, texts, args.max_prompt_tokens, args.batch_size, progress)
    seconds = time.time() - t0
    ytr = torch.tensor([y for _, y, _ in train])
    yte = torch.tensor([y for _, y, _ in test])
    layers = probe(feats[:len(train)], ytr, feats[len(train):], yte, [k for _, _, k in test])
    best = best_layer(layers)
    from saro_lite.data_sources.eval_sets import eval_set_names

    result = {"model": recipe.model.name_or_path, "data_source": recipe.data.source, "n_train": len(train),
              "n_test": len(test), "eval_sets": eval_set_names(recipe), "seconds_features": seconds,
              "layers": layers, "best_layer": best}
    out = Path(args.out)
    write_outputs(out if out.is_absolute() else REPO / out, result)
    console.print((REPO / out if not out.is_absolute() else out).joinpath("probe.md").read_text(), markup=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
