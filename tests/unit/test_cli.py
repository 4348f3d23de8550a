"""The command line: user mistakes exit 2 with one clear line and no traceback; --help is instant."""
import os
import subprocess
import sys
import time

import pytest

from conftest import REPO


def run_cli(*args, timeout=60):
    return subprocess.run([sys.executable, str(REPO / "run_all.py"), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def test_help_is_instant_and_lists_the_contract():
    t0 = time.time()
    p = run_cli("--help")
    assert p.returncode == 0 and time.time() - t0 < 5
    for flag in ("--recipe", "--stages", "--set", "--fresh", "--dry-run", "--list-recipes"):
        assert flag in p.stdout


@pytest.mark.parametrize("args,needle", [
    (["--recipe", "recipes/does-not-exist.yaml"], "recipe not found"),
    (["--stages", "warmup,polish"], "unknown stage 'polish'"),
    (["--set", "srpo.beta"], "expected KEY=VALUE"),
    (["--set", "srpo.beta=0"], "srpo.beta: must be > 0"),
    (["--set", "warmup.max_stpes=3"], "did you mean 'warmup.max_steps'"),
    (["--set", "eval.judge=api"], "eval.judge_api: needs base_url and model"),
    (["--set", "eval.judge=llm"], "eval.judge"),
    (["--set", "eval.judge_api={base_url: 'http://x/v1', model: j, api_key: sk-123}"], "keys never go in a recipe"),
    (["--set", "eval.embedding_arms=[base,sarro]"], "eval.embedding_arms: unknown arm 'sarro'"),
    # every name in the recipe is checked when it loads, so a typo fails before warmup and SRPO train
    (["--set", "eval.arms=[base, rw, sarro]"], "eval.arms: unknown arm 'sarro' (did you mean 'saro'?)"),
    (["--set", "eval.arms=[base, rw, rw]"], "eval.arms: 'rw' is listed twice"),
    (["--set", "eval.sets=[harmful, benigns]"], "eval.sets: unknown set 'benigns' (did you mean 'benign'?)"),
    (["--set", "eval.attack_templates=[poem, aim]"], "eval.attack_templates: unknown template 'aim'"),
])
def test_user_mistakes_exit_2_without_traceback(args, needle):
    p = run_cli(*args, "--dry-run")
    assert p.returncode == 2, p.stderr
    assert needle in p.stderr
    assert "Traceback" not in p.stderr + p.stdout


def test_list_recipes_shows_tiny_cpu():
    p = run_cli("--list-recipes")
    assert p.returncode == 0 and "tiny-cpu" in p.stdout


def test_list_recipes_shows_model_vram_and_a_whole_description_without_torch():
    from saro_lite.recipe import list_recipes, recipe_summary

    s = {x["name"]: x for x in map(recipe_summary, list_recipes())}
    assert s["qwen2.5-1.5b-instruct"] == {
        "name": "qwen2.5-1.5b-instruct", "model": "Qwen/Qwen2.5-1.5B-Instruct", "vram": "<= 6 GB",
        "description": "QLoRA reasoning warmup then SRPO on an 8 GB laptop GPU."}
    assert s["llama-3.1-8b-instruct"]["model"] == "meta-llama/Llama-3.1-8B-Instruct (gated)"
    assert s["llama-3.1-8b-instruct"]["vram"] == "about 12 GB"
    assert s["qwen3-4b"]["description"].startswith("hybrid thinking model — QLoRA")
    tiny = s["tiny-cpu"]
    assert tiny["model"] == "tiny (built offline)" and tiny["vram"] == "none (CPU)"
    assert tiny["description"].startswith("the offline default") and tiny["description"].endswith("on CPU.")
    for x in s.values():  # the name is in its own column, not repeated; every description is whole
        assert x["name"] not in x["description"] and x["description"].endswith(".") and x["vram"]
    code = ("import sys; from saro_lite.cli import main; main(['--list-recipes']); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO,
                       env={**__import__("os").environ, "COLUMNS": "200"})
    assert p.returncode == 0, p.stderr
    assert "Qwen/Qwen2.5-0.5B-Instruct" in p.stdout and "<= 4 GB" in p.stdout and "VRAM target" in p.stdout


def test_dry_run_prints_plan_and_loads_no_model(tmp_path):
    p = run_cli("--dry-run", "--set", f"output_dir={tmp_path}/run")
    assert p.returncode == 0, p.stderr
    assert "plan for" in p.stdout and "warmup" in p.stdout
    assert not (tmp_path / "run").exists()  # nothing written


def test_stage_needing_missing_outputs_names_the_stage(tmp_path):
    p = run_cli("--stages", "srpo", "--set", f"output_dir={tmp_path}/empty")
    assert p.returncode == 2
    assert "needs the outputs of stage 'warmup'" in p.stderr and "--stages warmup,srpo" in p.stderr


def test_dry_run_estimates_gpu_memory_for_a_real_recipe(tmp_path):
    """--dry-run on a real recipe prints the per-stage peak-memory estimate from the recipe's
    architecture numbers, next to the VRAM the recipe targets, without loading anything."""
    local = tmp_path / "qwen"
    local.mkdir()
    (local / "config.json").write_text("{}")
    p = run_cli("--recipe", "recipes/qwen2.5-1.5b-instruct.yaml", "--set", f"model.name_or_path={local}",
                "--set", f"output_dir={tmp_path / 'run'}", "--dry-run")
    assert p.returncode == 0, p.stderr
    assert "estimated peak GPU memory" in p.stdout and "srpo" in p.stdout and "targets 6 GB" in p.stdout
    assert not (tmp_path / "run").exists()


def test_malloc_tuning_is_applied_on_linux(monkeypatch):
    from saro_lite.cli import tune_malloc

    monkeypatch.setenv("SARO_LITE_MALLOC_TUNING", "0")
    assert tune_malloc() is False
    monkeypatch.setenv("SARO_LITE_MALLOC_TUNING", "1")
    assert tune_malloc() is sys.platform.startswith("linux")


def test_ctrl_c_hint_names_the_exact_resume_command_without_fresh(monkeypatch, capsys):
    """After Ctrl-C in a --fresh run, "the same command" would start over: the hint names the command
    that resumes (same arguments, --fresh dropped), quoted for the shell, rich markup left as text."""
    from saro_lite import cli

    def interrupted(args, console):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "run_pipeline", interrupted)
    args = ["--stages", "data,warmup", "--set", "eval.arms=[base, rw]", "--set", "output_dir=runs/my run"]
    assert cli.main(["--fresh", *args]) == 130
    err = " ".join(capsys.readouterr().err.split())
    resume = "python run_all.py --stages data,warmup --set 'eval.arms=[base, rw]' --set 'output_dir=runs/my run'"
    assert f"run it again without --fresh (--fresh would start over): {resume}" in err
    assert cli.main([*args[:2], "--fr", *args[2:]]) == 130  # argparse's abbreviation of --fresh
    assert resume in " ".join(capsys.readouterr().err.split())
    assert cli.main(args) == 130
    err = " ".join(capsys.readouterr().err.split())
    assert f"run the same command again to resume: {resume}" in err and "--fresh" not in err
    assert cli.resume_command("python -m saro_lite.warmup", ["--fresh", "--recipe", "r.yaml"]) == \
        "python -m saro_lite.warmup --recipe r.yaml"


def test_bitsandbytes_kernels_notice_is_silenced_and_nothing_else(caplog):
    """bitsandbytes' CPU backend logs "Failed to load CPU gemm_4bit_forward from kernels-community ...
    pip install kernels" on import (AVX512-BF16 CPUs), in every run: the kit drops that one message."""
    import logging

    from saro_lite.pipeline import quiet_libraries

    quiet_libraries()
    quiet_libraries()  # idempotent: one filter
    log = logging.getLogger("bitsandbytes.backends.cpu.ops")
    assert len(log.filters) == 1
    log.warning("Failed to load CPU gemm_4bit_forward from kernels-community: %s. Please make sure you already "
                "`pip install kernels` and the kernels >= 0.11.1", "No module named 'kernels'")
    log.warning("some other bitsandbytes warning")
    assert [r.getMessage() for r in caplog.records if r.name == log.name] == ["some other bitsandbytes warning"]
    p = subprocess.run([sys.executable, "-c", "from saro_lite.pipeline import quiet_libraries; quiet_libraries(); "
                        "import bitsandbytes"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert p.returncode == 0 and "gemm_4bit_forward" not in p.stderr + p.stdout


def test_dry_run_plan_shows_baselines_as_not_needed_without_baseline_arms(tmp_path):
    from rich.console import Console

    from saro_lite.cli import print_plan
    from saro_lite.pipeline import STAGE_ORDER, Pipeline
    from saro_lite.recipe import load_recipe

    def plan(*overrides):
        console = Console(record=True, width=250)
        r = load_recipe(None, [f"output_dir={tmp_path}/run", *overrides])
        print_plan(Pipeline(r, console), list(STAGE_ORDER), False, console)
        return next(line for line in console.export_text().splitlines() if line.split()[:1] == ["baselines"])

    row = plan()
    assert "skip" in row and "not needed: no safety_sft or dpo in eval.arms" in row and " run " not in row
    row = plan("eval.arms=[base, rw, saro, dpo]")
    assert " run " in row and "baselines/dpo/metrics.jsonl" in row


def test_openmp_threads_sleep_instead_of_spinning_when_the_cpus_are_busy():
    """tune_threads picks OMP_WAIT_POLICY=PASSIVE when other processes keep the CPUs busy, leaves the
    default on a quiet machine, never overrides a policy the user set, and can be turned off; the load
    is measured for real (a busy-looping process beside it)."""
    import subprocess
    import sys

    code = ("import os, sys; from saro_lite.cli import tune_threads; busy = float(sys.argv[1]); "
            "print(tune_threads(busy), os.environ.get('OMP_WAIT_POLICY'))")

    def decide(busy, **env):
        full = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "SARO_LITE_THREAD_TUNING")}
        p = subprocess.run([sys.executable, "-c", code, str(busy)], cwd=REPO, env={**full, **env},
                           capture_output=True, text=True, check=True)
        return p.stdout.split()

    assert decide(1.0) == ["PASSIVE", "PASSIVE"]
    assert decide(0.1) == ["None", "None"]
    assert decide(1.0, OMP_WAIT_POLICY="ACTIVE") == ["None", "ACTIVE"]
    assert decide(1.0, SARO_LITE_THREAD_TUNING="0") == ["None", "None"]

    from saro_lite.cli import busy_cpus_elsewhere

    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        import time

        time.sleep(0.5)
        assert busy_cpus_elsewhere(0.5) >= 0.5
    finally:
        spinner.kill()
