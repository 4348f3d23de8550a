"""Recipe schema, YAML loading and --set overrides: every user mistake names the key."""
from pathlib import Path

import pytest

from conftest import REPO
from saro_lite.errors import UserError
from saro_lite.recipe import from_dict, list_recipes, load_recipe, parse_override, to_yaml


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


def test_dpo_loss_types_come_from_trl():
    """Every loss name TRL's DPOConfig documents is accepted; an old name (aot_pair, renamed aot_unpaired)
    is rejected with the new one suggested; reading them does not import torch."""
    import re
    import subprocess
    import sys

    from trl import DPOConfig

    from saro_lite.recipe import trl_dpo_loss_types

    help_text = DPOConfig.__dataclass_fields__["loss_type"].metadata["help"]
    documented = set(re.findall(r"`'(\w+)'`", help_text))
    assert {"sigmoid", "sigmoid_norm", "aot_unpaired", "sft"} <= documented
    assert documented == set(trl_dpo_loss_types())
    for name in sorted(documented):
        assert load_recipe(None, [f"srpo.loss_type=[{name}]"]).srpo.loss_type == [name]
    assert load_recipe(None, ["srpo.loss_type=[sigmoid_norm, sft]"]).srpo.loss_type == ["sigmoid_norm", "sft"]
    with pytest.raises(UserError, match=r"unknown loss 'aot_pair'.*did you mean 'aot_unpaired'"):
        load_recipe(None, ["srpo.loss_type=[aot_pair]"])
    code = ("import sys; from saro_lite.recipe import load_recipe; load_recipe(None, ['srpo.loss_type=[sigmoid_norm]']);"
            " print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
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
