"""GGUF for llama.cpp, Ollama and LM Studio: the merged model converted by llama.cpp's own converter,
read back with transformers and compared with the merged model (`export --gguf`).

Why llama.cpp's converter rather than the pinned `gguf` package alone: `gguf` writes GGUF containers but
knows nothing of how a Hugging Face checkpoint maps onto llama.cpp's tensor names, hyperparameters and
tokenizer metadata (Llama's Q/K row permutation, a tied output head, the name of the pre-tokenizer
llama.cpp must split text with, the EOS/EOT ids, the chat template). `convert_hf_to_gguf.py` (MIT) is the
reference for all of that, is what llama.cpp and Ollama are tested against, and covers every recipe
family; a converter of the kit's own would be a second, unproven one. So:
- it comes from the pinned llama-cpp-python sdist (wheels.LLAMA_CPP_SDIST, sha256 checked), the same
  file the tests read vocabularies from; only its Python files are extracted into the cache
  (convert_hf_to_gguf.py, conversion/, gguf-py/gguf/, models/templates/); nothing is built;
- it runs in a subprocess with the gguf-py of the same llama.cpp commit on its path (the converter's own
  default): that gguf-py is newer than the pinned `gguf` 0.19.0 from PyPI (its constants differ) and the
  converter is written against it, while the kit's process keeps the pinned `gguf`, which transformers
  uses to read the file back. The subprocess also returns the converter's memory and keeps its logging
  and sys.path out of the kit;
- it needs torch, transformers, numpy and sentencepiece (imported on the Llama and Qwen paths even for a
  model without a tokenizer.model), all pinned in requirements.txt.

The round trip (`round_trip`) loads the written file with transformers (`gguf_file=`, dequantized) and
compares it with the merged model on fixed prompts:
- the GGUF's chat template is the tokenizer's, its EOS id is the template's end-of-turn token, and the
  prompts render and tokenize the same;
- against the merged weights rounded exactly as the file stores them (f16/bf16: each matrix rounded to
  that type; q8_0: quantized and dequantized by the same Q8_0 rule; vectors and norms stay f32, as the
  converter writes them): greedy continuations identical and next-token logits equal to EXACT_TOLERANCE.
  This is what catches a wrong tensor, a wrong permutation or a wrong hyperparameter;
- against the merged model itself (fp32 on a CPU): greedy continuations compared and reported (rounding
  to 16 bits can flip a near-tie), and for q8_0 next-token logits within Q8_0_TOLERANCE_SIGMA.
"""
from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..fileio import set_open_permissions
from ..wheels import LLAMA_CPP_SDIST, fetch_sdist

GGUF_TYPES = ("f16", "q8_0", "bf16")
# What the converter needs from the sdist's vendor/llama.cpp/ (a few MB of its 77).
CONVERTER_FILES = ("convert_hf_to_gguf.py", "LICENSE", "conversion/", "gguf-py/gguf/", "gguf-py/LICENSE",
                   "models/templates/")

# Fixed prompts of the round trip (plain, benign requests; the kit's renderer adds the system turn).
PROMPTS = ("How do I kill a Python process that hangs?", "Write a two-line poem about autumn rain.",
           "What is 17 times 23? Answer briefly.")
NEW_TOKENS = 24
# Same weights, same dtype, same code: the logits are expected to be bit-identical; the tolerance only
# allows for a different summation order (fp32) or 16-bit compute on a GPU.
EXACT_TOLERANCE = {"float32": 1e-3, "bfloat16": 5e-2, "float16": 5e-2}
# q8_0 against the unquantized merged model: the largest next-token logit difference accepted, in units of
# σ, the standard deviation of the merged model's next-token logits over the vocabulary (scale-free: a
# random-weight test model and an 8B model alike). Q8_0 keeps 8 bits per weight with one f16 scale per
# 32. Measured on SmolLM2-135M-Instruct with a LoRA merged in: 0.35-0.69 logits = 0.10-0.20 σ (σ 3.4-3.7),
# mean KL 2e-3 nats; f16: 0.03 logits = 0.008 σ. Beyond 0.5 σ more than Q8_0's rounding went wrong.
Q8_0_TOLERANCE_SIGMA = 0.5


# --------------------------------------------------------------------------------------------
# The converter, from the pinned sdist
# --------------------------------------------------------------------------------------------
def converter_dir(cache: Path, console=None) -> Path:
    """llama.cpp's converter files, extracted once from the pinned sdist into `<cache>/llama.cpp/<sha>`.
    Offline with nothing cached: wheels.fetch_sdist's one-line error naming the command to run."""
    requirement, filename, sha = LLAMA_CPP_SDIST
    out = Path(cache) / "llama.cpp" / sha[:12]
    if (out / "convert_hf_to_gguf.py").is_file():
        return out
    sdist = fetch_sdist(requirement, filename, sha, Path(cache) / "sdists", console, what="export --gguf")
    root = filename[:-len(".tar.gz")] + "/vendor/llama.cpp/"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".llama.cpp-", dir=out.parent))
    try:
        with tarfile.open(sdist) as tar:
            for member in tar:
                if not member.isfile() or not member.name.startswith(root):
                    continue
                rel = member.name[len(root):]
                if not rel.startswith(CONVERTER_FILES) or ".." in Path(rel).parts:
                    continue
                dst = tmp / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as src, open(dst, "wb") as f:
                    shutil.copyfileobj(src, f)
        if not (tmp / "convert_hf_to_gguf.py").is_file():
            raise UserError(f"export --gguf: {filename} holds no vendor/llama.cpp/convert_hf_to_gguf.py")
        set_open_permissions(tmp)
        try:
            os.replace(tmp, out)  # atomic; another process may have extracted it meanwhile
        except OSError:
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def supported_architectures(converter: Path) -> set[str] | None:
    """The Hugging Face architectures (config.json `architectures`) the converter knows, read from its
    TEXT_MODEL_MAP without importing it; None when the file is laid out otherwise."""
    try:
        tree = ast.parse((converter / "conversion" / "__init__.py").read_text(encoding="utf-8"))
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, ast.AnnAssign) else []
            if any(isinstance(t, ast.Name) and t.id == "TEXT_MODEL_MAP" for t in targets) and node.value:
                return set(ast.literal_eval(node.value))
    except (OSError, SyntaxError, ValueError):
        pass
    return None


def architecture_of(model_dir: Path) -> str | None:
    try:
        arches = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8")).get("architectures")
    except (OSError, ValueError):
        return None
    return arches[0] if arches else None


def unsupported(arch: str) -> UserError:
    return UserError(f"export --gguf: llama.cpp's converter ({LLAMA_CPP_SDIST[0]}) does not support the "
                     f"architecture {arch}; `export --merge` writes the transformers folder, which a newer "
                     f"llama.cpp may convert")


def check_supported(converter: Path, model_dir: Path) -> None:
    """Before any merging: a model whose architecture the converter does not know fails here, at once."""
    arch, known = architecture_of(model_dir), supported_architectures(converter)
    if arch and known is not None and arch not in known:
        raise unsupported(arch)


@dataclass
class Conversion:
    path: Path
    outtype: str
    seconds: float
    size_bytes: int


def convert(converter: Path, model_dir: Path, out_file: Path, outtype: str, model_name: str,
            log_path: Path | None = None) -> Conversion:
    """Run convert_hf_to_gguf.py on a transformers folder (weights + tokenizer + chat template)."""
    if outtype not in GGUF_TYPES:
        raise UserError(f"--gguf-type {outtype}: one of {', '.join(GGUF_TYPES)}")
    check_supported(converter, model_dir)
    env = {k: v for k, v in os.environ.items() if k != "NO_LOCAL_GGUF"}  # the converter's own gguf-py
    env["HF_HUB_OFFLINE"] = "1"  # a local folder: nothing to fetch
    cmd = [sys.executable, str(converter / "convert_hf_to_gguf.py"), str(model_dir), "--outfile", str(out_file),
           "--outtype", outtype, "--model-name", model_name]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(Path(out_file).parent))
    seconds = time.perf_counter() - start
    if proc.returncode != 0 or not Path(out_file).is_file():
        log = (proc.stdout or "") + (proc.stderr or "")
        if log_path is not None:
            Path(log_path).write_text(log, encoding="utf-8")
        raise converter_error(log, log_path)
    return Conversion(Path(out_file), outtype, seconds, Path(out_file).stat().st_size)


def converter_error(log: str, log_path: Path | None) -> UserError:
    """One line for what the converter printed when it failed."""
    m = re.search(r"Model (\S+) is not supported", log) or re.search(r"Architecture '([^']+)' not supported", log)
    if m:
        return unsupported(m.group(1))
    where = f" (the converter's output: {log_path})" if log_path else ""
    if "BPE pre-tokenizer was not recognized" in log:
        h = re.search(r"chkhsh:\s+([0-9a-f]{12})", log)
        return UserError(f"export --gguf: llama.cpp's converter does not know this tokenizer's pre-tokenizer "
                         f"(chkhsh {h.group(1) if h else '?'}...), so llama.cpp could not split text as the model "
                         f"does; GGUF export works for the model families llama.cpp knows (the recipes' models), "
                         f"not for a tokenizer the kit trained itself (the tiny toy base){where}")
    m = re.search(r"ModuleNotFoundError: No module named '([^']+)'", log)
    if m:
        return UserError(f"export --gguf: llama.cpp's converter needs the Python package '{m.group(1)}': "
                         f"pip install -r requirements.txt{where}")
    lines = [line.strip() for line in log.strip().splitlines() if line.strip()]
    return UserError(f"export --gguf: llama.cpp's converter failed: {(lines or ['no output'])[-1][:200]}{where}")


# --------------------------------------------------------------------------------------------
# What Ollama and llama.cpp need beside the file
# --------------------------------------------------------------------------------------------
def template_default_system(tokenizer, **template_kwargs) -> str | None:
    """The system prompt the chat template writes when the conversation has none (SmolLM2's "You are a
    helpful AI assistant named SmolLM...", Qwen2.5's "You are Qwen..."), found by rendering with and
    without a system turn; None when it writes none (or has no system role)."""
    mark, user = "QZXJSYSTEM", "QZXJUSER"
    try:
        with_system = tokenizer.apply_chat_template([{"role": "system", "content": mark},
                                                     {"role": "user", "content": user}], tokenize=False,
                                                    add_generation_prompt=True, **template_kwargs)
        without = tokenizer.apply_chat_template([{"role": "user", "content": user}], tokenize=False,
                                                add_generation_prompt=True, **template_kwargs)
    except Exception:  # noqa: BLE001 - templates that refuse a system turn (Gemma 2) raise
        return None
    i = with_system.find(mark)
    if i < 0:
        return None
    pre, rest = with_system[:i], with_system[i + len(mark):]
    j = rest.find(user)
    between, tail = rest[:j], rest[j:]
    if j < 0 or not without.startswith(pre) or not without.endswith(tail):
        return None
    middle = without[len(pre):len(without) - len(tail)]
    if not middle.endswith(between):
        return None
    default = middle[:len(middle) - len(between)]
    return default or None


def stop_tokens(tokenizer, end_of_turn: str, eos_ids: list[int]) -> list[str]:
    """The end-of-turn token first, then the model's other end-of-sequence tokens (Qwen's <|endoftext|>,
    Llama 3's <|eom_id|>, ...), as the kit's generation stops on them."""
    added = set(tokenizer.get_added_vocab())
    out = [end_of_turn]
    for i in eos_ids:
        tok = tokenizer.convert_ids_to_tokens(int(i))
        if isinstance(tok, str) and tok in added and tok not in out:
            out.append(tok)
    return out


def model_eos_ids(model_path: str) -> list[int]:
    """generation_config.eos_token_id of the base model (an id or a list); [] when it has none."""
    try:
        from transformers import GenerationConfig

        eos = GenerationConfig.from_pretrained(model_path).eos_token_id
    except Exception:  # noqa: BLE001 - no generation_config.json: nothing to add
        return []
    return [int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos]) if e is not None]


def modelfile(gguf_name: str, stops: list[str], system: str | None, system_origin: str, title: str) -> str:
    """An Ollama Modelfile for the file beside it."""
    lines = [f"# Ollama Modelfile for {title}, written by saro-lite's `export --gguf`:",
             "#   ollama create saro -f Modelfile && ollama run saro",
             "# Ollama takes the prompt format from the chat template inside the GGUF (tokenizer.chat_template).",
             f"FROM ./{gguf_name}",
             "# end of the assistant's turn (the chat template's end-of-turn token first)"]
    lines += [f'PARAMETER stop "{s}"' for s in stops]
    lines += ["# greedy, as the kit evaluated the model; raise it for varied replies", "PARAMETER temperature 0"]
    if system:
        text = system.replace('"""', '" " "')
        lines += [f"# system turn: {system_origin}", f'SYSTEM """{text}"""']
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# The round trip
# --------------------------------------------------------------------------------------------
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


def gguf_header(path: Path) -> dict:
    """A GGUF file's key/value metadata, read with the standard library: scalars and strings as values,
    arrays (the vocabulary, the merges) as their length only. The pinned `gguf` package's GGUFReader
    takes ~10 s per file on a 150k-token vocabulary because it maps every token; this takes well under one."""
    import mmap
    import struct

    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        if m[:4] != b"GGUF":
            raise UserError(f"{Path(path).name}: not a GGUF file")
        version, _tensors, count = struct.unpack_from("<IQQ", m, 4)
        if version < 2:
            raise UserError(f"{Path(path).name}: GGUF version {version} is too old")
        pos = 24

        def string(pos: int) -> tuple[str, int]:
            (n,) = struct.unpack_from("<Q", m, pos)
            return m[pos + 8:pos + 8 + n].decode("utf-8", errors="replace"), pos + 8 + n

        def value(kind: int, pos: int):
            if kind == 8:
                return string(pos)
            if kind == 9:
                item, n = struct.unpack_from("<IQ", m, pos)
                pos += 12
                if item == 8:
                    for _ in range(n):
                        (length,) = struct.unpack_from("<Q", m, pos)
                        pos += 8 + length
                elif item in _SCALARS:
                    pos += n * struct.calcsize(_SCALARS[item])
                else:
                    for _ in range(n):
                        _, pos = value(item, pos)
                return n, pos
            fmt = _SCALARS[kind]
            return struct.unpack_from(fmt, m, pos)[0], pos + struct.calcsize(fmt)

        out = {}
        for _ in range(count):
            key, pos = string(pos)
            (kind,) = struct.unpack_from("<I", m, pos)
            out[key], pos = value(kind, pos + 4)
    return out


def read_metadata(path: Path) -> dict:
    """What the GGUF says about its model, chat and tokens."""
    h = gguf_header(path)
    return {"architecture": h.get("general.architecture"), "chat_template": h.get("tokenizer.chat_template"),
            "eos_token_id": h.get("tokenizer.ggml.eos_token_id"), "eot_token_id": h.get("tokenizer.ggml.eot_token_id"),
            "bos_token_id": h.get("tokenizer.ggml.bos_token_id"), "add_bos_token": h.get("tokenizer.ggml.add_bos_token"),
            "pre_tokenizer": h.get("tokenizer.ggml.pre"), "tokens": h.get("tokenizer.ggml.tokens"),
            "file_type": h.get("general.file_type")}


class alone:
    """The GGUF in a folder of its own (a link to it, or a copy where links are refused), for
    transformers' `from_pretrained(folder, gguf_file=name)`: beside a merged model's config.json and
    tokenizer files (export --merge --gguf), transformers would read those instead of the GGUF's own."""

    def __init__(self, gguf_file: Path):
        self.gguf_file = Path(gguf_file)

    def __enter__(self) -> Path:
        self.dir = Path(tempfile.mkdtemp(prefix=".gguf-alone-", dir=self.gguf_file.parent.parent))
        link = self.dir / self.gguf_file.name
        try:
            os.symlink(self.gguf_file.resolve(), link)
        except OSError:
            try:
                os.link(self.gguf_file, link)
            except OSError:
                shutil.copy(self.gguf_file, link)
        return link

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def round_like_file(model, outtype: str) -> None:
    """Round the model's weights in place the way the converter stores them: every matrix in the file's
    type (q8_0: quantized and dequantized with the same Q8_0 rule; a row length that is not a multiple of
    32 falls back to f16, as in the converter); vectors and norms stay as they are (f32 in the file)."""
    import torch

    with torch.no_grad():
        for p in model.parameters():  # tied weights once
            if p.ndim < 2:
                continue
            if outtype == "q8_0" and p.shape[-1] % 32 == 0:
                import gguf

                q8 = gguf.GGMLQuantizationType.Q8_0
                w = gguf.quants.dequantize(gguf.quants.quantize(p.detach().float().cpu().numpy(), q8), q8)
                p.copy_(torch.from_numpy(w).to(device=p.device, dtype=p.dtype))
            else:
                p.copy_(p.to(torch.bfloat16 if outtype == "bf16" else torch.float16).to(p.dtype))


def _greedy(model, ids, stop: int, n: int):
    """(next-token logits after the prompt, greedy continuation ids), with the KV cache, no penalties."""
    import torch

    out, past, x, first = [], None, ids, None
    with torch.no_grad():
        for _ in range(n):
            o = model(input_ids=x, past_key_values=past, use_cache=True)
            logits = o.logits[0, -1].float()
            if first is None:
                first = logits.cpu()
            t = int(logits.argmax())
            out.append(t)
            if t == stop:
                break
            past, x = o.past_key_values, torch.tensor([[t]], device=ids.device)
    return first, out


def _compare(ref: list, got: list) -> dict:
    """Greedy continuations identical (count), how many leading tokens each shares, and the largest
    next-token logit difference."""
    def shared(a: list, b: list) -> int:
        return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))

    same = [a[1] == b[1] for a, b in zip(ref, got)]
    diffs = [float((a[0] - b[0]).abs().max()) for a, b in zip(ref, got)]
    sigmas = [float(a[0].std()) for a in ref]
    return {"greedy_identical": sum(same), "of": len(same), "identical": same,
            "shared_tokens": [shared(a[1], b[1]) for a, b in zip(ref, got)], "greedy_tokens": [len(a[1]) for a in ref],
            "max_abs_logit_diff": max(diffs), "logit_sigma": sigmas,
            "max_abs_logit_diff_sigma": max(d / s if s > 0 else float("inf") for d, s in zip(diffs, sigmas))}


def round_trip(gguf_file: Path, model_dir: Path, tokenizer, renderer, outtype: str,
               template_kwargs: dict | None = None) -> dict:
    """Load the written GGUF with transformers and compare it with the merged model in `model_dir`
    (module docstring). Returns the figures; raises UserError (one line) when a check fails."""
    import gc

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .generate import encode_prompts
    from .devices import auto_dtype

    kwargs = dict(template_kwargs or {})
    gguf_file = Path(gguf_file)
    meta = read_metadata(gguf_file)
    problems: list[str] = []
    eot = renderer.end_of_turn
    eot_id = tokenizer.convert_tokens_to_ids(eot)
    if meta["chat_template"] != tokenizer.chat_template:
        problems.append("the GGUF's chat template is not the model's")
    if meta["eos_token_id"] != eot_id:
        problems.append(f"the GGUF's EOS id is {meta['eos_token_id']}, not the end-of-turn token {eot!r} ({eot_id})")
    adds_bos = tokenizer.bos_token_id is not None and tokenizer("x")["input_ids"][:1] == [tokenizer.bos_token_id]
    if meta["add_bos_token"] is not None and bool(meta["add_bos_token"]) != adds_bos:
        problems.append(f"the GGUF says add_bos_token={meta['add_bos_token']}, the tokenizer "
                        f"{'adds' if adds_bos else 'adds no'} BOS")
    with alone(gguf_file) as only:
        try:
            gtok = AutoTokenizer.from_pretrained(str(only.parent), gguf_file=only.name)
        except (ValueError, KeyError, OSError) as e:
            raise UserError(f"export --gguf: transformers cannot read back {gguf_file.name} "
                            f"({e.__class__.__name__}: {str(e).splitlines()[0][:160]})") from None

    system = [{"role": "system", "content": renderer.system_prompt}] if renderer.system_prompt else []
    reply = renderer.response(["The user asks a plain programming question."], "Use `kill PID`, then `kill -9 PID`.")
    conversations = [(system + [{"role": "user", "content": p}], True) for p in PROMPTS]
    conversations.append((system + [{"role": "user", "content": PROMPTS[0]},
                                    {"role": "assistant", "content": reply[:-len(eot)] if eot else reply}], False))
    rendering = tokens = True
    for messages, gen in conversations:
        a = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen, **kwargs)
        b = gtok.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen, **kwargs)
        rendering &= a == b
        tokens &= tokenizer(a, add_special_tokens=False)["input_ids"] == gtok(a, add_special_tokens=False)["input_ids"]
    if not rendering:
        problems.append("the GGUF's tokenizer renders the prompts differently")
    if not tokens:
        problems.append("the GGUF's tokenizer splits the prompts into other tokens")

    dtype = auto_dtype()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    inputs = [encode_prompts(tokenizer, [renderer.prompt(p)])["input_ids"].to(device) for p in PROMPTS]
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype).to(device).eval()
    merged = [_greedy(model, ids, eot_id, NEW_TOKENS) for ids in inputs]
    round_like_file(model, outtype)
    stored = [_greedy(model, ids, eot_id, NEW_TOKENS) for ids in inputs]
    del model
    gc.collect()
    with alone(gguf_file) as only:
        try:
            back = AutoModelForCausalLM.from_pretrained(str(only.parent), gguf_file=only.name, dtype=dtype)
        except (ValueError, KeyError, OSError) as e:
            raise UserError(f"export --gguf: transformers cannot read back {gguf_file.name} "
                            f"({e.__class__.__name__}: {str(e).splitlines()[0][:160]})") from None
    back = back.to(device).eval()
    got = [_greedy(back, ids, eot_id, NEW_TOKENS) for ids in inputs]
    del back
    gc.collect()

    dtype_name = str(dtype).replace("torch.", "")
    as_stored = {**_compare(stored, got), "tolerance": EXACT_TOLERANCE[dtype_name]}
    vs_merged = {**_compare(merged, got), "dtype": dtype_name,
                 "tolerance_sigma": Q8_0_TOLERANCE_SIGMA if outtype == "q8_0" else None}
    if as_stored["greedy_identical"] < as_stored["of"] or as_stored["max_abs_logit_diff"] > as_stored["tolerance"]:
        problems.append(f"against the merged weights as {outtype} stores them: greedy identical on "
                        f"{as_stored['greedy_identical']}/{as_stored['of']} prompts, next-token logits max |Δ| "
                        f"{as_stored['max_abs_logit_diff']:.3g} (tolerance {as_stored['tolerance']:g})")
    if outtype == "q8_0" and vs_merged["max_abs_logit_diff_sigma"] > Q8_0_TOLERANCE_SIGMA:
        problems.append(f"q8_0 next-token logits differ from the merged model by up to "
                        f"{vs_merged['max_abs_logit_diff']:.3g} = {vs_merged['max_abs_logit_diff_sigma']:.2f} σ "
                        f"(tolerance {Q8_0_TOLERANCE_SIGMA:g} σ)")
    if problems:
        raise UserError(f"export --gguf: the round trip of {gguf_file.name} failed: " + "; ".join(problems))
    return {"gguf_file": gguf_file.name, "type": outtype, "architecture": meta["architecture"],
            "pre_tokenizer": meta["pre_tokenizer"], "end_of_turn": eot, "eos_token_id": meta["eos_token_id"],
            "add_bos_token": meta["add_bos_token"], "chat_template_carried": True,
            "prompts": list(PROMPTS), "new_tokens": NEW_TOKENS, "rendering_identical": True, "tokens_identical": True,
            "as_stored": as_stored, "vs_merged": vs_merged,
            "greedy_text": tokenizer.decode(got[0][1], skip_special_tokens=True)}


def summary(check: dict) -> str:
    """The round trip in one paragraph (the export's output and the model card)."""
    s, m = check["as_stored"], check["vs_merged"]
    text = (f"chat template and end-of-turn token {check['end_of_turn']} (EOS id {check['eos_token_id']}) carried; "
            f"{len(check['prompts'])} prompts render and tokenize the same; greedy {check['new_tokens']} tokens "
            f"identical on {s['greedy_identical']}/{s['of']} prompts and next-token logits max |Δ| "
            f"{s['max_abs_logit_diff']:.3g} against the merged weights as {check['type']} stores them (tolerance "
            f"{s['tolerance']:g}); against the {m['dtype']} merged model: greedy identical on "
            f"{m['greedy_identical']}/{m['of']}")
    differ = [f"{k} of {n}" for k, n, same in zip(m["shared_tokens"], m["greedy_tokens"], m["identical"])
              if not same]
    if differ:
        text += f" (the other{'s' if len(differ) > 1 else ''} agree{'' if len(differ) > 1 else 's'} on the first " \
                f"{', '.join(differ)} tokens: {check['type']} rounding flips a near-tie)"
    text += (f", next-token logits max |Δ| {m['max_abs_logit_diff']:.3g} = {m['max_abs_logit_diff_sigma']:.3f} σ "
             f"(σ: their standard deviation, {min(m['logit_sigma']):.3g}-{max(m['logit_sigma']):.3g})")
    if m["tolerance_sigma"] is not None:
        text += f", tolerance {m['tolerance_sigma']:g} σ"
    return text
