"""Batched generation: left padding, prompts sorted by length (less padding), each sequence stopping at
the end-of-turn token or at any end-of-sequence id of the model's generation_config (Qwen's
`<|endoftext|>`, Llama 3's `<|eom_id|>` / `<|end_of_text|>`, ...), a rich progress bar over batches.

Two decode loops, same outputs (greedy: token for token; tests/unit/test_generate.py checks it):
- "kit" (default): a plain KV-cache loop that DROPS finished sequences from the batch, cache included.
  transformers' generate keeps every row until the longest one ends, so a batch with one reply that
  runs to max_new_tokens pays full price for all the rows that ended long before; here the batch
  shrinks as replies end. Measured on the tiny default (120 eval prompts, batch 64): 1.37 s -> 0.82 s.
- "transformers": `model.generate`, the escape hatch for a model whose forward does not follow the
  standard causal-LM contract (input_ids, attention_mask, position_ids, past_key_values).
The kit loop alone can also force an answer (Budget, eval.reasoning_budget): a reply whose reasoning is still
open after N new tokens gets the close tag written for it, token by token, and decodes on from there.
Sampling uses transformers' own logits warpers (temperature, top-k, top-p) and the model's
generation_config repetition penalty, as `model.generate` would; a model whose generation_config sets
anything else that shapes the logits (min_p, no_repeat_ngram_size, bad_words_ids, ...) decodes with
`model.generate`. Token-for-token equality is tested on CPU (fp32); on a GPU in bf16 a batch that shrinks
may take other kernels than a full one, so near-tied greedy choices can differ there.
"""
from __future__ import annotations

from dataclasses import dataclass
from ..vocabulary import GENERATION_LOOPS

LOOPS = GENERATION_LOOPS
TOP_P = 0.95


@dataclass
class Generation:
    text: str  # decoded new tokens, special tokens removed
    tokens: int  # new tokens up to and including the stop token
    finished: bool  # ended with a stop token, end-of-turn or EOS (False: hit max_new_tokens)
    forced: bool = False  # the reasoning budget closed its reasoning (Budget)


def stop_ids(model, tokenizer) -> list[int]:
    """The ids that end a reply: the tokenizer's eos_token (the kit sets it to the template's end-of-turn
    token) first, then the model's generation_config eos_token_id (an id or a list), as `model.generate`
    stops on them."""
    ids: list[int] = []
    gc_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for t in [tokenizer.eos_token_id, *(gc_eos if isinstance(gc_eos, (list, tuple)) else [gc_eos])]:
        if isinstance(t, int) and t not in ids:
            ids.append(t)
    return ids


def encode_prompts(tokenizer, prompts: list[str], max_length: int | None = None):
    """The input tensors generation feeds the model for rendered prompts (padded on the tokenizer's
    padding side): the tokenizer's own special tokens are added, so a template that relies on the
    tokenizer for BOS (Renderer.prompt strips a written one) gets exactly one. Anything that must see the
    prompts as the model does when it answers (the embedding analysis) tokenizes through here."""
    kw = dict(truncation=True, max_length=max_length) if max_length else {}
    return tokenizer(list(prompts), return_tensors="pt", padding=True, **kw)


def prompt_length(tokenizer, prompt: str, max_length: int | None = None) -> int:
    """Tokens of one prompt as encode_prompts feeds it (padding aside)."""
    kw = dict(truncation=True, max_length=max_length) if max_length else {}
    return len(tokenizer(prompt, **kw)["input_ids"])


@dataclass
class Budget:
    """Budget forcing: after `tokens` new tokens, a row whose reasoning is open (the open tag in its prompt's
    end or in what it wrote) and not closed gets `forced` written next, token by token, then decodes on."""
    tokens: int
    open_tag: str
    close_tag: str
    forced: str  # e.g. "\n</think>\n\n": the renderer's layout between the reasoning and the answer


def generate(model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int = 8,
             do_sample: bool = False, temperature: float = 0.7, seed: int = 0, progress=None,
             task=None, loop: str = "kit", budget: Budget | None = None) -> list[Generation]:
    """prompts are fully rendered texts (chat template applied). Returns generations in input order.
    budget: close a reasoning block still open after budget.tokens (the kit loop only)."""
    import torch

    if loop not in LOOPS:
        raise ValueError(f"generation loop must be one of {LOOPS}, got {loop!r}")
    if budget is not None and not (loop == "kit" and kit_can_decode(model)):
        raise ValueError("a reasoning budget needs the kit's decode loop (model.generation_loop kit, and a "
                         "generation_config it implements)")
    tokenizer.padding_side = "left"
    stops = stop_ids(model, tokenizer)
    lengths = [prompt_length(tokenizer, p) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: lengths[i])  # similar lengths share a batch
    results: list[Generation | None] = [None] * len(prompts)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    torch.manual_seed(seed)
    decode = _kit_decode if loop == "kit" and kit_can_decode(model) else _transformers_decode
    try:
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            enc = encode_prompts(tokenizer, [prompts[i] for i in idx]).to(device)
            with torch.no_grad():
                forced: set[int] = set()  # batch rows the budget closed (filled by the kit loop)
                if budget is None:
                    new = decode(model, tokenizer, enc, max_new_tokens, do_sample, temperature, stops)
                else:
                    opened = [prompts[i].rstrip().endswith(budget.open_tag) for i in idx]
                    new = _kit_decode(model, tokenizer, enc, max_new_tokens, do_sample, temperature, stops,
                                      budget=(budget, opened, forced))
            for row, (i, ids) in enumerate(zip(idx, new)):
                end = next((j for j, t in enumerate(ids) if t in stops), None)
                finished = end is not None
                ids = ids[:end + 1] if finished else ids
                results[i] = Generation(tokenizer.decode(ids, skip_special_tokens=True), len(ids), finished,
                                        row in forced)
            if progress is not None:
                progress.advance(task, len(idx))
    finally:
        model.train(was_training)
    return results  # type: ignore[return-value]


def _transformers_decode(model, tokenizer, enc, max_new_tokens, do_sample, temperature, stops) -> list[list[int]]:
    kwargs = dict(max_new_tokens=max_new_tokens, do_sample=do_sample, eos_token_id=stops or None,
                  pad_token_id=tokenizer.pad_token_id)
    if do_sample:
        kwargs.update(temperature=temperature, top_p=TOP_P)
    out = model.generate(**enc, **kwargs)
    return out[:, enc["input_ids"].shape[1]:].tolist()


# generation_config settings the kit loop does not implement, with their "off" value (None is off for
# all): a model that ships one of them decodes with model.generate, so its outputs stay transformers'.
_UNSUPPORTED = {"min_p": None, "typical_p": 1.0, "epsilon_cutoff": 0.0, "eta_cutoff": 0.0,
                "no_repeat_ngram_size": 0, "encoder_no_repeat_ngram_size": 0, "bad_words_ids": None,
                "suppress_tokens": None, "begin_suppress_tokens": None, "sequence_bias": None,
                "min_new_tokens": 0, "min_length": 0, "forced_bos_token_id": None, "forced_eos_token_id": None,
                "exponential_decay_length_penalty": None, "renormalize_logits": False, "guidance_scale": 1.0}


def kit_can_decode(model) -> bool:
    gc = getattr(model, "generation_config", None)
    return all(getattr(gc, k, None) in (None, off) for k, off in _UNSUPPORTED.items())


def _warpers(model, do_sample: bool, temperature: float):
    """The logits processors `model.generate` would apply for these settings: the model's repetition
    penalty (some instruct models ship one in generation_config.json), then, when sampling,
    temperature, top-k (generation_config, transformers' default 50) and top-p."""
    from transformers import LogitsProcessorList
    from transformers.generation.logits_process import (RepetitionPenaltyLogitsProcessor,
                                                        TemperatureLogitsWarper, TopKLogitsWarper,
                                                        TopPLogitsWarper)

    gc = getattr(model, "generation_config", None)
    procs = LogitsProcessorList()
    penalty = getattr(gc, "repetition_penalty", None)
    if penalty not in (None, 1.0):
        procs.append(RepetitionPenaltyLogitsProcessor(penalty))
    if do_sample:
        if temperature != 1.0:
            procs.append(TemperatureLogitsWarper(temperature))
        top_k = getattr(gc, "top_k", None)
        top_k = 50 if top_k is None else top_k  # transformers' default when the checkpoint sets none
        if top_k:
            procs.append(TopKLogitsWarper(top_k))
        procs.append(TopPLogitsWarper(TOP_P))
    return procs


def _kit_decode(model, tokenizer, enc, max_new_tokens, do_sample, temperature, stops,
                budget: tuple[Budget, list[bool], set[int]] | None = None) -> list[list[int]]:
    """budget: (Budget, per batch row whether its prompt opened the reasoning, a set this loop fills with the
    batch rows it closed)."""
    import torch
    from transformers import DynamicCache

    forced: dict[int, list[int]] = {}  # batch row -> tokens still to be written for it (budget forcing)
    if budget is not None:
        spec, opened, closed = budget
        forced_ids = tokenizer(spec.forced, add_special_tokens=False)["input_ids"]

    ids, attn = enc["input_ids"], enc["attention_mask"]
    stop_set = set(stops)
    procs = _warpers(model, do_sample, temperature)
    # prompt + new tokens of the live rows, for the repetition penalty; padding is replaced by the row's
    # last prompt token (a token the row has anyway), as generate ignores the padding
    seqs = torch.where(attn.bool(), ids, ids[:, -1:])
    positions = (attn.cumsum(-1) - 1).clamp(min=0)  # left padding: real tokens start at position 0
    cache = DynamicCache(config=getattr(model, "config", None))
    out = model(input_ids=ids, attention_mask=attn, position_ids=positions, past_key_values=cache,
                use_cache=True, logits_to_keep=1)
    live = list(range(ids.shape[0]))  # batch row of each live sequence
    position = positions[:, -1:]
    new: list[list[int]] = [[] for _ in range(ids.shape[0])]
    for step in range(max_new_tokens):
        scores = procs(seqs, out.logits[:, -1, :].float())
        if do_sample:
            token = torch.multinomial(torch.softmax(scores, dim=-1), 1).squeeze(1)
        else:
            token = scores.argmax(-1)
        tokens = token.tolist()  # the step's one device sync; the rest is decided on the CPU
        if forced:  # rows past their budget write the close tag, one token a step, instead of their choice
            for j, row in enumerate(live):
                if row in forced:
                    tokens[j] = forced[row].pop(0)
                    if not forced[row]:
                        del forced[row]
            token = torch.tensor(tokens, device=token.device, dtype=token.dtype)
        going = [i for i, t in enumerate(tokens) if t not in stop_set]
        for row, t in zip(live, tokens):
            new[row].append(t)
        if budget is not None and step + 1 == spec.tokens:
            for j in going:  # decoded once per row, at the budget: is its reasoning open?
                text = tokenizer.decode(new[live[j]], skip_special_tokens=True)
                if (opened[live[j]] or spec.open_tag in text) and spec.close_tag not in text:
                    forced[live[j]] = list(forced_ids)
                    closed.add(live[j])
        if step == max_new_tokens - 1 or not going:
            break
        if len(going) < len(tokens):  # drop the finished rows everywhere, the KV cache included
            keep = torch.tensor(going, device=token.device)
            cache.batch_select_indices(keep)
            attn, token, position, seqs = attn[keep], token[keep], position[keep], seqs[keep]
            live = [live[i] for i in going]
        attn = torch.cat([attn, attn.new_ones(attn.shape[0], 1)], dim=1)
        position = position + 1
        if len(procs):
            seqs = torch.cat([seqs, token[:, None]], dim=1)
        out = model(input_ids=token[:, None], attention_mask=attn, position_ids=position,
                    past_key_values=cache, use_cache=True)
    return new
