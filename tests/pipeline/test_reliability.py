"""Reliability of the kit itself: kill -9 and Ctrl-C mid-stage then resume, clear one-line errors for
bad input (exit 2, no traceback, no partial outputs), out-of-memory advice."""
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import FAST, REPO, sets
from saro_lite.fileio import read_jsonl

RUN_ALL = str(REPO / "run_all.py")


def default_sigint():
    """A run started from a pytest that a shell put in the background (`pytest &`) would inherit SIGINT
    ignored, and Ctrl-C (the signal the tests send) would then do nothing: give it the default back."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(args, env=None):
    return subprocess.Popen([sys.executable, RUN_ALL, *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})},
                            preexec_fn=default_sigint)


def wait_for(path, proc, timeout=180):
    t0 = time.time()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < timeout, f"{path} never appeared"
        time.sleep(0.05)


def resume_args(out):
    return ["--stages", "data,warmup", *sets(*FAST, "warmup.max_steps=60", "warmup.save_steps=10",
                                             f"output_dir={out}")]


def test_sigkill_mid_stage_then_same_command_resumes(tmp_path, cache_dir, tiny_run):
    out = tmp_path / "run"
    args = resume_args(out)
    proc = start(args)
    wait_for(out / "warmup/checkpoints/checkpoint-20/trainer_state.json", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (out / ".stages/data.json").exists() and not (out / ".stages/warmup.json").exists()
    done = subprocess.run([sys.executable, RUN_ALL, *args], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "stage data: skipped" in done.stdout and "resuming warmup (RW) from" in done.stdout and "checkpoint-20" in done.stdout
    steps = [r["step"] for r in read_jsonl(out / "warmup/metrics.jsonl")]
    assert steps == list(range(1, 61))  # complete, and no step logged twice
    assert (out / ".stages/warmup.json").exists() and (out / "warmup/adapter/adapter_config.json").exists()
    assert len(list((out / "warmup/checkpoints").glob("checkpoint-*"))) <= 2  # save_total_limit


def test_ctrl_c_stops_cleanly_with_resume_hint(tmp_path, cache_dir, tiny_run):
    out = tmp_path / "run"
    proc = start(resume_args(out))
    wait_for(out / "warmup/checkpoints/checkpoint-10/trainer_state.json", proc)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted" in stderr and "run the same command again" in stderr and "Traceback" not in stderr
    assert not (out / ".stages/warmup.json").exists()


def cli(*args, env=None):
    return subprocess.run([sys.executable, RUN_ALL, *args], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def assert_user_error(p, *needles):
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr + p.stdout
    for n in needles:
        assert n in p.stderr, p.stderr


@pytest.mark.parametrize("content,needle", [
    (b"", "file is empty"),
    (b'{"id": "a", "prompt": "x", "kind": "benign", "reasoning": ["s"], "answer": "y"}\n{"id": "b",\n', ":2: broken JSON line"),
    ("{\"id\": \"caf\xe9\"}\n".encode("latin-1"), "not UTF-8"),
    (b'{"id": "a", "prompt": "x"}\n', ":1: missing field(s) kind, reasoning, answer"),
])
def test_bad_data_files_exit_2_naming_file_and_line(tmp_path, content, needle):
    f = tmp_path / "traces.jsonl"
    f.write_bytes(content)
    p = cli("--dry-run", "--set", "data.source=file", "--set", f"data.path={f}")
    assert_user_error(p, "traces.jsonl", needle)


def test_missing_data_file(tmp_path):
    assert_user_error(cli("--dry-run", "--set", "data.source=file", "--set", f"data.path={tmp_path}/nope.jsonl"),
                      "nope.jsonl: file not found")


def test_hub_id_while_offline_is_one_clear_line(tmp_path):
    p = cli("--dry-run", "--set", "model.name_or_path=some-org/not-downloaded-model",
            env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    assert_user_error(p, "model.name_or_path", "some-org/not-downloaded-model", "hf download")


def test_max_length_too_small_for_the_prompts(tmp_path, cache_dir, tiny_run):
    p = cli("--stages", "data,warmup", *sets(*FAST, "warmup.max_length=16", f"output_dir={tmp_path}/r"))
    assert_user_error(p, "warmup.max_length: 16 is too small for the prompts")
    assert not (tmp_path / "r/.stages/warmup.json").exists()


def test_extra_set_missing_columns_listed(tmp_path):
    f = tmp_path / "x.csv"
    f.write_text("text,label\nhello,1\n")
    p = cli("--dry-run", "--set",
            f"eval.extra_sets=[{{name: mine, path: {f}, prompt_field: question, kind: benign}}]")
    assert_user_error(p, "x.csv", "question")


def test_out_of_memory_gives_advice_not_a_trace(monkeypatch, tmp_path, capsys, tiny_run):
    import torch

    from saro_lite.cli import main
    from saro_lite.pipeline import STAGES

    def boom(ctx):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(STAGES["warmup"], "run", boom)  # the stage table's callable for warmup
    rc = main(["--stages", "data,warmup", *sets(*FAST, f"output_dir={tmp_path}/oom")])
    err = capsys.readouterr().err
    assert rc == 2 and "CUDA out of memory" in err and "warmup.per_device_train_batch_size" in err
    assert "warmup.max_length" in err and not (tmp_path / "oom/.stages/warmup.json").exists()


def test_fresh_never_resumes_from_old_checkpoints(tmp_path, cache_dir, tiny_run):
    """--fresh re-runs a stage from scratch even when a checkpoint of the same settings is on disk
    (resuming at the final checkpoint would train zero steps and silently keep the old result)."""
    import shutil

    out = tmp_path / "run"
    shutil.copytree(tiny_run, out)
    args = ["--stages", "srpo", *sets(*FAST, "srpo.save_steps=8", "srpo.track_every=0", f"output_dir={out}")]
    first = subprocess.run([sys.executable, RUN_ALL, *args], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert list((out / "srpo/checkpoints").glob("checkpoint-16"))
    again = subprocess.run([sys.executable, RUN_ALL, *args, "--fresh"], cwd=REPO, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr
    assert "resuming" not in again.stdout
    steps = [r["step"] for r in read_jsonl(out / "srpo/metrics.jsonl") if "loss" in r]
    assert steps == list(range(1, 17))


def closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_hub_id_unreachable_fails_fast_with_one_line(tmp_path):
    """Online but the Hub out of reach (here: HF_ENDPOINT on a closed local port, no real network):
    --dry-run and a real run both stop at once with the same one line, not after ~50 s of retries."""
    env = {"HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0", "HF_HOME": str(tmp_path / "hf"),
           "HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}"}  # online, whatever the caller exported
    for args in (["--dry-run"], ["--stages", "data,warmup"]):
        t0 = time.time()
        p = cli(*args, "--set", "model.name_or_path=some-org/not-downloaded-model", "--set",
                f"output_dir={tmp_path}/run", env=env)
        assert time.time() - t0 < 20
        assert_user_error(p, "model.name_or_path", "some-org/not-downloaded-model", "could not be reached",
                          "hf download")
        assert len(p.stderr.strip().splitlines()) == 1 and "Retry" not in p.stdout + p.stderr
        assert not (tmp_path / "run").exists()


def test_hub_check_is_one_bounded_attempt(monkeypatch):
    """The reachability check: skipped offline (the cache check decides) and for local folders; one
    call with a timeout of a few seconds online; a Hub that hangs is cut off at the bound."""
    import socket

    from saro_lite import cli as cli_mod
    from saro_lite.modeling import sources
    from saro_lite.errors import UserError
    from saro_lite.recipe import load_recipe

    calls = []
    monkeypatch.setattr(sources, "probe_hub", lambda name, rev, timeout, **kw: calls.append((name, rev, timeout)))
    r = load_recipe(None, ["model.name_or_path=some-org/not-downloaded-model"])
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="HF_HUB_OFFLINE=1 is set"):
        cli_mod.check_model_available(r)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "true")  # the other variable, as set: the message names it
    with pytest.raises(UserError, match="TRANSFORMERS_OFFLINE=true is set"):
        cli_mod.check_model_available(r)
    assert calls == []
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    cli_mod.check_model_available(r)  # reachable: fine
    assert calls == [("some-org/not-downloaded-model", r.model.revision, sources.HUB_CHECK_TIMEOUT_S)]
    assert sources.HUB_CHECK_TIMEOUT_S <= 10

    def hangs(name, rev, timeout, **kw):
        time.sleep(30)

    monkeypatch.setattr(sources, "probe_hub", hangs)
    t0 = time.time()
    with pytest.raises(UserError, match=r"could not be reached.*\[TimeoutError\]"):
        sources.check_hub_reachable("some-org/m", None, timeout=0.2)
    assert time.time() - t0 < 3
    monkeypatch.undo()
    # the real request against a local server that accepts and never answers: one attempt, cut at the timeout
    import huggingface_hub  # noqa: F401  (imported before the clock starts: a loaded machine imports slowly)

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        t0 = time.time()
        with pytest.raises(Exception):
            sources.probe_hub("some-org/m", None, 0.5, endpoint=f"http://127.0.0.1:{server.getsockname()[1]}")
        assert time.time() - t0 < 5  # one attempt cut at 0.5 s; retries would take ~50 s
