"""Record formats (DEVELOPERS.md, "Record formats") and their validation, naming file, line and field.

- prompt: {id, prompt, kind, category, source}
- RIT-D:  prompt fields + reasoning [steps] + answer
- OP-COT: prompt fields + chosen {reasoning, answer} + rejected {reasoning, answer}
- PP-COT: prompt fields + prefix [steps] + chosen {steps, answer} + rejected {steps, answer}
"""
from __future__ import annotations

import random
import re

from ..errors import UserError
from ..fileio import read_jsonl
from ..vocabulary import KINDS, STARTER_DIR

PROMPT_FIELDS = ("id", "prompt", "kind", "category", "source")
BALANCED_OP = "op_cot_balanced.jsonl"  # length-balanced OP-COT pairs (pairs.length_balanced)


def _steps_ok(v) -> bool:
    return isinstance(v, list) and all(isinstance(s, str) and s.strip() for s in v)


def _check(rows: list[dict], path, kinds=KINDS, shape: str = "rit_d") -> list[dict]:
    seen: set = set()
    for i, r in enumerate(rows, start=1):
        where = f"{path}: record {i} (id {r.get('id')!r})"
        if r.get("id") in seen:
            raise UserError(f"{where}: duplicate id")
        seen.add(r.get("id"))
        if not isinstance(r.get("prompt"), str) or not r["prompt"].strip():
            raise UserError(f"{where}: 'prompt' must be a non-empty string")
        if r.get("kind") not in kinds:
            raise UserError(f"{where}: 'kind' must be one of {', '.join(kinds)}, got {r.get('kind')!r}")
        if shape == "rit_d":
            if not _steps_ok(r.get("reasoning")) or not isinstance(r.get("answer"), str):
                raise UserError(f"{where}: needs 'reasoning' (list of strings) and 'answer' (string)")
        elif shape == "op":
            for side in ("chosen", "rejected"):
                s = r.get(side)
                if not isinstance(s, dict) or not _steps_ok(s.get("reasoning")) or not isinstance(s.get("answer"), str):
                    raise UserError(f"{where}: '{side}' must be {{reasoning: [steps], answer: str}}")
        elif shape == "pp":
            if not _steps_ok(r.get("prefix")):
                raise UserError(f"{where}: 'prefix' must be a list of strings")
            for side in ("chosen", "rejected"):
                s = r.get(side)
                if not isinstance(s, dict) or not _steps_ok(s.get("steps")) or not isinstance(s.get("answer"), str):
                    raise UserError(f"{where}: '{side}' must be {{steps: [steps], answer: str}}")
    return rows


def load_rit_d(path) -> list[dict]:
    return _check(read_jsonl(path, required=("id", "prompt", "kind", "reasoning", "answer")), path, shape="rit_d")


def load_op(path) -> list[dict]:
    return _check(read_jsonl(path, required=("id", "prompt", "kind", "chosen", "rejected")), path, shape="op")


def load_pp(path) -> list[dict]:
    return _check(read_jsonl(path, required=("id", "prompt", "kind", "prefix", "chosen", "rejected")), path,
                  shape="pp")


def prompt_record(r: dict) -> dict:
    return {"id": r["id"], "prompt": r["prompt"], "kind": r["kind"], "category": r.get("category", ""),
            "source": r.get("source", "")}


def balanced_limit(rows: list[dict], limit: int | None, kinds, seed: int) -> list[dict]:
    """Keep `limit` rows spread evenly over the kinds (deterministic for a seed); order preserved."""
    rows = [r for r in rows if r["kind"] in kinds]
    if limit is None or limit >= len(rows):
        return rows
    by_kind = {k: [r for r in rows if r["kind"] == k] for k in kinds}
    rng = random.Random(seed)
    keep: set = set()
    quota = {k: 0 for k in kinds}
    remaining = limit
    # round-robin over kinds so a kind with few rows leaves its share to the others
    while remaining > 0:
        progressed = False
        for k in kinds:
            if remaining and quota[k] < len(by_kind[k]):
                quota[k] += 1
                remaining -= 1
                progressed = True
        if not progressed:
            break
    for k in kinds:
        for r in rng.sample(by_kind[k], quota[k]):
            keep.add(id(r))
    return [r for r in rows if id(r) in keep]


def teacher_prompts(r) -> list[dict]:
    if r.data.prompts_path:
        rows = read_jsonl(r.data.prompts_path, required=("id", "prompt", "kind"))
        return [prompt_record(x) for x in rows]
    return [prompt_record(x) for x in load_rit_d(STARTER_DIR / "rit_d.jsonl")]


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def shorten(row: dict, max_steps: int | None = None, max_sentences: int | None = None) -> dict:
    """A shorter RIT-D trace (data.max_reasoning_steps / data.max_answer_sentences; None = as is):
    the first max_steps - 1 reasoning steps plus the last one (the decision), and the answer's first
    max_sentences sentences. The trace still ends with its verdict and the answer."""
    steps, answer = list(row["reasoning"]), row["answer"].strip()
    if max_steps and len(steps) > max_steps:
        steps = steps[:max_steps - 1] + steps[-1:]
    if max_sentences:
        answer = " ".join(_SENTENCE_END.split(answer)[:max_sentences])
    return {**row, "reasoning": steps, "answer": answer}
