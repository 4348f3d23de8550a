"""Glue between the recipe and the teacher: client, cache and base-model fallback for the data and
pairs stages (the chat client: endpoints/client.py; prompts and record builders: synthesis/teacher.py)."""
from __future__ import annotations

import copy

from ..recipe import Recipe, cache_dir


def teacher_cache(recipe: Recipe):
    """Shared by runs (outside the run folder), so a rebuild or --fresh makes zero teacher calls."""
    from ..endpoints.cache import ReplyCache

    return ReplyCache(cache_dir(recipe) / "teacher" / "replies.jsonl")


def _local_model(recipe: Recipe, name_or_path: str):
    """A callable loading (model, tokenizer) lazily: only on the first cache miss."""

    def load():
        from ..modeling.loading import load_model, load_tokenizer

        r = copy.deepcopy(recipe)
        r.model.name_or_path, r.model.chat_template, r.model.end_of_turn = name_or_path, None, None
        r.model.chat_template_kwargs, r.model.finetune = {}, "lora"  # "lora" = load in 4-bit if asked
        return load_model(r, name_or_path), load_tokenizer(r, name_or_path)

    return load


def teacher_client(recipe: Recipe):
    from ..endpoints.client import make_client, settings_from

    hf = _local_model(recipe, recipe.teacher.model) if recipe.teacher.backend == "hf" else None
    return make_client(settings_from(recipe.teacher), hf_source=hf, seed=recipe.seed)


def fallback_client(recipe: Recipe, base_path: str):
    """refusal_fallback: base_model — the unsafe side sampled from the (unaligned) base model."""
    if recipe.teacher.refusal_fallback != "base_model":
        return None
    from ..endpoints.client import HFClient, EndpointSettings

    settings = EndpointSettings(backend="hf", model=base_path, temperature=max(recipe.teacher.temperature, 0.7),
                               max_tokens=recipe.teacher.max_tokens)
    return HFClient(settings, _local_model(recipe, base_path), seed=recipe.seed)


def policy_text(recipe: Recipe) -> str:
    from .teacher import load_policy

    return load_policy(recipe.teacher.policy_path)


def print_report(console, what: str, report: dict) -> None:
    console.print(f"teacher ({what}): kept {report.get('kept')} of {report.get('prompts')} prompts"
                  f" x {report.get('samples')} samples; failed {report.get('failed')}, malformed replies "
                  f"{report.get('malformed_replies')}, refusal fallbacks {report.get('refusal_fallbacks')}, "
                  f"calls {report.get('teacher_calls')} (cache hits {report.get('cache_hits')})")
