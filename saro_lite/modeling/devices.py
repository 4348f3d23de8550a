"""Devices and dtypes: which device and dtype a model runs in, what a GPU must have to train, and freeing
memory between stages."""
from __future__ import annotations

import os

from ..errors import UserError
from ..recipe import Recipe


def auto_dtype(cuda: bool | None = None):
    """The one dtype chooser: bf16 on GPUs that compute in it natively (compute capability 8.0 and up:
    Ampere, Ada, Hopper), fp16 on older ones (T4, V100, RTX 20xx), fp32 on the CPU. Not
    `torch.cuda.is_bf16_supported()`: it also says yes where bf16 is only emulated, many times slower.
    cuda: None = whether a GPU is there."""
    import torch

    cuda = torch.cuda.is_available() if cuda is None else cuda
    if not cuda:
        return torch.float32
    major, _ = torch.cuda.get_device_capability()
    return torch.bfloat16 if major >= 8 else torch.float16


def device_and_dtypes(recipe: Recipe):
    """(device, model dtype, 4-bit compute dtype): model.dtype auto = auto_dtype()."""
    import torch

    names = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = auto_dtype() if recipe.model.dtype == "auto" else names[recipe.model.dtype]
    compute = dtype if recipe.model.bnb_4bit_compute_dtype == "auto" else names[recipe.model.bnb_4bit_compute_dtype]
    return device, dtype, compute


def load_dtype(recipe: Recipe, for_training: bool = False):
    """The dtype a model is loaded in. Full fine-tuning on a GPU in bf16/fp16 trains fp32 weights: the
    trainer's mixed precision (bf16/fp16 from trainer_args) computes in 16 bits under autocast while the
    weights and optimizer updates stay fp32; in bf16 weights an update below the weight's precision
    (2^-8 of it) rounds away. The frozen reference of a full-FT stage loads the same way, so the policy at
    step 0 is exactly the reference. Inference, and LoRA's frozen base, keep the 16-bit dtype."""
    import torch

    device, dtype, _ = device_and_dtypes(recipe)
    if for_training and recipe.model.finetune == "full" and device == "cuda" \
            and dtype in (torch.bfloat16, torch.float16):
        return torch.float32
    return dtype


def release_memory() -> None:
    """Free what a finished stage left behind before the next loads its model. TRL and accelerate patch
    a trained model's `forward` with references back to the model, so the trainer, the model and a 4-bit
    base (~5.5 GB at 7B) stay alive in reference cycles until a full collection; then the CUDA cache is
    handed back and the peak counters reset, so each stage's reported peak is its own."""
    import gc
    import sys

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


MIN_COMPUTE_CAPABILITY = (7, 0)  # Triton (TRL's kernels, bitsandbytes' paged optimizers) needs Volta or newer


def check_gpu_for_training(torch) -> None:
    """Stop in one line, before a training stage loads anything, on a setup the pinned stack cannot train on: a GPU older than Volta (Pascal,
    GTX 10xx: Triton has no kernels for it), or several GPUs visible to a plain `python run_all.py`
    (transformers would wrap the model in nn.DataParallel, which TRL's trainers refuse)."""
    if not torch.cuda.is_available():
        return
    cap = torch.cuda.get_device_capability()
    if tuple(cap) < MIN_COMPUTE_CAPABILITY:
        name = torch.cuda.get_device_name()
        raise UserError(f"GPU {name} (compute capability {cap[0]}.{cap[1]}) is older than Volta (7.0), which the "
                        "pinned TRL and bitsandbytes need; train on the CPU (CUDA_VISIBLE_DEVICES= python run_all.py "
                        "...) or on a newer GPU")
    n = torch.cuda.device_count()
    if n > 1 and int(os.environ.get("WORLD_SIZE", 1)) == 1:
        raise UserError(f"{n} GPUs are visible to one process; pick one with CUDA_VISIBLE_DEVICES=0 python run_all.py "
                        f"..., or use all of them with accelerate launch --num_processes {n} run_all.py ...")
