"""The CUDA path's decisions, checked on the CPU where the behaviour allows: memory freed between stages
and between eval arms, one GPU per process (or one line saying how to use several), bf16 only where the
card has it, no GPU older than Volta, NaN stops the run, one writer under several processes, the
full-fine-tuning memory estimate, the reward tracker's truncation. The measured GPU side is
tools/gpu_check.py (its CPU smoke mode runs in test_gpu_check.py)."""
import gc
import json
import math
import os
import shutil
import subprocess
import sys
import weakref

import pytest

from conftest import FAST, REPO, sets
from saro_lite.errors import UserError
from saro_lite.fileio import read_jsonl


# ---------------------------------------------------------------------------------------------------
# 1. memory is freed between stages
# ---------------------------------------------------------------------------------------------------
def test_the_warmup_model_is_gone_when_srpo_starts(monkeypatch, tmp_path, tiny_run):
    import saro_lite.modeling.loading as loading
    from saro_lite.cli import main
    from saro_lite.pipeline import STAGES

    loaded: list[tuple[str, weakref.ref]] = []
    real_load = loading.load_model
    stage = ["?"]

    def tracking_load(*a, **k):
        model = real_load(*a, **k)
        loaded.append((stage[0], weakref.ref(model)))
        return model

    monkeypatch.setattr(loading, "load_model", tracking_load)
    import saro_lite.srpo
    import saro_lite.training.trainer

    monkeypatch.setattr(saro_lite.training.trainer, "load_model", tracking_load)
    monkeypatch.setattr(saro_lite.srpo, "load_model", tracking_load)
    alive_at_srpo = []
    for name in ("warmup", "srpo"):
        real_run = STAGES[name].run

        def run(ctx, name=name, real_run=real_run):
            if name == "srpo":  # no collection here: what the pipeline left is what srpo loads beside
                alive_at_srpo.extend(s for s, ref in loaded if s == "warmup" and ref() is not None)
            stage[0] = name
            return real_run(ctx)

        monkeypatch.setattr(STAGES[name], "run", run)
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir, ignore=shutil.ignore_patterns("checkpoints"))
    assert main(["--stages", "warmup,srpo", "--fresh", *sets(*FAST, f"output_dir={run_dir}")]) == 0
    assert [s for s, _ in loaded].count("warmup") == 1 and "srpo" in [s for s, _ in loaded]
    assert alive_at_srpo == []


def test_release_memory_resets_the_cuda_peak_per_stage(monkeypatch):
    import torch

    from saro_lite.modeling.devices import release_memory

    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append("empty_cache"))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda *a: calls.append("reset_peak"))
    release_memory()
    assert calls == ["empty_cache", "reset_peak"]


# ---------------------------------------------------------------------------------------------------
# 2, 3, 8. which GPU, which dtype
# ---------------------------------------------------------------------------------------------------
def fake_gpus(monkeypatch, count=1, capability=(8, 0), name="NVIDIA Test"):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: name)
    return torch


def test_two_visible_gpus_stop_with_one_line_naming_both_ways(monkeypatch):
    from saro_lite.modeling.devices import check_gpu_for_training

    torch = fake_gpus(monkeypatch, count=2)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(UserError) as e:
        check_gpu_for_training(torch)
    msg = str(e.value)
    assert "2 GPUs are visible" in msg and "CUDA_VISIBLE_DEVICES=0" in msg and "accelerate launch --num_processes 2" in msg
    assert "\n" not in msg
    monkeypatch.setenv("WORLD_SIZE", "2")  # under accelerate launch each process has its own GPU
    check_gpu_for_training(torch)


def test_a_gpu_older_than_volta_stops_before_training(monkeypatch):
    from saro_lite.modeling.devices import check_gpu_for_training

    torch = fake_gpus(monkeypatch, capability=(6, 1), name="NVIDIA GeForce GTX 1080")
    with pytest.raises(UserError, match=r"GTX 1080 \(compute capability 6\.1\) is older than Volta"):
        check_gpu_for_training(torch)
    check_gpu_for_training(fake_gpus(monkeypatch, capability=(7, 0)))


@pytest.mark.parametrize("capability,expected", [((7, 5), "float16"), ((7, 0), "float16"), ((8, 0), "bfloat16"),
                                                 ((8, 9), "bfloat16"), ((9, 0), "bfloat16")])
def test_bf16_only_on_cards_that_compute_in_it(monkeypatch, capability, expected):
    """T4 / RTX 20xx (7.5) and V100 (7.0) emulate bf16: fp16 there, as the README says."""
    from saro_lite.modeling.devices import auto_dtype

    torch = fake_gpus(monkeypatch, capability=capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)  # what misled
    assert auto_dtype() == getattr(torch, expected)
    assert auto_dtype(cuda=False) == torch.float32


# ---------------------------------------------------------------------------------------------------
# 4. NaN stops the run
# ---------------------------------------------------------------------------------------------------
def test_a_nan_margin_at_step_0_stops_with_one_line():
    from saro_lite.training.tracking import RewardTracker

    tracker = RewardTracker.__new__(RewardTracker)
    tracker.console = None
    row = {"val/reward_margin": math.nan, "val/reward_chosen": math.nan, "val/reward_rejected": 0.0,
           "val/reward_accuracy": 0.0}
    with pytest.raises(UserError, match="not a number"):
        tracker.check_start(row)


def logger_rows(tmp_path, rows):
    from types import SimpleNamespace

    from saro_lite.training.trainer import make_metrics_logger

    logger = make_metrics_logger(tmp_path / "m.jsonl", None, "warmup")
    for step, logs in enumerate(rows, 1):
        logger.on_log(None, SimpleNamespace(global_step=step, is_world_process_zero=True), None, logs=logs)
    return read_jsonl(tmp_path / "m.jsonl")


def test_a_nan_loss_stops_the_stage(tmp_path):
    with pytest.raises(UserError, match=r"stage warmup: the loss is nan at step 2;.*fp16"):
        logger_rows(tmp_path, [{"loss": 2.0, "grad_norm": 1.0}, {"loss": float("nan"), "grad_norm": 1.0}])


def test_gradients_overflowing_on_every_step_stop_but_a_few_do_not(tmp_path):
    inf = float("inf")
    # GradScaler's first steps may overflow while it finds its scale: two in a row pass
    rows = logger_rows(tmp_path / "a", [{"loss": 2.0, "grad_norm": inf}, {"loss": 2.0, "grad_norm": inf},
                                        {"loss": 1.9, "grad_norm": 0.5}, {"loss": 1.8, "grad_norm": inf}])
    assert len(rows) == 4
    with pytest.raises(UserError, match="gradient norm is inf on 3 logged steps in a row"):
        logger_rows(tmp_path / "b", [{"loss": 2.0, "grad_norm": inf}] * 3)


# ---------------------------------------------------------------------------------------------------
# 5. eval holds one base at a time
# ---------------------------------------------------------------------------------------------------
def count_live_models_at_each_load(monkeypatch):
    import saro_lite.modeling.loading as loading

    loaded, live_at_load = [], []
    real_load = loading.load_model

    def tracking_load(*a, **k):
        gc.collect()  # what is still referenced now is what the new model loads beside
        live_at_load.append(sum(ref() is not None for ref in loaded))
        model = real_load(*a, **k)
        loaded.append(weakref.ref(model))
        return model

    monkeypatch.setattr(loading, "load_model", tracking_load)
    return live_at_load


def test_eval_with_an_extra_arm_holds_one_base_at_a_time(monkeypatch, tmp_path, tiny_run, tiny_recipe):
    from saro_lite.cli import main

    live_at_load = count_live_models_at_each_load(monkeypatch)
    run = tmp_path / "x"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("checkpoints", "eval", "report.*"))
    args = FAST + [f"output_dir={run}", "eval.arms=[base, rw, saro]", "eval.sets=[harmful]",
                   f"eval.extra_arms=[{{name: other, model: {tiny_recipe.model.name_or_path}}}, "
                   f"{{name: another, model: {tiny_recipe.model.name_or_path}}}]"]
    assert main(["--stages", "eval", *sets(*args)]) == 0
    assert live_at_load == [0, 0, 0]  # the kit's base (all three arms), then each extra arm alone


def test_full_finetuning_arms_load_one_model_at_a_time(monkeypatch, tmp_path, default_recipe):
    """model.finetune full: each arm is its own model; the eval loop releases one before the next loads."""
    import copy

    from rich.console import Console

    from saro_lite.context import Context
    from saro_lite.eval import run as eval_run
    from saro_lite.modeling.toy import tiny_model_path
    from saro_lite.pipeline import STAGES

    live_at_load = count_live_models_at_each_load(monkeypatch)
    r = copy.deepcopy(default_recipe)
    r.model.finetune, r.model.load_in_4bit = "full", False
    r.eval.arms, r.eval.sets, r.eval.limit_per_set, r.eval.max_new_tokens = ["base", "rw", "saro"], ["benign"], 2, 4
    r.eval.embedding_arms = []
    base = tiny_model_path(r)
    for stage in ("warmup", "srpo"):  # stand-ins for trained models: the base's own files
        shutil.copytree(base, tmp_path / stage / "model")
    ctx = Context(r, tmp_path, Console(quiet=True), model_path=str(base))
    eval_run(ctx)
    assert live_at_load == [0, 0, 0]
    assert STAGES["eval"]  # the stage table's eval is this run


# ---------------------------------------------------------------------------------------------------
# 6. several processes: one writer, one console
# ---------------------------------------------------------------------------------------------------
def test_two_processes_train_with_one_writer(tmp_path, tiny_run):
    """torchrun --nproc_per_node 2 on the CPU (gloo): warmup and srpo train in both processes; every
    step is logged once, the validation rows once, one console prints, the record is written once."""
    out = tmp_path / "ddp"
    shutil.copytree(tiny_run, out, ignore=shutil.ignore_patterns("checkpoints", "warmup", "srpo", "eval", "report.*",
                                                                  "figures"))
    for stage in ("warmup", "srpo"):
        (out / ".stages" / f"{stage}.json").unlink(missing_ok=True)
    args = sets(*FAST, f"output_dir={out}", "warmup.max_steps=6", "srpo.max_steps=4", "srpo.track_every=2",
                "warmup.save_steps=3", "srpo.save_steps=2")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531",
                        str(REPO / "run_all.py"), "--stages", "warmup,srpo", *args], cwd=REPO, capture_output=True,
                       text=True, timeout=900, env=env)
    assert p.returncode == 0, p.stderr[-4000:]
    assert [r["step"] for r in read_jsonl(out / "warmup/metrics.jsonl")] == list(range(1, 7))
    srpo_rows = read_jsonl(out / "srpo/metrics.jsonl")
    assert [r["step"] for r in srpo_rows if "loss" in r] == list(range(1, 5))
    assert [r["step"] for r in srpo_rows if "val/reward_margin" in r] == [0, 2, 4]
    assert p.stdout.count("stage warmup: done") == 1 and p.stdout.count("stage srpo: done") == 1
    assert json.loads((out / ".stages/srpo.json").read_text())["stage"] == "srpo"
    assert (out / "srpo/adapter/adapter_model.safetensors").exists()


def test_several_processes_run_training_stages_only(monkeypatch, tmp_path, tiny_run, capsys):
    from saro_lite.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setattr("saro_lite.ranks.barrier", lambda: None)
    assert main(["--stages", "srpo,eval", *sets(*FAST, f"output_dir={tmp_path}/r")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "2 processes (accelerate launch / torchrun) train only: --stages srpo; run eval as one process" in err


# ---------------------------------------------------------------------------------------------------
# 7. the memory estimate of full fine-tuning, the tracker's truncation
# ---------------------------------------------------------------------------------------------------
def test_full_finetuning_estimate_counts_what_a_gpu_run_holds(monkeypatch, default_recipe):
    """On a GPU in bf16, full fine-tuning loads fp32 weights (mixed precision): the estimate's weights, grads
    and optimizer state are those of the model as load_model gives it for training, counted tensor by tensor
    after one optimizer step (device_and_dtypes stands in for the GPU; the model runs on the CPU)."""
    import copy

    import torch

    from transformers import AutoModelForCausalLM

    import saro_lite.modeling.devices as devices
    from saro_lite.modeling import memory as M
    from saro_lite.modeling.devices import load_dtype
    from saro_lite.modeling.toy import tiny_model_path

    r = copy.deepcopy(default_recipe)
    r.model.finetune, r.model.load_in_4bit, r.model.dtype = "full", False, "bfloat16"
    path = tiny_model_path(r)
    monkeypatch.setattr(devices, "device_and_dtypes", lambda recipe: ("cuda", torch.bfloat16, torch.bfloat16))
    dtype = load_dtype(r, for_training=True)  # what load_model loads on the GPU (there: device_map cuda:0)
    monkeypatch.undo()
    assert dtype == torch.float32
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(2, 100, (1, 8))
    model(input_ids=ids, labels=ids).loss.backward()
    opt.step()
    nbytes = lambda ts: sum(t.numel() * t.element_size() for t in ts)  # noqa: E731
    est = M.estimate(r, "cuda")["warmup"]
    assert nbytes(model.parameters()) / M.GiB == pytest.approx(est["weights"], rel=0.02)  # fp32, not 2 bytes
    assert nbytes(p.grad for p in model.parameters()) / M.GiB == pytest.approx(est["grads"], rel=0.02)
    state = [v for s in opt.state.values() for k, v in s.items() if k != "step"]
    assert nbytes(state) / M.GiB == pytest.approx(est["optimizer"], rel=0.02)


_FULL_FT_STEP = """
import torch
from transformers import LlamaConfig, LlamaForCausalLM
from tools.memory_bench import _RssPeak
torch.manual_seed(0)
before = _RssPeak.rss()
cfg = LlamaConfig(hidden_size=512, num_hidden_layers=6, intermediate_size=1536, num_attention_heads=8,
                  num_key_value_heads=8, vocab_size=8192, tie_word_embeddings=False)
model = LlamaForCausalLM(cfg)
opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
ids = torch.randint(2, 8192, (1, 64))
with _RssPeak() as rss:
    for _ in range(2):
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
print(rss.peak - before)
"""


def test_full_finetuning_estimate_within_20_percent_of_a_measured_cpu_peak(default_recipe):
    """A full fine-tuning step on the CPU (fp32), resident-set peak above the loaded state vs the estimate:
    a model large enough (~25M parameters) that its weights, grads and AdamW state dominate the peak.
    Measured in a fresh process: inside a long test session the allocator reuses memory freed by earlier
    tests, and the resident set grows by less than the step really needs."""
    import copy

    from saro_lite.modeling import memory as M

    r = copy.deepcopy(default_recipe)
    r.model.finetune, r.model.load_in_4bit, r.model.dtype = "full", False, "float32"
    t = r.model.tiny
    t.hidden_size, t.num_hidden_layers, t.intermediate_size, t.num_attention_heads, t.num_key_value_heads = \
        512, 6, 1536, 8, 8
    t.vocab_size = 8192
    r.warmup.per_device_train_batch_size, r.warmup.max_length, r.warmup.gradient_checkpointing = 1, 64, False
    r.warmup.optim = "adamw_torch"
    out = subprocess.run([sys.executable, "-c", _FULL_FT_STEP], capture_output=True, text=True, check=True,
                         cwd=REPO)
    measured = int(out.stdout.strip().splitlines()[-1]) / M.GiB
    estimated = M.estimate(r, "cpu")["warmup"]["total"]
    assert estimated == pytest.approx(measured, rel=0.2), (estimated, measured)


def test_the_tracker_cuts_pairs_at_max_length_as_trl_does(tiny_tok):
    from saro_lite.training.tracking import encode_pairs

    long = " ".join(["word"] * 200)
    rows = [{"prompt": "Say hi.", "chosen": "Hi! " + long, "rejected": "No."},
            {"prompt": long, "chosen": "a", "rejected": "b"}]  # the prompt alone fills max_length
    full = encode_pairs(tiny_tok, rows)
    cut = encode_pairs(tiny_tok, rows, max_length=64)
    assert len(full) == 2 and len(full[0][0].input_ids) > 64
    assert len(cut) == 1  # TRL leaves out a pair whose prompt fills max_length
    chosen, rejected = cut[0]
    assert chosen.input_ids == full[0][0].input_ids[:64] and len(chosen.input_ids) == 64  # keep_start
    assert rejected.input_ids == full[0][1].input_ids and chosen.start == full[0][0].start
