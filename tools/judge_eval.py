"""Measure the refusal judge against human labels.

    python -m tools.judge_eval FILE.csv|FILE.jsonl [--response-field F] [--label-field L]
                                   [--prompt-field P] [--show-errors N]
                                   [--half dev|heldout] [--split NAME]

Prints binary agreement (refused vs complied), 3-way agreement and a confusion table.
Labels may be XSTest's (``1_full_compliance``, ``2_full_refusal``, ``3_partial_refusal``),
plain (``full_compliance`` ...), or short (``compliance``, ``refusal``, ``partial``).

Held-out protocol. A rule judge tuned on a file fits that file's wording, so every number that
is reported as "how well the judge does" comes from replies it was not tuned on:

* ``--half dev|heldout`` splits an XSTest completions file deterministically by its prompt id
  (``v2-<n>``): odd ``n`` is the dev half, even ``n`` the held-out half (:func:`xstest_half`).
  XSTest numbers each prompt type in blocks of 25 and puts a prompt's unsafe contrast 25 ids
  later, so each half gets 12-13 prompts of every type, and a safe prompt and its contrast land
  in different halves. Rules are developed on the GPT-4 file and the dev half of the second
  model's file only; the held-out half is measured once, at the end.
* ``--split NAME`` keeps the rows whose ``split`` field is NAME (the fixture's ``dev``,
  ``holdout`` and ``holdout2``).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from saro_lite.judges.refusal import LABELS, canonical_label, judge_refusal  # noqa: F401  (canonical_label: used by the tests)

def xstest_half(row_id: str) -> str:
    """'dev' for an odd XSTest prompt number ('v2-7'), 'heldout' for an even one ('v2-8')."""
    digits = "".join(ch for ch in str(row_id).rsplit("-", 1)[-1] if ch.isdigit())
    if not digits:
        raise ValueError(f"not an XSTest id: {row_id!r}")
    return "dev" if int(digits) % 2 else "heldout"


def select(rows: list[dict], half: str | None = None, split: str | None = None) -> list[dict]:
    """Rows of one XSTest half (by id) and/or one fixture split (by the ``split`` field)."""
    if half:
        rows = [r for r in rows if xstest_half(r["id"]) == half]
    if split:
        rows = [r for r in rows if r.get("split") == split]
    return rows


def load_rows(path: Path) -> list[dict]:
    if path.suffix == ".jsonl":
        with path.open(encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@dataclass
class Report:
    n: int
    binary: float
    three_way: float
    confusion: dict  # (gold, predicted) -> count
    errors: list     # (gold, predicted, reason, row)

    def format(self) -> str:
        lines = [f"rows: {self.n}",
                 f"binary agreement (refused vs complied): {self.binary:.4f}",
                 f"3-way agreement: {self.three_way:.4f}",
                 "", "confusion (rows = human label, columns = judge):"]
        short = {"full_compliance": "compliance", "full_refusal": "refusal",
                 "partial_refusal": "partial"}
        lines.append(" " * 12 + "".join(f"{short[p]:>12}" for p in LABELS))
        for gold in LABELS:
            cells = "".join(f"{self.confusion.get((gold, p), 0):>12}" for p in LABELS)
            lines.append(f"{short[gold]:>12}{cells}")
        return "\n".join(lines)


def evaluate(rows: list[dict], response_field: str, label_field: str,
             prompt_field: str | None = "prompt") -> Report:
    confusion: dict = {}
    errors = []
    same_binary = same_three = 0
    for row in rows:
        gold = canonical_label(row[label_field])
        verdict = judge_refusal(row[response_field] or "", row.get(prompt_field or "", None))
        confusion[(gold, verdict.label)] = confusion.get((gold, verdict.label), 0) + 1
        same_three += gold == verdict.label
        agree = (gold != "full_compliance") == verdict.refused
        same_binary += agree
        if not agree or gold != verdict.label:
            errors.append((gold, verdict.label, verdict.reason, row))
    n = max(len(rows), 1)
    return Report(len(rows), same_binary / n, same_three / n, confusion, errors)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--response-field", default=None,
                        help="column with the reply (default: completion or response)")
    parser.add_argument("--label-field", default=None,
                        help="column with the human label (default: final_label or label)")
    parser.add_argument("--prompt-field", default="prompt")
    parser.add_argument("--show-errors", type=int, default=0, metavar="N",
                        help="print up to N disagreements")
    parser.add_argument("--half", choices=("dev", "heldout"), default=None,
                        help="XSTest half by prompt id: odd = dev, even = heldout")
    parser.add_argument("--split", default=None,
                        help="keep rows whose 'split' field equals this (fixture files)")
    args = parser.parse_args(argv)
    rows = select(load_rows(args.file), args.half, args.split)
    if not rows:
        print("no rows", file=sys.stderr)
        return 1
    response_field = args.response_field or next(
        (f for f in ("completion", "response") if f in rows[0]), "response")
    label_field = args.label_field or next(
        (f for f in ("final_label", "label") if f in rows[0]), "label")
    report = evaluate(rows, response_field, label_field, args.prompt_field)
    print(report.format())
    for gold, pred, reason, row in report.errors[:args.show_errors]:
        text = " ".join(str(row[response_field]).split())[:200]
        print(f"\n[{row.get('id', '?')}] human={gold} judge={pred} ({reason})\n  {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
