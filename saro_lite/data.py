"""Stage `data`: prompts and RIT-D reasoning traces -> data/prompts.jsonl, data/rit_d.jsonl.

Sources: the starter pack shipped in saro_lite/starter/ (default), or a RIT-D file of your own
(`data.source: file`, `data.path: my_traces.jsonl`).

    python -m saro_lite.data --recipe recipes/tiny-cpu.yaml
"""
from __future__ import annotations

from collections import Counter

from .fileio import write_jsonl
from .records import STARTER_DIR, balanced_limit, load_rit_d, prompt_record


def run(ctx) -> None:
    r = ctx.recipe
    path = r.data.path if r.data.source == "file" else STARTER_DIR / "rit_d.jsonl"
    rows = balanced_limit(load_rit_d(path), r.data.limit, r.data.kinds, r.seed)
    write_jsonl(ctx.path("data/prompts.jsonl"), [prompt_record(x) for x in rows])
    write_jsonl(ctx.path("data/rit_d.jsonl"), rows)
    counts = Counter(x["kind"] for x in rows)
    ctx.console.print(f"RIT-D: {len(rows)} records from {path} "
                      f"({', '.join(f'{k} {counts[k]}' for k in r.data.kinds)})")


def main(argv=None):
    from .cli import run_single_stage

    run_single_stage("data", argv)


if __name__ == "__main__":
    main()
