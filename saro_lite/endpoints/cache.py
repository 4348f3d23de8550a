"""Content-addressed cache of teacher replies: one append-only JSONL file, so a rebuild makes zero
teacher calls.

    cache = ReplyCache(cache_dir / "teacher" / "replies.jsonl")
    key = cache.key(backend="openai", model="gpt-4o-mini", template_version="saro-lite-teacher-v1",
                    messages=[...], sampling={"temperature": 0.7, "max_tokens": 1024}, sample_index=0)
    cache.get(key)          # -> the stored record, or None
    cache.put(key, {"text": ..., "tokens": ...})

Why each part is in the key: the same messages sent to another model, with another prompt template or
other sampling settings are a different question; the sample index keeps the k samples of one prompt
(and the retries after a malformed reply) apart, which would otherwise all hit the first reply.

Crash safety: every `put` appends one whole line with one flushed write (fileio.append_jsonl). A run
killed mid-write can leave a torn last line; loading skips it, and the first `put` after that starts
a fresh line so the torn bytes never glue onto a good record. Lines that do not parse are cache
misses, never errors: a cache can always be rebuilt by asking the teacher again.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from ..fileio import append_jsonl


def _canonical(obj: Any) -> Any:
    """Integral floats as ints, so `temperature: 1` and `temperature: 1.0` give the same key."""
    if isinstance(obj, float) and obj.is_integer():
        return int(obj)
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    return obj


class ReplyCache:
    """Thread-safe, append-only, content-addressed store of teacher replies."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._index: dict[str, dict] = {}
        self.skipped_lines = 0  # lines that did not parse (a torn append, or hand edits)
        self._needs_fence = False  # the file ends without a newline (torn last line)
        self._load()

    # ------------------------------------------------------------------------------------------
    @staticmethod
    def key(*, backend: str, model: str | None, template_version: str, messages: list[dict],
            sampling: dict, sample_index: int) -> str:
        """sha256 hex over a canonical JSON of every part that changes the reply."""
        parts = {"backend": backend, "model": model, "template_version": template_version,
                 "messages": messages, "sampling": sampling, "sample_index": sample_index}
        blob = json.dumps(_canonical(parts), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def get(self, key: str) -> dict | None:
        with self._lock:
            rec = self._index.get(key)
            return dict(rec) if rec is not None else None

    def put(self, key: str, record: dict) -> None:
        """Append one whole line {key, **record} and index it. Never stores what it is not given."""
        row = {"key": key, **{k: v for k, v in record.items() if k != "key"}}
        with self._lock:
            if self._needs_fence:
                self._fence()
            append_jsonl(self.path, row)
            self._index[key] = row

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._index

    def __len__(self) -> int:
        with self._lock:
            return len(self._index)

    # ------------------------------------------------------------------------------------------
    def _load(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        self._needs_fence = bool(data) and not data.endswith(b"\n")
        for line in data.decode("utf-8", errors="replace").split("\n"):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                self.skipped_lines += 1
                continue
            if isinstance(row, dict) and isinstance(row.get("key"), str):
                self._index[row["key"]] = row  # a later line for the same key wins
            else:
                self.skipped_lines += 1

    def _fence(self) -> None:
        """End a torn last line with a newline so the next append starts a line of its own."""
        with open(self.path, "ab") as f:
            f.write(b"\n")
            f.flush()
            os.fsync(f.fileno())
        self._needs_fence = False
