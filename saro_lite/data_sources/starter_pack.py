"""The starter pack shipped in saro_lite/starter/: files, manifest, and the maintainer's rebuild.

The pack is the kit's "small data cache": hand-written RIT-D traces, OP-COT and PP-COT pairs, and
held-out eval prompt sets, so a user can run the whole method without a teacher model.
`MANIFEST.json` records counts and the sha256 of each file; a test checks it.

    python -m saro_lite.data_sources.starter_pack            # verify the manifest
    python -m saro_lite.data_sources.starter_pack --write    # (maintainers) merge parts/ and rewrite the manifest
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections import Counter
from pathlib import Path

from ..fileio import read_jsonl, write_json, write_jsonl

from ..vocabulary import STARTER_DIR  # noqa: E402  (one definition)
TRAIN_FILES = ("rit_d.jsonl", "op_cot.jsonl", "pp_cot.jsonl", "op_cot_balanced.jsonl")
EVAL_FILES = ("eval_harmful.jsonl", "eval_jailbreak.jsonl", "eval_benign.jsonl", "eval_borderline.jsonl",
              "eval_general.jsonl")
VERSION = "1.0"
KIND_ORDER = {"harmful": 0, "jailbreak": 1, "benign": 2, "borderline": 3}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest(directory: Path = STARTER_DIR) -> dict:
    files = {}
    for name in TRAIN_FILES + EVAL_FILES:
        path = directory / name
        rows = read_jsonl(path)
        files[name] = {"records": len(rows), "sha256": sha256(path),
                       "kinds": dict(sorted(Counter(r["kind"] for r in rows).items()))}
    files["policy.md"] = {"sha256": sha256(directory / "policy.md")}
    return {"name": "saro-lite starter pack", "version": VERSION, "files": files,
            "content_rule": "no operational harmful detail; unsafe responses use the placeholder [details omitted]"}


def merge_parts(directory: Path = STARTER_DIR) -> None:
    """Merge the authors' part files (parts/<name>_*.jsonl) into the pack files, ordered by kind."""
    parts = directory / "parts"
    for name in TRAIN_FILES:
        stem = name.removesuffix(".jsonl")
        rows = [r for p in sorted(parts.glob(f"{stem}_*.jsonl")) for r in read_jsonl(p)]
        if rows:
            rows.sort(key=lambda r: (KIND_ORDER.get(r["kind"], 9), r["id"]))
            write_jsonl(directory / name, rows)


def verify(directory: Path = STARTER_DIR) -> list[str]:
    problems = []
    path = directory / "MANIFEST.json"
    if not path.exists():
        return ["MANIFEST.json is missing"]
    recorded = json.loads(path.read_text(encoding="utf-8"))
    for name, info in recorded["files"].items():
        f = directory / name
        if not f.exists():
            problems.append(f"{name}: missing")
        elif sha256(f) != info["sha256"]:
            problems.append(f"{name}: sha256 differs from MANIFEST.json")
    return problems


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m saro_lite.data_sources.starter_pack")
    p.add_argument("--write", action="store_true", help="merge parts/ (if any) and rewrite MANIFEST.json")
    args = p.parse_args(argv)
    if args.write:
        if (STARTER_DIR / "parts").exists():
            merge_parts()
        write_json(STARTER_DIR / "MANIFEST.json", manifest())
        print(json.dumps(manifest()["files"], indent=1))
        return 0
    problems = verify()
    for line in problems:
        print(line)
    print("starter pack: OK" if not problems else f"starter pack: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
