"""The command line: user mistakes exit 2 with one clear line and no traceback; --help is instant."""
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
])
def test_user_mistakes_exit_2_without_traceback(args, needle):
    p = run_cli(*args, "--dry-run")
    assert p.returncode == 2, p.stderr
    assert needle in p.stderr
    assert "Traceback" not in p.stderr + p.stdout


def test_list_recipes_shows_tiny_cpu():
    p = run_cli("--list-recipes")
    assert p.returncode == 0 and "tiny-cpu" in p.stdout


def test_dry_run_prints_plan_and_loads_no_model(tmp_path):
    p = run_cli("--dry-run", "--set", f"output_dir={tmp_path}/run")
    assert p.returncode == 0, p.stderr
    assert "plan for" in p.stdout and "warmup" in p.stdout
    assert not (tmp_path / "run").exists()  # nothing written


def test_stage_needing_missing_outputs_names_the_stage(tmp_path):
    p = run_cli("--stages", "srpo", "--set", f"output_dir={tmp_path}/empty")
    assert p.returncode == 2
    assert "needs the outputs of stage 'warmup'" in p.stderr and "--stages warmup,srpo" in p.stderr
