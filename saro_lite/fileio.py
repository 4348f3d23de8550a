"""Crash-safe file writing and JSONL reading.

Every file the kit writes goes through here: whole files are written to a temporary file in the
same folder and renamed into place (a rename is atomic on POSIX and Windows), and logs are appended
one whole line per write, so a run killed at any moment never leaves a torn file behind that a later
run could mistake for a finished one.

Permissions: a temporary file from `tempfile.mkstemp` is owner-only (0600), and so is every file the
safetensors writer saves. Everything the kit writes gets what a plain `open()` would give instead:
0666 & ~umask for files, 0777 & ~umask for folders (`set_open_permissions`).
"""
from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

from .errors import UserError


def current_umask() -> int:
    """The process umask, read without changing it where the OS says it (Linux), else set and restored."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The permissions `open(path, "w")` gives a new file: 0666 & ~umask."""
    return 0o666 & ~current_umask()


def set_open_permissions(path: str | os.PathLike) -> Path:
    """Give a file, or a folder and everything under it, the permissions plain `open()` / `mkdir()`
    would: 0666 & ~umask for files, 0777 & ~umask for folders. For what libraries write owner-only
    (safetensors, `tempfile.mkdtemp`)."""
    path = Path(path)
    mask = current_umask()
    fmode, dmode = 0o666 & ~mask, 0o777 & ~mask
    if path.is_file():
        os.chmod(path, fmode)
        return path
    if not path.is_dir():
        return path
    os.chmod(path, dmode)
    for root, dirs, files in os.walk(path):
        for d in dirs:
            p = os.path.join(root, d)
            if not os.path.islink(p):
                os.chmod(p, dmode)
        for f in files:
            p = os.path.join(root, f)
            if not os.path.islink(p):
                os.chmod(p, fmode)
    return path


def atomic_write_with(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Atomically create `path` with write(tmp_path) (e.g. a figure's savefig): a temporary file in
    the same folder, given plain-open() permissions, then renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_figure(fig, path: str | os.PathLike) -> Path:
    """The one figure saver: a matplotlib figure written atomically as a 110-dpi PNG, then closed."""
    import matplotlib.pyplot as plt

    try:
        return atomic_write_with(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    finally:
        plt.close(fig)


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
        os.chmod(tmp, file_mode())  # mkstemp makes 0600; a plain open() would give 0666 & ~umask
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


def read_jsonl(path: str | os.PathLike, required: Iterable[str] = (), allow_empty: bool = False,
               torn_ok: bool = False) -> list[dict]:
    """Read a JSONL file; user-facing errors name the file, the line and what was expected.

    A broken line is an error, the last one too: an input file, data a stage handed on or eval replies
    cut short must never lose rows without a word. Only the append-only logs the kit writes itself
    (metrics.jsonl: `torn_ok=True`) may end in a line torn by a killed run; it is dropped, and said so
    on stderr.
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
            torn = i == len(lines) and not text.endswith("\n")
            if torn and torn_ok:
                import sys

                print(f"note: {path}:{i}: the last line was cut off (a run killed mid-write); it is ignored",
                      file=sys.stderr)
                break
            if torn:
                raise UserError(f"{path}:{i}: the last line is cut off ({e.msg}): the file is incomplete; "
                                f"restore it or re-run the stage that wrote it (--fresh)") from None
            raise UserError(f"{path}:{i}: broken JSON line ({e.msg})") from None
        if not isinstance(row, dict):
            raise UserError(f"{path}:{i}: expected a JSON object per line")
        missing = [k for k in required if k not in row]
        if missing:
            raise UserError(f"{path}:{i}: missing field(s) {', '.join(missing)}")
        rows.append(row)
    return rows


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


# --------------------------------------------------------------------------------------------
# What a stage leaves behind: content digests, one run per folder
# --------------------------------------------------------------------------------------------
_DIGESTS: dict[tuple, str] = {}
WHOLE_FILE_BYTES = 256 << 20  # hashed whole up to this size; larger files: size + first and last MiB


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes (cached per size and mtime). Files over 256 MiB (whole models) hash their
    size and first and last MiB: a truncated or rewritten file still reads as changed, in a fraction of
    the time."""
    import hashlib

    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            if st.st_size <= WHOLE_FILE_BYTES:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            else:
                h.update(f"size {st.st_size}".encode())
                h.update(f.read(1 << 20))
                f.seek(-(1 << 20), os.SEEK_END)
                h.update(f.read(1 << 20))
        _DIGESTS[key] = h.hexdigest()[:16]
    return _DIGESTS[key]


def content_digest(path: str | os.PathLike) -> str | None:
    """A file's digest, or a folder's (every file below it with its relative name); None when missing."""
    import hashlib

    path = Path(path)
    if path.is_file():
        return file_digest(path)
    if not path.is_dir():
        return None
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(path).as_posix()} {file_digest(f)}\n".encode())
    return h.hexdigest()[:16]


class FolderLock:
    """One run per folder: an exclusive OS lock on <folder>/.lock holding the owner's PID. The OS drops it
    when the process ends, however it ends (kill -9 too), so there is never a stale lock to clean up.
    A second process fails at once with one line naming the PID that holds the folder."""

    def __init__(self, folder: str | os.PathLike, enabled: bool = True):
        self.folder = Path(folder)
        self.enabled = enabled  # under accelerate launch the main process holds it for all of them
        self.handle = None

    def __enter__(self) -> "FolderLock":
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks here; one run per folder is then up to the user
            return self
        if not self.enabled:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        handle = open(self.folder / ".lock", "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise UserError(f"{self.folder} is in use by another run (PID {holder}); wait for it to finish, "
                            "or give this run its own output_dir") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self.handle = handle
        return self

    def __exit__(self, *exc) -> None:
        if self.handle is not None:
            self.handle.close()  # closing releases the lock
            self.handle = None
