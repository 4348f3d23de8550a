"""Peak GPU memory per stage, estimated from a recipe's architecture numbers (what `--dry-run` prints).
The measurement on a random-weight model of the same architecture is a maintainer tool (tools/memory_bench.py):

    python -m tools.memory_bench --recipe recipes/qwen2.5-7b-instruct.yaml            # the estimate table
    python -m tools.memory_bench --recipe recipes/qwen2.5-7b-instruct.yaml --bench    # + measured (GPU machine)
    python -m tools.memory_bench --recipe recipes/qwen2.5-1.5b-instruct.yaml --set srpo.max_length=1024

API
- `estimate(recipe, device="cuda") -> {stage: {component: GiB, ..., "total": GiB, "notes": [...]}}` for
  `warmup` (SFT), `srpo` (DPO), `eval` (generation) and, when `pairs.source` is `self`, `pairs` (generation
  like eval). Pure arithmetic: no torch, answers at once (meant for `--dry-run`).
- `format_table(est, measured=None) -> rich.table.Table`.
- `build_random(arch, path=None, dtype="bfloat16", family=None)`: a random-weight checkpoint of the
  architecture, written to `path` (a temp folder if None); load it with `modeling.loading.load_model`, i.e. with the
  same BitsAndBytesConfig 4-bit path as a real run.
- `bench(recipe, steps=3, device=None) -> {stage: {measured_allocated_gib, measured_reserved_gib,
  step_seconds, estimate_gib, ...}}`: real QLoRA SFT and DPO steps and one generation on that model.

What the estimate counts (GiB = 2**30 bytes; s = bytes of the compute dtype: 2 for bf16/fp16 on a GPU,
4 for fp32 on CPU). H hidden, I intermediate, n layers, nh / nkv heads, d head_dim, V vocabulary, r LoRA rank,
b per-device batch, L max_length.

weights (4-bit, `model.load_in_4bit` with LoRA)
    every linear layer of the decoder (q/k/v/o, gate/up/down) is NF4/FP4: 0.5 byte/param, plus its
    block-wise quantization constants (block 64): fp32 absmax = 0.5 bit/param; with double quantization the
    absmax is 8-bit with an fp32 constant per 256 blocks = 0.127 bit/param. The embedding, the lm_head (unless
    tie_word_embeddings), the norms and biases stay in the model dtype (s bytes/param) -- bitsandbytes never
    quantizes the output embedding. 16-bit (`load_in_4bit: false` or `finetune: full`): every param x s.
LoRA (`lora`, `grads`, `optimizer`)
    A (r x in) and B (out x r) per targeted projection and layer (all-linear = the 7 projections; Phi-3/4
    fuse qkv_proj and gate_up_proj, so fewer, larger modules), kept in fp32 as the kit does (4 bytes/param),
    fp32 grads (4 bytes/param); optimizer state: AdamW fp32 8 bytes/param, 8-bit AdamW (incl. paged)
    2 bytes/param -- bitsandbytes keeps tensors under 4096 elements in 32-bit state (8 bytes/param).
    Paged optimizer state lives in CUDA unified memory: it is in this estimate but NOT in torch's
    max_memory_allocated/reserved (paged memory is allocated outside torch's caching allocator).
activations, with gradient checkpointing (every decoder layer is a non-reentrant checkpoint)
    T = tokens of one micro-batch: b x L for SFT, 2 x b x L for DPO (TRL concatenates chosen + rejected).
    checkpoints   n x T x H x s                       (the input of every layer, kept until backward)
    one layer     T x per_token_layer_bytes           (the layer recomputed with grads during backward;
                  see `layer_bytes_per_token`: fp32 norm copies, LoRA inputs (one copy per module when
                  lora_dropout > 0), q/k/v/out of attention (k/v repeated to nh heads: with a padding mask
                  sdpa cannot use native GQA), the 3 MLP intermediates)
    backward      T x ((3 I + 4 H) x s)               (gradients of the widest intermediates alive at once)
    final norm    T x (4 + s) x H
    dequantize    2 x max(out x in) x s               (bitsandbytes dequantizes one weight at a time)
    Without checkpointing: n x one layer instead of checkpoints + one layer.
    Assumes every sequence is padded to max_length (the worst batch) and attention is sdpa/flash, which
    does not keep the L x L scores; eager attention (Gemma 2 needs it for its soft-capping) adds
    nh x L x (4 + 2 s) bytes per token to a layer.
lm_head (`lm_head`)
    TRL 1.16 calls the model with `fused_lm_head=True` in BOTH SFTTrainer and DPOTrainer: per-token
    log-probs are computed in tiles of min(T, 4096) tokens x 32768 vocabulary entries, so the full
    (T x V) logits never exist. Counted: the tile (s bytes/entry; on CPU the torch fallback adds ~4 fp32
    temporaries of the tile), the gathered hidden states (T x H x s) and their fp32 gradient (T x H x 4).
    A plain forward (older TRL, `compute_loss_func`, label smoothing) would add T x V x 4 x ~2 instead --
    ~2.3 GiB for 2048 tokens of a 150k vocabulary; pass `fused_lm_head=False` to `estimate` to see it.
reference (DPO)
    The reference is the frozen SFT adapter `ref` on the SAME 4-bit base: no second model, only a second
    LoRA copy in fp32, and a no-grad forward per step that runs while the policy's checkpoints are held.
    Its transient (one layer's T x (3 I + 4 H) x s + the lm_head tile) is counted only where it exceeds
    the backward peak. Reward tracking (`srpo.track_every`) runs a no-grad forward of
    `track_batch_size` sequences between steps; it is checked the same way. `precompute_ref_log_probs`
    runs its no-grad forward over the data before training (batch 8 pairs, TRL's default) and costs host
    RAM: TRL hashes an fp32 CPU copy of the whole model (noted, not counted).
eval / pairs (self path)
    base + the LoRA adapters of the arms (fp32), the KV cache 2 x n x nkv x d x B x (P + N) x s with
    B = eval.batch_size, N = eval.max_new_tokens, P = EVAL_PROMPT_TOKENS (prompts are not known before the
    data stage; the self path's process-level prompts carry a generated prefix, so P + pairs.max_new_tokens
    there), the prefill transient B x P x (3 I + 4 H) x s and the last-position logits B x V x 4 x 2.
cuda_context
    CUDA context + cuBLAS workspace + allocator slack: a constant 0.5 GiB on a GPU (0 on CPU). The context is
    not visible to torch.cuda.max_memory_reserved, so compare the measured reserved peak with
    `total - cuda_context` (`bench` reports both).

The numbers target `torch.cuda.max_memory_allocated`; the caching allocator typically reserves 5-15% more.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

GiB = 2 ** 30
CUDA_CONTEXT_GIB = 0.5
EVAL_PROMPT_TOKENS = 512          # assumed prompt length for generation stages (chat template + prompt)
FUSED_TOKEN_TILE = 4096           # trl.kernels.chunked_logprob.TOKEN_CHUNK_SIZE (TRL 1.16)
FUSED_VOCAB_TILE = 32768          # trl.trainer.utils._CHUNKED_LOGPROB_CHUNK_SIZE (TRL 1.16)
BNB_BLOCKSIZE = 64                # bitsandbytes 4-bit block size
BNB_NESTED_BLOCKSIZE = 256        # double quantization: blocks per second-level constant
BNB_8BIT_MIN_SIZE = 4096          # bitsandbytes 8-bit optimizers: smaller tensors keep 32-bit state
PRECOMPUTE_REF_BATCH = 8          # DPOConfig.per_device_eval_batch_size default (precompute batch)
LORA_NAMES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# Families whose head_dim is not hidden_size / num_attention_heads (ModelArch has no head_dim field):
FAMILY_HEAD_DIM = {"qwen3": 128, "gemma2": 256, "gemma3": 256}
# Parameters outside the text arch numbers that load with the model (gemma-3-4b-it: the SigLIP tower).
FAMILY_EXTRA_PARAMS = {"gemma3": 417_000_000}
STAGES = ("warmup", "srpo", "pairs", "eval")
COMPONENTS = ("weights", "lora", "grads", "optimizer", "activations", "lm_head", "reference", "kv_cache",
              "cuda_context")
LABELS = {"weights": "weights", "lora": "LoRA", "grads": "grads", "optimizer": "optim", "activations": "activ",
          "lm_head": "head", "reference": "ref", "kv_cache": "KV", "cuda_context": "CUDA"}


# --------------------------------------------------------------------------------------------
# The architecture
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Shape:
    """Resolved architecture numbers (what the estimate and build_random need)."""

    family: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tied: bool

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    def projections(self) -> dict[str, tuple[int, int]]:
        """Linear layers of one decoder layer: name -> (in_features, out_features)."""
        H, I = self.hidden, self.intermediate
        if self.family == "phi3":  # fused projections
            return {"qkv_proj": (H, self.q_dim + 2 * self.kv_dim), "o_proj": (self.q_dim, H),
                    "gate_up_proj": (H, 2 * I), "down_proj": (I, H)}
        return {"q_proj": (H, self.q_dim), "k_proj": (H, self.kv_dim), "v_proj": (H, self.kv_dim),
                "o_proj": (self.q_dim, H), "gate_proj": (H, I), "up_proj": (H, I), "down_proj": (I, H)}

    def linear_params(self) -> int:
        return self.layers * sum(i * o for i, o in self.projections().values())

    def other_params(self) -> int:
        """Parameters that stay unquantized: embeddings, lm_head, norms, biases."""
        H = self.hidden
        embed = self.vocab * H * (1 if self.tied else 2)
        norms_per_layer = {"gemma2": 4, "gemma3": 4}.get(self.family, 2) * H
        if self.family in ("qwen3", "gemma3"):
            norms_per_layer += 2 * self.head_dim  # q_norm / k_norm
        bias = self.q_dim + 2 * self.kv_dim if self.family == "qwen2" else 0
        return embed + self.layers * (norms_per_layer + bias) + H

    def total_params(self) -> int:
        return self.linear_params() + self.other_params()


def family_of(name: str) -> str:
    """Model family from a hub id / recipe name: llama, mistral, qwen2, qwen3, gemma2, gemma3, phi3."""
    n = name.lower().replace("_", "-")
    for pattern, fam in ((r"qwen-?3", "qwen3"), (r"qwen", "qwen2"), (r"gemma-?3", "gemma3"), (r"gemma", "gemma2"),
                         (r"phi-?[34]", "phi3"), (r"mistral", "mistral")):
        if re.search(pattern, n):
            return fam
    return "llama"  # the fallback: same memory shape as any Llama-like decoder


def shape_of(recipe) -> Shape:
    """The recipe's architecture: model.arch (real models) or model.tiny (the offline tiny model)."""
    from ..errors import UserError

    m = recipe.model
    if m.name_or_path == "tiny" and m.arch.hidden_size is None:
        t = m.tiny
        return Shape("llama", t.hidden_size, t.num_hidden_layers, t.num_attention_heads, t.num_key_value_heads,
                     t.hidden_size // t.num_attention_heads, t.intermediate_size, t.vocab_size, False)
    a = m.arch
    missing = [k for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                           "vocab_size") if getattr(a, k) is None]
    if missing:
        raise UserError(f"{recipe.source_path or '<recipe>'}: model.arch.{missing[0]}: needed for the memory "
                        f"estimate (copy it from the model's config.json)")
    fam = family_of(getattr(a, "model_type", None) or f"{m.name_or_path} {recipe.stem}")
    head_dim = getattr(a, "head_dim", None) or FAMILY_HEAD_DIM.get(fam) or a.hidden_size // a.num_attention_heads
    return Shape(fam, a.hidden_size, a.num_hidden_layers, a.num_attention_heads,
                 a.num_key_value_heads or a.num_attention_heads, head_dim, a.intermediate_size, a.vocab_size,
                 bool(a.tie_word_embeddings))


def lora_modules(shape: Shape, target) -> dict[str, tuple[int, int]]:
    """The projections a LoRA target setting hits: all-linear, a list of names, or a regex string."""
    projs = shape.projections()
    if target == "all-linear":
        return projs
    if isinstance(target, (list, tuple)):
        names = {str(t) for t in target}
        return {k: v for k, v in projs.items() if k in names}
    return {k: v for k, v in projs.items() if k in str(target)}  # a regex naming the projections


# --------------------------------------------------------------------------------------------
# Pieces of the estimate (bytes)
# --------------------------------------------------------------------------------------------
def weight_bytes(shape: Shape, s: int, load_in_4bit: bool, double_quant: bool) -> float:
    """Weights as loaded: 4-bit linear layers + quantization constants + the rest in s bytes; or all in s."""
    extra = FAMILY_EXTRA_PARAMS.get(shape.family, 0)
    if not load_in_4bit:
        return (shape.total_params() + extra) * s
    if double_quant:  # 8-bit absmax per block + fp32 per 256 blocks
        per_param = 0.5 + 1 / BNB_BLOCKSIZE + 4 / (BNB_BLOCKSIZE * BNB_NESTED_BLOCKSIZE)
    else:  # fp32 absmax per block
        per_param = 0.5 + 4 / BNB_BLOCKSIZE
    return (shape.linear_params() + extra) * per_param + shape.other_params() * s


def lora_tensors(shape: Shape, r: int, target) -> list[int]:
    """Element counts of every LoRA tensor (A and B of each targeted module of each layer)."""
    sizes = []
    for i, o in lora_modules(shape, target).values():
        sizes += [r * i, o * r]
    return sizes * shape.layers


def optimizer_bytes(sizes: list[int], optim: str) -> float:
    """AdamW state per trainable tensor: 8-bit variants 2 bytes/param (32-bit under 4096 elements)."""
    o = optim.lower()
    if "sgd" in o:
        return 0.0
    if "adafactor" in o:
        return sum(sizes) * 4.0 * 0.1  # factored second moment: a small fraction of the params
    if "8bit" in o:
        return sum(2.0 * n if n >= BNB_8BIT_MIN_SIZE else 8.0 * n for n in sizes)
    return sum(sizes) * 8.0


def layer_bytes_per_token(shape: Shape, s: int, dropout: bool, r: int, eager_len: int = 0) -> float:
    """Bytes one decoder layer keeps for backward, per token (QLoRA on all 7 projections).

    - RMSNorm x2: the fp32 copy of its input (4 H; with s = 4 the first one is the layer input itself).
    - LoRA inputs: with lora_dropout > 0 every module keeps its own dropout output + a bool mask
      (q, k, v, gate, up on H; o on nh d; down on I); with dropout 0 each input is kept once and shared.
      The 4-bit matmul itself keeps no input (bitsandbytes saves only the quantized weight).
    - attention: q, k, v as sdpa gets them (k, v repeated to nh heads) + its output + the o_proj input copy.
    - MLP: gate, act(gate), up (the product is the down input, counted with the LoRA inputs).
    - lora_A outputs: 7 x r.
    """
    H, I, qd = shape.hidden, shape.intermediate, shape.q_dim
    norms = 4 * H * 2 - (4 * H if s >= 4 else 0)
    groups = [(H, 3), (qd, 1), (H, 2), (I, 1)]  # (width, modules reading it)
    lora_in = sum(w * c * (s + 1) if dropout else w * s for w, c in groups)
    attn = (qd + 2 * qd + qd) * s  # q, k, v (repeated), sdpa output; o_proj input is in lora_in
    mlp = 3 * I * s
    eager = shape.heads * eager_len * (4 + 2 * s) if eager_len else 0
    return norms + lora_in + attn + mlp + 7 * r * s + eager


def nograd_layer_bytes_per_token(shape: Shape, s: int) -> float:
    """Peak transient of a no-grad forward through one layer (the widest intermediates), per token."""
    return (3 * shape.intermediate + 4 * shape.hidden) * s


def head_bytes(shape: Shape, tokens: int, s: int, on_gpu: bool, fused: bool = True) -> float:
    """LM-head memory of one training forward/backward (see the module docstring)."""
    if not fused:
        return tokens * shape.vocab * 4 * 2 + tokens * shape.hidden * s
    tile = min(tokens, FUSED_TOKEN_TILE) * min(shape.vocab, FUSED_VOCAB_TILE)
    tile_bytes = tile * s + (0 if on_gpu else 4 * tile * 4)
    return tile_bytes + tokens * shape.hidden * (s + 4)


def head_nograd_bytes(shape: Shape, tokens: int, s: int, on_gpu: bool) -> float:
    """LM-head memory of a no-grad fused forward (reference, tracking): the tile and the gathered hidden states."""
    tile = min(tokens, FUSED_TOKEN_TILE) * min(shape.vocab, FUSED_VOCAB_TILE)
    return tile * s + (0 if on_gpu else 4 * tile * 4) + tokens * shape.hidden * s


def _gib(x: float) -> float:
    return x / GiB


def _compute_bytes(recipe, device: str) -> int:
    dt = recipe.model.dtype
    if dt == "float32" or (dt == "auto" and device == "cpu"):
        return 4
    return 2


# --------------------------------------------------------------------------------------------
# The estimate
# --------------------------------------------------------------------------------------------
def _train_stage(recipe, shape: Shape, cfg, s: int, on_gpu: bool, dpo: bool, fused: bool) -> dict:
    m = recipe.model
    notes: list[str] = []
    lora = m.finetune == "lora"
    four_bit = m.load_in_4bit and lora
    weights = weight_bytes(shape, s, four_bit, m.bnb_4bit_use_double_quant)
    optim = cfg.optim if on_gpu or not cfg.optim.startswith("paged_") else "adamw_torch"
    # full fine-tuning on a GPU in 16 bits loads fp32 weights (loading.load_dtype): mixed precision keeps
    # fp32 master weights and grads, and computes the activations in 16 bits under autocast
    master = 4 if on_gpu and s == 2 else s
    if lora:
        sizes = lora_tensors(shape, m.lora_r, m.lora_target_modules)
        trainable = sum(sizes)
        lora_b = trainable * 4.0
        grads = trainable * 4.0
        opt = optimizer_bytes(sizes, optim)
    else:  # full fine-tuning: weights and grads at `master` bytes, optimizer state over every parameter
        trainable = shape.total_params()
        weights = weight_bytes(shape, master, False, False)
        lora_b, grads = 0.0, trainable * float(master)
        opt = optimizer_bytes([trainable], optim)
        notes.append("finetune full: fp32 weights and grads under mixed precision, optimizer over every parameter"
                     if master != s else "finetune full: grads and optimizer over every parameter")
    if "paged" in optim and on_gpu:
        notes.append("paged optimizer state is in CUDA unified memory, not in torch's allocated/reserved")

    T = cfg.per_device_train_batch_size * cfg.max_length * (2 if dpo else 1)
    dropout = m.lora_dropout > 0 and not dpo  # DPOConfig.disable_dropout defaults to True
    eager = m.attn_implementation == "eager" or (shape.family == "gemma2" and not m.attn_implementation)
    layer = T * layer_bytes_per_token(shape, s, dropout, m.lora_r if lora else 0,
                                      cfg.max_length if eager else 0)
    backward = T * (3 * shape.intermediate + 4 * shape.hidden) * s
    final_norm = T * (4 + s) * shape.hidden
    dequant = 2 * max(i * o for i, o in shape.projections().values()) * s if four_bit else 0
    if cfg.gradient_checkpointing:
        checkpoints = shape.layers * T * shape.hidden * s
        step_act = checkpoints + layer + backward
    else:
        checkpoints = 0
        step_act = shape.layers * layer + backward
        notes.append("gradient_checkpointing off: every layer keeps its activations")
    act = step_act + final_norm + dequant
    head = head_bytes(shape, T, s, on_gpu, fused)
    if eager:
        notes.append("eager attention: L x L scores per head are kept")

    reference = 0.0
    if dpo:
        if lora:
            reference += trainable * 4.0  # the frozen `ref` adapter (fp32 copy of the SFT adapter)
        else:
            reference += weight_bytes(shape, master, False, False)  # a second full model, loaded like the policy
        # Dynamic peaks above the static memory (weights, adapters), compared with the training step's:
        step_peak = opt + grads + act + head  # backward: grads filling up, one layer's activations
        nograd = nograd_layer_bytes_per_token(shape, s)
        if recipe.srpo.precompute_ref_log_probs:  # before training: no optimizer state, no checkpoints
            ref_tok = PRECOMPUTE_REF_BATCH * 2 * cfg.max_length
            ref_peak = ref_tok * nograd + head_nograd_bytes(shape, ref_tok, s, on_gpu)
            host = shape.total_params() * 4 / GiB
            notes.append(f"precompute_ref_log_probs: TRL hashes an fp32 CPU copy of the model (~{host:.1f} GiB "
                         f"host RAM)")
        else:  # inside the step, after the policy forward: its checkpoints and head inputs are held
            ref_peak = (opt + checkpoints + T * shape.hidden * s + T * nograd
                        + head_nograd_bytes(shape, T, s, on_gpu))
        track_peak = 0.0
        if recipe.srpo.track_every > 0:  # between steps: optimizer state, no grads, no activations
            track_tok = recipe.srpo.track_batch_size * cfg.max_length
            track_peak = opt + track_tok * nograd + head_nograd_bytes(shape, track_tok, s, on_gpu)
        excess = max(0.0, ref_peak - step_peak, track_peak - step_peak)
        reference += excess
        if excess:
            which = "reward tracking" if track_peak > ref_peak else "reference"
            notes.append(f"the {which} forward sets the peak (+{excess / GiB:.2f} GiB over the training step)")
    return {"weights": weights, "lora": lora_b, "grads": grads, "optimizer": opt, "activations": act,
            "lm_head": head, "reference": reference, "kv_cache": 0.0, "notes": notes,
            "tokens": T}


def _generation_stage(recipe, shape: Shape, s: int, batch: int, prompt: int, new: int, adapters: int) -> dict:
    m = recipe.model
    lora = m.finetune == "lora"
    four_bit = m.load_in_4bit and lora
    weights = weight_bytes(shape, s, four_bit, m.bnb_4bit_use_double_quant)
    lora_b = sum(lora_tensors(shape, m.lora_r, m.lora_target_modules)) * 4.0 * adapters if lora else 0.0
    kv = 2 * shape.layers * shape.kv_dim * batch * (prompt + new) * s
    prefill = batch * prompt * nograd_layer_bytes_per_token(shape, s)
    eager = m.attn_implementation == "eager" or (shape.family == "gemma2" and not m.attn_implementation)
    if eager:
        prefill += batch * shape.heads * prompt * prompt * (4 + 2 * s)
    dequant = 2 * max(i * o for i, o in shape.projections().values()) * s if four_bit else 0
    logits = batch * shape.vocab * 4 * 2
    return {"weights": weights, "lora": lora_b, "grads": 0.0, "optimizer": 0.0, "activations": prefill + dequant,
            "lm_head": logits, "reference": 0.0, "kv_cache": kv,
            "notes": [f"batch {batch} x ({prompt} prompt + {new} new tokens)"], "tokens": batch * (prompt + new)}


def estimate(recipe, device: str = "cuda", fused_lm_head: bool = True) -> dict[str, dict]:
    """Peak memory per stage in GiB: {stage: {component: GiB, "total": GiB, "notes": [str]}}.

    device: "cuda" (bf16/fp16 compute, CUDA context, paged optimizers as written) or "cpu" (fp32 unless the
    recipe sets a dtype, adamw_torch in place of paged optimizers, no CUDA context) -- as the kit runs."""
    on_gpu = device != "cpu"
    s = _compute_bytes(recipe, "cuda" if on_gpu else "cpu")
    shape = shape_of(recipe)
    r = recipe
    stages: dict[str, dict] = {
        "warmup": _train_stage(r, shape, r.warmup, s, on_gpu, dpo=False, fused=fused_lm_head),
        "srpo": _train_stage(r, shape, r.srpo, s, on_gpu, dpo=True, fused=fused_lm_head),
    }
    if r.pairs.source == "self":  # base + the RW adapter, sampling with a generated prefix in the prompt
        stages["pairs"] = _generation_stage(r, shape, s, r.pairs.batch_size,
                                            EVAL_PROMPT_TOKENS + r.pairs.max_new_tokens, r.pairs.max_new_tokens, 1)
    adapters = max(1, len([a for a in r.eval.arms if a != "base"]))
    stages["eval"] = _generation_stage(r, shape, s, r.eval.batch_size, EVAL_PROMPT_TOKENS, r.eval.max_new_tokens,
                                       adapters)
    out = {}
    for name, comp in stages.items():
        row = {k: _gib(comp[k]) for k in COMPONENTS if k != "cuda_context"}
        row["cuda_context"] = CUDA_CONTEXT_GIB if on_gpu else 0.0
        row["total"] = sum(row[k] for k in COMPONENTS)
        row["notes"] = comp["notes"]
        row["tokens"] = comp["tokens"]
        out[name] = row
    return out


def peak(est: dict) -> tuple[str, float]:
    """The stage with the highest total and that total (GiB)."""
    name = max(est, key=lambda k: est[k]["total"])
    return name, est[name]["total"]


def vram_target_gb(path: str | Path) -> float | None:
    """The VRAM a recipe states in its header ("VRAM target: <= 8 GB", "about 12 GB"); None if it states none."""
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        found = re.search(r"VRAM target:\D*?(\d+(?:\.\d+)?)\s*GB", line)
        if found:
            return float(found.group(1))
    return None


def format_table(est: dict, measured: dict | None = None, title: str = "estimated peak GPU memory (GiB)"):
    """A rich Table: one row per stage, one column per component (blank where 0), the total; with `measured`
    (from bench) the measured allocated / reserved peaks and step seconds beside it."""
    from rich import box
    from rich.table import Table

    # compact box and padding: the table must stay readable in an 80-column terminal or a log file
    t = Table(title=title, box=box.SIMPLE_HEAD, padding=(0, 0), pad_edge=False)
    t.add_column("stage", no_wrap=True)
    used = [c for c in COMPONENTS if any(est[s][c] > 0.0005 for s in est)]
    for c in used:
        t.add_column(LABELS[c], justify="right", no_wrap=True, min_width=max(4, len(LABELS[c])))
    t.add_column("total", justify="right", style="bold", no_wrap=True, min_width=5)
    if measured:
        for c in ("alloc", "resv", "s/step"):
            t.add_column(c, justify="right", style="cyan", no_wrap=True)
    for stage, row in est.items():
        cells = [stage] + [f"{row[c]:.2f}" if row[c] > 0.0005 else "" for c in used] + [f"{row['total']:.2f}"]
        if measured:
            m = measured.get(stage, {})
            fmt = lambda v, p=2: "" if v is None else f"{v:.{p}f}"  # noqa: E731
            cells += [fmt(m.get("measured_allocated_gib")), fmt(m.get("measured_reserved_gib")),
                      fmt(m.get("step_seconds"), 3)]
        t.add_row(*cells)
    return t
