"""Measure the kit's judge: refusal against human labels, attack success against JailbreakBench's labels,
and both on the starter pack's gold controls.

    python -m tools.judge_eval FILE.csv|FILE.jsonl [--response-field F] [--label-field L]
                                   [--prompt-field P] [--show-errors N]
                                   [--half dev|heldout] [--split NAME]
    python -m tools.judge_eval --attack ../shared/data/jbb/judge_dev_artifacts.jsonl [--half dev|heldout]
                               [--show-errors N]
    python -m tools.judge_eval --gold
    python -m tools.judge_eval --leaks ../shared/data/star1/STAR-1.json

Refusal (the first form) prints binary agreement (refused vs complied), 3-way agreement and a confusion
table. `--attack` prints the agreement of the verdict's attack_success with a file's `jailbroken`
labels (JailbreakBench's artifacts: the benchmark's own LLM judge), split by goal: a hash of the goal
puts every reply to one goal in one half (`jbb_half`), so rules tuned on the dev half never saw a goal
of the held-out half. `--gold` judges every starter gold trace as the model writes it (`<think>` steps
`</think>` answer), full length and shortened as the recipes train them, in both judge scopes:
safe traces of harmful and jailbreak prompts (attack success should be ~0), gold benign and borderline
answers (refused should be ~0), the rejected sides (attack success should be ~1). `--leaks` counts
real reasoning traces (STAR-1: a strong reasoning model deliberating about harmful prompts) that the
full scope calls a success while the answer alone is not: reasoning read as leaked help.
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


# --------------------------------------------------------------------------------------------
# Attack success: JailbreakBench halves, gold controls, reasoning leaks
# --------------------------------------------------------------------------------------------

def jbb_half(goal: str) -> str:
    """'dev' or 'heldout' for a goal, by the parity of its sha256: every reply to a goal in one half."""
    import hashlib

    return "dev" if int(hashlib.sha256(goal.encode()).hexdigest()[:8], 16) % 2 == 0 else "heldout"


@dataclass
class AttackReport:
    n: int
    agreement: float
    false_success: list  # (row, verdict): the judge says success, the label says not
    false_safe: list

    def format(self) -> str:
        return (f"rows: {self.n}\nattack-success agreement: {self.agreement:.4f}\n"
                f"false successes: {len(self.false_success)}, missed successes: {len(self.false_safe)}")


def evaluate_attack(rows: list[dict], scope: str = "full") -> AttackReport:
    """attack_success (prompt = what was sent, request = the goal) against the `jailbroken` label."""
    from saro_lite.judges.reply import judge_reply

    fs, fn, same = [], [], 0
    for row in rows:
        v = judge_reply(row["response"] or "", row.get("prompt"), scope, request=row.get("goal"))
        gold = bool(row["jailbroken"])
        same += v.attack_success == gold
        if v.attack_success and not gold:
            fs.append((row, v))
        elif gold and not v.attack_success:
            fn.append((row, v))
    return AttackReport(len(rows), same / max(len(rows), 1), fs, fn)


def _render(steps: list[str], answer: str) -> str:
    return "<think>\n" + "\n\n".join(steps) + "\n</think>\n\n" + answer


CUTS = {"full length": (None, None), "shortened 2/2 (SmolLM2)": (2, 2), "shortened 1/1 (tiny)": (1, 1)}


def gold_controls() -> list[dict]:
    """One row per (control, kind, cut, scope): the share flagged and the count. `want` is the flag the
    control should NOT raise (safe traces: attack_success; gold answers: refused) or should (rejected)."""
    from saro_lite.data_sources.records import STARTER_DIR, load_op, load_pp, load_rit_d, shorten
    from saro_lite.judges.reply import judge_reply

    rit = load_rit_d(STARTER_DIR / "rit_d.jsonl")
    op = load_op(STARTER_DIR / "op_cot.jsonl") + load_op(STARTER_DIR / "op_cot_balanced.jsonl")
    pp = load_pp(STARTER_DIR / "pp_cot.jsonl")
    sources = [("safe trace (RIT-D)", "attack_success", False, rit, lambda r: (r["reasoning"], r["answer"])),
               ("safe trace (OP-COT chosen)", "attack_success", False, op,
                lambda r: (r["chosen"]["reasoning"], r["chosen"]["answer"])),
               ("safe trace (PP-COT prefix + chosen)", "attack_success", False, pp,
                lambda r: (r["prefix"] + r["chosen"]["steps"], r["chosen"]["answer"])),
               ("gold answer (RIT-D)", "refused", False, rit, lambda r: (r["reasoning"], r["answer"])),
               ("gold answer (OP-COT chosen)", "refused", False, op,
                lambda r: (r["chosen"]["reasoning"], r["chosen"]["answer"])),
               ("gold answer (PP-COT prefix + chosen)", "refused", False, pp,
                lambda r: (r["prefix"] + r["chosen"]["steps"], r["chosen"]["answer"])),
               ("rejected side (OP-COT)", "attack_success", True, op,
                lambda r: (r["rejected"]["reasoning"], r["rejected"]["answer"])),
               ("rejected side (PP-COT prefix + rejected)", "attack_success", True, pp,
                lambda r: (r["prefix"] + r["rejected"]["steps"], r["rejected"]["answer"]))]
    out = []
    for name, flag, expected, records, sides in sources:
        kinds = ("benign", "borderline") if flag == "refused" else ("harmful", "jailbreak")
        for kind in kinds:
            rows = [r for r in records if r["kind"] == kind]
            for cut, (steps_max, sentences_max) in CUTS.items():
                texts = []
                for r in rows:
                    steps, answer = sides(r)
                    short = shorten({"reasoning": steps, "answer": answer}, steps_max, sentences_max)
                    texts.append((_render(short["reasoning"], short["answer"]), r["prompt"], r["id"]))
                for scope in ("full", "answer"):
                    hits = [i for t, p, i in texts if getattr(judge_reply(t, p, scope), flag)]
                    out.append({"control": name, "kind": kind, "cut": cut, "scope": scope, "flag": flag,
                                "expected": expected, "n": len(texts), "flagged": len(hits),
                                "share": len(hits) / max(len(texts), 1), "ids": hits})
    return out


def star1_leaks(path: Path) -> tuple[int, int, list]:
    """(traces, leaks, leaking ids): STAR-1 replies whose reasoning the full scope reads as delivered help
    while their answer alone is not."""
    from saro_lite.judges.reply import judge_reply

    rows = json.loads(path.read_text(encoding="utf-8"))
    leaks = [r["id"] for r in rows if judge_reply(r["response"], r["question"], "full").attack_success
             and not judge_reply(r["response"], r["question"], "answer").attack_success]
    return len(rows), len(leaks), leaks


def _attack_main(args) -> int:
    rows = load_rows(args.attack)
    if args.half:
        rows = [r for r in rows if jbb_half(r["goal"]) == args.half]
    report = evaluate_attack(rows)
    print(report.format())
    for row, v in (report.false_success + report.false_safe)[:args.show_errors]:
        text = " ".join(str(row["response"]).split())[:200]
        print(f"\n[{row.get('method')}/{row.get('target_model')}] label={row['jailbroken']} judge={v.attack_success} "
              f"({v.reason})\n  goal: {row['goal']}\n  {text}")
    return 0


def _gold_main() -> int:
    print("| control | kind | cut | scope | flagged |\n|---|---|---|---|---|")
    for r in gold_controls():
        print(f"| {r['control']} | {r['kind']} | {r['cut']} | {r['scope']} | {r['flagged']}/{r['n']} "
              f"({r['share']:.3f}) |")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path, nargs="?")
    parser.add_argument("--attack", type=Path, default=None,
                        help="a JSONL of replies with goal, prompt, response and jailbroken (JailbreakBench's)")
    parser.add_argument("--gold", action="store_true", help="the starter pack's gold controls")
    parser.add_argument("--leaks", type=Path, default=None, help="STAR-1.json: reasoning read as leaked help")
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
    if args.gold:
        return _gold_main()
    if args.attack:
        return _attack_main(args)
    if args.leaks:
        n, k, ids = star1_leaks(args.leaks)
        print(f"STAR-1 traces: {n}; reasoning read as leaked help: {k}" + (f" ({', '.join(map(str, ids[:20]))})"
                                                                           if ids else ""))
        return 0
    if args.file is None:
        parser.error("give a FILE, --attack FILE, --gold or --leaks FILE")
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
