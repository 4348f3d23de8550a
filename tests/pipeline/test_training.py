"""Real mechanics on the tiny model: SFT lowers loss, SRPO starts at rewards exactly 0 and learns the
preference, the hand-written reward tracking matches a hand computation, TRL's own rewards and an
independent recomputation from the saved adapters; finished stages are skipped on rerun."""
import json

import pytest

from conftest import FAST, sets
from saro_lite.fileio import read_jsonl


def test_warmup_lowers_loss(tiny_run):
    rows = read_jsonl(tiny_run / "warmup/metrics.jsonl")
    assert len(rows) >= 10
    first = sum(r["loss"] for r in rows[:3]) / 3
    last = sum(r["loss"] for r in rows[-3:]) / 3
    assert last < first - 0.05
    assert (tiny_run / "warmup/adapter/adapter_config.json").exists()


def test_srpo_starts_at_exactly_zero_reward(tiny_run):
    rows = read_jsonl(tiny_run / "srpo/metrics.jsonl")
    val0 = next(r for r in rows if "val/reward_accuracy" in r)
    assert val0["step"] == 0
    assert val0["val/reward_margin"] == 0.0 and val0["val/reward_chosen"] == 0.0
    trl1 = next(r for r in rows if "rewards/margins" in r)
    assert trl1["step"] == 1 and abs(trl1["rewards/chosen"]) < 1e-6 and abs(trl1["rewards/rejected"]) < 1e-6


def test_srpo_learns_a_clear_preference(tiny_run):
    rows = read_jsonl(tiny_run / "srpo/metrics.jsonl")
    val = [r for r in rows if "val/reward_accuracy" in r]
    assert [r["step"] for r in val] == [0, 8, 16]  # step 0, every track_every, final
    assert val[-1]["val/reward_margin"] > 0.1
    assert val[-1]["val/reward_accuracy"] >= 0.75
    train = [r for r in rows if "rewards/accuracies" in r]
    assert train[-1]["loss"] < train[0]["loss"]
    assert (tiny_run / "figures/reward_tracking.png").stat().st_size > 5000


def test_resolved_recipe_records_every_setting(tiny_run):
    import yaml

    d = yaml.safe_load((tiny_run / "recipe.resolved.yaml").read_text())
    m = d["model"]
    assert "tiny-" in m["name_or_path"] and (tiny_run.parent / m["name_or_path"]).exists() or m["name_or_path"]
    for key in ("dtype", "load_in_4bit", "bnb_4bit_quant_type", "bnb_4bit_use_double_quant",
                "bnb_4bit_compute_dtype"):
        assert key in m
    assert m["dtype"] == "float32" and m["bnb_4bit_compute_dtype"] == "float32"
    assert d["srpo"]["beta"] == 0.1 and d["warmup"]["max_steps"] == 30


def _hand_logp(model, ids, start):
    """One token at a time, no batching, no padding: the definition."""
    import torch

    total = 0.0
    with torch.no_grad():
        for t in range(start, len(ids)):
            logits = model(input_ids=torch.tensor([ids[:t]])).logits[0, -1].float()
            total += torch.log_softmax(logits, -1)[ids[t]].item()
    return total


def test_tracking_math_matches_hand_computation(tiny_tok, default_recipe):
    import torch
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    from saro_lite.modeling.rendering import make_renderer
    from saro_lite.modeling.toy import tiny_model_path
    from saro_lite.training.tracking import encode_pairs, reward_stats, sequence_logps

    path = tiny_model_path(default_recipe)
    ref = AutoModelForCausalLM.from_pretrained(path)
    pol = AutoModelForCausalLM.from_pretrained(path)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in pol.parameters():
            p.add_(0.05 * torch.randn_like(p))
    r = make_renderer(default_recipe, tiny_tok)
    rows = [{"prompt": r.prompt("How do I kill a Python process?"),
             "chosen": r.response(["It is a routine task."], "Use kill."),
             "rejected": r.response(["Killing is violent."], "I can't help.")},
            {"prompt": r.pp_prompt("Make a pipe bomb", ["The user wants a weapon."]),
             "chosen": r.pp_continuation(["Wait — P1 forbids this."], "I can't help with that."),
             "rejected": r.pp_continuation(["I'll outline it."], "Sure. [details omitted]")}]
    enc = encode_pairs(tiny_tok, rows)
    seqs = [e for pair in enc for e in pair]
    hand_pol = [_hand_logp(pol, s.input_ids, s.start) for s in seqs]
    hand_ref = [_hand_logp(ref, s.input_ids, s.start) for s in seqs]
    plain = sequence_logps(pol, seqs, tiny_tok.pad_token_id, batch_size=3, fused=False)
    add_fused_lm_head(pol)
    fused = sequence_logps(pol, seqs, tiny_tok.pad_token_id, batch_size=4, fused=True)
    assert plain == pytest.approx(hand_pol, abs=2e-3) and fused == pytest.approx(hand_pol, abs=2e-3)
    beta = 0.1
    stats = reward_stats(beta, fused[0::2], fused[1::2], hand_ref[0::2], hand_ref[1::2])
    rc = [beta * (a - b) for a, b in zip(hand_pol[0::2], hand_ref[0::2])]
    rr = [beta * (a - b) for a, b in zip(hand_pol[1::2], hand_ref[1::2])]
    assert stats["val/reward_margin"] == pytest.approx(sum(c - x for c, x in zip(rc, rr)) / 2, abs=1e-3)
    assert stats["val/reward_accuracy"] == sum(c > x for c, x in zip(rc, rr)) / 2
    assert stats["val/reward_chosen"] == pytest.approx(sum(rc) / 2, abs=1e-3)


def test_tracking_agrees_with_trl_rewards(tiny_run, tiny_recipe, tokenizer):
    """Same weights, same pairs: the kit's val/* equals TRL's eval rewards/*."""
    from peft import PeftModel, set_peft_model_state_dict
    from safetensors.torch import load_file
    from trl import DPOConfig, DPOTrainer

    from saro_lite.modeling.loading import load_model
    from saro_lite.srpo import reset_policy_to_reference
    from saro_lite.training.examples import dpo_dataset
    from saro_lite.training.tracking import RewardTracker

    val = read_jsonl(tiny_run / "data/srpo_val.jsonl")
    policy = PeftModel.from_pretrained(load_model(tiny_recipe, tiny_recipe.model.name_or_path),
                                       str(tiny_run / "warmup/adapter"), is_trainable=True)
    args = DPOConfig(output_dir=str(tiny_run / "tmp_trl"), beta=0.1, per_device_eval_batch_size=len(val),
                     use_cpu=True, bf16=False, report_to=[], max_length=1024, dataset_num_proc=None)
    trainer = DPOTrainer(model=policy, ref_model=None, args=args, train_dataset=dpo_dataset(val),
                         eval_dataset=dpo_dataset(val), processing_class=tokenizer)
    reset_policy_to_reference(trainer.model)
    saro = load_file(str(tiny_run / "srpo/adapter/adapter_model.safetensors"))
    set_peft_model_state_dict(trainer.model, saro, adapter_name="default")
    trl = trainer.evaluate()
    tracker = RewardTracker(tokenizer, val, 0.1, 4, tiny_run / "tmp_trl/m.jsonl", None)
    mine = tracker.score(trainer.model, 0)
    assert abs(mine["val/reward_margin"]) > 0.01  # a real, non-trivial comparison
    assert mine["val/reward_margin"] == pytest.approx(trl["eval_rewards/margins"], abs=2e-3)
    assert mine["val/reward_chosen"] == pytest.approx(trl["eval_rewards/chosen"], abs=2e-3)
    assert mine["val/reward_accuracy"] == pytest.approx(trl["eval_rewards/accuracies"], abs=1e-6)


def test_last_tracking_row_matches_independent_recomputation(tiny_run, tiny_recipe, tokenizer):
    """From warmup/adapter, srpo/adapter and data/srpo_val.jsonl on the base the resolved recipe names,
    with plain logits (not the fused head the tracker uses)."""
    from peft import PeftModel

    from saro_lite.modeling.loading import load_model
    from saro_lite.training.tracking import encode_pairs, sequence_logps

    val = read_jsonl(tiny_run / "data/srpo_val.jsonl")
    last = [r for r in read_jsonl(tiny_run / "srpo/metrics.jsonl") if "val/reward_margin" in r][-1]
    model = PeftModel.from_pretrained(load_model(tiny_recipe, tiny_recipe.model.name_or_path),
                                      str(tiny_run / "warmup/adapter"), adapter_name="rw")
    model.load_adapter(str(tiny_run / "srpo/adapter"), adapter_name="saro")
    seqs = [e for pair in encode_pairs(tokenizer, val) for e in pair]
    model.set_adapter("rw")
    ref = sequence_logps(model, seqs, tokenizer.pad_token_id, fused=False)
    model.set_adapter("saro")
    pol = sequence_logps(model, seqs, tokenizer.pad_token_id, fused=False)
    rc = [0.1 * (p - q) for p, q in zip(pol[0::2], ref[0::2])]
    rr = [0.1 * (p - q) for p, q in zip(pol[1::2], ref[1::2])]
    assert last["val/reward_margin"] == pytest.approx(sum(c - r for c, r in zip(rc, rr)) / len(rc), abs=1e-3)
    assert last["val/reward_accuracy"] == pytest.approx(sum(c > r for c, r in zip(rc, rr)) / len(rc))
    # length-controlled: each side's reward over its own completion token count
    n = [len(e.input_ids) - e.start for e in seqs]
    tc = [c / k for c, k in zip(rc, n[0::2])]
    tr = [r / k for r, k in zip(rr, n[1::2])]
    assert n[0::2] != n[1::2]  # the sides differ in length, so the division matters
    assert last["val/reward_margin_per_token"] == pytest.approx(sum(c - r for c, r in zip(tc, tr)) / len(tc), abs=1e-4)
    assert last["val/reward_accuracy_per_token"] == pytest.approx(sum(c > r for c, r in zip(tc, tr)) / len(tc))


def test_rerun_skips_finished_stages(tiny_run, capsys):
    from saro_lite.cli import main

    before = (tiny_run / ".stages/srpo.json").read_text()
    rc = main(["--stages", "data,warmup,pairs,srpo", *sets(*FAST, f"output_dir={tiny_run}")])
    out = capsys.readouterr().out
    assert rc == 0 and out.count("skipped") >= 4
    assert (tiny_run / ".stages/srpo.json").read_text() == before


def test_changed_setting_reruns_that_stage_and_later_ones(tmp_path, tiny_run, capsys):
    """Copy the finished run, change srpo.beta: data, warmup, pairs are skipped, srpo runs again."""
    import shutil

    from saro_lite.cli import main
    from saro_lite.pipeline import Pipeline
    from saro_lite.recipe import load_recipe

    run = tmp_path / "copy"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("checkpoints", "tmp_trl"))
    args = FAST + [f"output_dir={run}", "srpo.max_steps=2", "srpo.track_every=0"]
    pipe = Pipeline(load_recipe(None, args), None, run)
    assert pipe.is_finished("warmup") and not pipe.is_finished("srpo")
    rc = main(["--stages", "data,warmup,pairs,srpo", *sets(*args)])
    out = capsys.readouterr().out
    assert rc == 0
    assert "stage warmup: skipped" in out and "stage pairs: skipped" in out and "stage srpo: done" in out
    state = json.loads((run / ".stages/srpo.json").read_text())
    assert state["settings"]["srpo"]["max_steps"] == 2
    assert not any("val/reward_margin" in r for r in read_jsonl(run / "srpo/metrics.jsonl"))  # track_every=0


def test_full_finetuning_on_a_gpu_trains_fp32_weights_under_mixed_precision(monkeypatch, default_recipe, tmp_path):
    """model.finetune full on CUDA with bf16: the trained model (and its frozen reference) load in fp32 and
    the trainer's bf16 autocast does the 16-bit compute, so small updates are not rounded away; eval and
    LoRA's frozen base stay bf16. No GPU here: device_and_dtypes and from_pretrained are stand-ins."""
    import copy
    import inspect

    import torch
    import transformers

    import saro_lite.baselines
    import saro_lite.modeling.devices as devices
    import saro_lite.modeling.loading as models
    import saro_lite.srpo
    import saro_lite.training.trainer as training
    import saro_lite.warmup

    fake = lambda recipe: ("cuda", torch.bfloat16, torch.bfloat16)  # noqa: E731
    monkeypatch.setattr(devices, "device_and_dtypes", fake)
    monkeypatch.setattr(models, "device_and_dtypes", fake)
    monkeypatch.setattr(training, "device_and_dtypes", fake)
    loaded = []
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained",
                        lambda path, **kw: loaded.append(kw) or torch.nn.Module())
    full = copy.deepcopy(default_recipe)
    full.model.finetune = "full"
    assert devices.load_dtype(full, for_training=True) == torch.float32
    models.load_model(full, "some/model", for_training=True)
    assert loaded[-1]["dtype"] == torch.float32 and "quantization_config" not in loaded[-1]
    models.load_model(full, "some/model")  # eval / inference: 16-bit
    assert loaded[-1]["dtype"] == torch.bfloat16
    lora = copy.deepcopy(default_recipe)
    lora.model.finetune, lora.model.load_in_4bit = "lora", True
    models.load_model(lora, "some/model", for_training=True)  # QLoRA: the frozen base stays 16-bit / 4-bit
    assert loaded[-1]["dtype"] == torch.bfloat16 and "quantization_config" in loaded[-1]
    full.model.dtype = "float32"  # fp32 on request: no mixed precision, fp32 weights anyway
    assert devices.load_dtype(full, for_training=True) == torch.float32
    full.model.dtype = "auto"
    args = training.trainer_args(full, full.warmup, tmp_path)
    assert args["bf16"] is True and args["fp16"] is False  # the trainer autocasts the fp32 weights to bf16
    monkeypatch.setattr(devices, "device_and_dtypes", lambda recipe: ("cpu", torch.float32, torch.float32))
    assert devices.load_dtype(full, for_training=True) == torch.float32
    # every training stage loads what it trains (and a full-FT reference) with for_training=True
    # (warmup and safety_sft load through the trainer skeleton's load_base_for_training)
    for fn in (training.load_base_for_training, saro_lite.srpo.load_policy_and_reference,
               saro_lite.baselines.train_dpo_from_base):
        src = inspect.getsource(fn)
        assert src.count("load_model(") == src.count("for_training=True") > 0, fn
