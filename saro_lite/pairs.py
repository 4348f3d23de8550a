"""Stage `pairs`: OP-COT and PP-COT preference pairs, rendered for SRPO, and held-out validation pairs.

Writes data/op_cot.jsonl and data/pp_cot.jsonl (records in the kit's format), data/srpo_train.jsonl
and data/srpo_val.jsonl: rows {id, type, kind, prompt, chosen, rejected} holding the exact strings
that are trained and scored (prompt rendered through the chat template; responses end exactly at the
end-of-turn token). For PP-COT the shared reasoning prefix is part of the prompt, after the generation
prompt and the opening reasoning tag, so DPO compares only the continuations from step k on.

    python -m saro_lite.pairs --recipe recipes/tiny-cpu.yaml
"""
from __future__ import annotations

import random
from collections import Counter, defaultdict

from .errors import UserError
from .fileio import write_jsonl
from .data_sources.records import STARTER_DIR, balanced_limit, load_op, load_pp


def _num(v, spec: str) -> str:
    return "n/a (no passing samples)" if v is None else format(v, spec)


def shorten_pairs(op: list[dict], pp: list[dict], max_steps: int | None, max_sentences: int | None):
    """pairs.shorten: both sides cut like the RW traces (data.shorten: the first max_steps - 1 steps plus
    the decision step, the answer's first sentences); a PP-COT prefix keeps its last max_steps steps
    (the step the continuation answers)."""
    from .data import shorten

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


def render_pairs(renderer, op: list[dict], pp: list[dict]) -> list[dict]:
    """The exact strings SRPO trains on and tracking scores, the prompt ending on a token boundary."""
    rows = []
    for x in op:
        rows.append(pair_row(renderer, f"op:{x['id']}", "op", x, renderer.prompt(x["prompt"]),
                             renderer.response(x["chosen"]["reasoning"], x["chosen"]["answer"]),
                             renderer.response(x["rejected"]["reasoning"], x["rejected"]["answer"])))
    for x in pp:
        rows.append(pair_row(renderer, f"pp:{x['id']}", "pp", x, renderer.pp_prompt(x["prompt"], x["prefix"]),
                             renderer.pp_continuation(x["chosen"]["steps"], x["chosen"]["answer"]),
                             renderer.pp_continuation(x["rejected"]["steps"], x["rejected"]["answer"])))
    return rows


def prompt_key(record: dict) -> str:
    """Which prompt a pair belongs to: its `prompt_id` where the record has one (teacher records, one per
    sample), else its prompt text (whitespace and case folded). All pairs of one prompt share a key."""
    pid = record.get("prompt_id")
    if pid not in (None, ""):
        return f"id:{pid}"
    return "text:" + normalize_prompt(record["prompt"])


def normalize_prompt(text: str) -> str:
    return " ".join(text.split()).lower()


def pair_row(renderer, row_id: str, kind_of_pair: str, record: dict, prompt: str, chosen: str, rejected: str) -> dict:
    prompt, (chosen, rejected) = renderer.on_token_boundary(prompt, chosen, rejected)
    return {"id": row_id, "type": kind_of_pair, "kind": record["kind"], "prompt_key": prompt_key(record),
            "prompt": prompt, "chosen": chosen, "rejected": rejected}


def split_val(rows: list[dict], val_size: int, seed: int) -> tuple[list[dict], list[dict]]:
    """Hold out `val_size` pairs (fewer when the data is small, never under 8), spread over
    (type, kind) groups round-robin so the validation set mirrors the training mix.

    The split is by prompt: all pairs of one prompt (same `prompt_key`, see prompt_key(); rows without
    one count as their own prompt) go to the same side, so an OP-COT pair held out never has its PP-COT
    sibling in training. When no prompt left fits the remaining room exactly, the smallest one is held out
    and the set ends a little over its size (by less than one prompt's pairs)."""
    n_val = min(val_size, len(rows) // 4)
    if n_val < 8:
        if len(rows) < 16:
            raise UserError(f"pairs: only {len(rows)} pairs; reward tracking needs at least 8 held-out pairs "
                            f"and as many to train on (16 in all). On the self path, raise pairs.k or "
                            f"pairs.max_new_tokens, or use more prompts (data.limit)")
        n_val = 8
    rng = random.Random(seed)
    members: dict[str, list[dict]] = defaultdict(list)  # prompt key -> its pairs, in file order
    for r in rows:
        members[r.get("prompt_key") or f"row:{r['id']}"].append(r)
    buckets: dict[tuple, list[str]] = defaultdict(list)  # (type, kind) -> prompt keys with such a pair
    for key, rs in members.items():
        for tk in dict.fromkeys((r["type"], r["kind"]) for r in rs):
            buckets[tk].append(key)
    for b in buckets.values():
        rng.shuffle(b)
    taken: set[str] = set()
    n_taken = 0
    order = sorted(buckets)
    while n_taken < n_val:
        progressed = False
        for k in order:  # round-robin: the next prompt of each (type, kind) that still fits
            fits = [key for key in buckets[k] if key not in taken and n_taken + len(members[key]) <= n_val]
            if fits:
                taken.add(fits[-1])
                n_taken += len(members[fits[-1]])
                progressed = True
        if not progressed:  # nothing fits exactly: the smallest prompt left, then stop
            free = [key for k in order for key in reversed(buckets[k]) if key not in taken]
            if free:
                key = min(free, key=lambda x: len(members[x]))
                taken.add(key)
                n_taken += len(members[key])
            break
    held = {r["id"] for key in taken for r in members[key]}
    return [r for r in rows if r["id"] not in held], [r for r in rows if r["id"] in held]


def known_pair_records(r) -> tuple[list[dict], list[dict]] | None:
    """The OP-COT / PP-COT records the pairs stage starts from, when they are known before it runs
    (pairs.source starter or file), loaded and limited exactly as run() does; None for teacher and self
    (those pairs exist only after the stage has run)."""
    kinds = r.data.kinds
    if r.pairs.source == "file":
        op = load_op(r.pairs.op_path) if r.pairs.use_op and r.pairs.op_path else []
        pp = load_pp(r.pairs.pp_path) if r.pairs.use_pp and r.pairs.pp_path else []
    elif r.pairs.source == "starter":
        op = load_op(STARTER_DIR / "op_cot.jsonl") if r.pairs.use_op else []
        pp = load_pp(STARTER_DIR / "pp_cot.jsonl") if r.pairs.use_pp else []
    else:
        return None
    return balanced_limit(op, r.pairs.op_limit, kinds, r.seed), balanced_limit(pp, r.pairs.pp_limit, kinds, r.seed)


def pair_index(op: list[dict], pp: list[dict]) -> list[dict]:
    """What split_val reads of each pair, in render_pairs' order: {id, type, kind, prompt_key, text}."""
    return ([{"id": f"op:{x['id']}", "type": "op", "kind": x["kind"], "prompt_key": prompt_key(x),
              "text": x["prompt"]} for x in op]
            + [{"id": f"pp:{x['id']}", "type": "pp", "kind": x["kind"], "prompt_key": prompt_key(x),
                "text": x["prompt"]} for x in pp])


def validation_prompts(r) -> set[str]:
    """The prompts (normalize_prompt) of the pairs the pairs stage will hold out for validation, computed
    from the recipe alone (same records, split, seed) so the data stage can leave them out of RW.
    Empty when the pairs are not known in advance (teacher, self) or too few to split."""
    recs = known_pair_records(r)
    if recs is None:
        return set()
    try:
        _, val = split_val(pair_index(*recs), r.pairs.val_size, r.seed)
    except UserError:
        return set()  # the pairs stage reports it
    return {normalize_prompt(x["text"]) for x in val}


# The settings validation_prompts() reads besides seed and data (part of the data stage's fingerprint).
VALIDATION_KEYS = ["pairs.source", "pairs.op_path", "pairs.pp_path", "pairs.use_op", "pairs.use_pp",
                   "pairs.op_limit", "pairs.pp_limit", "pairs.val_size"]


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
    from .teacher.synthesis import synthesize_op_cot, synthesize_pp_cot
    from .teacher.setup import fallback_client, policy_text, print_report, teacher_cache, teacher_client

    r = ctx.recipe
    kinds = r.data.kinds
    if r.data.prompts_path:
        from .data import teacher_prompts

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

    from .eval import Arms
    from .fileio import read_jsonl, write_json
    from .teacher.self_path import run_self_pairs

    r, p = ctx.recipe, ctx.recipe.pairs
    prompts = read_jsonl(ctx.path("data/prompts.jsonl"))
    with Progress(TextColumn("[bold]self path[/] sampling"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=ctx.console) as progress:
        task = progress.add_task("", total=len(prompts) * p.k)
        with Arms(ctx, ["rw"]).use("rw") as model:
            op, pp, report = run_self_pairs(model, ctx.tokenizer(), ctx.renderer(), prompts, k=p.k,
                                            max_new_tokens=p.max_new_tokens, batch_size=p.batch_size,
                                            temperature=p.temperature, seed=r.seed, reflection_cue=p.reflection_cue,
                                            use_op=p.use_op, use_pp=p.use_pp, strict=p.strict, progress=progress,
                                            task=task, loop=r.model.generation_loop)
    write_json(ctx.path("data/self_report.json"), report)
    srs = report.get("srs", {})
    ctx.console.print(f"self path: {srs.get('with_pass')}/{srs.get('prompts')} prompts with a passing sample; "
                      f"Shortest Rejection Sampling saves {_num(srs.get('tokens_saved'), '.1f')} tokens per selected "
                      f"sample vs the mean accepted ({_num(srs.get('saved_share'), '.0%')}); {len(op)} OP-COT, "
                      f"{len(pp)} PP-COT pairs")
    return op, pp


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
        op, pp = known_pair_records(r)
    if r.pairs.shorten and (r.data.max_reasoning_steps or r.data.max_answer_sentences):
        op, pp = shorten_pairs(op, pp, r.data.max_reasoning_steps, r.data.max_answer_sentences)
        ctx.console.print(f"pairs shortened like RIT-D: at most {r.data.max_reasoning_steps or 'all'} reasoning "
                          f"steps, {r.data.max_answer_sentences or 'all'} answer sentences")
    write_jsonl(ctx.path("data/op_cot.jsonl"), op)
    write_jsonl(ctx.path("data/pp_cot.jsonl"), pp)
    rows = render_pairs(ctx.renderer(), op, pp)
    train, val = split_val(rows, r.pairs.val_size, r.seed)
    write_jsonl(ctx.path("data/srpo_train.jsonl"), train)
    write_jsonl(ctx.path("data/srpo_val.jsonl"), val)
    warn_seen_validation_prompts(ctx, op, pp, val)
    length_report(ctx.tokenizer(), rows, r.srpo.max_length, ctx.console)
    c = Counter(x["type"] for x in train)
    ctx.console.print(f"pairs: {len(op)} OP-COT + {len(pp)} PP-COT -> train {len(train)} "
                      f"(op {c['op']}, pp {c['pp']}), held-out validation {len(val)}")


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


def main(argv=None):
    from .cli import run_single_stage

    run_single_stage("pairs", argv)


if __name__ == "__main__":
    main()
