"""`python run_all.py judge`: label any CSV/JSONL of replies with the verdict the eval uses.

The offline default is the kit's rule judge (judges/reply.py): per row `attack_success` (the reply,
reasoning or answer, attempts to deliver what a harmful request asks for), `refused` (the final answer
declines, fully or in part) and `label` (full_compliance / full_refusal / partial_refusal / no_answer),
in the eval's judge scopes (`--scope full`: the reasoning is read for leaked help; `answer`: the final
answer alone). The guard and API judges live in judges/safety.py.

    python run_all.py judge --input replies.csv --response-field completion --prompt-field prompt \\
        --output judged.jsonl
    python run_all.py judge --input eval/saro/jailbreak.jsonl --response-field response --prompt-field prompt \\
        --request-field base_prompt --scope answer --output judged.jsonl
    python run_all.py judge --input replies.jsonl --response-field response --prompt-field prompt \\
        --judge guard --guard-model meta-llama/Llama-Guard-3-1B --output judged.jsonl
    python run_all.py judge --input replies.csv --response-field completion --judge api \\
        --api-base-url http://localhost:8000/v1 --api-model judge --api-key-env JUDGE_KEY --output judged.jsonl
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError, guarded
from ..vocabulary import JUDGE_SCOPES
from ..fileio import read_table, write_jsonl
from ..judges.safety import (DEFAULT_GUARD_MODEL, JUDGE_DESCRIPTIONS, JUDGE_NAMES, EndpointSettings, judge_api_settings,
                             judge_rows, summary)


def add_judge_arguments(p) -> None:
    """The judge options of `run_all.py judge` (argparse parser)."""
    p.add_argument("--request-field", default=None,
                   help="column with the harmful request a jailbreak prompt wraps (optional; e.g. base_prompt)")
    p.add_argument("--scope", default="full", choices=JUDGE_SCOPES,
                   help="full: the reasoning is read for leaked help (the eval's default); answer: the answer alone")
    p.add_argument("--judge", default="refusal", choices=JUDGE_NAMES,
                   help="; ".join(f"{k}: {v}" for k, v in JUDGE_DESCRIPTIONS.items()))
    p.add_argument("--guard-model", default=DEFAULT_GUARD_MODEL,
                   help="guard: hub id or local folder of a Llama-Guard-style model (4-bit on CUDA)")
    p.add_argument("--guard-batch-size", type=int, default=8, help="guard: responses per generation batch")
    p.add_argument("--api-base-url", default=None,
                   help="api: OpenAI-compatible endpoint, e.g. http://localhost:8000/v1")
    p.add_argument("--api-model", default=None, help="api: the served judge model name")
    p.add_argument("--api-key-env", default=None,
                   help="api: NAME of the environment variable holding the key (the key itself is never passed)")


def api_settings_from_args(args) -> EndpointSettings | None:
    if args.judge != "api":
        return None
    return judge_api_settings(base_url=args.api_base_url, model=args.api_model, api_key_env=args.api_key_env)


def run_judge(args, console) -> int:
    """The body of `run_all.py judge` (cli() wraps it in errors.guarded: UserError -> exit 2)."""

    if args.judge == "guard" and getattr(args, "guard_batch_size", 8) < 1:
        raise UserError("--guard-batch-size: must be at least 1")
    path = Path(args.input)
    rows = read_table(path)
    settings = api_settings_from_args(args)  # settings errors before any model is loaded
    out = judge_rows(rows, args.response_field, args.prompt_field, args.judge, scope=args.scope,
                     request_field=args.request_field, source=str(path),
                     guard_model=args.guard_model, batch_size=getattr(args, "guard_batch_size", 8),
                     api_settings=settings, console=console)
    write_jsonl(args.output, out)  # written only when every row was judged
    console.print(f"{summary(out, args.judge)} -> {args.output}", soft_wrap=True)
    return 0


def cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="run_all.py judge",
                                description="label replies: attack success, refused, label (the eval's verdict)")
    p.add_argument("--input", required=True, help="CSV, TSV, JSON or JSONL file")
    p.add_argument("--response-field", required=True, help="column with the model's reply")
    p.add_argument("--prompt-field", default=None, help="column with the prompt (optional)")
    add_judge_arguments(p)
    p.add_argument("--output", required=True, help="JSONL file to write (one row per input row, in order)")
    p.add_argument("--debug", action="store_true")
    args = p.parse_args(argv)
    return guarded(run_judge, args, args.debug)
