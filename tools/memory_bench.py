"""Measure peak GPU memory per stage on a random-weight model of a recipe's architecture (no download), beside
the estimate of saro_lite/modeling/memory.py. A maintainer tool, run from the repo root:

    python -m tools.memory_bench --recipe recipes/qwen2.5-7b-instruct.yaml            # the estimate table
    python -m tools.memory_bench --recipe recipes/qwen2.5-7b-instruct.yaml --bench    # + measured (GPU machine)
    python -m tools.memory_bench --recipe recipes/qwen2.5-1.5b-instruct.yaml --set srpo.max_length=1024

- `build_random(arch, path=None, dtype="bfloat16", family=None)`: a random-weight checkpoint of the
  architecture, written to `path` (a temp folder if None); load it with `modeling.loading.load_model`, i.e.
  with the same BitsAndBytesConfig 4-bit path as a real run.
- `bench(recipe, steps=3, device=None) -> {stage: {measured_allocated_gib, measured_reserved_gib,
  step_seconds, estimate_gib, ...}}`: real QLoRA SFT and DPO steps and one generation on that model.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

from saro_lite.modeling.memory import (EVAL_PROMPT_TOKENS, FAMILY_HEAD_DIM, GiB, Shape, estimate,  # noqa: F401
                                       format_table, peak, shape_of, vram_target_gb)


# --------------------------------------------------------------------------------------------
# A random-weight model of the architecture
# --------------------------------------------------------------------------------------------
def _config(shape: Shape, dtype: str):
    """A transformers config of the family with the recipe's numbers (LlamaConfig as the fallback)."""
    import transformers as tf

    common = dict(vocab_size=shape.vocab, hidden_size=shape.hidden, intermediate_size=shape.intermediate,
                  num_hidden_layers=shape.layers, num_attention_heads=shape.heads,
                  num_key_value_heads=shape.kv_heads, tie_word_embeddings=shape.tied,
                  max_position_embeddings=32768, bos_token_id=None, eos_token_id=1, pad_token_id=0)
    fam = shape.family
    if fam == "qwen2":
        return tf.Qwen2Config(**common)
    if fam == "qwen3":
        return tf.Qwen3Config(head_dim=shape.head_dim, **common)
    if fam == "gemma2":
        return tf.Gemma2Config(head_dim=shape.head_dim, **common)
    if fam == "gemma3":  # the text model only (no vision tower: ~0.2 GiB less than the real one)
        return tf.Gemma3TextConfig(head_dim=shape.head_dim, **common)
    if fam == "phi3":
        return tf.Phi3Config(**common)
    if fam == "mistral":
        return tf.MistralConfig(head_dim=shape.head_dim, **common)
    return tf.LlamaConfig(head_dim=shape.head_dim, **common)


def build_random(arch, path: str | Path | None = None, dtype: str = "bfloat16", family: str | None = None,
                 seed: int = 0) -> Path:
    """Write a random-weight checkpoint of the architecture to `path` (a new temp folder if None) and return it.

    `arch` is a Shape, a recipe (its model.arch / model.tiny), a ModelArch or a dict of ModelArch's fields.
    The model is built on the meta device (no init cost), materialized empty on the fastest device, filled
    with N(0, 0.02) (norms 1) and saved as safetensors in `dtype`. Load it back with `modeling.loading.load_model`
    (BitsAndBytesConfig 4-bit like a real run): `from_config` cannot quantize (bitsandbytes quantizes weights as from_pretrained loads them).

    Cost: writing the checkpoint is 2 bytes/param in bf16 -- ~15 GB and minutes for a 7-8B model, fine on a
    GPU machine with disk, too slow for the shared CPU machine. CPU tests use tiny shapes."""
    import tempfile

    import torch
    from transformers import AutoModelForCausalLM

    shape = _as_shape(arch, family)
    cfg = _config(shape, dtype)
    torch_dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[str(dtype)
                                                                                                  .replace("torch.", "")]
    cfg.dtype = torch_dtype
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch_dtype)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    model.to_empty(device=dev)
    gen = torch.Generator(device=dev).manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.fill_(1.0 if "norm" in name else 0.0)
            else:
                p.normal_(0.0, 0.02, generator=gen)
    model.tie_weights()
    out = Path(path) if path else Path(tempfile.mkdtemp(prefix="saro-random-"))
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    del model
    if dev == "cuda":
        torch.cuda.empty_cache()
    return out


def _as_shape(arch, family: str | None = None) -> Shape:
    if isinstance(arch, Shape):
        return replace(arch, family=family) if family else arch
    if hasattr(arch, "model") and hasattr(arch, "warmup"):  # a Recipe
        shape = shape_of(arch)
        return replace(shape, family=family) if family else shape
    get = (lambda k: arch.get(k)) if isinstance(arch, dict) else (lambda k: getattr(arch, k, None))
    fam = family or get("model_type") or "llama"
    H, nh = get("hidden_size"), get("num_attention_heads")
    return Shape(fam, H, get("num_hidden_layers"), nh, get("num_key_value_heads") or nh,
                 get("head_dim") or FAMILY_HEAD_DIM.get(fam) or H // nh, get("intermediate_size"),
                 get("vocab_size"), bool(get("tie_word_embeddings")))


# --------------------------------------------------------------------------------------------
# Measured: a few real QLoRA SFT and DPO steps and one generation on the random model
# --------------------------------------------------------------------------------------------
class _RssPeak:
    """Peak resident set size of this process while active (CPU measurement; sampled every 2 ms)."""

    def __init__(self):
        import threading

        self._stop = threading.Event()
        self.peak = self.rss()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as f:
            import os

            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _run(self):
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self.rss())

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


def _sync(on_gpu: bool):
    if on_gpu:
        import torch

        torch.cuda.synchronize()


def _measure(fn, steps: int, on_gpu: bool, baseline_rss: int) -> dict:
    """Run fn() `steps` times; peak memory over all of them and the mean seconds of the steps after the first."""
    import gc

    import torch

    gc.collect()
    if on_gpu:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    times = []
    with _RssPeak() as rss:
        for _ in range(steps):
            _sync(on_gpu)
            t0 = time.perf_counter()
            fn()
            _sync(on_gpu)
            times.append(time.perf_counter() - t0)
    secs = sum(times[1:]) / (len(times) - 1) if len(times) > 1 else times[0]
    if on_gpu:
        return {"measured_allocated_gib": torch.cuda.max_memory_allocated() / GiB,
                "measured_reserved_gib": torch.cuda.max_memory_reserved() / GiB, "step_seconds": secs}
    # CPU: the process' resident peak above the RSS before the model was loaded (noisy: allocator caching)
    return {"measured_allocated_gib": (rss.peak - baseline_rss) / GiB, "measured_reserved_gib": None,
            "step_seconds": secs}


def _optimizer(params, optim: str, on_gpu: bool, lr: float):
    import torch

    if on_gpu and "8bit" in optim:
        import bitsandbytes as bnb

        cls = bnb.optim.PagedAdamW8bit if optim.startswith("paged_") else bnb.optim.AdamW8bit
        return cls(params, lr=lr)
    return torch.optim.AdamW(params, lr=lr)


def bench(recipe, steps: int = 3, device: str | None = None, path: str | Path | None = None,
          stages: tuple[str, ...] = ("warmup", "srpo", "eval"), console=None) -> dict:
    """Measure peak memory and step time of the recipe's stages on a random-weight model (no download).

    A hand loop, not TRL's trainers (no tokenizer or dataset needed), doing what they do per micro-batch:
    the model loads through `modeling.loading.load_model` (4-bit NF4 via BitsAndBytesConfig in the model dtype),
    TRL's `add_fused_lm_head` is patched on, LoRA from `models.lora_config`, `prepare_for_qlora` (input grads
    + non-reentrant checkpointing), fp32 LoRA weights, bf16/fp16 autocast on a GPU, and the recipe's optimizer
    (paged_adamw_8bit -> bitsandbytes PagedAdamW8bit; adamw_torch on CPU like trainer_args).
    - warmup: `steps` SFT steps on b x L random tokens (every position a label: the worst case).
    - srpo: a frozen `ref` copy of the adapter; per step the policy forward on 2b x L tokens (chosen +
      rejected), the reference forward under no_grad with the `ref` adapter, the sigmoid DPO loss,
      backward, optimizer step; dropout off (DPOConfig.disable_dropout).
    - eval: one `generate` of eval.batch_size x EVAL_PROMPT_TOKENS prompts forced to eval.max_new_tokens.
    CUDA: torch.cuda.max_memory_allocated / reserved, reset per stage (the model and kept state count).
    CPU: resident-set peak minus the RSS before loading (noisy; use tiny shapes there).
    Returns {stage: {measured_allocated_gib, measured_reserved_gib, step_seconds, estimate_gib,
    estimate_torch_gib (= estimate without the CUDA context, the number to hold against reserved)}}."""
    import gc
    import shutil
    import tempfile

    import torch
    from peft import get_peft_model
    from trl.trainer.utils import add_fused_lm_head, disable_dropout_in_model, use_adapter

    from saro_lite.errors import UserError
    from saro_lite.modeling.devices import device_and_dtypes
    from saro_lite.modeling.loading import load_model
    from saro_lite.modeling.qlora import lora_config, prepare_for_qlora

    on_gpu = torch.cuda.is_available()
    if device == "cpu" and on_gpu:
        raise UserError("--device cpu: CUDA is visible; run with CUDA_VISIBLE_DEVICES= to measure on CPU")
    if device not in (None, "cpu") and not on_gpu:
        raise UserError(f"--device {device}: no CUDA device is visible")
    if recipe.model.finetune != "lora":
        raise UserError("model.finetune: the benchmark covers LoRA / QLoRA recipes only")
    est = estimate(recipe, "cuda" if on_gpu else "cpu")
    shape = shape_of(recipe)
    dev, dtype, _ = device_and_dtypes(recipe)
    log = console.print if console else (lambda *a, **k: None)
    baseline = _RssPeak.rss()
    tmp = None
    if path is None:
        tmp = Path(tempfile.mkdtemp(prefix="saro-membench-"))
        log(f"writing a random {shape.family} checkpoint ({shape.total_params() / 1e9:.2f}B params) to {tmp}")
        path = build_random(shape, tmp, str(dtype).replace("torch.", ""))
    results: dict[str, dict] = {}
    try:
        model = load_model(recipe, str(path))
        add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))
        gen = torch.Generator().manual_seed(recipe.seed)
        vocab = shape.vocab
        autocast = (torch.autocast("cuda", dtype=dtype) if on_gpu and dtype != torch.float32
                    else torch.autocast("cpu", enabled=False))

        def tokens(b: int, L: int):
            ids = torch.randint(2, vocab, (b, L), generator=gen).to(dev)
            return ids, torch.ones_like(ids)

        def trainable_fp32(m):
            for p in m.parameters():
                if p.requires_grad and p.dtype != torch.float32:
                    p.data = p.data.float()

        # ---- warmup (SFT) ----
        cfg = recipe.warmup
        prepare_for_qlora(model, cfg.gradient_checkpointing)
        peft_model = get_peft_model(model, lora_config(recipe))
        trainable_fp32(peft_model)
        peft_model.train()
        if "warmup" in stages:
            opt = _optimizer([p for p in peft_model.parameters() if p.requires_grad], cfg.optim, on_gpu,
                             cfg.learning_rate)
            ids, mask = tokens(cfg.per_device_train_batch_size, cfg.max_length)

            def sft_step():
                with autocast:
                    out = peft_model(input_ids=ids, attention_mask=mask, labels=ids, fused_lm_head=True,
                                     use_cache=False)
                out.loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)

            log("measuring warmup (SFT) steps")
            results["warmup"] = _measure(sft_step, steps, on_gpu, baseline)
            del opt, ids, mask
            gc.collect()

        # ---- srpo (DPO) ----
        cfg = recipe.srpo
        peft_model.add_adapter("ref", lora_config(recipe))
        for n, p in peft_model.named_parameters():
            if ".ref." in n:
                p.requires_grad_(False)
                p.data = p.data.float()
        peft_model.set_adapter("default")
        disable_dropout_in_model(peft_model)
        if "srpo" in stages:
            opt = _optimizer([p for p in peft_model.parameters() if p.requires_grad], cfg.optim, on_gpu,
                             cfg.learning_rate)
            b = cfg.per_device_train_batch_size
            ids, mask = tokens(2 * b, cfg.max_length)  # [chosen; rejected]
            beta = cfg.beta

            def dpo_step():
                with autocast:
                    out = peft_model(input_ids=ids, attention_mask=mask, labels=ids, fused_lm_head=True,
                                     use_cache=False)
                    logps = out.log_probs.sum(-1)
                    with torch.no_grad(), use_adapter(peft_model, "ref"):
                        ref = peft_model(input_ids=ids, attention_mask=mask, labels=ids, fused_lm_head=True,
                                         use_cache=False).log_probs.sum(-1)
                pc, pr = logps.float().chunk(2)
                rc, rr = ref.float().chunk(2)
                loss = -torch.nn.functional.logsigmoid(beta * ((pc - rc) - (pr - rr))).mean()
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)

            log("measuring srpo (DPO) steps")
            results["srpo"] = _measure(dpo_step, steps, on_gpu, baseline)
            del opt, ids, mask
            gc.collect()

        # ---- eval (generation) ----
        if "eval" in stages:
            peft_model.eval()
            e = recipe.eval
            ids, mask = tokens(e.batch_size, EVAL_PROMPT_TOKENS)

            def gen_step():
                with torch.no_grad(), autocast:
                    peft_model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=e.max_new_tokens,
                                        min_new_tokens=e.max_new_tokens, do_sample=False, pad_token_id=0,
                                        use_cache=True)

            log("measuring eval (generation)")
            results["eval"] = _measure(gen_step, 1, on_gpu, baseline)
            results["eval"]["step_seconds"] /= max(1, e.max_new_tokens)  # seconds per generated token
            results["eval"]["step_unit"] = "s/token"
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    for stage, row in results.items():
        row["estimate_gib"] = est[stage]["total"]
        row["estimate_torch_gib"] = est[stage]["total"] - est[stage]["cuda_context"]
    return results


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.memory_bench",
                                description="estimated (and, with --bench, measured) peak GPU memory per stage")
    p.add_argument("--recipe", default=None, help="recipe YAML (default: recipes/tiny-cpu.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe setting")
    p.add_argument("--bench", action="store_true",
                   help="build the architecture with random weights (no download) and measure real steps")
    p.add_argument("--steps", type=int, default=3, help="steps per training stage with --bench (default 3)")
    p.add_argument("--device", default=None, choices=("cpu", "cuda"), help="estimate for this device "
                   "(default: cuda for the estimate; the visible device for --bench)")
    p.add_argument("--model-path", default=None, help="--bench: reuse a random checkpoint written before")
    p.add_argument("--debug", action="store_true")
    args = p.parse_args(argv)

    from rich.console import Console

    from saro_lite.errors import UserError
    from saro_lite.recipe import load_recipe

    console = Console(highlight=False)
    try:
        recipe = load_recipe(args.recipe, args.set)
        device = args.device or "cuda"
        measured = None
        if args.bench:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
            measured = bench(recipe, max(1, args.steps), args.device, args.model_path, console=console)
        est = estimate(recipe, device)
        console.print(format_table(est, measured, title=f"peak memory (GiB), {recipe.stem}, {device}"))
        stage, top = peak(est)
        target = vram_target_gb(recipe.source_path) if recipe.source_path else None
        line = f"estimated peak: {top:.2f} GiB ({stage})"
        if target:
            line += f"; the recipe targets {target:g} GB" + (" -- over it" if top > target else "")
        console.print(line)
        for name, row in est.items():
            for note in row["notes"]:
                console.print(f"  {name}: {note}")
        if measured:
            console.print("measured: torch.cuda.max_memory_allocated / max_memory_reserved per stage (on CPU: the "
                          "resident-set peak above the RSS before loading); hold reserved against total - CUDA. "
                          "eval s/step is seconds per generated token.")
    except UserError as e:
        if args.debug:
            raise
        Console(stderr=True).print(f"[bold red]error:[/] {e}", soft_wrap=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
