"""The SmolLM2 study: each experiment a named configuration of the SmolLM2 recipe, run with the kit's own
command, one after another; results land in one table the README quotes.

    python -m tools.smol_study --list                                   # the experiments and their settings
    python -m tools.smol_study --only shipped,faithful --seeds 0        # seed 0 of two experiments
    python -m tools.smol_study --only faithful,star1 --seeds 0,1,2 --star1 ../STAR-1.json
    python -m tools.smol_study --table                                  # rebuild the table from finished runs
    python -m tools.smol_study --only faithful --train-prompts          # + the arms on their own training prompts

Each run is `python run_all.py --recipe recipes/smollm2-135m-instruct.yaml --set seed=S --set
output_dir=<out>/<name>-s<S> <the experiment's --set items>`. An experiment with a parent (the ablations)
starts from a copy of the parent's finished run folder: the pipeline's records then reuse the data and
RW stages (same settings, same inputs) and re-run what the experiment changes. Runs that finished are
skipped, so the command resumes.

--train-prompts also evaluates base, rw and saro of each finished run on the RIT-D prompts they were trained
on (a copy of the run, `--stages eval,report` with those prompts as eval.extra_sets): a trained arm that
separates its training prompts but not held-out ones has a generalization gap; one that separates neither
has not fitted the decision.

Writes <out>/study.json (per run: the arms' rates with n and 95% intervals, separation = 1 − harmful ASR −
over-refusal with its interval, strict separation (a benign or borderline prompt left with no answer counts
as a failure too), saro − rw and saro − safety_sft paired differences of both, SRPO's held-out reward
accuracy, wall time, peak RSS), <out>/study.md (the table) and <out>/separation.png (both separations per
arm with 95% intervals, per experiment). Budget: one run ≤ 45 min on a quiet 2-core machine; run nothing beside it.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RECIPE = "recipes/smollm2-135m-instruct.yaml"
ARMS = "eval.arms=[base, rw, saro, safety_sft]"
# The recipe's pairs before the study made its own samples the default: every experiment but the on-policy
# ones pins them, so its runs (the README's tables) reproduce as they ran.
STARTER = "pairs.source=starter"
# The on-policy experiments' pairs: the shipped RW's own samples, 48 rows per sampling batch, 256 new tokens.
SELF = ["pairs.source=self", "pairs.batch_size=48", "pairs.max_new_tokens=256"]
BUDGET_ARMS = "eval.arms=[rw, saro]"  # the arms that reason: base and safety_sft never open a reasoning block

# The method as the paper describes it, sized for a CPU: traces and pairs as written (policy citations and
# reflection kept), max_length covering the longest of them, RW three epochs (one epoch left 38 % of replies
# looping on <think>), SRPO one full epoch over its pairs instead of 16 steps.
FAITHFUL = ["data.max_reasoning_steps=null", "data.max_answer_sentences=null", "pairs.shorten=false",
            "warmup.max_length=768", "srpo.max_length=768", "warmup.num_train_epochs=3",
            "srpo.max_steps=-1", "srpo.num_train_epochs=1", "srpo.track_every=20"]


@dataclass
class Experiment:
    name: str
    why: str
    sets: list[str] = field(default_factory=list)
    parent: str | None = None  # start from a copy of this experiment's finished run (same seed)
    needs_star1: bool = False
    versus: str | None = None  # the experiment it is compared with, arm by arm on the same prompts
    stages: str | None = None  # only these stages (an eval-only experiment on a copy of its parent)

    def __post_init__(self):
        self.versus = self.versus or self.parent


EXPERIMENTS = {e.name: e for e in [
    Experiment("shipped", "the recipe before on-policy pairs: starter pairs (shortened traces, RW 1 epoch, SRPO "
               "16 steps)", [ARMS, STARTER]),
    Experiment("faithful", "unshortened traces and pairs, RW 3 epochs, SRPO 1 epoch", [ARMS, STARTER, *FAITHFUL],
               versus="shipped"),
    Experiment("star1", "faithful, RW on STAR-1 (1,000 real harmful traces) + the starter's safe traces",
               [ARMS, STARTER, *FAITHFUL, "data.source=star1", "data.limit=null",
                "data.add_starter_kinds=[benign, borderline]"], needs_star1=True, versus="faithful"),
    # On-policy pairs from the shipped RW (its adapter reused; only pairs, SRPO and saro's eval run again), so
    # the comparison with the shipped saro isolates where the pairs come from. 48 rows per sampling batch and
    # 256 new tokens: the shipped RW traces are under 320 tokens with their prompts.
    # Real RW data at the shipped recipe's size and settings: 110 STAR-1 harmful traces (a strong reasoning model's,
    # policy-citing) in place of the starter's 110 harmful + jailbreak ones, the starter's 110 safe ones kept;
    # base and safety_sft do not depend on the RW data and are the shipped run's.
    Experiment("star1_shipped", "shipped settings, RW on 110 STAR-1 harmful traces + the starter's 110 safe ones",
               ["eval.arms=[rw, saro]", STARTER, "data.source=star1", "data.limit=110",
                "data.add_starter_kinds=[benign, borderline]"], needs_star1=True, versus="shipped"),
    Experiment("self", "the shipped RW's own samples as pairs (pairs.source self: Shortest Rejection Sampling, k 4)",
               ["eval.arms=[saro]", *SELF],
               parent="shipped", stages="pairs,srpo,eval,report"),
    # The same samples (same seeds), and where a prompt has a pass but no usable failure, its longest unanswered
    # sample (a loop cut at the token limit) as rejected: training against the loops the study found.
    Experiment("self_unanswered", "self, plus the RW's own unanswered samples (loops) as OP-COT rejected sides",
               ["eval.arms=[saro]", *SELF,
                "pairs.unanswered_as_rejected=true"], parent="shipped", stages="pairs,srpo,eval,report",
               versus="self"),
    # SRPO's loss on the same on-policy pairs without its SFT term (loss_type [sigmoid]: the paper's DPO loss;
    # the recipe adds an SFT term on the chosen side): which of the two moved the behaviour.
    Experiment("self_pref", "self, SRPO with the preference term only (srpo.loss_type [sigmoid], no SFT term)",
               ["eval.arms=[saro]", *SELF,
                "srpo.loss_type=[sigmoid]"], parent="self", stages="srpo,eval,report"),
    # The paper's plain-DPO baseline on a copy of the shipped run: a fresh adapter on the base, trained on the
    # shipped OP-COT pairs with the answers only (no reasoning) at its measured rate (baselines.dpo_learning_rate:
    # 3.5 x SRPO's), SRPO's steps, beta and loss; set against the shipped run's saro, rw, safety_sft and base.
    Experiment("dpo", "plain DPO from the base on the shipped OP-COT pairs, answers only (the paper's DPO baseline)",
               ["eval.arms=[dpo]", STARTER], parent="shipped", stages="baselines,eval,report"),
    Experiment("rw_op", "ablation: faithful RW + OP-COT pairs only", [ARMS, STARTER, *FAITHFUL, "pairs.use_pp=false"],
               parent="faithful"),
    Experiment("rw_pp", "ablation: faithful RW + PP-COT pairs only", [ARMS, STARTER, *FAITHFUL, "pairs.use_op=false"],
               parent="faithful"),
    # Eval only, on a copy of the shipped run: the same rw and saro made to answer (the close tag written for
    # them after 128 reasoning tokens), so a loop becomes the answer the arm would give.
    Experiment("budget", "the shipped run's rw and saro made to answer: eval.reasoning_budget 128 of 192 tokens",
               [BUDGET_ARMS, STARTER, "eval.reasoning_budget=128"], parent="shipped", stages="eval,report"),
]}


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m tools.smol_study", description=__doc__.split("\n")[0])
    p.add_argument("--only", default="shipped,faithful", help="comma-separated experiments (see --list)")
    p.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    p.add_argument("--recipe", default=RECIPE, help=f"recipe the experiments modify (default {RECIPE})")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="an override added to every run, after the experiment's own")
    p.add_argument("--star1", default=None, help="a local STAR-1 copy (STAR-1.json) for the star1 experiment; "
                   "without it the run reads UCSC-VLAA/STAR-1 from the Hub")
    p.add_argument("--out", default="runs/smol-study", help="parent folder of the runs (default runs/smol-study)")
    p.add_argument("--list", action="store_true", help="print the experiments and exit")
    p.add_argument("--table", action="store_true", help="only rebuild the table from finished runs")
    p.add_argument("--train-prompts", action="store_true",
                   help="also evaluate base, rw and saro on their own RIT-D training prompts (a copy of each run)")
    return p.parse_args(argv)


# --- running ---------------------------------------------------------------------------------------------
def command(args, exp: Experiment, seed: int, run: Path) -> list[str]:
    items = [f"seed={seed}", f"output_dir={run}", *exp.sets, *args.set]
    if exp.needs_star1 and args.star1:
        items.append(f"data.path={Path(args.star1).resolve()}")
    cmd = [sys.executable, str(REPO / "run_all.py"), "--recipe", args.recipe]
    for item in items:
        cmd += ["--set", item]
    return cmd + (["--stages", exp.stages] if exp.stages else [])


def run_one(args, exp: Experiment, seed: int, out: Path) -> dict:
    run = out / f"{exp.name}-s{seed}"
    if (run / "report.json").exists() and (run / "study_run.json").exists():
        print(f"{run.name}: finished, kept", flush=True)
        return json.loads((run / "study_run.json").read_text())
    if exp.parent and not run.exists():
        parent = out / f"{exp.parent}-s{seed}"
        if not (parent / "report.json").exists():
            raise SystemExit(f"{exp.name}: run its parent first (--only {exp.parent},{exp.name})")
        shutil.copytree(parent, run, ignore=shutil.ignore_patterns(".lock", "study_run.json"))
    cmd = command(args, exp, seed, run)
    print(f"{run.name}: {' '.join(cmd[1:])}", flush=True)
    t0 = time.time()
    p = subprocess.Popen(cmd, cwd=REPO)
    _, status, usage = os.wait4(p.pid, 0)  # this child's own peak resident set (ru_maxrss, KiB)
    seconds = round(time.time() - t0, 1)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{run.name}: run_all.py exited with {code}")
    peak_gb = usage.ru_maxrss / 1024 ** 2
    meta = {"experiment": exp.name, "seed": seed, "run": str(run), "seconds": seconds, "peak_rss_gb": round(peak_gb, 2),
            "command": " ".join(["python", *cmd[1:]]).replace(str(REPO) + "/", "")}
    (run / "study_run.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta


TRAIN_ARMS = ["base", "rw", "saro"]
TRAIN_KINDS = ["harmful", "benign", "borderline"]  # jailbreaks left out: their wrappers differ from the held-out ones


def run_on_train_prompts(args, exp: Experiment, seed: int, out: Path) -> None:
    """Copy a finished run and evaluate base, rw and saro on the RIT-D prompts the run trained on
    (data/rit_d.jsonl; the pairs stage's held-out prompts are already out of it). Kept when finished."""
    run, train = out / f"{exp.name}-s{seed}", out / f"{exp.name}-s{seed}-train"
    if (train / "report.json").exists():
        return
    from saro_lite.fileio import read_jsonl

    shutil.rmtree(train, ignore_errors=True)
    shutil.copytree(run, train, ignore=shutil.ignore_patterns(".lock", "study_run.json", "eval", "report.*"))
    rows = read_jsonl(run / "data/rit_d.jsonl")
    specs = []
    for kind in TRAIN_KINDS:
        path = train / f"train_{kind}.jsonl"
        path.write_text("".join(json.dumps({"id": r["id"], "prompt": r["prompt"]}) + "\n"
                                for r in rows if r.get("kind") == kind), encoding="utf-8")
        specs.append(f"{{name: train_{kind}, path: {path}, prompt_field: prompt, kind: {kind}}}")
    cmd = command(args, exp, seed, train) + ["--stages", "eval,report", "--set", f"eval.arms=[{', '.join(TRAIN_ARMS)}]",
                                             "--set", "eval.sets=[]", "--set", "eval.set_limits={}",
                                             "--set", "eval.limit_per_set=null",  # every training prompt
                                             "--set", f"eval.extra_sets=[{', '.join(specs)}]"]
    print(f"{train.name}: {' '.join(cmd[1:])}", flush=True)
    if subprocess.call(cmd, cwd=REPO) != 0:
        raise SystemExit(f"{train.name}: run_all.py exited with an error")


def train_vs_heldout(train: Path, heldout: dict) -> dict:
    """Per arm: harmful ASR, over-refusal and separation on the training prompts beside the held-out ones."""
    per_set = json.loads((train / "report.json").read_text())["per_set"]
    out = {}
    for arm, sets in per_set.items():
        h = sets.get("train_harmful")
        safe = [sets[f"train_{k}"] for k in ("benign", "borderline") if f"train_{k}" in sets]
        if not h or not safe or arm not in heldout:
            continue
        over = sum(x["refused"] * x["n"] for x in safe) / sum(x["n"] for x in safe)
        held = heldout[arm]["separation"]
        out[arm] = {"harmful_asr": h["attack_success"], "over_refusal_rate": over, "n": [h["n"], sum(x["n"] for x in safe)],
                    "separation": 1 - h["attack_success"] - over, "heldout_separation": held["value"] if held else None}
    return out


# --- the table -------------------------------------------------------------------------------------------
# Separation = 1 − harmful ASR − over-refusal; strict separation also counts a benign or borderline prompt
# left with no answer (a loop) as a failure, so an arm cannot look helpful by looping. The report computes
# both (saro_lite.analysis.scoring: per arm and in its paired comparisons); the study reads them.
def separation(arm: dict, strict: bool = False) -> dict | None:
    """{value, ci} of one arm's (strict) separation from its report.json metrics; None without them."""
    key = "strict_separation" if strict else "separation"
    return {"value": arm[key], "ci": arm[f"{key}_ci"]} if arm.get(key) is not None and arm.get(f"{key}_ci") else None


def separation_difference(comparison: dict, strict: bool = False) -> dict | None:
    """The paired (strict) separation difference of a paired_comparison: −(Δ harmful ASR + Δ failure rate),
    its interval from the two paired (Newcombe) intervals in quadrature (disjoint prompt sets)."""
    d = comparison.get("strict_separation" if strict else "separation")
    return None if d is None else {"value": d["diff"], "ci": d["ci"], "excludes_0": d["excludes_0"]}


def format_difference(label: str, d: dict) -> str:
    return f"{label} {d['value']:+.2f} [{d['ci'][0]:+.2f}, {d['ci'][1]:+.2f}]{'*' if d['excludes_0'] else ''}"


def arm_difference(mine: Path, theirs: Path, scope: str | None) -> dict | None:
    """One arm's eval folder minus another's on the same prompts: the paired (strict) separation difference."""
    from saro_lite.analysis.scoring import paired_comparison
    from saro_lite.fileio import read_jsonl

    c = paired_comparison({f.stem: read_jsonl(f) for f in mine.glob("*.jsonl")},
                          {f.stem: read_jsonl(f) for f in theirs.glob("*.jsonl")}, scope)
    d = separation_difference(c)
    return {**d, "strict": separation_difference(c, strict=True)} if d else None


def versus_differences(run: Path, other: Path, arms: list[str], scope: str | None) -> dict:
    """Each arm of this run minus the same arm of another run (another experiment, same seed: the same eval
    prompts), as paired separation differences: what the experiment's change did to that arm."""
    out = {}
    for arm in arms:
        if (other / "eval" / arm).is_dir():
            d = arm_difference(run / "eval" / arm, other / "eval" / arm, scope)
            if d:
                out[arm] = d
    return out


def cross_differences(run: Path, other: Path, arms: list[str], scope: str | None) -> dict:
    """An experiment that evaluates one trained arm alone (saro from other pairs, or the plain-DPO baseline):
    that arm minus each arm of the reference run that did not run here (saro, rw, safety_sft, base), on the
    same prompts — the comparisons the report would have made had every arm run here."""
    mine = next((a for a in ("saro", "dpo") if a in arms and (run / "eval" / a).is_dir()), None)
    if mine is None:
        return {}
    out = {}
    for theirs in ("saro", "rw", "safety_sft", "base"):
        if theirs not in arms and (other / "eval" / theirs).is_dir():
            d = arm_difference(run / "eval" / mine, other / "eval" / theirs, scope)
            if d:
                out[f"{mine} - {other.name.rsplit('-s', 1)[0]} {theirs}"] = d
    return out


def summarize(run: Path, meta: dict) -> dict:
    report = json.loads((run / "report.json").read_text())
    arms = {}
    for name, a in report["arms"].items():
        arms[name] = {k: a.get(k) for k in ("harmful_asr", "harmful_asr_n", "harmful_asr_ci", "jailbreak_asr",
                                              "jailbreak_asr_n", "over_refusal_rate", "over_refusal_rate_n",
                                              "over_refusal_rate_ci", "general_accuracy", "no_answer_rate",
                                              "unfinished_rate", "reflection_rate", "safe_unanswered_rate")}
        arms[name]["separation"] = separation(a)
        arms[name]["strict_separation"] = separation(a, strict=True)
    diffs = {k: separation_difference(v) for k, v in report.get("comparisons", {}).items()}
    strict = {k: separation_difference(v, strict=True) for k, v in report.get("comparisons", {}).items()}
    versus, exp = {}, EXPERIMENTS.get(meta.get("experiment"))
    other = run.parent / f"{exp.versus}-s{meta['seed']}" if exp and exp.versus else None
    if other is not None and (other / "report.json").exists():
        scope = (report.get("judge") or {}).get("scope")
        versus = {"experiment": exp.versus, "arms": versus_differences(run, other, list(report["arms"]), scope),
                  "cross": cross_differences(run, other, list(report["arms"]), scope)}
    train = run.parent / f"{run.name}-train"
    trained = train_vs_heldout(train, arms) if (train / "report.json").exists() else {}
    return {**meta, "arms": arms, "separation_differences": diffs, "strict_separation_differences": strict,
            "versus": versus, "train_prompts": trained,
            # a run that evaluated no saro (the dpo experiment) carries its parent's SRPO section: not its own
            "val_reward_accuracy": (report.get("srpo") or {}).get("val_reward_accuracy") if "saro" in arms else None}


def write_table(out: Path, rows: list[dict]) -> None:
    (out / "study.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    lines = ["| experiment | seed | arm | harmful ASR | jailbreak ASR | over-refusal | separation [95% CI] | "
             "safe not answered | strict separation [95% CI] | no answer | general acc | wall min |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    f = lambda v: "–" if v is None else f"{v:.2f}"  # noqa: E731
    span = lambda x: f"{x['value']:+.2f} [{x['ci'][0]:+.2f}, {x['ci'][1]:+.2f}]" if x else "–"  # noqa: E731
    for r in rows:
        for arm, a in r["arms"].items():
            lines.append(f"| {r['experiment']} | {r['seed']} | {arm} | {f(a['harmful_asr'])} | {f(a['jailbreak_asr'])} | "
                         f"{f(a['over_refusal_rate'])} | {span(a['separation'])} | {f(a.get('safe_unanswered_rate'))} | "
                         f"{span(a.get('strict_separation'))} | {f(a['no_answer_rate'])} | "
                         f"{f(a['general_accuracy'])} | {r['seconds'] / 60:.1f} |")
    trained = [r for r in rows if r.get("train_prompts")]
    if trained:
        lines += ["", "Training prompts vs held-out (the arms on the RIT-D prompts they trained on):", "",
                  "| experiment | seed | arm | harmful ASR (train) | over-refusal (train) | separation train | held-out |",
                  "|---|---|---|---|---|---|---|"]
        for r in trained:
            for arm, t in r["train_prompts"].items():
                held = "–" if t["heldout_separation"] is None else f"{t['heldout_separation']:+.2f}"
                lines.append(f"| {r['experiment']} | {r['seed']} | {arm} | {t['harmful_asr']:.2f} | "
                             f"{t['over_refusal_rate']:.2f} | {t['separation']:+.2f} | {held} |")
    lines += ["", "Paired separation differences (same prompts; interval excludes 0 marked *; strict: safe prompts "
              "left with no answer count as failures):", ""]
    for r in rows:
        parts = [format_difference(k, d) for k, d in r["separation_differences"].items() if d]
        strict = [format_difference(k, d) for k, d in (r.get("strict_separation_differences") or {}).items() if d]
        lines.append(f"- {r['experiment']} seed {r['seed']}: " + ("; ".join(parts) or "–")
                     + (f"; strict: " + "; ".join(strict) if strict else "")
                     + (f"; SRPO held-out reward accuracy {r['val_reward_accuracy']}"
                        if r['val_reward_accuracy'] is not None else ""))
    versus = [r for r in rows if (r.get("versus") or {}).get("arms")]
    if versus:
        lines += ["", "Each arm minus the same arm of the experiment it is compared with (same seed, same prompts; "
                  "paired separation difference, * excludes 0):", ""]
    for r in versus:
        v = r["versus"]
        parts = [format_difference(arm, d) + (f" (strict {format_difference('', d['strict']).strip()})"
                                               if d.get("strict") else "") for arm, d in v["arms"].items()]
        lines.append(f"- {r['experiment']} − {v['experiment']}, seed {r['seed']}: " + "; ".join(parts))
    cross = [r for r in rows if (r.get("versus") or {}).get("cross")]
    if cross:
        lines += ["", "An experiment that evaluates one arm alone (saro, or dpo), against the other arms of the run it "
                  "is compared with (same seed, same prompts; * excludes 0):", ""]
    for r in cross:
        parts = [format_difference(k, d) + f" (strict {format_difference('', d['strict']).strip()})"
                 for k, d in r["versus"]["cross"].items()]
        lines.append(f"- {r['experiment']} seed {r['seed']}: " + "; ".join(parts))
    (out / "study.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    plot(out / "separation.png", rows)


def plot(path: Path, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = list(dict.fromkeys(a for r in rows for a in r["arms"]))
    labels = [f"{r['experiment']}\nseed {r['seed']}" for r in rows]
    panels = [("separation", "separation\n1 − harmful ASR − over-refusal"),
              ("strict_separation", "strict separation\n(safe prompts with no answer fail)")]
    fig, axes = plt.subplots(2, 1, figsize=(max(5, 1.6 * len(rows)), 6.4), sharex=True, sharey=True)
    width = 0.8 / max(1, len(arms))
    for ax, (key, ylabel) in zip(axes, panels):
        for j, arm in enumerate(arms):
            xs, ys, lo, hi = [], [], [], []
            for i, r in enumerate(rows):
                sep = (r["arms"].get(arm) or {}).get(key)
                if sep:
                    xs.append(i + (j - (len(arms) - 1) / 2) * width)
                    ys.append(sep["value"])
                    lo.append(sep["value"] - sep["ci"][0])
                    hi.append(sep["ci"][1] - sep["value"])
            ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o", capsize=3, label=arm, color=f"C{j}")
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_ylabel(ylabel, fontsize=9)
    axes[0].legend(fontsize=8, ncol=len(arms))
    axes[-1].set_xticks(range(len(rows)), labels, fontsize=8)
    axes[0].set_title("95% intervals; each arm on the same held-out prompts within a seed", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.list:
        for e in EXPERIMENTS.values():
            print(f"{e.name:9s} {e.why}\n          --set " + " --set ".join(e.sets)
                  + (f"\n          starts from a copy of '{e.parent}'" if e.parent else ""))
        return 0
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        print(f"error: unknown experiment(s) {', '.join(unknown)} (known: {', '.join(EXPERIMENTS)})", file=sys.stderr)
        return 2
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    out = Path(args.out) if Path(args.out).is_absolute() else REPO / args.out
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in seeds:
        for name in names:
            run = out / f"{name}-s{seed}"
            if args.table:
                if (run / "study_run.json").exists():
                    rows.append(summarize(run, json.loads((run / "study_run.json").read_text())))
                continue
            meta = run_one(args, EXPERIMENTS[name], seed, out)
            if args.train_prompts:
                run_on_train_prompts(args, EXPERIMENTS[name], seed, out)
            rows.append(summarize(run, meta))
            write_table(out, rows)  # after every run: a crash keeps what finished
    if not rows:
        print("error: no finished run to tabulate", file=sys.stderr)
        return 2
    write_table(out, rows)
    print((out / "study.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
