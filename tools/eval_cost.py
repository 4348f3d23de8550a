"""What a cheaper eval would have cost in verdicts, measured on a finished run's own replies.

    python -m tools.eval_cost runs/smollm2-135m-instruct --cap 160
    python -m tools.eval_cost runs/smollm2-135m-instruct --repeat 16x3

Greedy decoding writes the same first tokens whatever the token limit, so a shorter limit (`--cap N`) or a
rule that stops a reply once it repeats itself (`--repeat PxR`: the last P*R tokens, at least 32, are one
span of at most P tokens R times over) can be replayed on the stored replies exactly: each reply is cut
where the cheaper eval would have stopped it and judged again with the kit's verdict. Prints the share of
eval tokens saved and how many verdicts (attack success, refused, no answer) change, per arm and kind.
Re-tokenizing a decoded reply may differ from the generated ids by a token here and there.
"""
from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path


def repeat_stop(ids: list[int], max_period: int, reps: int, min_span: int = 32) -> int | None:
    """The first length t at which ids[:t] ends with one span of <= max_period tokens repeated `reps` times
    (covering at least min_span tokens); None when it never does."""
    for t in range(min_span, len(ids) + 1):
        for p in range(1, max_period + 1):
            span = max(p * reps, min_span)
            if t >= span and all(ids[t - span + i] == ids[t - span + i + p] for i in range(span - p)):
                return t
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.eval_cost", description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path, help="a finished run folder (eval/<arm>/<set>.jsonl, recipe.resolved.yaml)")
    rule = ap.add_mutually_exclusive_group(required=True)
    rule.add_argument("--cap", type=int, help="replay a max_new_tokens of N")
    rule.add_argument("--repeat", help="replay a stop on repetition, PERIODxTIMES (e.g. 16x3)")
    args = ap.parse_args(argv)

    from saro_lite.fileio import read_jsonl
    from saro_lite.judges.reply import judge_reply
    from saro_lite.modeling.loading import load_tokenizer
    from saro_lite.recipe import load_recipe

    recipe = load_recipe(args.run / "recipe.resolved.yaml")
    tok = load_tokenizer(recipe, recipe.model.name_or_path)
    period, reps = (int(x) for x in args.repeat.split("x")) if args.repeat else (0, 0)
    changed, total, saved, replies = Counter(), 0, 0, 0
    for f in sorted(args.run.glob("eval/*/*.jsonl")):
        for row in read_jsonl(f):
            ids = tok(row["response"], add_special_tokens=False)["input_ids"]
            replies, total = replies + 1, total + len(ids)
            stop = (args.cap if len(ids) > args.cap else None) if args.cap else repeat_stop(ids, period, reps)
            if stop is None:
                continue
            saved += len(ids) - stop
            request = row.get("base_prompt") or row.get("goal")
            before = judge_reply(row["response"], row.get("prompt"), "full", request=request)
            after = judge_reply(tok.decode(ids[:stop]), row.get("prompt"), "full", request=request)
            for flag in ("attack_success", "refused", "no_answer"):
                if getattr(before, flag) != getattr(after, flag):
                    changed[(f.parent.name, row.get("kind"), flag)] += 1
    rule = f"cap {args.cap}" if args.cap else f"stop on a span of <= {period} tokens x {reps}"
    print(f"{rule}: {replies} replies, {saved} of {total} eval tokens saved ({saved / max(total, 1):.1%}), "
          f"{sum(changed.values())} verdicts change")
    for (arm, kind, flag), n in sorted(changed.items()):
        print(f"  {arm:12s} {kind:10s} {flag:15s} {n}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
