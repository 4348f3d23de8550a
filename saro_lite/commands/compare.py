"""`python run_all.py compare`: several runs side by side (a β sweep, two recipes, two seeds).

    python run_all.py --set srpo.beta=0.05 --set output_dir=runs/b005
    python run_all.py --set srpo.beta=0.2  --set output_dir=runs/b02
    python run_all.py compare runs/b005 runs/b02 --output compare.md

Writes one table of runs × arms × metrics, the settings in which the runs differ, and the reward
tracking curves of every run in one figure (compare.png next to the markdown).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import UserError

IGNORED = ("output_dir", "cache_dir")  # always differ, say nothing about the method


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def load_run(path: Path) -> dict:
    import yaml

    report = path / "report.json"
    resolved = path / "recipe.resolved.yaml"
    if not report.exists() or not resolved.exists():
        raise UserError(f"{path}: not a finished run (needs report.json and recipe.resolved.yaml)")
    metrics = path / "srpo/metrics.jsonl"
    from ..fileio import read_jsonl

    return {"name": str(path), "report": json.loads(report.read_text()),
            "settings": flatten(yaml.safe_load(resolved.read_text())),
            "tracking": [r for r in read_jsonl(metrics, torn_ok=True) if "val/reward_accuracy" in r] if metrics.exists() else []}


def differing(runs: list[dict]) -> dict[str, list]:
    keys = sorted(set().union(*(r["settings"] for r in runs)))
    out = {}
    for k in keys:
        if k in IGNORED:
            continue
        values = [r["settings"].get(k) for r in runs]
        if any(json.dumps(v, sort_keys=True) != json.dumps(values[0], sort_keys=True) for v in values):
            out[k] = values
    return out


def beta(run: dict):
    return run["settings"].get("srpo.beta")


MARGIN_NOTE = "margin = β × (log-ratio gap): it scales with β"


def panels(runs: list[dict]) -> list[tuple[str, object]]:
    """compare.png's panels: (title, value of a tracking row). Reward margins are β times the
    policy-vs-reference log-ratio gap, so runs with different β are also shown as margin / β, which
    is comparable across them."""
    out = [("held-out reward accuracy", lambda t, b: t["val/reward_accuracy"])]
    betas = {beta(r) for r in runs}
    if len(betas) > 1:
        out += [(f"held-out reward margin\n({MARGIN_NOTE}; runs differ in β)", lambda t, b: t["val/reward_margin"]),
                ("held-out margin / β\n(log-ratio gap, comparable across β)",
                 lambda t, b: t["val/reward_margin"] / b if b else float("nan"))]
    else:
        b = next(iter(betas))
        out.append((f"held-out reward margin (β = {b})\n({MARGIN_NOTE})", lambda t, b: t["val/reward_margin"]))
    return out


def plot(runs: list[dict], path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not any(r["tracking"] for r in runs):
        return None
    spec = panels(runs)
    fig, axes = plt.subplots(1, len(spec), figsize=(5 * len(spec), 4.0))
    for r in runs:
        xs = [t["step"] for t in r["tracking"]]
        label = f"{r['name']} (β {beta(r)})"
        for ax, (_, value) in zip(axes, spec):
            ax.plot(xs, [value(t, beta(r)) for t in r["tracking"]], marker="o", ms=3, label=label)
    for ax, (title, _) in zip(axes, spec):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("SRPO step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    from ..fileio import save_figure

    return save_figure(fig, path)


def markdown(runs: list[dict], diff: dict, figure: str | None) -> str:
    from ..report import MAIN_METRICS, fmt

    lines = ["# saro-lite: run comparison", "", "| run | arm | " + " | ".join(l for _, l in MAIN_METRICS)
             + " | SRPO val acc |", "|---|---|" + "---|" * (len(MAIN_METRICS) + 1)]
    for r in runs:
        srpo = r["report"].get("srpo", {}).get("val_reward_accuracy")
        for arm, m in r["report"]["arms"].items():
            lines.append(f"| {r['name']} | {arm} | " + " | ".join(fmt(m.get(k)) for k, _ in MAIN_METRICS)
                         + f" | {fmt(srpo) if arm == 'saro' else ''} |")
    lines += ["", "## Settings that differ", ""]
    if diff:
        lines += ["| setting | " + " | ".join(r["name"] for r in runs) + " |", "|---|" + "---|" * len(runs)]
        lines += [f"| `{k}` | " + " | ".join(str(v) for v in vals) + " |" for k, vals in diff.items()]
    else:
        lines.append("None: the runs used the same settings.")
    if figure:
        lines += ["", f"![reward tracking]({figure})"]
        if len({beta(r) for r in runs}) > 1:
            lines += ["", "Reward margins are β × the policy-vs-reference log-ratio gap, so they scale with β: "
                          "compare runs with different β on the margin / β panel."]
    return "\n".join(lines) + "\n"


def cli(argv: list[str]) -> int:
    from ..errors import guarded

    p = argparse.ArgumentParser(prog="run_all.py compare", description="compare finished runs")
    p.add_argument("runs", nargs="+", help="run folders")
    p.add_argument("--output", default="compare.md")
    p.add_argument("--debug", action="store_true")
    args = p.parse_args(argv)

    def run(a, console):
        from rich.table import Table

        from ..errors import UserError
        from ..fileio import atomic_write_text

        if len(a.runs) < 2:
            raise UserError("compare: give two or more run folders (it tabulates how runs differ); for one run "
                            "read its report.md")
        runs = [load_run(Path(x)) for x in a.runs]
        out = Path(a.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig = plot(runs, out.with_suffix(".png"))
        diff = differing(runs)
        atomic_write_text(out, markdown(runs, diff, fig.name if fig else None))
        t = Table(title="settings that differ")
        t.add_column("setting")
        for r in runs:
            t.add_column(r["name"])
        for k, vals in diff.items():
            t.add_row(k, *[str(v) for v in vals])
        console.print(t)
        console.print(f"wrote {out}" + (f" and {fig}" if fig else ""))
        return 0

    return guarded(run, args, args.debug)
