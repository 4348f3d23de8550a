"""QLoRA preparation: the LoRA config from the recipe, 4-bit bases made trainable without upcasting, and
trainable weights kept in fp32."""
from __future__ import annotations

from ..recipe import Recipe


def lora_config(recipe: Recipe):
    from peft import LoraConfig

    m = recipe.model
    return LoraConfig(r=m.lora_r, lora_alpha=m.lora_alpha, lora_dropout=m.lora_dropout,
                      target_modules=m.lora_target_modules, task_type="CAUSAL_LM")


def prepare_for_qlora(model, gradient_checkpointing: bool) -> None:
    """What `prepare_model_for_kbit_training` does that QLoRA needs, without upcasting every
    non-quantized weight to fp32 (+2 GB on an 8B model): input grads for non-reentrant checkpointing.
    On the CPU, also keep the 4-bit weights in the layout that has a backward pass."""
    keep_4bit_differentiable(model)
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()


def keep_4bit_differentiable(model) -> int:
    """bitsandbytes (0.50) on a CPU with AVX512-BF16 repacks a 4-bit layer's weights for a fast kernel the
    first time the layer runs in eval mode without grad (reward tracking at SRPO step 0, TRL's reference
    pass), and from then on uses that kernel (`gemv_4bit`) in training too. It has no backward, so no
    gradient flows through the frozen base weights to the LoRA weights of earlier layers ("an autograd
    kernel was not registered ... silently incorrect"). Every model the kit loads stays off that path:
    training needs it, and for generation it computes in bf16 without being faster (SmolLM2-135M, 2
    cores, batch 32: 2.8 vs 2.6 s per decode step). A test compares the LoRA gradients with the fp32
    model's."""
    n = 0
    for module in model.modules():
        if getattr(module, "support_avx512bf16_for_cpu", False):
            module.support_avx512bf16_for_cpu = False
            n += 1
    return n


def cast_trainable_to_fp32(model) -> int:
    """TRL casts trainable LoRA weights of quantized models to bf16, where small DPO updates vanish
    (bf16 keeps 8 mantissa bits: an update under ~1/256 of a weight rounds away). Put them back in fp32 (autocast still computes in bf16 on GPU)."""
    import torch

    n = 0
    for p in model.parameters():
        if p.requires_grad and p.dtype != torch.float32:
            p.data = p.data.float()
            n += 1
    return n
