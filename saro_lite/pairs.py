"""Stage `pairs`: OP-COT and PP-COT preference pairs, rendered for SRPO, and held-out validation pairs.

Writes data/op_cot.jsonl and data/pp_cot.jsonl (records in the kit's format), data/srpo_train.jsonl
and data/srpo_val.jsonl: rows {id, type, kind, prompt, chosen, rejected} holding the exact strings
that are trained and scored (prompt rendered through the chat template; responses end exactly at the
end-of-turn token). For PP-COT the shared reasoning prefix is part of the prompt, after the generation
prompt and the opening reasoning tag, so DPO compares only the continuations from step k on.

    python run_all.py --stages pairs --recipe recipes/tiny-cpu.yaml
"""
from __future__ import annotations

from collections import Counter

from .vocabulary import STARTER_DIR
from .errors import UserError
from .fileio import write_jsonl
from .data_sources.holdout import known_pair_records, normalize_prompt, split_val
from .data_sources.records import balanced_limit, load_op, load_pp, shorten
from .training.examples import render_pairs


def run(ctx) -> None:
    r = ctx.recipe
    kinds = r.data.kinds
    if r.pairs.source == "teacher":  # limits its prompts before synthesis
        op, pp = pairs_from_teacher(ctx)
    elif r.pairs.source == "self":
        op, pp = pairs_from_self(ctx)
        op = balanced_limit(op, r.pairs.op_limit, kinds, r.seed)
        pp = balanced_limit(pp, r.pairs.pp_limit, kinds, r.seed)
    else:  # starter or file: the same records the data stage read to leave the validation prompts out of RW
        op, pp = known_pair_records(r, both=True)
    if r.pairs.shorten and (r.data.max_reasoning_steps or r.data.max_answer_sentences):
        op, pp = shorten_pairs(op, pp, r.data.max_reasoning_steps, r.data.max_answer_sentences)
        ctx.console.print(f"pairs shortened like RIT-D: at most {r.data.max_reasoning_steps or 'all'} reasoning "
                          f"steps, {r.data.max_answer_sentences or 'all'} answer sentences")
    rows = render_pairs(ctx.renderer(), op, pp)
    train, val = split_val(rows, r.pairs.val_size, r.seed)
    # pairs.use_op / use_pp false (an ablation): the split above saw both kinds, as the data stage's did,
    # so RW and the held-out prompts are those of the full run; the kind that is off leaves both sides
    used = {t for t, on in (("op", r.pairs.use_op), ("pp", r.pairs.use_pp)) if on}
    op, pp = (op if "op" in used else []), (pp if "pp" in used else [])
    train, val = [x for x in train if x["type"] in used], [x for x in val if x["type"] in used]
    rows = [x for x in rows if x["type"] in used]
    write_jsonl(ctx.path("data/op_cot.jsonl"), op)
    write_jsonl(ctx.path("data/pp_cot.jsonl"), pp)
    write_jsonl(ctx.path("data/srpo_train.jsonl"), train)
    write_jsonl(ctx.path("data/srpo_val.jsonl"), val)
    warn_seen_validation_prompts(ctx, op, pp, val)
    length_report(ctx.tokenizer(), rows, r.srpo.max_length, ctx.console)
    c = Counter(x["type"] for x in train)
    ctx.console.print(f"pairs: {len(op)} OP-COT + {len(pp)} PP-COT -> train {len(train)} "
                      f"(op {c['op']}, pp {c['pp']}), held-out validation {len(val)}")


def _num(v, spec: str) -> str:
    return "n/a (no passing samples)" if v is None else format(v, spec)


def shorten_pairs(op: list[dict], pp: list[dict], max_steps: int | None, max_sentences: int | None):
    """pairs.shorten: both sides cut like the RW traces (data.shorten: the first max_steps - 1 steps plus
    the decision step, the answer's first sentences); a PP-COT prefix keeps its last max_steps steps
    (the step the continuation answers)."""
    def cut(side: dict, key: str, steps: int | None) -> dict:
        short = shorten({"reasoning": side[key], "answer": side["answer"]}, steps, max_sentences)
        return {**side, key: short["reasoning"], "answer": short["answer"]}

    # A PP-COT continuation keeps at least its first step (the reflection, "Wait — ...", on the chosen
    # side: the point of PP-COT) and its last (the decision).
    cont = max(max_steps, 2) if max_steps else None
    op = [{**x, "chosen": cut(x["chosen"], "reasoning", max_steps),
           "rejected": cut(x["rejected"], "reasoning", max_steps)} for x in op]
    pp = [{**x, "prefix": x["prefix"][-max_steps:] if max_steps else x["prefix"],
           "chosen": cut(x["chosen"], "steps", cont), "rejected": cut(x["rejected"], "steps", cont)} for x in pp]
    return op, pp


def length_report(tokenizer, rows: list[dict], max_length: int, console) -> dict:
    """Token lengths of prompt+response; warn when DPO would truncate (it keeps the start and cuts
    the end, so long traces lose their verdict) or drop pairs (prompt alone fills max_length)."""
    import numpy as np

    if not rows:
        return {}
    lengths, prompt_lengths = [], []
    for r in rows:
        p = len(tokenizer(r["prompt"])["input_ids"])
        full = max(len(tokenizer(r["prompt"] + r[s])["input_ids"]) for s in ("chosen", "rejected"))
        lengths.append(full)
        prompt_lengths.append(p)
    pct = {f"p{q}": int(np.percentile(lengths, q)) for q in (50, 90, 99)}
    pct["max"] = max(lengths)
    truncated = sum(n > max_length for n in lengths)
    dropped = sum(p >= max_length for p in prompt_lengths)
    if dropped * 2 > len(rows):
        raise UserError(f"srpo.max_length: {max_length} is too small for the prompts: {dropped} of {len(rows)} "
                        f"pairs have prompts that fill it alone (median prompt "
                        f"{int(np.median(prompt_lengths))} tokens, longest pair {max(lengths)} tokens)")
    console.print(f"pair lengths in tokens (prompt+response): {pct}; srpo.max_length = {max_length}")
    if truncated:
        console.print(f"[yellow]warning:[/] {truncated}/{len(rows)} pairs exceed srpo.max_length and will be cut "
                      f"at the end (their verdict may be lost); raise srpo.max_length")
    if dropped:
        console.print(f"[yellow]warning:[/] {dropped} pairs have prompts that fill srpo.max_length alone; DPO drops them")
    return {**pct, "truncated": truncated, "dropped": dropped}


def pairs_from_teacher(ctx) -> tuple[list[dict], list[dict]]:
    """The teacher writes OP-COT over the starter OP-COT prompts and PP-COT over the PP-COT prompts
    (or, with data.prompts_path, over those prompts), limited by pairs.op_limit / pp_limit."""
    from .fileio import write_json
    from .data_sources.records import prompt_record
    from .synthesis.teacher import synthesize_op_cot, synthesize_pp_cot
    from .synthesis.setup import fallback_client, policy_text, print_report, teacher_cache, teacher_client

    r = ctx.recipe
    kinds = r.data.kinds
    if r.data.prompts_path:
        from .data_sources.records import teacher_prompts

        op_prompts = pp_prompts = teacher_prompts(r)
    else:
        op_prompts = [prompt_record(x) for x in load_op(STARTER_DIR / "op_cot.jsonl")]
        pp_prompts = [prompt_record(x) for x in load_pp(STARTER_DIR / "pp_cot.jsonl")]
    client, cache, policy = teacher_client(r), teacher_cache(r), policy_text(r)
    fallback = fallback_client(r, ctx.model_path)
    common = dict(malformed_retries=r.teacher.malformed_retries, judge_filter=r.teacher.judge_filter,
                  fallback_client=fallback, console=ctx.console)
    op, pp, reports = [], [], {}
    if r.pairs.use_op:
        op, reports["op_cot"] = synthesize_op_cot(balanced_limit(op_prompts, r.pairs.op_limit, kinds, r.seed),
                                                  client, cache, policy, r.teacher.samples, **common)
        print_report(ctx.console, "OP-COT", reports["op_cot"])
    if r.pairs.use_pp:
        pp, reports["pp_cot"] = synthesize_pp_cot(balanced_limit(pp_prompts, r.pairs.pp_limit, kinds, r.seed),
                                                  client, cache, policy, r.teacher.samples, seed=r.seed, **common)
        print_report(ctx.console, "PP-COT", reports["pp_cot"])
    write_json(ctx.path("data/teacher_pairs_report.json"), reports)
    return op, pp


def pairs_from_self(ctx) -> tuple[list[dict], list[dict]]:
    """Self path: k samples per prompt from the RW model, judged; OP-COT = shortest passing vs a failing
    sample (Shortest Rejection Sampling), PP-COT = a failing trace cut at step k and continued with and
    without a reflection cue. Samples (unsafe model output) stay in the run folder."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .arms import Arms
    from .fileio import read_jsonl, write_json, write_jsonl
    from .synthesis.self_path import run_self_pairs

    r, p = ctx.recipe, ctx.recipe.pairs
    prompts = read_jsonl(ctx.path("data/prompts.jsonl"))
    with Progress(TextColumn("[bold]self path[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=ctx.console) as progress:
        task = progress.add_task("sampling", total=len(prompts) * p.k)
        with Arms(ctx, ["rw"]).use("rw") as model:
            op, pp, report = run_self_pairs(model, ctx.tokenizer(), ctx.renderer(), prompts, k=p.k,
                                            max_new_tokens=p.max_new_tokens, batch_size=p.batch_size,
                                            temperature=p.temperature, seed=r.seed, reflection_cue=p.reflection_cue,
                                            use_op=p.use_op, use_pp=p.use_pp, progress=progress,
                                            task=task, loop=r.model.generation_loop,
                                            unanswered_as_rejected=p.unanswered_as_rejected)
    # the samples are model output, unsafe ones included: they stay in the run folder, never on the terminal
    samples = report.pop("samples")
    write_jsonl(ctx.path("data/self_samples.jsonl"),
                [{"prompt_id": pid, **s.to_dict()} for pid, ss in samples.items() for s in ss])
    write_json(ctx.path("data/self_report.json"), report)
    srs = report.get("srs", {})
    ctx.console.print(f"self path: {srs.get('with_pass')}/{srs.get('prompts')} prompts with a passing sample, "
                      f"{srs.get('unanswered_samples')}/{srs.get('samples')} samples never answered (close tag never written); "
                      f"Shortest Rejection Sampling saves {_num(srs.get('tokens_saved'), '.1f')} tokens per selected "
                      f"sample vs the mean accepted ({_num(srs.get('saved_share'), '.0%')}); {len(op)} OP-COT, "
                      f"{len(pp)} PP-COT pairs" + (f" ({report['op'].get('rejected_unanswered', 0)} OP-COT rejected "
                                                   f"sides are unanswered samples)" if p.unanswered_as_rejected else ""))
    return op, pp


def warn_seen_validation_prompts(ctx, op: list[dict], pp: list[dict], val: list[dict]) -> None:
    """Warn when held-out pairs' prompts were RW training prompts (data/rit_d.jsonl). The data stage leaves
    them out when the pairs are known in advance (starter, file); the self path samples its pairs on the
    RW prompts themselves, and a teacher may write pairs for prompts RW trained on."""
    from .fileio import read_jsonl

    rit = ctx.path("data/rit_d.jsonl")
    if not rit.exists():
        return
    seen = {normalize_prompt(x["prompt"]) for x in read_jsonl(rit, allow_empty=True)}
    text = {f"op:{x['id']}": x["prompt"] for x in op} | {f"pp:{x['id']}": x["prompt"] for x in pp}
    held = {normalize_prompt(text[x["id"]]) for x in val}
    if held & seen:
        ctx.console.print(f"[yellow]warning:[/] {len(held & seen)} of {len(held)} validation prompts are also RW "
                          f"training prompts (data/rit_d.jsonl): held-out reward tracking then scores prompts "
                          f"the RW model has seen" + (" (the self path samples its pairs on the RW prompts)"
                                                      if ctx.recipe.pairs.source == "self" else ""))
