"""What users do after training: chat, export (adapter and merged), compare runs, any model as an arm."""
import json
import shutil
import subprocess
import sys

import pytest

from conftest import FAST, REPO, sets
from saro_lite.fileio import read_jsonl


@pytest.fixture(scope="module")
def finished(tiny_run):
    from saro_lite.cli import main

    if not (tiny_run / "report.json").exists():
        assert main(["--stages", "eval,report", *sets(*FAST, f"output_dir={tiny_run}")]) == 0
    return tiny_run


def test_chat_one_prompt_to_stdout(finished, capsys):
    from saro_lite.cli import main

    assert main(["chat", "--run", str(finished), "--prompt", "How do I kill a Python process?",
                 "--max-new-tokens", "24"]) == 0
    first = capsys.readouterr().out
    assert main(["chat", "--run", str(finished), "--prompt", "How do I kill a Python process?",
                 "--max-new-tokens", "24"]) == 0
    assert capsys.readouterr().out == first  # greedy and seeded: scripts get stable output


def test_chat_interactive_session(finished):
    p = subprocess.run([sys.executable, str(REPO / "run_all.py"), "chat", "--run", str(finished), "--arm", "rw",
                        "--max-new-tokens", "16"], input="/reasoning\nhello there\n/quit\n", capture_output=True,
                       text=True, timeout=120, cwd=REPO)
    assert p.returncode == 0, p.stderr
    assert "saro-lite chat" in p.stdout and "reasoning shown" in p.stdout


def test_chat_bad_arm_and_bad_run(finished, tmp_path, capsys):
    from saro_lite.cli import main

    assert main(["chat", "--run", str(finished), "--arm", "sarro", "--prompt", "x"]) == 2
    assert "unknown arm 'sarro'" in capsys.readouterr().err
    assert main(["chat", "--run", str(tmp_path), "--prompt", "x"]) == 2


def test_export_adapter_with_model_card(finished, tmp_path):
    from saro_lite.cli import main

    out = tmp_path / "adapter"
    assert main(["export", "--run", str(finished), "--output", str(out)]) == 0
    assert (out / "adapter_config.json").exists() and (out / "recipe.resolved.yaml").exists()
    card = (out / "README.md").read_text()
    assert "base model" in card and "| saro |" in card and "Caveats" in card
    from saro_lite.judges.reply import VERDICT_DESCRIPTION

    assert VERDICT_DESCRIPTION in card  # the same words as report.md, report.json and the README
    assert main(["export", "--run", str(finished), "--output", str(out)]) == 2  # never overwrite


def test_export_merged_model_loads_standalone_and_matches(finished, tiny_recipe, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from saro_lite.cli import main

    out = tmp_path / "merged"
    assert main(["export", "--run", str(finished), "--output", str(out), "--merge"]) == 0
    merged = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.chat_template and tok.eos_token == "<|im_end|>"
    ref = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_recipe.model.name_or_path),
                                    str(finished / "srpo/adapter"))
    ids = tok("<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n", return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(merged(**ids).logits, ref(**ids).logits, atol=1e-4)
    assert not any("Linear4bit" in type(m).__name__ for m in merged.modules())  # never merged into 4-bit


def test_compare_lists_differing_settings_and_plots(finished, tmp_path):
    import yaml

    from saro_lite.cli import main

    other = tmp_path / "b02"
    shutil.copytree(finished, other, ignore=shutil.ignore_patterns("checkpoints", "tmp_trl"))
    d = yaml.safe_load((other / "recipe.resolved.yaml").read_text())
    d["srpo"]["beta"] = 0.2
    (other / "recipe.resolved.yaml").write_text(yaml.safe_dump(d))
    out = tmp_path / "cmp/compare.md"
    assert main(["compare", str(finished), str(other), "--output", str(out)]) == 0
    md = out.read_text()
    assert "`srpo.beta`" in md and "| 0.1 | 0.2 |" in md and "output_dir" not in md
    assert md.count("| saro |") == 2 and out.with_suffix(".png").stat().st_size > 5000
    assert "scale with β" in md  # β differs: margins are not comparable as they are


def test_compare_figure_says_margins_scale_with_beta():
    from saro_lite.commands.compare import panels

    rows = [{"step": 0, "val/reward_accuracy": 0.0, "val/reward_margin": 0.0},
            {"step": 8, "val/reward_accuracy": 1.0, "val/reward_margin": 0.4}]
    a = {"name": "b01", "settings": {"srpo.beta": 0.1}, "tracking": rows}
    b = {"name": "b02", "settings": {"srpo.beta": 0.2}, "tracking": rows}
    spec = panels([a, b])
    assert [t.split("\n")[0] for t, _ in spec] == ["held-out reward accuracy", "held-out reward margin",
                                                     "held-out margin / β"]
    assert "scales with β" in spec[1][0]
    assert [spec[2][1](rows[1], beta) for beta in (0.1, 0.2)] == [pytest.approx(4.0), pytest.approx(2.0)]
    same = panels([a, {**b, "settings": {"srpo.beta": 0.1}}])
    assert len(same) == 2 and "β = 0.1" in same[1][0] and "scales with β" in same[1][0]


def test_any_model_as_an_extra_arm(finished, tiny_recipe, tmp_path):
    """The base model added again as an extra arm answers exactly like the base arm."""
    from saro_lite.cli import main

    run = tmp_path / "x"
    shutil.copytree(finished, run, ignore=shutil.ignore_patterns("checkpoints", "tmp_trl", "eval", "report.*"))
    args = FAST + [f"output_dir={run}", "eval.arms=[base]", "eval.sets=[harmful, benign]",
                   f"eval.extra_arms=[{{name: same_base, model: {tiny_recipe.model.name_or_path}}}]"]
    assert main(["--stages", "eval,report", *sets(*args)]) == 0
    for name in ("harmful", "benign"):
        a = [r["response"] for r in read_jsonl(run / f"eval/base/{name}.jsonl")]
        b = [r["response"] for r in read_jsonl(run / f"eval/same_base/{name}.jsonl")]
        assert a == b
    assert "same_base" in json.loads((run / "report.json").read_text())["arms"]


def test_run_and_export_files_get_plain_open_permissions(finished, tmp_path):
    """safetensors, mkstemp and mkdtemp make owner-only files and folders; everything the kit writes
    comes out as a plain open()/mkdir() would make it (0666/0777 & ~umask), here under umask 022."""
    import os
    import stat

    from saro_lite.cli import main
    from saro_lite.fileio import file_mode

    mode = lambda p: stat.S_IMODE(os.stat(p).st_mode)  # noqa: E731
    run_files = [finished / x for x in ("report.md", "report.json", "recipe.resolved.yaml",
                                        "srpo/adapter/adapter_model.safetensors",
                                        "warmup/adapter/adapter_model.safetensors")]
    run_files += sorted((finished / "figures").glob("*.png"))
    for p in run_files:
        assert mode(p) == file_mode(), p  # the session's umask when the run was made
    old = os.umask(0o022)
    try:
        for flag in ([], ["--merge"]):
            out = tmp_path / f"export{''.join(flag)}"
            assert main(["export", "--run", str(finished), "--output", str(out), *flag]) == 0
            assert mode(out) == 0o755
            for p in out.rglob("*"):
                assert mode(p) == (0o755 if p.is_dir() else 0o644), p
            assert any(p.suffix == ".safetensors" for p in out.rglob("*"))
    finally:
        os.umask(old)


def test_export_labels_what_was_trained(finished, tiny_recipe, tmp_path):
    """A full fine-tune is exported as the whole model (with or without --merge), labelled so; the card's
    title names the recipe, the base is the tiny toy base (not the cache path); LoRA exports say adapter
    or merged with the dtype actually used."""
    import yaml
    from transformers import AutoModelForCausalLM

    from saro_lite.cli import main

    resolved = (finished / "recipe.resolved.yaml").read_text()
    assert "# model.name_or_path as given: tiny" in resolved
    full = tmp_path / "full-run"  # a finished full-fine-tuning run: srpo/model is a whole model
    shutil.copytree(tiny_recipe.model.name_or_path, full / "srpo/model")
    shutil.copy(finished / "report.json", full / "report.json")
    d = yaml.safe_load(resolved)
    d["model"]["finetune"] = "full"
    header = "".join(line + "\n" for line in resolved.splitlines() if line.startswith("#"))
    (full / "recipe.resolved.yaml").write_text(header + yaml.safe_dump(d, sort_keys=False))
    cache_path = tiny_recipe.model.name_or_path
    cards = {}
    for flag in ([], ["--merge"]):
        out = tmp_path / f"full{''.join(flag)}"
        assert main(["export", "--run", str(full), "--output", str(out), *flag]) == 0
        card = (out / "README.md").read_text()
        cards[tuple(flag)] = card
        assert card.startswith("# saro-lite saro — tiny-cpu\n")
        assert "the kit's tiny toy base" in card and cache_path not in card
        assert "- arm: `saro` (full fine-tune: every weight was trained; a standalone model" in card
        assert "PEFT" not in card and "bf16" not in card and "merged into" not in card
        assert not (out / "adapter_config.json").exists() and (out / "model.safetensors").exists()
        AutoModelForCausalLM.from_pretrained(out)
    assert cards[()] == cards[("--merge",)]
    for flag, label in (([], "PEFT LoRA adapter"), (["--merge"], "LoRA adapter merged into the base, reloaded in float32")):
        out = tmp_path / f"lora{''.join(flag)}"
        assert main(["export", "--run", str(finished), "--output", str(out), *flag]) == 0
        card = (out / "README.md").read_text()
        assert card.startswith("# saro-lite saro — tiny-cpu\n") and label in card
        assert "the kit's tiny toy base" in card and cache_path not in card


def test_export_names_a_hub_base_by_its_id_and_a_folder_by_its_path(tmp_path):
    from saro_lite.commands.export import base_model, recipe_name
    from saro_lite.context import Context
    from saro_lite.recipe import load_recipe, to_yaml

    for given, resolved, want in (("Qwen/Qwen2.5-0.5B-Instruct", None, "`Qwen/Qwen2.5-0.5B-Instruct` (Hugging Face Hub)"),
                                  (str(tmp_path), None, f"`{tmp_path}` (a local folder)")):
        r = load_recipe(REPO / "recipes/qwen2.5-0.5b-instruct.yaml", [f"model.name_or_path={given}"])
        (tmp_path / "recipe.resolved.yaml").write_text(to_yaml(r, {"model.name_or_path": resolved or given}))
        ctx = Context(load_recipe(tmp_path / "recipe.resolved.yaml"), tmp_path, None)
        assert base_model(ctx) == want and recipe_name(ctx) == "qwen2.5-0.5b-instruct"
