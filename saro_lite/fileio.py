"""Crash-safe file writing and JSONL reading.

Every file the kit writes goes through here: whole files are written to a temporary file in the
same folder and renamed into place (a rename is atomic on POSIX and Windows), and logs are appended
one whole line per write, so a run killed at any moment never leaves a torn file behind that a later
run could mistake for a finished one.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

from .errors import UserError


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))  # bytes as written: "\n" line ends everywhere


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def dumps(row: Any) -> str:
    return json.dumps(row, ensure_ascii=False)


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> Path:
    return atomic_write_text(path, "".join(dumps(r) + "\n" for r in rows))


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


def append_jsonl(path: str | os.PathLike, row: dict) -> None:
    """Append one whole line with a single write call, flushed to disk."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8", newline="\n") as f:
        f.write(dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: str | os.PathLike, required: Iterable[str] = (), allow_empty: bool = False) -> list[dict]:
    """Read a JSONL file; user-facing errors name the file, the line and what was expected.

    A last line without a newline that does not parse is a torn append from a killed run and is
    dropped; a broken line anywhere else is the user's data and is an error.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: file not found")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte {e.start})") from None
    if not text.strip():
        if allow_empty:
            return []
        raise UserError(f"{path}: file is empty")
    required = list(required)
    rows: list[dict] = []
    lines = text.split("\n")
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            if i == len(lines) and not text.endswith("\n"):
                break  # torn last line of an append-only log
            raise UserError(f"{path}:{i}: broken JSON line ({e.msg})") from None
        if not isinstance(row, dict):
            raise UserError(f"{path}:{i}: expected a JSON object per line")
        missing = [k for k in required if k not in row]
        if missing:
            raise UserError(f"{path}:{i}: missing field(s) {', '.join(missing)}")
        rows.append(row)
    return rows
