"""The toy world: the tiny model the kit builds offline, and pretrains into a base that stands in for an
unaligned instruct model.

A random-weight tiny model says nothing, so base vs RW vs SaRO would be noise. Instead the tiny
base gets a short full fine-tune on generic chat in which it helps with everything: benign and
borderline prompts get a direct helpful answer, harmful and jailbreak prompts get a compliant answer
in the placeholder shape the content rule allows ("Sure — here's how. First, [details omitted]...").
No reasoning: like an ordinary instruct model, it answers at once. RW and SRPO then align it exactly
as they would a real model.

The corpus comes from the starter pack's TRAINING files only (never the eval prompts), with fixed
step counts and seed, so the base is the same on every machine and is cached by its settings.
"""
from __future__ import annotations

import os
import random
import shutil
import tempfile
from pathlib import Path

from ..recipe import Recipe, cache_dir, fingerprint
from ..vocabulary import STARTER_DIR

SAFE_KINDS = ("benign", "borderline")


def base_corpus(seed: int = 0) -> list[dict]:
    """prompt/answer pairs of the unaligned base: help with everything, reasoning-free."""
    from ..fileio import read_jsonl

    rit = read_jsonl(STARTER_DIR / "rit_d.jsonl")
    op = read_jsonl(STARTER_DIR / "op_cot.jsonl")
    pp = read_jsonl(STARTER_DIR / "pp_cot.jsonl")
    # compliant answers to harmful requests (placeholder-shaped) are the rejected sides of unsafe pairs
    compliance = [r["rejected"]["answer"] for r in op + pp if r["kind"] not in SAFE_KINDS]
    rng = random.Random(seed)
    rows = []
    for r in rit:
        answer = r["answer"] if r["kind"] in SAFE_KINDS else rng.choice(compliance)
        rows.append({"prompt": r["prompt"], "answer": answer, "kind": r["kind"]})
    for r in op + pp:
        side = "chosen" if r["kind"] in SAFE_KINDS else "rejected"
        rows.append({"prompt": r["prompt"], "answer": r[side]["answer"], "kind": r["kind"]})
    rng.shuffle(rows)
    return rows


def pretrain_base(path: Path, spec, seed: int) -> dict:
    """Full fine-tune of the freshly built tiny model on the base corpus, in place."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    eot = tok.eos_token

    def prompt(text: str) -> str:
        return tok.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                       add_generation_prompt=True)

    ds = Dataset.from_list([{"prompt": prompt(r["prompt"]), "completion": r["answer"] + eot}
                            for r in base_corpus(seed)])
    args = SFTConfig(output_dir=str(path / ".pretrain"), max_steps=spec.pretrain_steps,
                     per_device_train_batch_size=spec.pretrain_batch_size, learning_rate=spec.pretrain_lr,
                     lr_scheduler_type="cosine", warmup_steps=0.05, weight_decay=0.0, max_length=256,
                     completion_only_loss=True, use_cpu=not torch.cuda.is_available(), bf16=False,
                     gradient_checkpointing=False, logging_steps=10, report_to=[], save_strategy="no",
                     disable_tqdm=True, dataloader_pin_memory=False, seed=seed, data_seed=seed,
                     dataset_num_proc=None)
    trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    out = trainer.train()
    trainer.model.save_pretrained(path)
    import shutil

    shutil.rmtree(path / ".pretrain", ignore_errors=True)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"steps": spec.pretrain_steps, "first_loss": losses[0] if losses else None,
            "last_loss": losses[-1] if losses else None, "seconds": out.metrics.get("train_runtime")}


# --------------------------------------------------------------------------------------------
# Building the tiny model (byte-level BPE on the kit's own text + a small Llama), cached by its settings
# --------------------------------------------------------------------------------------------
# ChatML with {% generation %} markers (so TRL's assistant masks work too).
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] + '<|im_end|>' }}"
    "{% endgeneration %}{% else %}{{ message['content'] + '<|im_end|>' }}{% endif %}{{ '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


TINY_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]


def tiny_corpus() -> list[str]:
    """Text the tiny BPE is trained on: the starter pack and the policy (what the kit will feed it)."""
    import json

    starter = STARTER_DIR
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
