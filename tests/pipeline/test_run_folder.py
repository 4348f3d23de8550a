"""The run folder tells the truth after any fault: every fault below is injected for real (two processes,
torn and truncated files, corrupted checkpoints, a full disk, Ctrl-C mid-eval), and each test asserts
what the user sees (one line, no traceback), that nothing finished is lost, and that every stage the
pipeline calls finished matches its inputs."""
import errno
import json
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import FAST, REPO, sets
from saro_lite.fileio import read_jsonl

RUN_ALL = str(REPO / "run_all.py")


def start(args):
    # SIGINT back to its default: a pytest put in the background by a shell passes it on ignored
    return subprocess.Popen([sys.executable, RUN_ALL, *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def run_all(*args, timeout=600):
    return subprocess.run([sys.executable, RUN_ALL, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)


def wait_for(path, proc, timeout=300):
    t0 = time.time()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < timeout, f"{path} never appeared"
        time.sleep(0.05)


def one_line_error(p, *needles):
    assert p.returncode == 2, (p.returncode, p.stdout[-2000:], p.stderr[-2000:])
    assert "Traceback" not in p.stderr + p.stdout
    for n in needles:
        assert n in p.stderr, p.stderr


def pipeline(out, *settings):
    from saro_lite.pipeline import Pipeline
    from saro_lite.recipe import load_recipe

    return Pipeline(load_recipe(None, [*FAST, f"output_dir={out}", *settings]), None, out)


def report_matches_eval(run) -> None:
    from saro_lite.analysis.scoring import arm_metrics

    report = json.loads((run / "report.json").read_text())
    for arm, m in report["arms"].items():
        files = {f.stem: read_jsonl(f) for f in (run / "eval" / arm).glob("*.jsonl")}
        again = arm_metrics(files, n_boot=0, scope=m["judge_scope"])
        for k in ("harmful_asr", "jailbreak_asr", "over_refusal_rate", "avg_response_tokens"):
            assert m[k] == pytest.approx(again[k]), (arm, k)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, cache_dir, tiny_run):
    """A copy of the tiny run with eval and report done."""
    from saro_lite.cli import main

    run = tmp_path_factory.mktemp("evaluated") / "run"
    shutil.copytree(tiny_run, run)
    assert main(["--stages", "eval,report", *sets(*FAST, f"output_dir={run}")]) == 0
    return run


# ---------------------------------------------------------------------------------------------------
# 1. A stage's record names the inputs it was actually built on; the dry-run plan is what runs
# ---------------------------------------------------------------------------------------------------
def test_stale_report_sequence_ends_with_a_report_that_matches_eval(tmp_path, evaluated, capsys):
    """The run was made with srpo.beta 0.1; the copy is used with beta 0.05. A report-only run keeps the
    report (it matches the eval outputs on disk) and says eval is stale; the full plan then runs srpo, eval
    and report, exactly as planned, and the report matches eval/ afterwards."""
    from saro_lite.cli import main

    run = tmp_path / "stg3"
    shutil.copytree(evaluated, run)
    beta = ["srpo.beta=0.05", "srpo.track_every=0"]
    args = sets(*FAST, f"output_dir={run}", *beta)

    assert main(["--stages", "report", *args]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "the outputs of 'eval'" in out and "do not match the recipe" in out
    assert "stage report: skipped (finished on the outputs of 'eval' as they are" in out

    pipe = pipeline(run, *beta)
    plan = pipe.plan(["data", "warmup", "pairs", "srpo", "eval", "report"])
    assert {k: v[0] for k, v in plan.items()} == {
        "data": "skip", "warmup": "skip", "pairs": "skip", "srpo": "run", "baselines": "not selected",
        "eval": "run", "report": "run"}
    assert plan["srpo"][1] == "settings changed: srpo.beta, srpo.track_every" and plan["eval"][1] == "'srpo' runs first"
    assert main(["--dry-run", "--stages", "data,warmup,pairs,srpo,eval,report", *args]) == 0
    dry = " ".join(capsys.readouterr().out.split())
    assert "settings changed: srpo.beta" in dry and "'srpo' runs first" in dry and "'eval' runs first" in dry

    assert main(["--stages", "data,warmup,pairs,srpo,eval,report", *args]) == 0
    out = " ".join(capsys.readouterr().out.split())
    for s in ("data", "warmup", "pairs"):
        assert f"stage {s}: skipped" in out
    for s in ("srpo", "eval", "report"):
        assert f"stage {s}: done" in out
    report_matches_eval(run)
    assert all(pipe.is_finished(s) for s in ("data", "warmup", "pairs", "srpo", "eval", "report"))
    assert {v[0] for v in pipe.plan(["data", "warmup", "pairs", "srpo", "eval", "report"]).values()} == \
        {"skip", "not selected"}


def test_a_changed_output_reruns_its_stage_and_the_ones_after(tmp_path, evaluated):
    run = tmp_path / "r"
    shutil.copytree(evaluated, run)
    pipe = pipeline(run)
    assert pipe.is_finished("report")
    f = run / "data/srpo_train.jsonl"
    rows = f.read_text().splitlines(keepends=True)
    f.write_text("".join(rows[:-1]))  # one pair fewer: still valid JSONL, but not what srpo trained on
    plan = pipe.plan(["data", "warmup", "pairs", "srpo", "eval", "report"])
    assert plan["pairs"] == ("run", "output changed since: data/srpo_train.jsonl")
    assert [plan[s][0] for s in ("data", "warmup", "srpo", "eval", "report")] == ["skip", "skip", "run", "run", "run"]
    assert not pipe.is_finished("srpo") and not pipe.is_finished("report")


# ---------------------------------------------------------------------------------------------------
# 2. One run per folder
# ---------------------------------------------------------------------------------------------------
def test_a_second_run_on_a_busy_folder_exits_2_naming_the_pid(tmp_path, cache_dir, tiny_run):
    out = tmp_path / "runA"
    args = ["--stages", "data,warmup", *sets(*FAST, "warmup.max_steps=200", f"output_dir={out}")]
    first = start(args)
    try:
        wait_for(out / "warmup/metrics.jsonl", first)
        t0 = time.time()
        second = run_all(*args, "--fresh", timeout=120)
        one_line_error(second, f"is in use by another run (PID {first.pid})", str(out))
        assert time.time() - t0 < 60 and len(second.stderr.strip().splitlines()) == 1
        assert first.poll() is None  # the first run goes on undisturbed
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # kill -9 leaves no lock behind: the next run takes the folder at once
    again = run_all("--stages", "data", *sets(*FAST, f"output_dir={out}"), timeout=300)
    assert again.returncode == 0, again.stderr
    steps = [r["step"] for r in read_jsonl(out / "warmup/metrics.jsonl", torn_ok=True)]
    assert len(steps) == len(set(steps))  # no step logged twice


# ---------------------------------------------------------------------------------------------------
# 3. A corrupt latest checkpoint: fall back to the one before, or start the stage over
# ---------------------------------------------------------------------------------------------------
CKPT_ARGS = ["warmup.max_steps=20", "warmup.save_steps=10"]


@pytest.fixture(scope="module")
def checkpointed(tmp_path_factory, cache_dir, tiny_run):
    """A finished warmup with checkpoints 10 and 20 (save_total_limit 2) and its record removed, so the
    same command resumes from checkpoint-20."""
    out = tmp_path_factory.mktemp("ckpt") / "run"
    p = run_all("--stages", "data,warmup", *sets(*FAST, *CKPT_ARGS, f"output_dir={out}"))
    assert p.returncode == 0, p.stderr
    assert sorted(x.name for x in (out / "warmup/checkpoints").glob("checkpoint-*")) == ["checkpoint-10", "checkpoint-20"]
    return out


def truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def tear(path) -> int:
    """Cut a JSONL file inside its last line, as a killed writer would; returns that line's number."""
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])
    return len(lines)


@pytest.mark.parametrize("broken,fallback", [
    (["checkpoint-20/adapter_model.safetensors"], "checkpoint-10"),  # SafetensorError before
    (["checkpoint-20/trainer_state.json"], "checkpoint-10"),         # JSONDecodeError before
    (["checkpoint-20/optimizer.pt"], "checkpoint-10"),               # PytorchStreamReader failed before
    (["checkpoint-20/trainer_state.json", "checkpoint-10/optimizer.pt"], None),  # nothing intact: start over
])
def test_corrupt_checkpoint_falls_back_or_restarts_in_one_line(tmp_path, checkpointed, broken, fallback):
    out = tmp_path / "run"
    shutil.copytree(checkpointed, out)
    (out / ".stages/warmup.json").unlink()
    for b in broken:
        truncate(out / "warmup/checkpoints" / b)
    p = run_all("--stages", "data,warmup", *sets(*FAST, *CKPT_ARGS, f"output_dir={out}"))
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr[-3000:]
    text = " ".join(p.stdout.split())
    assert "checkpoint checkpoint-20 cannot be resumed" in text
    if fallback:
        assert f"resuming from {fallback} instead" in text and "resuming warmup (RW) from" in text
    else:
        assert "no earlier intact one: the stage starts over" in text
    steps = [r["step"] for r in read_jsonl(out / "warmup/metrics.jsonl")]
    assert steps == list(range(1, 21))  # the whole run is in the log, once
    assert pipeline(out, *CKPT_ARGS).is_finished("warmup")


# ---------------------------------------------------------------------------------------------------
# 4. A full disk
# ---------------------------------------------------------------------------------------------------
def test_too_little_free_space_stops_before_the_stage_in_one_line(monkeypatch, tmp_path, cache_dir, tiny_run, capsys):
    import saro_lite.pipeline as pipeline_module
    from saro_lite.cli import main

    out = tmp_path / "run"
    args = ["--stages", "data,warmup", *sets(*FAST, f"output_dir={out}")]
    monkeypatch.setattr(pipeline_module, "free_bytes", lambda folder: 500)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "stage data:" in err and "has 500 B free; the stage writes about" in err and str(out) in " ".join(err.split())
    assert not (out / ".stages/data.json").exists()
    monkeypatch.undo()  # space freed: the same command runs
    assert main(args) == 0


def test_the_warmup_estimate_counts_weights_and_checkpoints(default_recipe):
    from saro_lite.modeling import memory
    from saro_lite.pipeline import SMALL_STAGE_BYTES, stage_disk_bytes

    r = default_recipe
    small = stage_disk_bytes("data", r)
    assert small == SMALL_STAGE_BYTES
    warm = stage_disk_bytes("warmup", r)
    shape = memory.shape_of(r)
    weights = 4 * (shape.total_params() if r.model.finetune == "full"
                   else sum(memory.lora_tensors(shape, r.model.lora_r, r.model.lora_target_modules)))
    assert warm > small + weights * (r.warmup.save_total_limit + 2)  # weights + (limit + 1) checkpoints


@pytest.mark.parametrize("error", [
    OSError(errno.ENOSPC, "No space left on device"),
    RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 3520 vs 3408"),
])
def test_disk_full_mid_stage_is_one_line_and_nothing_is_marked_finished(monkeypatch, tmp_path, cache_dir,
                                                                         tiny_run, capsys, error):
    from saro_lite.cli import main
    from saro_lite.pipeline import STAGES

    def full(ctx):
        (ctx.run_dir / "warmup").mkdir(parents=True, exist_ok=True)
        raise error

    monkeypatch.setattr(STAGES["warmup"], "run", full)
    out = tmp_path / "run"
    assert main(["--stages", "data,warmup", *sets(*FAST, f"output_dir={out}")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"stage warmup: the disk holding {out} is full" in err and "the stage writes about" in err
    assert "Traceback" not in err and "run the same command again" in err
    assert (out / ".stages/data.json").exists() and not (out / ".stages/warmup.json").exists()


# ---------------------------------------------------------------------------------------------------
# 5. Torn lines
# ---------------------------------------------------------------------------------------------------
def test_judge_input_with_a_torn_last_row_exits_2(tmp_path):
    f = tmp_path / "replies.jsonl"
    f.write_text('{"prompt": "hi", "response": "hello"}\n{"prompt": "how do I", "resp')
    p = run_all("judge", "--input", str(f), "--response-field", "response", "--output", str(tmp_path / "out.jsonl"),
                timeout=120)
    one_line_error(p, "replies.jsonl:2: the last line is cut off")
    assert not (tmp_path / "out.jsonl").exists()


def test_a_torn_metrics_log_drops_the_line_and_says_so(tmp_path, capsys):
    f = tmp_path / "metrics.jsonl"
    f.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "lo')
    assert read_jsonl(f, torn_ok=True) == [{"step": 1, "loss": 2.0}]
    assert "metrics.jsonl:2: the last line was cut off" in capsys.readouterr().err


def test_torn_files_a_stage_handed_on_stop_with_file_and_line(tmp_path, evaluated):
    run = tmp_path / "r"
    shutil.copytree(evaluated, run, ignore=shutil.ignore_patterns("checkpoints"))
    n = tear(run / "data/srpo_train.jsonl")
    p = run_all("--stages", "srpo", *sets(*FAST, f"output_dir={run}"))  # srpo matches what it trained on
    assert p.returncode == 0 and "output changed since: data/srpo_train.jsonl" in " ".join(p.stdout.split())
    p = run_all("--stages", "srpo", "--fresh", *sets(*FAST, f"output_dir={run}"))  # retrain on the torn file
    one_line_error(p, f"srpo_train.jsonl:{n}: the last line is cut off")

    run = tmp_path / "r2"  # a fresh copy: the failed srpo above left srpo without a record
    shutil.copytree(evaluated, run, ignore=shutil.ignore_patterns("checkpoints"))
    n = tear(run / "eval/saro/harmful.jsonl")
    p = run_all("--stages", "report", *sets(*FAST, f"output_dir={run}"))  # the report matches eval's record
    assert p.returncode == 0 and "stage report: skipped (finished on the outputs of 'eval' as they are" in \
        " ".join(p.stdout.split()) and "output changed since: eval/saro/harmful.jsonl" in " ".join(p.stdout.split())
    p = run_all("--stages", "report", "--fresh", *sets(*FAST, f"output_dir={run}"))
    one_line_error(p, f"eval/saro/harmful.jsonl:{n}: the last line is cut off")


def test_a_torn_extra_eval_set_stops_at_dry_run(tmp_path):
    f = tmp_path / "mine.jsonl"
    f.write_text('{"question": "a"}\n{"question": "b')
    p = run_all("--dry-run", "--set", f"eval.extra_sets=[{{name: mine, path: {f}, prompt_field: question, kind: benign}}]",
                timeout=120)
    one_line_error(p, "mine.jsonl:2: the last line is cut off")


# ---------------------------------------------------------------------------------------------------
# 6. Eval resumes per arm and set
# ---------------------------------------------------------------------------------------------------
EVAL_SLOW = ["eval.limit_per_set=12", "eval.max_new_tokens=160", "eval.embedding_arms=[]"]


def test_ctrl_c_mid_eval_keeps_finished_arms_and_the_rerun_generates_only_the_rest(tmp_path, evaluated):
    run = tmp_path / "r"
    shutil.copytree(evaluated, run, ignore=shutil.ignore_patterns("checkpoints", "eval"))
    args = ["--stages", "eval", *sets(*FAST, *EVAL_SLOW, f"output_dir={run}")]
    proc = start(args)
    t0 = time.time()
    while len(list((run / "eval/base").glob(".*.fingerprint"))) < 5:  # every set of the base arm is stamped
        assert proc.poll() is None and time.time() - t0 < 300, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "eval keeps the arms and sets it finished" in " ".join(stderr.split()) and "Traceback" not in stderr
    base = {f.name: (f.read_bytes(), f.stat().st_mtime_ns) for f in (run / "eval/base").glob("*.jsonl")}
    assert len(base) == 5

    p = run_all(*args)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "eval: kept 5 finished arm/set file(s)" in " ".join(p.stdout.split())
    assert {f.name: (f.read_bytes(), f.stat().st_mtime_ns) for f in (run / "eval/base").glob("*.jsonl")} == base
    for arm in ("rw", "saro"):
        assert len(read_jsonl(run / f"eval/{arm}/harmful.jsonl")) == 12
    assert pipeline(run, *EVAL_SLOW).is_current("eval")


def test_eval_regenerates_a_torn_or_restamped_set(tmp_path, evaluated):
    """A stamped file whose rows were cut off, or a stamp of other settings, is generated again."""
    from saro_lite.cli import main

    run = tmp_path / "r"
    shutil.copytree(evaluated, run, ignore=shutil.ignore_patterns("checkpoints"))
    (run / ".stages/eval.json").unlink()  # as after a kill -9 mid-eval
    tear(run / "eval/rw/benign.jsonl")
    (run / "eval/saro/.harmful.fingerprint").write_text("other settings\n")
    before = {f: f.stat().st_mtime_ns for f in run.glob("eval/*/*.jsonl")}
    assert main(["--stages", "eval", *sets(*FAST, f"output_dir={run}")]) == 0
    changed = sorted(str(f.relative_to(run)) for f in before if f.stat().st_mtime_ns != before[f])
    assert "eval/rw/benign.jsonl" in changed and "eval/saro/harmful.jsonl" in changed
    assert not any(c.startswith("eval/base/") for c in changed)
    assert len(read_jsonl(run / "eval/rw/benign.jsonl")) == 4


def test_fresh_eval_regenerates_every_set(tmp_path, evaluated):
    from saro_lite.cli import main

    run = tmp_path / "r"
    shutil.copytree(evaluated, run, ignore=shutil.ignore_patterns("checkpoints"))
    before = {f: f.stat().st_mtime_ns for f in run.glob("eval/*/*.jsonl")}
    assert main(["--stages", "eval", "--fresh", *sets(*FAST, f"output_dir={run}")]) == 0
    assert all(f.stat().st_mtime_ns != t for f, t in before.items())


# ---------------------------------------------------------------------------------------------------
# 7. The smaller items
# ---------------------------------------------------------------------------------------------------
def test_duplicate_yaml_key_stops_with_both_line_numbers(tmp_path):
    from saro_lite.errors import UserError
    from saro_lite.recipe import load_recipe

    f = tmp_path / "r.yaml"
    f.write_text("srpo:\n  beta: 0.1\n  learning_rate: 1.0e-5\n  beta: 0.05\n")
    with pytest.raises(UserError, match=r"r\.yaml:4: duplicate key 'beta' \(first on line 2\)"):
        load_recipe(f)


def test_readme_vram_column_is_the_recipe_header():
    """One VRAM figure per recipe: the README table's column is what the recipe header (and so
    --list-recipes and --dry-run) says."""
    import re

    from saro_lite.modeling.memory import vram_target_gb

    readme = (REPO / "README.md").read_text()
    rows = re.findall(r"^\| `([\w.\-]+)` \| [^|]+ \| ([^|]+) \|", readme, flags=re.M)
    checked = 0
    for stem, cell in rows:
        path = REPO / "recipes" / f"{stem}.yaml"
        if not path.exists():
            continue
        target = vram_target_gb(path)
        if target is None:
            assert "none" in cell or "CPU" in cell, (stem, cell)
        else:
            assert re.search(rf"[≤≈] {target:g} GB", cell), (stem, cell, target)
        checked += 1
    assert checked >= 5


def test_help_lists_the_subcommands_and_the_cache():
    p = run_all("--help", timeout=60)
    assert p.returncode == 0
    for word in ("judge", "chat", "export", "compare", "SARO_LITE_CACHE"):
        assert word in p.stdout


def test_compare_with_one_run_says_it_needs_two(tmp_path, evaluated):
    p = run_all("compare", str(evaluated), "--output", str(tmp_path / "c.md"), timeout=120)
    one_line_error(p, "give two or more run folders")
    assert not (tmp_path / "c.md").exists()


def test_chat_commands_never_reach_the_model(evaluated, monkeypatch, capsys):
    import io

    import saro_lite.commands.chat as chat

    sent = []
    monkeypatch.setattr(chat, "reply", lambda model, ctx, text, budget: sent.append(text) or ([], "ok", True))
    monkeypatch.setattr(sys, "stdin", io.StringIO("/help\n/reset\n/nope\nhello there\n/quit\n"))
    assert chat.cli(["--run", str(evaluated)]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert sent == ["hello there"]  # only the message; /help, /reset and /nope are commands
    assert text.count("Anything else is sent to the model") == 2 and "unknown command /nope" in text
    assert "reset: reasoning back to how it started" in text


def test_resumed_warmup_reports_the_loss_of_the_whole_run(tmp_path, checkpointed):
    out = tmp_path / "run"
    shutil.copytree(checkpointed, out)
    (out / ".stages/warmup.json").unlink()
    shutil.rmtree(out / "warmup/checkpoints/checkpoint-20")
    p = run_all("--stages", "data,warmup", *sets(*FAST, *CKPT_ARGS, f"output_dir={out}"))
    assert p.returncode == 0, p.stderr[-2000:]
    first = read_jsonl(out / "warmup/metrics.jsonl")[0]["loss"]
    text = " ".join(p.stdout.split())
    assert f"warmup (RW): loss {first:.3f} ->" in text and "over 20 steps (this session from step 10)" in text
