"""Stage `data`: prompts and RIT-D reasoning traces -> data/prompts.jsonl, data/rit_d.jsonl.

Sources (`data.source`):
- starter: the hand-written pack shipped in saro_lite/starter/ (default, no teacher needed);
- teacher: a teacher model (`teacher` section) writes the traces for the starter prompts, or for the
  prompt records in `data.prompts_path`; replies are cached, so a rebuild makes no teacher calls;
- file: a RIT-D JSONL of your own (`data.path: my_traces.jsonl`);
- star1 / stair_sft: those public reasoning datasets (`data.path`: a local copy; null = the Hub);
  `data.add_starter_kinds: [benign, borderline]` puts the starter's safe traces beside STAR-1's harmful ones.

    python run_all.py --stages data --recipe recipes/tiny-cpu.yaml
"""
from __future__ import annotations

from collections import Counter

from .vocabulary import STARTER_DIR
from .errors import UserError
from .fileio import write_json, write_jsonl
from .data_sources.holdout import normalize_prompt, validation_prompts
from .data_sources.records import (balanced_limit, load_op, load_pp, load_rit_d, prompt_record,
                                   shorten, teacher_prompts)


def run(ctx) -> None:
    r = ctx.recipe
    rows, path = load_rows(ctx)
    if r.data.pair_trace_kinds and r.data.source != "starter":
        ctx.console.print(f"data.pair_trace_kinds: skipped (the extra traces come from the starter pack; "
                          f"data.source is {r.data.source})")
    elif r.data.pair_trace_kinds:
        extra = pair_traces(rows, [k for k in r.data.pair_trace_kinds if k in r.data.kinds])
        rows = rows + extra
        ctx.console.print(f"RIT-D: + {len(extra)} traces from the chosen sides of the starter OP-COT/PP-COT "
                          f"pairs ({', '.join(r.data.pair_trace_kinds)})")
    if r.data.add_starter_kinds:
        extra = [x for x in load_rit_d(STARTER_DIR / "rit_d.jsonl") if x["kind"] in r.data.add_starter_kinds]
        seen = {normalize_prompt(x["prompt"]) for x in rows}
        extra = [x for x in extra if normalize_prompt(x["prompt"]) not in seen]
        rows = rows + extra
        ctx.console.print(f"RIT-D: + {len(extra)} starter traces ({', '.join(r.data.add_starter_kinds)}) beside "
                          f"{r.data.source}")
    held = validation_prompts(r)
    if held:
        n = len(rows)
        rows = [x for x in rows if normalize_prompt(x["prompt"]) not in held]
        ctx.console.print(f"RIT-D: - {n - len(rows)} records whose prompts the pairs stage holds out for "
                          f"validation ({len(held)} prompts)")
    if r.data.max_reasoning_steps or r.data.max_answer_sentences:
        rows = [shorten(x, r.data.max_reasoning_steps, r.data.max_answer_sentences) for x in rows]
        ctx.console.print(f"RIT-D shortened: at most {r.data.max_reasoning_steps or 'all'} reasoning steps, "
                          f"{r.data.max_answer_sentences or 'all'} answer sentences")
    write_jsonl(ctx.path("data/prompts.jsonl"), [prompt_record(x) for x in rows])
    write_jsonl(ctx.path("data/rit_d.jsonl"), rows)
    counts = Counter(x["kind"] for x in rows)
    ctx.console.print(f"RIT-D: {len(rows)} records from {path} "
                      f"({', '.join(f'{k} {counts[k]}' for k in r.data.kinds)})")


def from_teacher(ctx) -> list[dict]:
    from .synthesis.teacher import synthesize_rit_d
    from .synthesis.setup import policy_text, print_report, teacher_cache, teacher_client

    r = ctx.recipe
    prompts = balanced_limit(teacher_prompts(r), r.data.limit, r.data.kinds, r.seed)
    rows, report = synthesize_rit_d(prompts, teacher_client(r), teacher_cache(r), policy_text(r),
                                    r.teacher.samples, malformed_retries=r.teacher.malformed_retries,
                                    judge_filter=r.teacher.judge_filter, console=ctx.console)
    write_json(ctx.path("data/teacher_report.json"), report)
    print_report(ctx.console, "RIT-D", report)
    if not rows:
        raise UserError("data.source teacher: the teacher produced no usable trace; see data/teacher_report.json")
    return rows


def load_rows(ctx) -> tuple[list[dict], str]:
    r = ctx.recipe
    if r.data.source == "teacher":
        return from_teacher(ctx), f"teacher {r.teacher.model}"
    if r.data.source in ("star1", "stair_sft"):
        from .data_sources.public_datasets import load_source

        log = lambda m: ctx.console.print(m, markup=False)  # noqa: E731
        rows = load_source(r.data.source, r.data.path, where="data.path", log=log)
        return balanced_limit(rows, r.data.limit, r.data.kinds, r.seed), r.data.path or r.data.source
    path = r.data.path if r.data.source == "file" else STARTER_DIR / "rit_d.jsonl"
    return balanced_limit(load_rit_d(path), r.data.limit, r.data.kinds, r.seed), str(path)


def pair_traces(rows: list[dict], kinds) -> list[dict]:
    """data.pair_trace_kinds: the chosen sides of the starter OP-COT / PP-COT pairs of these kinds as
    RIT-D records (PP: the shared prefix + the chosen steps), skipping prompts already in `rows`."""
    seen = {x["prompt"].strip().lower() for x in rows}
    kinds = set(kinds)
    out = []
    for p in load_op(STARTER_DIR / "op_cot.jsonl") + load_pp(STARTER_DIR / "pp_cot.jsonl"):
        key = p["prompt"].strip().lower()
        if key in seen or p["kind"] not in kinds:
            continue
        seen.add(key)
        c = p["chosen"]
        steps = c["reasoning"] if "reasoning" in c else p["prefix"] + c["steps"]
        out.append({**prompt_record(p), "reasoning": steps, "answer": c["answer"]})
    return out
