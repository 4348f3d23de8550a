"""Seed bench of any recipe (default: the toy world): the whole pipeline once per seed, then mean ± spread
per arm, and the wall time of each seed's run.

    python -m tools.bench_toy                                  # seeds 0,1,2 of recipes/tiny-cpu.yaml
    python -m tools.bench_toy --seeds 0,1,2 --recipe recipes/tiny-cpu.yaml --set eval.limit_per_set=32
    python -m tools.bench_toy --recipe recipes/smollm2-135m-instruct.yaml --out runs/bench-smollm2 \
        --set "eval.extra_sets=[{name: xstest, format: xstest, path: xstest_prompts.csv}]"

Each seed N is one `run_all.py` command with `--set seed=N --set model.tiny.seed=N` (so the tiny base,
the data order, the eval subsample and the trainers all change with the seed) and its own run folder
`<out>/seed<N>`; the model cache is shared (a base is built once per seed and settings, then reused).
Finished stages are skipped as usual, so a second call only re-reads the reports (`--fresh` re-runs).

Prints a table of mean ± spread (min–max) per arm for harmful_asr, jailbreak_asr, over_refusal_rate,
general_accuracy, no_answer_rate (replies with no answer: neither success nor refusal), unfinished_rate
(replies cut by eval.max_new_tokens) and SRPO's final held-out
val_reward_accuracy, and writes <out>/summary.json with the
per-seed numbers, the aggregates and each command's wall time.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ARM_METRICS = ["harmful_asr", "jailbreak_asr", "over_refusal_rate", "general_accuracy", "no_answer_rate",
               "unfinished_rate", "avg_response_tokens"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m tools.bench_toy", description=__doc__.split("\n")[0])
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--recipe", default=None, help="recipe YAML (default: recipes/tiny-cpu.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="recipe override passed to every run (as in run_all.py)")
    p.add_argument("--out", default="runs/bench-toy", help="parent folder of the seed runs (default runs/bench-toy)")
    p.add_argument("--fresh", action="store_true", help="re-run every stage even if finished")
    return p.parse_args(argv)


def run_seed(args, seed: int, out: Path) -> dict:
    run = out / f"seed{seed}"
    cmd = [sys.executable, str(REPO / "run_all.py")]
    if args.recipe:
        cmd += ["--recipe", args.recipe]
    for item in [f"seed={seed}", f"model.tiny.seed={seed}", f"output_dir={run}", *args.set]:
        cmd += ["--set", item]
    if args.fresh:
        cmd.append("--fresh")
    print(f"seed {seed}: {' '.join(cmd[1:])}", flush=True)
    t0 = time.time()
    p = subprocess.run(cmd, cwd=REPO)
    seconds = round(time.time() - t0, 1)
    if p.returncode != 0:
        raise SystemExit(f"seed {seed}: run_all.py exited with {p.returncode}")
    report = json.loads((run / "report.json").read_text())
    stages = {}
    for f in sorted((run / ".stages").glob("*.json")):
        stages[f.stem] = json.loads(f.read_text()).get("seconds")
    srpo = report.get("srpo") or {}
    return {"seed": seed, "run": str(run), "seconds": seconds, "stage_seconds": stages,
            "arms": {arm: {k: m.get(k) for k in ARM_METRICS} for arm, m in report["arms"].items()},
            "val_reward_accuracy": srpo.get("val_reward_accuracy")}


def aggregate(values: list) -> dict | None:
    xs = [v for v in values if v is not None]
    if not xs:
        return None
    return {"mean": statistics.fmean(xs), "min": min(xs), "max": max(xs),
            "std": statistics.pstdev(xs) if len(xs) > 1 else 0.0, "n": len(xs)}


def fmt(a: dict | None) -> str:
    if a is None:
        return "-"
    return f"{a['mean']:.2f} ± {(a['max'] - a['min']) / 2:.2f} ({a['min']:.2f}–{a['max']:.2f})"


def main(argv=None) -> int:
    from rich.console import Console
    from rich.table import Table

    args = parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    out = Path(args.out)
    if not out.is_absolute():
        out = REPO / out
    out.mkdir(parents=True, exist_ok=True)
    per_seed = [run_seed(args, s, out) for s in seeds]

    arms = list(dict.fromkeys(a for r in per_seed for a in r["arms"]))
    summary = {"seeds": seeds, "recipe": args.recipe or "recipes/tiny-cpu.yaml", "overrides": args.set,
               "arms": {arm: {k: aggregate([r["arms"].get(arm, {}).get(k) for r in per_seed]) for k in ARM_METRICS}
                        for arm in arms},
               "srpo_val_reward_accuracy": aggregate([r["val_reward_accuracy"] for r in per_seed]),
               "seconds": aggregate([r["seconds"] for r in per_seed]),
               "per_seed": per_seed}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")

    console = Console()
    t = Table(title=f"toy bench: mean ± half-range (min–max) over seeds {','.join(map(str, seeds))}")
    t.add_column("arm")
    for k in ARM_METRICS:
        t.add_column(k, justify="right")
    t.add_column("srpo val reward acc", justify="right")
    for arm in arms:
        t.add_row(arm, *[fmt(summary["arms"][arm][k]) for k in ARM_METRICS],
                  fmt(summary["srpo_val_reward_accuracy"]) if arm == "saro" else "")
    console.print(t)
    console.print("wall seconds per seed: " + ", ".join(f"seed{r['seed']} {r['seconds']:.0f}" for r in per_seed))
    console.print(f"summary: {out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
