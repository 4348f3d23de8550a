"""Batched generation with transformers: left padding, prompts sorted by length (less padding), each
sequence stopping at the end-of-turn token, a rich progress bar over batches."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Generation:
    text: str  # decoded new tokens, special tokens removed
    tokens: int  # new tokens up to and including end-of-turn
    finished: bool  # ended with end-of-turn (False: hit max_new_tokens)


def generate(model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int = 8,
             do_sample: bool = False, temperature: float = 0.7, seed: int = 0, progress=None,
             task=None) -> list[Generation]:
    """prompts are fully rendered texts (chat template applied). Returns generations in input order."""
    import torch

    tokenizer.padding_side = "left"
    eot = tokenizer.eos_token_id
    lengths = [len(tokenizer(p)["input_ids"]) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: lengths[i])  # similar lengths share a batch
    results: list[Generation | None] = [None] * len(prompts)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    torch.manual_seed(seed)
    try:
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            enc = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True).to(device)
            kwargs = dict(max_new_tokens=max_new_tokens, do_sample=do_sample, eos_token_id=eot,
                          pad_token_id=tokenizer.pad_token_id)
            if do_sample:
                kwargs.update(temperature=temperature, top_p=0.95)
            with torch.no_grad():
                out = model.generate(**enc, **kwargs)
            new = out[:, enc["input_ids"].shape[1]:].tolist()
            for i, ids in zip(idx, new):
                finished = eot in ids
                ids = ids[:ids.index(eot) + 1] if finished else ids
                results[i] = Generation(tokenizer.decode(ids, skip_special_tokens=True), len(ids), finished)
            if progress is not None:
                progress.advance(task, len(idx))
    finally:
        model.train(was_training)
    return results  # type: ignore[return-value]
