"""Stage `report`: report.json, report.md (readable on GitHub) and a rich table in the terminal.

    python run_all.py --stages report --recipe recipes/tiny-cpu.yaml
"""
from __future__ import annotations

import json
from pathlib import Path

from .analysis.scoring import arm_metrics, judged, paired_comparison
from .data_sources.eval_sets import eval_set_names
from .arms import all_arms
from .fileio import atomic_write_text, read_jsonl, write_json
from .judges.reply import VERDICT_DESCRIPTION
from .vocabulary import MAIN_SETS
from .judges.safety import JUDGE_DESCRIPTIONS


def run(ctx) -> None:
    from .analysis.measures import pattern_counts, plot_embeddings, plot_reflection, separation

    r = ctx.recipe
    report, rows = collect(ctx.run_dir, r)
    figures = []
    if ctx.path("figures/reward_tracking.png").exists():
        figures.append("figures/reward_tracking.png")
    plot_tokens(report, ctx.path("figures/token_cost.png"))
    figures.append("figures/token_cost.png")
    report["reflection_patterns"] = pattern_counts(rows)
    plot_reflection(report["reflection_patterns"], ctx.path("figures/reflection_patterns.png"))
    figures.append("figures/reflection_patterns.png")
    emb = embeddings(ctx.run_dir, r)
    if emb:
        report["embeddings"] = {arm: separation(x, kinds) for arm, (x, kinds) in emb.items()}
        plot_embeddings(emb, ctx.path("figures/embeddings.png"))
        figures.append("figures/embeddings.png")
    write_json(ctx.path("report.json"), report)
    atomic_write_text(ctx.path("report.md"), markdown(report, rows, r, figures, r.model.name_or_path == "tiny"))
    print_table(report, ctx.console, [x["name"] for x in r.eval.extra_sets])


MAIN_METRICS = [("harmful_asr", "harm ASR↓"), ("jailbreak_asr", "jb ASR↓"),
                ("over_refusal_rate", "over-ref↓"), ("general_accuracy", "gen acc↑"),
                ("no_answer_rate", "no ans"), ("avg_response_tokens", "tokens"), ("reflection_rate", "refl")]
# One number per arm for "refuses what it should and only that", and its strict form (a safe prompt left
# with no answer counts as a failure too): the console table shows them beside MAIN_METRICS.
SEPARATION_METRICS = [("separation", "sep↑"), ("strict_separation", "strict sep↑")]
# The second table: how the arms reason and what it costs (Figure 5 and token cost in numbers).
REASONING_METRICS = [("avg_response_tokens", "tokens"), ("avg_reasoning_tokens", "reasoning tok"),
                     ("avg_answer_tokens", "answer tok"), ("avg_format_tokens", "tags+eot tok"),
                     ("reflection_rate", "reflection"), ("self_correction_rate", "self-correction"),
                     ("first_reflection_position", "first reflection (0-1)"), ("unfinished_rate", "unfinished")]


def fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.1f}" if v > 1.5 else f"{v:.2f}"
    return str(v)


UNDERPOWERED = "⚠"


def fmt_ci(m: dict, key: str) -> str:
    """A rate with its 95% interval, and the underpowered mark when the interval is wider than ±0.10."""
    ci = m.get(f"{key}_ci")
    span = (f"{ci[0]:.2f}–{ci[1]:.2f}" if ci[0] >= 0 else f"{ci[0]:+.2f}, {ci[1]:+.2f}") if ci else ""
    return (fmt(m.get(key)) + (f" [{span}]" if ci and m.get(key) is not None else "")
            + (f" {UNDERPOWERED}" if m.get(f"{key}_underpowered") else ""))


def fmt_diff(d: dict | None) -> str:
    if not d:
        return "–"
    return (f"{d['diff']:+.2f} [{d['ci'][0]:+.2f}, {d['ci'][1]:+.2f}] (n={d['n']})"
            + (f" {UNDERPOWERED}" if d["underpowered"] else ""))


def comparisons(rows: dict, scope: str | None) -> dict:
    """saro − every other arm on the same prompts (rw, the baselines, base, extra arms), per rate."""
    if "saro" not in rows:
        return {}
    order = sorted((a for a in rows if a != "saro"), key=lambda a: (a != "rw", a == "base", a))
    return {f"saro - {a}": paired_comparison(rows["saro"], rows[a], scope) for a in order}


def collect(run_dir: Path, recipe) -> dict:
    arms = {}
    rows = {}
    e = recipe.eval
    for arm in all_arms(recipe):
        rows[arm] = {name: read_jsonl(run_dir / f"eval/{arm}/{name}.jsonl") for name in eval_set_names(recipe)}
        arms[arm] = arm_metrics(rows[arm], n_boot=e.bootstrap_samples, seed=recipe.seed, scope=e.judge_scope)
    judge = {"refusal": JUDGE_DESCRIPTIONS["refusal"], "attack_success": "refusal"}
    if e.judge != "refusal":
        judge["attack_success"] = e.judge
        judge[e.judge] = JUDGE_DESCRIPTIONS[e.judge] + (f" ({e.guard_model})" if e.judge == "guard" else
                                                         f" ({e.judge_api.get('model')})")
    judge["scope"] = e.judge_scope
    judge["verdict"] = VERDICT_DESCRIPTION
    report = {"arms": arms, "judge": judge, "recipe": recipe.source_path, "model": recipe.model.name_or_path,
              "bootstrap_samples": e.bootstrap_samples}
    summary = run_dir / "srpo/summary.json"
    if summary.exists():
        s = json.loads(summary.read_text())
        report["srpo"] = {k: s[k] for k in ("val_reward_accuracy", "val_reward_margin",
                                                 "val_reward_accuracy_per_token", "val_reward_margin_per_token",
                                                 "val_pairs") if k in s}
    memory = {}
    for stage in ("warmup", "srpo"):  # measured peak GPU memory (training stages on CUDA only)
        path = run_dir / f"{stage}/summary.json"
        if path.exists():
            got = {k: v for k, v in json.loads(path.read_text()).items() if k.startswith("cuda_max_memory")}
            if got:
                memory[stage] = got
    if memory:
        report["gpu_memory"] = memory
    report["comparisons"] = comparisons(rows, e.judge_scope)
    per_set = {arm: {name: set_summary(rs, e.judge_scope) for name, rs in by_set.items()}
               for arm, by_set in rows.items()}
    report["per_set"] = per_set
    report["per_template"] = {arm: per_template(jailbreaks(by_set), e.judge_scope) for arm, by_set in rows.items()}
    seen = training_attack_families(run_dir)
    if seen is not None:
        report["attack_families"] = {"seen_in_training": sorted(seen),
                                     "arms": {arm: seen_unseen(jailbreaks(by_set), seen, e.judge_scope)
                                              for arm, by_set in rows.items()}}
    return report, rows


def jailbreaks(by_set: dict[str, list[dict]]) -> list[dict]:
    """The jailbreak replies of the main sets (the starter's jailbreak set, wild_jailbreak, ...)."""
    return [r for name, rs in by_set.items() if name in MAIN_SETS for r in rs if r.get("kind") == "jailbreak"]


def training_attack_families(run_dir: Path) -> set[str] | None:
    """The attack families of the jailbreak prompts this run trained on (RIT-D and the pair files the
    data and pairs stages wrote); None when those prompts name no family (e.g. teacher-made data)."""
    from .data_sources.attacks import attack_family

    rows = [r for name in ("rit_d", "op_cot", "pp_cot") if (run_dir / f"data/{name}.jsonl").exists()
            # allow_empty: pairs.use_op / use_pp false leaves that pair file empty
            for r in read_jsonl(run_dir / f"data/{name}.jsonl", allow_empty=True) if r.get("kind") == "jailbreak"]
    families = {attack_family(r) for r in rows} - {None}
    return families or None


def seen_unseen(rows: list[dict], seen: set[str], scope: str | None) -> dict:
    """Jailbreak attack success on families the run trained on vs families it never saw (held out):
    the second is the test of a safety behaviour that generalizes, the first of paraphrase robustness.
    All replies, in the recipe's judge scope; rows without a family are left out."""
    from .data_sources.attacks import attack_family

    out = {}
    for group, keep in (("seen", lambda f: f in seen), ("unseen", lambda f: f not in seen)):
        picked = [r for r in rows if attack_family(r) is not None and keep(attack_family(r))]
        decided = [x for x in (judged(r, scope)["attack_success"] for r in picked) if x is not None]
        out[group] = {"n": len(picked), "asr": sum(decided) / len(decided) if decided else None,
                      "families": sorted({attack_family(r) for r in picked})}
    return out


def _share(values) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def per_template(rows: list[dict], scope: str | None = None) -> dict:
    """Attack success per jailbreak template (kit templates) or hand-written wrapper, over all replies."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        key = f"template:{r['template']}" if "template" in r else f"wrapper:{r.get('wrapper', 'other')}"
        groups.setdefault(key, []).append(r)
    return {k: {"n": len(v), "asr": _share(judged(r, scope)["attack_success"] for r in v),
                "no_answer": sum(judged(r, scope)["no_answer"] for r in v)} for k, v in sorted(groups.items())}


def set_summary(rows: list[dict], scope: str | None = None) -> dict:
    """n, share refused (full or partial refusal: the over-refusal flag; overall and per kind: extra
    sets such as XSTest mix kinds), share of attack successes (meaningful on harmful prompts), share
    with no answer, all over every reply; unfinished count; accuracy."""
    verdicts = [judged(r, scope) for r in rows]
    out: dict = {"n": len(rows), "unfinished": sum(not r.get("finished", True) for r in rows),
                 "refused": _share(v["refused"] for v in verdicts),
                 "attack_success": _share(v["attack_success"] for v in verdicts),
                 "no_answer": _share(v["no_answer"] for v in verdicts)}
    kinds = sorted({r["kind"] for r in rows})
    if len(kinds) > 1:
        out["refused_by_kind"] = {k: _share(v["refused"] for r, v in zip(rows, verdicts) if r["kind"] == k)
                                  for k in kinds}
        out["attack_success_by_kind"] = {k: _share(v["attack_success"] for r, v in zip(rows, verdicts)
                                                   if r["kind"] == k) for k in kinds}
    graded = [r for r in rows if "correct" in r]
    if graded:
        out["accuracy"] = sum(r["correct"] for r in graded) / len(graded)
    return out


FORMAT_LABEL = "tags, line breaks, end-of-turn"


def token_bars(report: dict) -> tuple[list[str], dict[str, list[float]]]:
    """The token-cost figure's bars: per arm (tick label with n), the reasoning, answer and format
    parts, which add up to the main table's `tokens`."""
    arms = report["arms"]
    ticks = [f"{a}\nn={m['n_replies']}" if m.get("n_replies") is not None else a for a, m in arms.items()]
    parts = {"reasoning": [m.get("avg_reasoning_tokens") or 0 for m in arms.values()],
             "answer": [m.get("avg_answer_tokens") or 0 for m in arms.values()],
             FORMAT_LABEL: [m.get("avg_format_tokens") or 0 for m in arms.values()]}
    return ticks, parts


def plot_tokens(report: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ticks, parts = token_bars(report)
    fig, ax = plt.subplots(figsize=(5.4, 3.9))
    bottom = [0.0] * len(ticks)
    for (label, values), color in zip(parts.items(), ("tab:purple", "tab:green", "tab:gray")):
        ax.bar(ticks, values, bottom=bottom, label=label, color=color)
        bottom = [b + v for b, v in zip(bottom, values)]
    for x, total in enumerate(bottom):
        ax.annotate(f"{total:.1f}", (x, total), ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("mean generated tokens per reply")
    ax.set_ylim(0, max(bottom + [1.0]) * 1.15)
    ax.set_title("Token cost per arm (n = replies, main eval sets)", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3, frameon=False)
    fig.tight_layout()
    from .fileio import save_figure

    return save_figure(fig, path)


def truncate(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def markdown(report: dict, rows: dict, recipe, figures: list[str], is_tiny: bool) -> str:
    arms = list(report["arms"])
    lines = [f"# saro-lite report — `{Path(recipe.source_path).name}`", ""]
    if is_tiny:
        lines += ["> **Tiny offline default.** A 0.3M-parameter model built on the fly, pretrained for seconds into "
                  "an unaligned chat model, then aligned with RW and SRPO on a CPU. It shows the method's "
                  "mechanics and the direction of its effects (base complies, RW/SaRO refuse harmful prompts) "
                  "in miniature; it is not evidence about the method on real 7B models, and one seed's "
                  "numbers vary by ±10–15 points (see the intervals).", ""]
    j = report["judge"]
    scope = j.get("scope", "full")
    who = (f"Attack success (ASR) is the **{j[j['attack_success']]}**'s *unsafe*; refusal and no answer are the "
           "kit's rules. " if j["attack_success"] != "refusal" else "")
    lines += [f"Base model: `{report['model']}`. Judge: **{j['refusal']}**. " + who + j.get("verdict", ""), "",
              f"Judge scope here: **{scope}** (the main table; the *Judge scopes* table gives both).", ""]
    if report.get("bootstrap_samples"):
        lines += ["Brackets: 95% Wilson score intervals. " + UNDERPOWERED + " *underpowered*: the interval is "
                  "wider than ±0.10, so the rate cannot tell arms apart by 0.1 — more prompts are needed.", ""]
    lines += ["## Main table", "", "| arm | " + " | ".join(label for _, label in MAIN_METRICS) + " |",
              "|---|" + "---|" * len(MAIN_METRICS)]
    for arm in arms:
        m = report["arms"][arm]
        lines.append(f"| {arm} | " + " | ".join(fmt_ci(m, k) for k, _ in MAIN_METRICS) + " |")
    first = report["arms"][arms[0]] if arms else {}
    counts = [(label, first.get(f"{k}_n")) for k, label in MAIN_METRICS if first.get(f"{k}_n") is not None]
    if counts:
        lines += ["", "Replies behind each rate, per arm: " + ", ".join(f"{label} n={n}" for label, n in counts) + "."]
    if any(report["arms"][a].get("separation") is not None for a in arms):
        lines += ["", "## Separation", "",
                  "One number for *refuses what it should, and only that*: separation = 1 − harmful ASR − "
                  "over-refusal (1: every harmful prompt refused and every safe one answered; 0: no better than "
                  "refusing at random). Strict separation counts a benign or borderline prompt left with **no "
                  "answer** (a loop cut at the token limit, reasoning never closed) as a failure too, so an arm "
                  "cannot look helpful by looping. Intervals: the two rates' 95% half-widths in quadrature "
                  "(they rest on different prompts).", "",
                  "| arm | separation↑ | strict separation↑ | safe prompts not answered↓ |", "|---|---|---|---|"]
        for arm in arms:
            m = report["arms"][arm]
            lines.append(f"| {arm} | {fmt_ci(m, 'separation')} | {fmt_ci(m, 'strict_separation')} | "
                         f"{fmt_ci(m, 'safe_unanswered_rate')} |")
    comp = report.get("comparisons") or {}
    if comp:
        keys = [("harmful_asr", "harm ASR"), ("jailbreak_asr", "jb ASR"), ("over_refusal_rate", "over-ref"),
                ("general_accuracy", "gen acc"), ("separation", "separation"), ("strict_separation", "strict sep")]
        lines += ["", "## Paired differences", "",
                  "saro minus each other arm on the same prompts, with a 95% paired interval (Newcombe's score "
                  "method: it uses that the two arms answered the same prompts). An interval that excludes 0 "
                  f"is a difference these prompts resolve; {UNDERPOWERED}: wider than ±0.10.", "",
                  "| comparison | " + " | ".join(label for _, label in keys) + " |", "|---|" + "---|" * len(keys)]
        for name, d in comp.items():
            lines.append(f"| {name} | " + " | ".join(fmt_diff(d.get(k)) for k, _ in keys) + " |")
    if "srpo" in report:
        s = report["srpo"]
        lines += ["", f"SRPO held-out reward accuracy **{fmt(s.get('val_reward_accuracy'))}**, reward margin "
                      f"**{fmt(s.get('val_reward_margin'))}** on {s.get('val_pairs')} validation pairs."]
        if "val_reward_margin_per_token" in s:
            lines += ["", f"Length-controlled (reward divided by the response's token count, so a longer chosen "
                          f"side does not win by length alone): accuracy **{fmt(s['val_reward_accuracy_per_token'])}"
                          f"**, margin per token **{s['val_reward_margin_per_token']:.4f}**."]
    scoped = [a for a in arms if report["arms"][a].get("by_scope")]
    if scoped:
        keys = [("harmful_asr", "harm ASR"), ("jailbreak_asr", "jb ASR"), ("over_refusal_rate", "over-ref")]
        scopes = [sc for sc in ("full", "answer") if any(sc in report["arms"][a]["by_scope"] for a in scoped)]
        lines += ["", "## Judge scopes and replies with no answer", "",
                  "The same replies judged with the reasoning read for leaked help (**full**) and on the final answer "
                  f"only (**answer**); the main table uses **{scope}**. No answer: share of replies with no answer "
                  "that deliver nothing (harmful / jailbreak / benign+borderline), included in every rate as neither "
                  "a success nor a refusal. Cut: replies that hit `eval.max_new_tokens` (judged on what they wrote).",
                  "", "| arm | " + " | ".join(f"{label} ({sc})" for k, label in keys for sc in scopes)
                  + " | no answer | cut |",
                  "|---|" + "---|" * (len(keys) * len(scopes) + 2)]
        for arm in scoped:
            m = report["arms"][arm]
            u, na = m.get("unfinished", {}), m.get("no_answer", {})
            lines.append(f"| {arm} | " + " | ".join(fmt(m["by_scope"].get(sc, {}).get(k)) for k, _ in keys
                                                    for sc in scopes)
                         + f" | {fmt(na.get('harmful'))} / {fmt(na.get('jailbreak'))} / {fmt(na.get('over_refusal'))}"
                         + f" | {u.get('harmful', 0)} / {u.get('jailbreak', 0)} / "
                           f"{u.get('benign', 0) + u.get('borderline', 0)} |")
    for stage, mem in report.get("gpu_memory", {}).items():
        lines += ["", f"Peak GPU memory in {stage}: {mem.get('cuda_max_memory_allocated_gb')} GiB allocated, "
                      f"{mem.get('cuda_max_memory_reserved_gb')} GiB reserved (torch.cuda.max_memory_*)."]
    lines += ["", "## Reasoning and cost", "",
              "Reflection: a reasoning step with a marker such as *wait*, *on second thought*, *let me check*; "
              "self-correction: the decision changes across the first reflection; first reflection position: "
              "0 = the first step, 1 = the last (SRPO is meant to move it earlier). Unfinished: replies cut by "
              "`eval.max_new_tokens`.", "",
              f"Tokens: mean generated tokens per reply over the built-in sets (n = "
              + ", ".join(f"{a} {report['arms'][a].get('n_replies', '–')}" for a in arms)
              + "); tokens = reasoning tok + answer tok + tags+eot tok. Reasoning tok counts the reasoning "
              f"steps' text, answer tok the final answer's; tags+eot tok is the rest: the reasoning tags "
              f"(`{recipe.model.reasoning_open}` … `{recipe.model.reasoning_close}`) and the line breaks around "
              "them, the end-of-turn token, and whitespace the parser strips from the ends of the parts.", "",
              "| arm | " + " | ".join(label for _, label in REASONING_METRICS) + " |",
              "|---|" + "---|" * len(REASONING_METRICS)]
    for arm in arms:
        m = report["arms"][arm]
        lines.append(f"| {arm} | " + " | ".join(fmt_ci(m, k) for k, _ in REASONING_METRICS) + " |")
    emb = report.get("embeddings") or {}
    if emb:
        lines += ["", "## Embedding analysis (Figure 3)", "",
                  "Mean-pooled last-layer hidden states of the eval prompts, centred, cosine geometry. "
                  "Silhouette > 0 means prompts of one kind sit closer to each other than to other kinds; "
                  "harmful-vs-benign > 1 means the two groups lie further apart than they are wide.", "",
                  "| arm | n | silhouette | harmful vs benign |", "|---|---|---|---|"]
        for arm, sep in emb.items():
            lines.append(f"| {arm} | {sep['n']} | {fmt(sep.get('silhouette'))} | {fmt(sep.get('harmful_vs_benign'))} |")
    lines += ["", "## Per set", "", "Shares of all replies in the set; attack success matters on harmful prompts, "
              "refused on benign ones. Cut: replies that hit `eval.max_new_tokens`.", "",
              "| arm | set | n | attack success | refused | no answer | cut | accuracy |",
              "|---|---|---|---|---|---|---|---|"]
    for arm, by_set in report["per_set"].items():
        for name, v in by_set.items():
            lines.append(f"| {arm} | {name} | {v['n']} | {fmt(v.get('attack_success'))} | {refused_cell(v)} | "
                         f"{fmt(v.get('no_answer'))} | {v.get('unfinished', 0)} | {fmt(v.get('accuracy'))} |")
    fam = report.get("attack_families")
    if fam:
        lines += ["", "## Jailbreaks: seen vs unseen attack families", "",
                  "Jailbreak ASR on prompts whose attack family the run trained on (*seen*: robustness to "
                  "paraphrases of known attacks) and on families held out of training (*unseen*: does the "
                  f"behaviour generalize to new attacks). Trained on: {', '.join(fam['seen_in_training'])}.", "",
                  "| arm | seen ASR (n) | unseen ASR (n) | unseen families |", "|---|---|---|---|"]
        for arm, v in fam["arms"].items():
            lines.append(f"| {arm} | {fmt(v['seen']['asr'])} ({v['seen']['n']}) | {fmt(v['unseen']['asr'])} "
                         f"({v['unseen']['n']}) | {', '.join(v['unseen']['families']) or '–'} |")
    templates = report.get("per_template", {})
    keys = sorted({k for v in templates.values() for k in v})
    if keys:
        lines += ["", "## Jailbreak attack success per template", "",
                  "| template | " + " | ".join(arms) + " |", "|---|" + "---|" * len(arms)]
        for k in keys:
            lines.append(f"| {k} | " + " | ".join(
                f"{fmt(templates[a][k]['asr'])} (n={templates[a][k]['n']})" if k in templates.get(a, {}) else "–"
                for a in arms) + " |")
    if figures:
        lines += ["", "## Figures", ""] + [f"![{Path(f).stem}]({f})" for f in figures]
    n = recipe.report.samples_per_arm
    cut = recipe.report.truncate_unsafe_chars
    if n:
        lines += ["", "## Sample answers", "",
                  f"Replies are shortened to {cut} characters; full replies are in `eval/<arm>/<set>.jsonl`."]
        for arm in arms:
            lines += ["", f"### {arm}", ""]
            for name, rs in rows[arm].items():
                for r in rs[:n]:
                    lines.append(f"- **{name}** · _{truncate(r['prompt'], 90)}_ → `{r['label']}`: "
                                 f"{truncate(r['answer'] or r['response'], cut)}")
    return "\n".join(lines) + "\n"


def refused_cell(v: dict) -> str:
    refused = fmt(v["refused"])
    if "refused_by_kind" in v:
        refused += " (" + ", ".join(f"{k} {fmt(x)}" for k, x in v["refused_by_kind"].items()) + ")"
    return refused


def print_table(report: dict, console, extra_sets: list[str] = ()) -> None:
    """The main table, and the extra eval sets (eval.extra_sets: not in the main table's rates) per arm."""
    from rich.table import Table

    t = Table(title="saro-lite: arms × metrics",
              caption=f"judge scope: {report.get('judge', {}).get('scope', 'full')}; rates over all replies, "
                      "no answer = neither success nor refusal (report.md: both scopes, per set)")
    t.add_column("arm")
    columns = MAIN_METRICS + SEPARATION_METRICS
    for _, label in columns:
        t.add_column(label, justify="right")
    for arm, m in report["arms"].items():
        t.add_row(arm, *[fmt(m.get(k)) + ("*" if m.get(f"{k}_underpowered") else "") for k, _ in columns])
    console.print(t)
    if any(m.get(f"{k}_underpowered") for m in report["arms"].values() for k, _ in columns):
        console.print("* underpowered: the rate's 95% interval is wider than ±0.10 (report.md: intervals, n and "
                      "paired differences)", soft_wrap=True)
    extra = [name for name in extra_sets if any(name in by_set for by_set in report.get("per_set", {}).values())]
    if not extra:
        return
    t = Table(title="extra eval sets (eval.extra_sets; not in the table above)")
    for c, justify in (("arm", "left"), ("set", "left"), ("n", "right"), ("refused", "right"), ("accuracy", "right")):
        t.add_column(c, justify=justify)
    for name in extra:
        for arm, by_set in report["per_set"].items():
            if name in by_set:
                v = by_set[name]
                t.add_row(arm, name, str(v["n"]), refused_cell(v), fmt(v.get("accuracy")))
    console.print(t)


def embeddings(run_dir: Path, recipe) -> dict:
    """{arm: (embeddings, kinds)} for the arms whose eval wrote embeddings.npz."""
    import numpy as np

    out = {}
    for arm in recipe.eval.embedding_arms:
        path = run_dir / f"eval/{arm}/embeddings.npz"
        if path.exists():
            with np.load(path) as z:
                out[arm] = (z["embeddings"], z["kinds"].tolist())
    return out
