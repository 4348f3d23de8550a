"""The GPU check's CPU smoke mode: tools/gpu_check.py runs every step on tiny shapes, so the script a
maintainer carries to a CUDA machine cannot rot between GPU sessions."""
import json
import os
import subprocess
import sys

from conftest import REPO


def test_the_gpu_check_runs_every_step_on_the_cpu(tmp_path, cache_dir):
    out = tmp_path / "out"
    p = subprocess.run([sys.executable, "-m", "tools.gpu_check", "--smoke", "--out", str(out)], cwd=REPO,
                       capture_output=True, text=True, timeout=1200, env={**os.environ, "SARO_LITE_CACHE": str(cache_dir)})
    assert p.returncode == 0, p.stderr[-3000:]
    result = json.loads((out / "gpu_check.json").read_text())
    steps = result["steps"]
    assert result["failed"] is None and list(steps) == ["environment", "model", "pipeline", "training", "resume",
                                                       "fp16", "export", "decode", "shapes"]
    assert all(s["ok"] for s in steps.values())
    assert steps["training"]["srpo"]["step0_margin"] == 0.0 and steps["training"]["srpo"]["lora_dtype"] == ["F32"]
    assert steps["resume"]["steps"] == [1, 2, 3] and steps["decode"]["float32"] == "4/4 identical"
    assert set(steps["pipeline"]["memory"]) == {"data", "warmup", "pairs", "srpo", "baselines", "eval", "report"}
    assert "every step passed" in (out / "gpu_check.md").read_text()


def test_a_failing_step_is_named_and_stops_the_check(tmp_path, monkeypatch):
    """The first failure stops the check, names its step and keeps the trace in the JSON."""
    sys.path.insert(0, str(REPO))
    from tools import gpu_check

    monkeypatch.setattr(gpu_check, "random_model", lambda *a: (_ for _ in ()).throw(RuntimeError("no vocabulary")))
    rc = gpu_check.main(["--smoke", "--out", str(tmp_path)])
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    assert rc == 1 and result["failed"] == "model" and list(result["steps"]) == ["environment", "model"]
    assert "no vocabulary" in result["steps"]["model"]["error"]
    assert "FAILED at step `model`" in (tmp_path / "gpu_check.md").read_text()
