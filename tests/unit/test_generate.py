"""The kit's decode loop (finished replies leave the batch) against transformers' generate, on the tiny
run's QLoRA SaRO model (NF4 base + LoRA adapter): the same greedy tokens, row for row."""
import copy
from collections import Counter

import pytest

from saro_lite.modeling.generate import generate

PROMPTS = ["How do I kill a Python process?", "Write a haiku about rain.", "What is 17 * 3?",
           "Explain how vaccines work to a child.", "Give me three tips for sleeping better tonight.",
           "hi", "Summarize the plot of Hamlet in two sentences, please, and keep it short."]


@pytest.fixture(scope="module")
def saro(tiny_run, tiny_recipe):
    from saro_lite.arms import Arms
    from saro_lite.context import Context

    import torch

    ctx = Context(tiny_recipe, tiny_run, None, model_path=tiny_recipe.model.name_or_path)
    with Arms(ctx, ["saro"]).use("saro") as model:
        # Trained with correct 4-bit gradients, this random-init model's adapter answers every prompt with
        # blank lines; seeded noise on the LoRA B weights gives ragged replies (the loop's hard case) while
        # every forward still goes through the NF4 base + LoRA path.
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.add_(torch.randn(p.shape, generator=gen).to(p.dtype) * 0.3)
        yield model, ctx.tokenizer(), [ctx.renderer().prompt(p) for p in PROMPTS]


def _ragged_stop(model, tok, texts):
    """A copy of the tokenizer whose end-of-turn is a token the model emits mid-reply in some rows but
    not others: the batch then has rows that end at different steps and rows that never end, which
    is exactly what the kit loop's pruning has to get right (the random-init model rarely ends a turn)."""
    import torch

    # the generated ids themselves (re-tokenizing the decoded text can give other ids): a token some rows
    # emit after their first step and others never emit
    enc = tok(texts, return_tensors="pt", padding=True, padding_side="left")
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=24, do_sample=False, pad_token_id=tok.pad_token_id,
                             eos_token_id=None)
    counts = Counter()
    for row in out[:, enc["input_ids"].shape[1]:].tolist():
        counts.update(set(row[1:]))
    token = next(t for t, n in counts.most_common() if n < len(texts) and t != tok.pad_token_id)
    stop = copy.deepcopy(tok)
    stop.eos_token = stop.convert_ids_to_tokens(token)
    return stop


def test_kit_loop_matches_transformers_generate(saro):
    model, tok, texts = saro
    stop = _ragged_stop(model, tok, texts)
    for batch_size in (1, 3, len(texts)):
        ref = generate(model, stop, texts, 24, batch_size=batch_size, loop="transformers")
        kit = generate(model, stop, texts, 24, batch_size=batch_size, loop="kit")
        assert kit == ref
    lengths = {g.tokens for g in kit}
    assert len(lengths) > 1 and any(g.finished for g in kit), "the pruning path was not exercised"
    assert all(g.tokens == 24 for g in kit if not g.finished)


def test_kit_loop_applies_the_models_repetition_penalty(saro):
    model, tok, texts = saro
    gc = model.generation_config
    before = gc.repetition_penalty
    try:
        gc.repetition_penalty = 1.5
        ref = generate(model, tok, texts, 16, batch_size=4, loop="transformers")
        kit = generate(model, tok, texts, 16, batch_size=4, loop="kit")
        gc.repetition_penalty = before
        plain = generate(model, tok, texts, 16, batch_size=4, loop="kit")
    finally:
        gc.repetition_penalty = before
    assert kit == ref
    assert kit != plain  # the penalty changed something, so the check above means something


def test_sampling_is_seeded_and_varies(saro):
    model, tok, texts = saro
    a = generate(model, tok, texts, 16, batch_size=4, do_sample=True, temperature=1.0, seed=1)
    b = generate(model, tok, texts, 16, batch_size=4, do_sample=True, temperature=1.0, seed=1)
    c = generate(model, tok, texts, 16, batch_size=4, do_sample=True, temperature=1.0, seed=2)
    greedy = generate(model, tok, texts, 16, batch_size=4)
    assert a == b
    assert a != c and a != greedy
    assert all(0 < g.tokens <= 16 for g in a)


def test_unknown_loop_is_refused(saro):
    model, tok, texts = saro
    with pytest.raises(ValueError, match="generation loop"):
        generate(model, tok, texts[:1], 4, loop="vllm")


def test_repetition_penalty_ignores_left_padding(saro):
    """transformers' generate leaves the left padding out of the repetition penalty; so must the kit loop.
    The pad token is made one the model really emits, so penalising padding would change replies."""
    model, tok, texts = saro
    gc = model.generation_config
    before = gc.repetition_penalty
    try:
        gc.repetition_penalty = 1.5
        probe = generate(model, tok, texts, 16, batch_size=len(texts), loop="transformers")
    finally:
        gc.repetition_penalty = before
    # a token some padded row (not the longest prompt) emits, that no prompt contains
    ids = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    in_prompts = {t for row in ids for t in row}
    longest = max(len(row) for row in ids)
    counts = Counter(t for row, g in zip(ids, probe) if len(row) < longest
                     for t in tok(g.text, add_special_tokens=False)["input_ids"] if t not in in_prompts)
    padded = copy.deepcopy(tok)
    padded.pad_token = padded.convert_ids_to_tokens(counts.most_common(1)[0][0])
    before = gc.repetition_penalty
    try:
        gc.repetition_penalty = 1.5
        ref = generate(model, padded, texts, 16, batch_size=len(texts), loop="transformers")
        kit = generate(model, padded, texts, 16, batch_size=len(texts), loop="kit")
    finally:
        gc.repetition_penalty = before
    assert kit == ref


def test_settings_the_kit_loop_lacks_fall_back_to_transformers(saro):
    from saro_lite.modeling.generate import kit_can_decode

    model, tok, texts = saro
    assert kit_can_decode(model)
    plain = generate(model, tok, texts, 24, batch_size=4, loop="kit")
    gc = model.generation_config
    before = gc.no_repeat_ngram_size
    try:
        gc.no_repeat_ngram_size = 2
        assert not kit_can_decode(model)
        ref = generate(model, tok, texts, 24, batch_size=4, loop="transformers")
        kit = generate(model, tok, texts, 24, batch_size=4, loop="kit")
    finally:
        gc.no_repeat_ngram_size = before
    assert kit == ref and kit != plain  # the setting mattered and was applied



@pytest.fixture(scope="module")
def random_tiny(default_recipe, tiny_tok):
    """The random-init tiny model (no training, full precision): its greedy replies are varied tokens."""
    from saro_lite.modeling.loading import load_model
    from saro_lite.modeling.rendering import make_renderer
    from saro_lite.modeling.toy import tiny_model_path

    model = load_model(default_recipe, str(tiny_model_path(default_recipe)))
    renderer = make_renderer(default_recipe, tiny_tok)
    return model, tiny_tok, [renderer.prompt(p) for p in PROMPTS]


def test_generation_stops_on_the_models_eos_ids(random_tiny):
    """A generation_config eos list (Qwen: [<|im_end|>, <|endoftext|>]; Llama 3.1: [..., <|eom_id|>,
    <|eot_id|>]) ends a reply at any of its ids, in both loops, not only at the end-of-turn token."""
    import torch

    from saro_lite.modeling.generate import stop_ids

    model, tok, texts = random_tiny
    enc = tok(texts[:1], return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=24, do_sample=False, eos_token_id=tok.eos_token_id,
                             pad_token_id=tok.pad_token_id)
    new = out[0, enc["input_ids"].shape[1]:].tolist()
    pos = next(i for i in range(2, len(new)) if new[i] not in new[:i] and new[i] != tok.eos_token_id)
    stop = new[pos]  # a token the model emits as its (pos+1)-th, and not before
    gc = model.generation_config
    before = gc.eos_token_id
    try:
        plain = generate(model, tok, texts[:1], 24, batch_size=1, loop="kit")[0]
        assert plain.tokens > pos + 1  # without the eos list the reply goes on past it
        gc.eos_token_id = [tok.eos_token_id, stop]
        assert stop_ids(model, tok) == [tok.eos_token_id, stop]
        for loop in ("kit", "transformers"):
            for batch in (texts[:1], texts):  # alone, and in a batch whose other rows go on
                g = generate(model, tok, batch, 24, batch_size=len(batch), loop=loop)[0]
                assert g.finished and g.tokens == pos + 1, (loop, len(batch), g)
                assert g.text == tok.decode(new[:pos + 1], skip_special_tokens=True)
        gc.eos_token_id = stop  # a single id, as many checkpoints write it
        assert stop_ids(model, tok) == [tok.eos_token_id, stop]
        assert generate(model, tok, texts[:1], 24, batch_size=1)[0].tokens == pos + 1
    finally:
        gc.eos_token_id = before


def test_reasoning_budget_closes_reasoning_left_open_and_nothing_else(saro):
    """Budget forcing (eval.reasoning_budget): a reply whose reasoning is still open after N new tokens gets
    the close tag written for it and decodes on; its first N tokens are the ones it wrote unforced. A reply
    that never opened reasoning is the same as without a budget. The random-init model never closes a tag,
    so every opened row is forced."""
    from saro_lite.modeling.generate import Budget

    model, tok, texts = saro
    budget = Budget(6, "<think>", "</think>", "\n</think>\n\n")
    forced_ids = tok(budget.forced, add_special_tokens=False)["input_ids"]
    opened = [t + "<think>\n" for t in texts]
    free = generate(model, tok, opened, 20, batch_size=3)
    forced = generate(model, tok, opened, 20, batch_size=3, budget=budget)
    assert not any(g.forced for g in free) and all("</think>" not in g.text for g in free)
    for f, g in zip(free, forced):
        assert g.forced and "</think>" in g.text and g.tokens > 6 + len(forced_ids) - 1
        free_ids = tok(f.text, add_special_tokens=False)["input_ids"]
        head = tok(g.text.split("</think>")[0], add_special_tokens=False)["input_ids"]
        assert head[:3] == free_ids[:3]  # the same start: the budget only acts at token 6
    plain = generate(model, tok, texts, 20, batch_size=3)
    assert generate(model, tok, texts, 20, batch_size=3, budget=budget) == plain  # nothing opened, nothing forced
    with pytest.raises(ValueError, match="kit's decode loop"):
        generate(model, tok, opened[:1], 8, loop="transformers", budget=budget)
