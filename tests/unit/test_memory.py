"""saro_lite.modeling.memory (and tools/memory_bench.py, which measures): the per-stage peak-memory estimate, checked three ways.

1. Arithmetic on every shipped recipe: it runs, it is monotone (bigger model, longer sequences, 16-bit
   weights -> more memory), the weight term matches a hand computation and the recipes' own claims.
2. Exactly on a tiny random model on CPU: parameter counts of every family, and the bytes of the LoRA
   params, their grads and the optimizer state after one real QLoRA step, read from the tensors.
3. Within a stated factor on the same tiny model: the activation bytes one decoder layer keeps for
   backward, read with torch.autograd.graph.saved_tensors_hooks (deterministic, unlike RSS).
The measured-peak benchmark on a real-size random model needs a GPU machine; here it runs once on a
tiny shape to prove the loop works.
"""
from __future__ import annotations

import re

import pytest

from saro_lite.modeling import memory as M
from tools import memory_bench as B  # the measuring half (maintainer tool)
from saro_lite.errors import UserError
from saro_lite.recipe import RECIPES_DIR, list_recipes, load_recipe

REAL = [p for p in list_recipes() if not p.stem.startswith("tiny")]


def est_of(name: str, *sets: str, device: str = "cuda") -> dict:
    return M.estimate(load_recipe(RECIPES_DIR / f"{name}.yaml", list(sets)), device)


# --------------------------------------------------------------------------------------------
# 1. Arithmetic on the shipped recipes
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", list_recipes(), ids=lambda p: p.stem)
def test_estimate_runs_for_every_recipe(path):
    from rich.console import Console

    est = M.estimate(load_recipe(path))
    assert {"warmup", "srpo", "eval"} <= set(est)
    for stage, row in est.items():
        parts = sum(row[c] for c in M.COMPONENTS)
        assert row["total"] == pytest.approx(parts)
        assert all(row[c] >= 0 for c in M.COMPONENTS), stage
        assert 0 < row["total"] < 80, stage
    assert est["srpo"]["activations"] > est["warmup"]["activations"]  # DPO: chosen + rejected
    console = Console(width=160, record=True)
    console.print(M.format_table(est))
    assert "srpo" in console.export_text()


def test_bigger_models_need_more():
    """7-8B > 3-4B > 1.5B, on the weights and on every training stage's total."""
    by_size = {p.stem: load_recipe(p) for p in REAL}
    params = {k: M.shape_of(r).total_params() / 1e9 for k, r in by_size.items()}
    big = [k for k, b in params.items() if b >= 6.5]
    mid = [k for k, b in params.items() if 2.9 <= b <= 4.5]
    assert len(big) >= 4 and len(mid) >= 4, params
    ests = {k: M.estimate(r) for k, r in by_size.items()}
    small = ests["qwen2.5-1.5b-instruct"]
    for key in ("weights",):
        assert min(ests[k]["warmup"][key] for k in big) > max(ests[k]["warmup"][key] for k in mid)
        assert min(ests[k]["warmup"][key] for k in mid) > small["warmup"][key]
    for stage in ("warmup", "srpo"):
        assert min(ests[k][stage]["total"] for k in big) > max(ests[k][stage]["total"] for k in mid)
        assert min(ests[k][stage]["total"] for k in mid) > small[stage]["total"]
    q = [ests[f"qwen2.5-{s}-instruct"]["srpo"]["total"] for s in ("0.5b", "1.5b", "3b", "7b")]
    assert q == sorted(q) and len(set(q)) == 4


@pytest.mark.parametrize("name", ["qwen2.5-1.5b-instruct", "gemma-2-2b-it", "llama-3.1-8b-instruct"])
def test_longer_sequences_and_batches_need_more_activations(name):
    short = est_of(name, "warmup.max_length=512", "srpo.max_length=512")
    long = est_of(name, "warmup.max_length=4096", "srpo.max_length=4096")
    for stage in ("warmup", "srpo"):
        assert long[stage]["activations"] > 4 * short[stage]["activations"] * 0.9
        assert long[stage]["weights"] == short[stage]["weights"]
    b1 = est_of(name, "warmup.per_device_train_batch_size=1")
    b4 = est_of(name, "warmup.per_device_train_batch_size=4")
    assert b4["warmup"]["activations"] > 3 * b1["warmup"]["activations"]
    ckpt = est_of(name, "warmup.gradient_checkpointing=true")
    no_ckpt = est_of(name, "warmup.gradient_checkpointing=false")
    assert no_ckpt["warmup"]["activations"] > 3 * ckpt["warmup"]["activations"]
    more_new = est_of(name, "eval.max_new_tokens=4096")
    assert more_new["eval"]["kv_cache"] > est_of(name)["eval"]["kv_cache"]


@pytest.mark.parametrize("name", ["qwen2.5-0.5b-instruct", "qwen2.5-7b-instruct", "mistral-7b-instruct-v0.3"])
def test_4bit_weights_are_smaller_than_16bit(name):
    q4 = est_of(name)["warmup"]["weights"]
    f16 = est_of(name, "model.load_in_4bit=false")["warmup"]["weights"]
    shape = M.shape_of(load_recipe(RECIPES_DIR / f"{name}.yaml"))
    assert f16 == pytest.approx(shape.total_params() * 2 / M.GiB)
    assert q4 < f16 / 1.5
    no_dq = est_of(name, "model.bnb_4bit_use_double_quant=false")["warmup"]["weights"]
    assert q4 < no_dq < f16  # double quantization saves ~0.37 bit/param


def test_weights_match_a_hand_computation():
    """Qwen2.5-7B from its config.json numbers: 4-bit linear layers + bf16 untied embedding and lm_head."""
    H, n, nh, nkv, I, V = 3584, 28, 28, 4, 18944, 152064
    d = H // nh
    linear = n * (H * nh * d + 2 * H * nkv * d + nh * d * H + 3 * H * I)
    hand = linear * 0.5 + 2 * V * H * 2  # bytes; quantization constants, norms, biases left out
    assert linear / 1e9 == pytest.approx(6.53, abs=0.01)
    got = est_of("qwen2.5-7b-instruct")["warmup"]["weights"] * M.GiB
    assert got == pytest.approx(hand, rel=0.10)
    assert got > hand  # the constants are on top
    # the real model's parameter count (7.62B), from the arch numbers alone
    assert M.shape_of(load_recipe(RECIPES_DIR / "qwen2.5-7b-instruct.yaml")).total_params() / 1e9 == \
        pytest.approx(7.62, abs=0.01)


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.stem)
def test_recipe_claims(path):
    """Each real recipe states its weight size (4-bit, or 16-bit for a model too small to need 4-bit) and a
    VRAM target: the estimate agrees with both."""
    text = path.read_text(encoding="utf-8")
    claimed = re.search(r"(?:4-bit )?weights ~([\d.]+) GB", text)
    target = M.vram_target_gb(path)
    assert claimed and target, "a real recipe states its weights and its VRAM target"
    est = M.estimate(load_recipe(path))
    weights_gb = est["warmup"]["weights"] * M.GiB / 1e9
    assert weights_gb == pytest.approx(float(claimed.group(1)), rel=0.10)
    stage, top = M.peak(est)
    assert top <= target, f"{path.stem}: estimated {top:.2f} GiB in {stage} > target {target} GB"


def test_family_and_head_dim():
    assert M.family_of("Qwen/Qwen2.5-7B-Instruct") == "qwen2"
    assert M.family_of("Qwen/Qwen3-4B") == "qwen3"
    assert M.family_of("google/gemma-2-2b-it") == "gemma2"
    assert M.family_of("google/gemma-3-4b-it") == "gemma3"
    assert M.family_of("microsoft/Phi-4-mini-instruct") == "phi3"
    assert M.family_of("mistralai/Mistral-7B-Instruct-v0.3") == "mistral"
    assert M.family_of("some/unknown-model") == "llama"
    assert M.shape_of(load_recipe(RECIPES_DIR / "qwen3-4b.yaml")).head_dim == 128  # not 2560 / 32
    assert M.shape_of(load_recipe(RECIPES_DIR / "gemma-2-2b-it.yaml")).head_dim == 256


def test_missing_arch_is_one_clear_error():
    r = load_recipe(RECIPES_DIR / "tiny-cpu.yaml", ["model.name_or_path=org/some-model"])
    with pytest.raises(UserError, match="model.arch.hidden_size"):
        M.estimate(r)


def test_reference_and_self_path_options():
    base = est_of("qwen2.5-1.5b-instruct")
    assert "pairs" not in base
    selfp = est_of("qwen2.5-1.5b-instruct", "pairs.source=self")
    assert selfp["pairs"]["kv_cache"] > 0 and selfp["pairs"]["grads"] == 0
    pre = est_of("qwen2.5-7b-instruct", "srpo.precompute_ref_log_probs=true")
    assert any("host RAM" in n for n in pre["srpo"]["notes"])
    # the reference is an adapter on the same base: no second copy of the weights
    assert base["srpo"]["reference"] < 0.5 * base["srpo"]["weights"]
    full = est_of("qwen2.5-0.5b-instruct", "model.finetune=full", "model.load_in_4bit=false")
    assert full["srpo"]["reference"] >= full["srpo"]["weights"]  # a second full model
    unfused = M.estimate(load_recipe(RECIPES_DIR / "qwen2.5-7b-instruct.yaml"), fused_lm_head=False)
    assert unfused["warmup"]["lm_head"] > 5 * est_of("qwen2.5-7b-instruct")["warmup"]["lm_head"]


def test_cli_prints_the_table(capsys):
    assert B.main(["--recipe", str(RECIPES_DIR / "qwen2.5-7b-instruct.yaml")]) == 0
    out = capsys.readouterr().out
    assert "srpo" in out and "estimated peak" in out and "targets 12 GB" in out
    assert B.main(["--recipe", str(RECIPES_DIR / "tiny-cpu.yaml"), "--set",
                   "model.name_or_path=org/x"]) == 2


# --------------------------------------------------------------------------------------------
# 2 and 3. A tiny random model on CPU
# --------------------------------------------------------------------------------------------
TINY = dict(hidden_size=128, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=1000)


def tiny_recipe(path, *extra: str):
    sets = [f"model.name_or_path={path}", *[f"model.arch.{k}={v}" for k, v in TINY.items()],
            "model.finetune=lora", "model.load_in_4bit=true", "model.lora_dropout=0.05", "warmup.max_length=64",
            "warmup.per_device_train_batch_size=2", "warmup.gradient_accumulation_steps=1", "srpo.loss_type=[sigmoid]",
            "srpo.max_length=64", "srpo.per_device_train_batch_size=1", "srpo.track_every=0",
            "eval.batch_size=2", "eval.max_new_tokens=4", "eval.arms=[base, rw, saro]", *extra]
    return load_recipe(RECIPES_DIR / "tiny-cpu.yaml", sets)


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("random-tiny")
    r = tiny_recipe(path)
    return B.build_random(M.shape_of(r), path, "float32")


@pytest.mark.parametrize("family", ["llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3", "phi3"])
def test_random_model_of_every_family_has_the_estimated_parameter_count(tmp_path, family):
    import torch
    from transformers import AutoModelForCausalLM

    for tied in (False, True):
        shape = M.Shape(family, 64, 2, 4, 2, 32 if family.startswith("gemma") else 16, 160, 512, tied)
        path = B.build_random(shape, tmp_path / f"{family}-{tied}", "float32")
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        assert sum(p.numel() for p in model.parameters()) == shape.total_params()
        assert model.config.tie_word_embeddings == tied


def _tensor_bytes(t) -> int:
    return t.numel() * t.element_size()


def _quantized_weight_bytes(model) -> tuple[int, int]:
    """(bytes of the 4-bit linear layers with their quantization state, bytes of everything else)."""
    q, other = 0, 0
    for _, p in model.named_parameters():
        qs = getattr(p, "quant_state", None)
        if qs is None:
            other += _tensor_bytes(p)
            continue
        q += _tensor_bytes(p) + _tensor_bytes(qs.absmax) + _tensor_bytes(qs.code)
        if getattr(qs, "nested", False):
            q += _tensor_bytes(qs.state2.absmax) + _tensor_bytes(qs.state2.code) + _tensor_bytes(qs.offset)
    return q, other


def test_lora_grads_optimizer_exact_and_weights_close(tiny_path):
    """After one real QLoRA step on CPU (bitsandbytes NF4, torch AdamW as trainer_args picks on CPU), the
    LoRA params, grads and AdamW state in the tensors equal the estimate's components to the byte; the
    4-bit weights with their quantization state are within 10% (bitsandbytes adds a 256-entry code table
    per tensor, which only matters on tensors this small)."""
    import torch
    from peft import get_peft_model

    from saro_lite.modeling.loading import load_model
    from saro_lite.modeling.qlora import lora_config, prepare_for_qlora

    r = tiny_recipe(tiny_path)
    est = M.estimate(r, "cpu")["warmup"]
    model = load_model(r, str(tiny_path))
    assert getattr(model, "is_loaded_in_4bit", False)
    qbytes, other = _quantized_weight_bytes(model)
    assert (qbytes + other) / M.GiB == pytest.approx(est["weights"], rel=0.10)
    shape = M.shape_of(r)
    assert other == shape.other_params() * 4  # fp32 on CPU: embeddings, lm_head, norms

    prepare_for_qlora(model, True)
    pm = get_peft_model(model, lora_config(r))
    params = [p for p in pm.parameters() if p.requires_grad]
    assert all(p.dtype == torch.float32 for p in params)
    opt = torch.optim.AdamW(params, lr=1e-3)
    ids = torch.randint(2, shape.vocab, (2, 64))
    pm(input_ids=ids, labels=ids).loss.backward()
    opt.step()
    lora = sum(_tensor_bytes(p) for p in params)
    grads = sum(_tensor_bytes(p.grad) for p in params)
    state = sum(_tensor_bytes(v) for s in opt.state.values() for k, v in s.items() if k != "step")
    assert lora / M.GiB == pytest.approx(est["lora"], rel=1e-9)
    assert grads / M.GiB == pytest.approx(est["grads"], rel=1e-9)
    assert state / M.GiB == pytest.approx(est["optimizer"], rel=1e-9)
    # the same counts for bitsandbytes' 8-bit AdamW: 2 bytes/param, 8 under 4096 elements
    sizes = [p.numel() for p in params]
    assert M.optimizer_bytes(sizes, "paged_adamw_8bit") == sum(2 * n if n >= 4096 else 8 * n for n in sizes)


@pytest.mark.parametrize("dropout", [0.0, 0.05])
def test_layer_activation_estimate_within_factor(tiny_path, dropout):
    """Bytes one decoder layer saves for backward (what gradient checkpointing recomputes), read with
    saved_tensors_hooks on the 4-bit model, vs layer_bytes_per_token x tokens. Allowed: estimate/measured
    in [0.75, 1.35]. The formula is an upper-bound model for a GPU: it counts k and v repeated to all heads
    (sdpa with a padding mask), while this batch has no padding, so native GQA keeps them at nkv heads; and
    CPU dropout keeps fp32 noise tensors where CUDA keeps bool masks. Measured ratios on this shape: ~1.07
    without dropout, ~0.89 with it."""
    import torch
    from peft import get_peft_model

    from saro_lite.modeling.loading import load_model
    from saro_lite.modeling.qlora import lora_config

    r = tiny_recipe(tiny_path, f"model.lora_dropout={dropout}")
    model = load_model(r, str(tiny_path))
    pm = get_peft_model(model, lora_config(r))
    pm.train()
    layer = pm.base_model.model.model.layers[0]
    known = {t.untyped_storage().data_ptr() for t in list(pm.parameters()) + list(pm.buffers())}
    inside, saved, layer_input = [False], {}, []

    def pre(mod, args, kwargs):
        inside[0] = True
        layer_input.append(args[0] if args else kwargs["hidden_states"])

    def post(mod, args, kwargs, out):
        inside[0] = False

    def pack(t):
        if inside[0]:
            st = t.untyped_storage()
            if st.data_ptr() not in known:
                saved[st.data_ptr()] = st.nbytes()
        return t

    layer.register_forward_pre_hook(pre, with_kwargs=True)
    layer.register_forward_hook(post, with_kwargs=True)
    B, L = 2, 64
    ids = torch.randint(2, TINY["vocab_size"], (B, L))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        pm(input_ids=ids, labels=ids)
    saved.pop(layer_input[0].untyped_storage().data_ptr(), None)  # the checkpoint itself, counted apart
    measured = sum(saved.values())
    estimated = B * L * M.layer_bytes_per_token(M.shape_of(r), 4, dropout > 0, r.model.lora_r)
    assert 0.75 <= estimated / measured <= 1.35, (estimated, measured)


def test_bench_runs_on_a_tiny_shape(tiny_path):
    """The benchmark loop end to end on CPU (RSS-based numbers are only smoke-checked here)."""
    r = tiny_recipe(tiny_path, "eval.batch_size=1")
    out = B.bench(r, steps=2, path=tiny_path)
    assert set(out) == {"warmup", "srpo", "eval"}
    est = M.estimate(r, "cpu")
    for stage, row in out.items():
        assert row["step_seconds"] > 0
        assert row["measured_allocated_gib"] is not None
        assert row["estimate_gib"] == pytest.approx(est[stage]["total"])
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(M.format_table(est, out))
    assert "s/step" in console.export_text()
