"""The eval sets: the built-in ones (saro_lite/starter/eval_<set>.jsonl, the jailbreak set plus the
harmful prompts wrapped in the attack templates), the recipe's extra sets (eval.extra_sets), and the
per-set limit (eval.limit_per_set)."""
from __future__ import annotations

import random

from ..fileio import read_jsonl
from .records import STARTER_DIR


def eval_set_names(recipe) -> list[str]:
    return list(recipe.eval.sets) + [s["name"] for s in recipe.eval.extra_sets]


def load_extra_set(spec: dict, i: int = 0) -> list[dict]:
    """An extra eval set: a local CSV/TSV/JSON/JSONL/parquet file or a hub id, read as given.
    `format` names a known dataset (xstest, advbench, harmbench, strongreject, jbb, wildjailbreak, salad,
    gsm8k, mmlu; see saro_lite/data_sources/datasets.py) whose columns and kinds the kit knows; without it the file
    needs `prompt_field` and `kind`."""
    from .datasets import load_source

    return load_source(spec.get("format", "file"), spec.get("path"), split=spec.get("split"),
                       config=spec.get("config"), limit=spec.get("limit"), prompt_field=spec.get("prompt_field"),
                       kind=spec.get("kind"), id_prefix=spec["name"], where=f"eval.extra_sets[{i}]")


def templated_attacks(recipe) -> list[dict]:
    """Harmful eval prompts wrapped in the kit's jailbreak templates; each row records its template."""
    from .attacks import TEMPLATES, apply_attacks

    names = recipe.eval.attack_templates or list(TEMPLATES)
    per = min(recipe.eval.attacks_per_prompt, len(names))
    return apply_attacks(read_jsonl(STARTER_DIR / "eval_harmful.jsonl"), names, per_prompt=per, seed=recipe.seed)


def load_eval_sets(recipe) -> dict[str, list[dict]]:
    sets: dict[str, list[dict]] = {}
    for name in recipe.eval.sets:
        sets[name] = read_jsonl(STARTER_DIR / f"eval_{name}.jsonl")
        if name == "jailbreak" and recipe.eval.attacks_per_prompt:
            sets[name] = sets[name] + templated_attacks(recipe)
    for i, spec in enumerate(recipe.eval.extra_sets):
        sets[spec["name"]] = load_extra_set(spec, i)
    limit = recipe.eval.limit_per_set
    if limit:
        rng = random.Random(recipe.seed)
        for name, rows in sets.items():
            if len(rows) > limit:
                keep = set(rng.sample(range(len(rows)), limit))
                sets[name] = [r for i, r in enumerate(rows) if i in keep]
    return sets
