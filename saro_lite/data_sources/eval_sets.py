"""The eval sets: the built-in ones (saro_lite/starter/eval_<set>.jsonl, the jailbreak set plus the
harmful prompts wrapped in the attack templates), the real ones read from a pinned PyPI wheel
(harmbench, donotanswer, wild_jailbreak: data_sources/real_sets.py), the recipe's extra sets
(eval.extra_sets), and the limits (eval.limit_per_set, eval.set_limits per set: a seeded sample)."""
from __future__ import annotations

import random

from ..fileio import read_jsonl
from ..vocabulary import STARTER_DIR


def eval_set_names(recipe) -> list[str]:
    return list(recipe.eval.sets) + [s["name"] for s in recipe.eval.extra_sets]


def load_extra_set(spec: dict, i: int = 0) -> list[dict]:
    """An extra eval set: a local CSV/TSV/JSON/JSONL/parquet file or a hub id, read as given.
    `format` names a known dataset (xstest, advbench, harmbench, strongreject, jbb, wildjailbreak, salad,
    gsm8k, mmlu; see saro_lite/data_sources/public_datasets.py) whose columns and kinds the kit knows; without it the file
    needs `prompt_field` and `kind`."""
    from .public_datasets import load_source

    return load_source(spec.get("format", "file"), spec.get("path"), split=spec.get("split"),
                       config=spec.get("config"), limit=spec.get("limit"), prompt_field=spec.get("prompt_field"),
                       kind=spec.get("kind"), id_prefix=spec["name"], where=f"eval.extra_sets[{i}]")


def templated_attacks(recipe) -> list[dict]:
    """Harmful eval prompts wrapped in the kit's jailbreak templates; each row records its template."""
    from .attacks import TEMPLATES, apply_attacks

    names = recipe.eval.attack_templates or list(TEMPLATES)
    per = min(recipe.eval.attacks_per_prompt, len(names))
    return apply_attacks(read_jsonl(STARTER_DIR / "eval_harmful.jsonl"), names, per_prompt=per, seed=recipe.seed)


def load_eval_sets(recipe, console=None) -> dict[str, list[dict]]:
    from .real_sets import load_real_set
    from ..vocabulary import REAL_SETS

    sets: dict[str, list[dict]] = {}
    for name in recipe.eval.sets:
        if name in REAL_SETS:
            sets[name] = load_real_set(name, recipe, console)
            continue
        sets[name] = read_jsonl(STARTER_DIR / f"eval_{name}.jsonl")
        if name == "jailbreak" and recipe.eval.attacks_per_prompt:
            sets[name] = sets[name] + templated_attacks(recipe)
    for i, spec in enumerate(recipe.eval.extra_sets):
        sets[spec["name"]] = load_extra_set(spec, i)
    rng = random.Random(recipe.seed)
    for name, rows in sets.items():
        limit = recipe.eval.set_limits.get(name, recipe.eval.limit_per_set)
        if limit and len(rows) > limit:
            keep = set(rng.sample(range(len(rows)), limit))
            sets[name] = [r for i, r in enumerate(rows) if i in keep]
    return sets
