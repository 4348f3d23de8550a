"""Tokenizer and model loading (4-bit NF4 via BitsAndBytesConfig, LoRA via PEFT), the offline tiny
model builder, and the ONE rendering path from records to text used by warmup, srpo, eval and judges.

Rendering (why it lives in one place: chat-template/EOS mismatches are the most common silent bug
in SFT -> DPO pipelines):

    prompt text   = the model's chat template applied to [system?, user], with the generation prompt
    response text = "<think>\\n" + steps joined by blank lines + "\\n</think>\\n\\n" + answer + END_OF_TURN

END_OF_TURN is the token the template puts after an assistant message (`<|im_end|>` for ChatML,
`<|eot_id|>` for Llama 3, `<end_of_turn>` for Gemma, ...). The tokenizer's `eos_token` is set to it,
so TRL appends nothing extra and generation stops at the end of the turn.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..errors import UserError
from .sources import hub_error as _hub_error
from ..reasoning import parse_reasoning  # noqa: F401  (the one rule; re-exported for the renderer's users)
from ..recipe import Recipe, cache_dir, fingerprint

# ChatML with {% generation %} markers (so TRL's assistant masks work too).
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] + '<|im_end|>' }}"
    "{% endgeneration %}{% else %}{{ message['content'] + '<|im_end|>' }}{% endif %}{{ '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
TINY_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Renderer:
    """Turns records into the exact strings that are trained, scored and generated from."""

    tokenizer: object
    end_of_turn: str
    system_prompt: str | None = None
    open_tag: str = "<think>"
    close_tag: str = "</think>"
    content_prefix: str = ""  # what the template writes before assistant content (Mistral: a space)
    template_kwargs: tuple = ()  # extra chat-template variables, e.g. (("date_string", "26 Jul 2024"),)

    def prompt(self, user: str) -> str:
        messages = [{"role": "user", "content": user}]
        if self.system_prompt:
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                                  **dict(self.template_kwargs))
        return strip_auto_bos(self.tokenizer, text)

    def reasoning(self, steps: Iterable[str]) -> str:
        return "\n\n".join(s.strip() for s in steps)

    def response(self, steps: Iterable[str], answer: str) -> str:
        """A whole assistant turn, ending exactly at the end-of-turn token."""
        return (f"{self.content_prefix}{self.open_tag}\n{self.reasoning(steps)}\n{self.close_tag}\n\n"
                f"{answer.strip()}{self.end_of_turn}")

    def pp_prompt(self, user: str, prefix: list[str]) -> str:
        """Process-level pairs: the shared prefix goes into the prompt, after the generation prompt
        and the opening reasoning tag, so the two continuations differ from step k on."""
        return f"{self.prompt(user)}{self.content_prefix}{self.open_tag}\n{self.reasoning(prefix)}\n\n"

    def pp_continuation(self, steps: list[str], answer: str) -> str:
        return f"{self.reasoning(steps)}\n{self.close_tag}\n\n{answer.strip()}{self.end_of_turn}"

    def on_token_boundary(self, prompt: str, *completions: str) -> tuple[str, list[str]]:
        """`split_on_token_boundary` with this renderer's tokenizer."""
        return split_on_token_boundary(self.tokenizer, prompt, list(completions))

    def parse(self, text: str) -> tuple[list[str], str]:
        """Generated or teacher text -> (reasoning steps, final answer). Inverse of `response`."""
        text = text.replace(self.end_of_turn, "") if self.end_of_turn else text
        steps, answer = parse_reasoning(text, self.open_tag, self.close_tag)
        return steps, answer


def split_on_token_boundary(tokenizer, prompt: str, completions: list[str]) -> tuple[str, list[str]]:
    """Move the prompt/completion boundary back until the prompt's tokens are a prefix of every
    prompt+completion's tokens; the joined texts stay exactly the same.

    A real BPE merges across the boundary: a PP-COT prompt ends with the blank line after the last shared
    step, and in the full text that blank line tokenizes together with the next step's first word. TRL
    then scores from where the token lists diverge and warns that the end of the prompt is left out; the
    kit's tracking would score another split than TRL. Ending the prompt earlier (here: before the blank
    line) makes both see one tokenization, the one of the whole text. Tokenized as TRL does
    (add_special_tokens=False)."""
    def enc(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    fulls = [enc(prompt + c) for c in completions]

    def is_prefix(k: int) -> bool:
        ids = enc(prompt[:k])
        return all(f[:len(ids)] == ids for f in fulls)

    if not completions or is_prefix(len(prompt)):
        return prompt, list(completions)
    try:  # cut points: where tokens start in the whole text, latest first
        offsets = tokenizer(prompt + completions[0], add_special_tokens=False,
                            return_offsets_mapping=True)["offset_mapping"]
        cuts = sorted({start for start, _ in offsets if 0 < start < len(prompt)}, reverse=True)
    except (NotImplementedError, ValueError, KeyError, TypeError):  # a slow tokenizer: step back by characters
        cuts = range(len(prompt) - 1, max(0, len(prompt) - 64), -1)
    for k in cuts:
        if is_prefix(k):
            return prompt[:k], [prompt[k:] + c for c in completions]
    return prompt, list(completions)


def strip_auto_bos(tokenizer, text: str) -> str:
    """Templates that write BOS into the text (Llama 3, Gemma) would get a second one when TRL and
    generation tokenize with special tokens; drop the written one and let the tokenizer add it."""
    bos = getattr(tokenizer, "bos_token", None)
    if bos and text.startswith(bos):
        ids = tokenizer("x")["input_ids"]
        if ids and ids[0] == tokenizer.bos_token_id:
            return text[len(bos):]
    return text


def detect_assistant_prefix(tokenizer, **template_kwargs) -> str:
    """Whitespace the template writes between the generation prompt and the assistant content
    (Mistral v0.3 writes "[/INST] " + content); "" for most templates."""
    marker = "QZXJ"
    user = [{"role": "user", "content": "hi"}]
    prompt = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True, **template_kwargs)
    full = tokenizer.apply_chat_template(user + [{"role": "assistant", "content": marker}], tokenize=False,
                                         **template_kwargs)
    if full.startswith(prompt):
        between = full[len(prompt):full.find(marker, len(prompt))]
        if between and not between.strip():
            return between
    return ""


def detect_end_of_turn(tokenizer, **template_kwargs) -> str:
    """The special token the chat template writes right after an assistant message."""
    marker = "QZXJ"
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": marker}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, **template_kwargs)
    tail = text[text.rindex(marker) + len(marker):]
    specials = set(getattr(tokenizer, "all_special_tokens", [])) | set(tokenizer.get_added_vocab())
    for tok in sorted(specials, key=len, reverse=True):
        if tok and tail.startswith(tok):
            return tok
    eos = f" (this tokenizer's EOS is {tokenizer.eos_token!r})" if tokenizer.eos_token else ""
    raise UserError(f"model.end_of_turn: the chat template writes no special token after an assistant reply (it "
                    f"writes {tail[:24]!r}); set model.end_of_turn to the token a reply should end with{eos}")


def check_template_keeps_reply(tokenizer, open_tag: str, close_tag: str, **template_kwargs) -> None:
    """The kit trains on prompt + reply exactly as the chat template renders them; a template that rewrites
    the assistant's reply (DeepSeek-R1-style templates drop the reasoning block) would make that text
    something the template never writes. One line says what to set instead."""
    reply = f"{open_tag}\nQZXJ step\n{close_tag}\n\nQZXJ answer"
    text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}, {"role": "assistant", "content": reply}],
                                         tokenize=False, **template_kwargs)
    if reply not in text:
        raise UserError(f"model.chat_template: the model's chat template rewrites the assistant reply (it drops or "
                        f"changes the {open_tag} reasoning block), so training text would differ from what the "
                        f"template renders; set model.chat_template to a template (file or string) that keeps the "
                        f"reply as written")


def make_renderer(recipe: Recipe, tokenizer) -> Renderer:
    kwargs = dict(recipe.model.chat_template_kwargs)
    check_template_keeps_reply(tokenizer, recipe.model.reasoning_open, recipe.model.reasoning_close, **kwargs)
    return Renderer(
        tokenizer=tokenizer,
        end_of_turn=tokenizer.eos_token,  # load_tokenizer sets eos_token to the end-of-turn token
        system_prompt=recipe.model.system_prompt,
        open_tag=recipe.model.reasoning_open,
        close_tag=recipe.model.reasoning_close,
        content_prefix=detect_assistant_prefix(tokenizer, **kwargs),
        template_kwargs=tuple(sorted(kwargs.items())),
    )


# --------------------------------------------------------------------------------------------
# The tiny offline model
# --------------------------------------------------------------------------------------------
def tiny_corpus() -> list[str]:
    """Text the tiny BPE is trained on: the starter pack and the policy (what the kit will feed it)."""
    import json

    starter = Path(__file__).resolve().parent.parent / "starter"
    texts: list[str] = []
    for f in sorted(starter.rglob("*.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            if line.strip():
                texts.extend(_strings(json.loads(line)))
    policy = starter / "policy.md"
    if policy.exists():
        texts.extend(p for p in policy.read_text(encoding="utf-8").split("\n\n") if p.strip())
    texts.append("<think>\n\n</think>\n\n[details omitted] 0123456789 A) B) C) D)")
    return texts


# Record fields the model never reads (labels and bookkeeping): kept out of the tokenizer's corpus, so
# relabelling the data (a new category, an intent slug) does not change the tiny model.
METADATA_FIELDS = frozenset({"id", "kind", "category", "source", "intent", "wrapper", "type", "prompt_key",
                             "template", "template_family", "base_id", "base_prompt"})


def _strings(obj) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for k, v in obj.items() if k not in METADATA_FIELDS for s in _strings(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in _strings(v)]
    return []


def build_tiny(out_dir: str | Path, spec, texts: list[str]) -> Path:
    """Byte-level BPE + a small LlamaForCausalLM with random weights, saved like a hub model."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.post_processor = processors.ByteLevel(trim_offsets=False)
    bpe.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=spec.vocab_size, special_tokens=TINY_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|pad|>",
                                  model_max_length=spec.max_position_embeddings, chat_template=TINY_CHAT_TEMPLATE)
    torch.manual_seed(spec.seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=spec.hidden_size, intermediate_size=spec.intermediate_size,
                      num_hidden_layers=spec.num_hidden_layers, num_attention_heads=spec.num_attention_heads,
                      num_key_value_heads=spec.num_key_value_heads,
                      max_position_embeddings=spec.max_position_embeddings, bos_token_id=None,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return out_dir


def tiny_model_path(recipe: Recipe, console=None) -> Path:
    """Build the tiny model once per settings (and corpus) into the shared cache; reuse it after."""
    import dataclasses

    texts = tiny_corpus()
    key = fingerprint({"spec": dataclasses.asdict(recipe.model.tiny), "corpus": fingerprint(texts), "v": 2})
    path = cache_dir(recipe) / "models" / f"tiny-{key}"
    if (path / "config.json").exists() and (path / "tokenizer.json").exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tiny-", dir=path.parent))
    try:
        build_tiny(tmp, recipe.model.tiny, texts)
        if recipe.model.tiny.pretrain_steps:
            from .toy import pretrain_base

            if console:
                console.print(f"pretraining the tiny base: {recipe.model.tiny.pretrain_steps} steps of full "
                              f"fine-tuning on generic chat (cached after the first run)")
            info = pretrain_base(tmp, recipe.model.tiny, recipe.model.tiny.seed)
            if console:
                console.print(f"tiny base: loss {info['first_loss']:.2f} -> {info['last_loss']:.2f} "
                              f"in {info['seconds']:.0f} s")
        if console:
            console.print(f"built the tiny model in {path}")
        from ..fileio import set_open_permissions

        set_open_permissions(tmp)  # mkdtemp and safetensors make owner-only folders and files
        try:
            os.replace(tmp, path)  # atomic: another process may have built it meanwhile
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def resolve_model_path(recipe: Recipe, console=None) -> str:
    if recipe.model.name_or_path == "tiny":
        return str(tiny_model_path(recipe, console))
    from .sources import resolve_source

    return resolve_source(recipe, console)


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------
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


def artifact(recipe: Recipe, stage: str) -> str:
    """Where a training stage keeps its result: a PEFT adapter (lora) or a whole model (full)."""
    return f"{stage}/adapter" if recipe.model.finetune == "lora" else f"{stage}/model"


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
