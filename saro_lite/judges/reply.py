"""Judges, and `python run_all.py judge`: label any CSV/JSONL of replies.

The offline default is the refusal judge (saro_lite.refusal_judge): it reads the final answer with
the reasoning block removed and labels it full_compliance / full_refusal / partial_refusal.

    python run_all.py judge --input replies.csv --response-field completion --prompt-field prompt \\
        --output judged.jsonl
    python run_all.py judge --input replies.jsonl --response-field response --prompt-field prompt \\
        --judge guard --guard-model meta-llama/Llama-Guard-3-1B --output judged.jsonl
    python run_all.py judge --input replies.csv --response-field completion --judge api \\
        --api-base-url http://localhost:8000/v1 --api-model judge --api-key-env JUDGE_KEY --output judged.jsonl

The guard and API judges live in saro_lite.safety_judges.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

from ..errors import UserError
from ..fileio import read_jsonl, write_jsonl
from .refusal import LABELS, Verdict, judge_refusal, strip_reasoning  # noqa: F401  (re-exported)
from .safety import JUDGE_DESCRIPTIONS, JUDGE_NAMES as JUDGES  # noqa: F401  (re-exported)


def judge_reply(response: str, prompt: str | None = None, open_tag: str = "<think>",
                close_tag: str = "</think>") -> Verdict:
    return judge_refusal(strip_reasoning(response, open_tag, close_tag), prompt)


def read_table(path: Path) -> list[dict]:
    """Rows of a CSV, JSON (list of objects) or JSONL file; errors name the file and line."""
    if not path.exists():
        raise UserError(f"{path}: file not found")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return read_jsonl(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte {e.start})") from None
    if not text.strip():
        raise UserError(f"{path}: file is empty")
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}: line {e.lineno}: broken JSON ({e.msg})") from None
        if isinstance(data, dict):  # {"data": [...]} or {"rows": [...]}
            data = next((v for v in data.values() if isinstance(v, list)), None)
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise UserError(f"{path}: expected a JSON list of objects")
        return data
    if suffix in (".csv", ".tsv"):
        try:
            return list(csv.DictReader(io.StringIO(text), delimiter="\t" if suffix == ".tsv" else ","))
        except csv.Error as e:
            raise UserError(f"{path}: malformed CSV ({e})") from None
    raise UserError(f"{path}: unsupported file type '{suffix}' (expected .csv, .tsv, .json or .jsonl)")


def require_columns(path: Path, rows: list[dict], fields: list[str]) -> None:
    if not rows:
        raise UserError(f"{path}: no rows")
    present = set().union(*(r.keys() for r in rows[:1]))
    missing = [f for f in fields if f not in present]
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(repr(m) for m in missing)} "
                        f"(columns: {', '.join(sorted(present))})")


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


def cli(argv: list[str]) -> int:
    from ..cli import guarded
    from .safety import add_judge_arguments, run_judge

    p = argparse.ArgumentParser(prog="run_all.py judge", description="label replies as complied/refused")
    p.add_argument("--input", required=True, help="CSV, TSV, JSON or JSONL file")
    p.add_argument("--response-field", required=True, help="column with the model's reply")
    p.add_argument("--prompt-field", default=None, help="column with the prompt (optional)")
    add_judge_arguments(p)
    p.add_argument("--output", required=True, help="JSONL file to write (one row per input row, in order)")
    p.add_argument("--debug", action="store_true")
    args = p.parse_args(argv)
    return guarded(run_judge, args, args.debug)
