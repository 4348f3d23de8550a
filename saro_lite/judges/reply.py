"""Judge one reply or a whole file of replies with the offline refusal judge (the `judge` command's body).

The offline default is the refusal judge (saro_lite.refusal_judge): it reads the final answer with
the reasoning block removed and labels it full_compliance / full_refusal / partial_refusal.

    python run_all.py judge --input replies.csv --response-field completion --prompt-field prompt \\
        --output judged.jsonl
    python run_all.py judge --input replies.jsonl --response-field response --prompt-field prompt \\
        --judge guard --guard-model meta-llama/Llama-Guard-3-1B --output judged.jsonl
    python run_all.py judge --input replies.csv --response-field completion --judge api \\
        --api-base-url http://localhost:8000/v1 --api-model judge --api-key-env JUDGE_KEY --output judged.jsonl

The guard and API judges live in saro_lite.judges.safety.
"""
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
