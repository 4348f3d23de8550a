"""How fast the kit decodes a recipe's model in fp32 and in bf16 on this machine, and how often the two agree.

    python -m tools.dtype_bench --recipe recipes/smollm2-135m-instruct.yaml --prompts 72 --new-tokens 96

Loads the recipe's base model twice (fp32, then bf16), greedy-decodes the same starter benign prompts with the
kit's own loop (`saro_lite.modeling.generate`, one batch), and prints tokens per second for each and how many
replies are byte-identical. On a CPU with native bf16 dot products (avx512_bf16 or AMX) bf16 decodes about
twice as fast; without them it is emulated and slower. Greedy replies in bf16 differ from fp32 ones after a
few tokens, so switching dtype changes what an eval measures (README, "A real model on your CPU").
"""
from __future__ import annotations

import argparse
import time


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m tools.dtype_bench", description=__doc__.split("\n")[0])
    p.add_argument("--recipe", default="recipes/smollm2-135m-instruct.yaml")
    p.add_argument("--prompts", type=int, default=72, help="prompts in the one batch (default 72: the eval's)")
    p.add_argument("--new-tokens", type=int, default=96)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch
    from transformers import AutoModelForCausalLM

    from saro_lite.fileio import read_jsonl
    from saro_lite.modeling.generate import generate
    from saro_lite.modeling.loading import load_tokenizer
    from saro_lite.modeling.sources import resolve_source
    from saro_lite.recipe import load_recipe
    from saro_lite.vocabulary import STARTER_DIR

    recipe = load_recipe(args.recipe)
    path = resolve_source(recipe)
    tok = load_tokenizer(recipe, path)
    rows = read_jsonl(STARTER_DIR / "eval_benign.jsonl")[:args.prompts]
    prompts = [tok.apply_chat_template([{"role": "user", "content": r["prompt"]}], tokenize=False,
                                       add_generation_prompt=True) for r in rows]
    texts = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
        t0 = time.time()
        out = generate(model, tok, prompts, args.new_tokens, batch_size=len(prompts))
        seconds = time.time() - t0
        tokens = sum(g.tokens for g in out)
        texts[name] = [g.text for g in out]
        print(f"{name}: {seconds:.1f} s, {tokens} tokens, {tokens / seconds:.1f} tokens/s", flush=True)
        del model
    same = sum(a == b for a, b in zip(texts["fp32"], texts["bf16"]))
    print(f"greedy replies identical in fp32 and bf16: {same}/{len(prompts)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
