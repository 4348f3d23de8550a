"""Judge one reply, or every row of a CSV/JSON/JSONL file, with the offline refusal judge (judges/refusal.py):
the reasoning block removed, the answer labelled full_compliance / full_refusal / partial_refusal. The
`judge` command (commands/judge.py) runs it; the guard and API judges live in judges/safety.py."""
from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..fileio import read_table, require_columns
from .refusal import Verdict, judge_refusal, strip_reasoning


def judge_reply(response: str, prompt: str | None = None, open_tag: str = "<think>",
                close_tag: str = "</think>") -> Verdict:
    return judge_refusal(strip_reasoning(response, open_tag, close_tag), prompt)


def judge_file(input_path: Path, response_field: str, prompt_field: str | None, judge: str = "refusal") -> list[dict]:
    rows = read_table(input_path)
    require_columns(input_path, rows, [response_field] + ([prompt_field] if prompt_field else []))
    out = []
    for i, row in enumerate(rows, start=1):
        response = row.get(response_field)
        if response is None:
            raise UserError(f"{input_path}: row {i}: '{response_field}' is empty")
        v = judge_reply(str(response), str(row[prompt_field]) if prompt_field else None)
        out.append({**row, "label": v.label, "refused": v.refused, "complied": v.complied, "judge": judge,
                    "judge_reason": v.reason})
    return out
