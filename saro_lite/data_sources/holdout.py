"""Which prompts are held out for reward tracking: the validation split of the preference pairs (by prompt,
so no held-out pair has a sibling in training), and the same split computed from the recipe alone so the
data stage can leave those prompts out of the RW traces."""
from __future__ import annotations

import random
from collections import Counter, defaultdict

from ..errors import UserError
from ..vocabulary import STARTER_DIR
from .records import BALANCED_OP, balanced_limit, load_op, load_pp


def prompt_key(record: dict) -> str:
    """Which prompt a pair belongs to: its `prompt_id` where the record has one (teacher records, one per
    sample), else its prompt text (whitespace and case folded). All pairs of one prompt share a key."""
    pid = record.get("prompt_id")
    if pid not in (None, ""):
        return f"id:{pid}"
    return "text:" + normalize_prompt(record["prompt"])


def normalize_prompt(text: str) -> str:
    return " ".join(text.split()).lower()


def split_val(rows: list[dict], val_size: int, seed: int) -> tuple[list[dict], list[dict]]:
    """Hold out `val_size` pairs (fewer when the data is small, never under 8), spread over
    (type, kind) groups round-robin so the validation set mirrors the training mix.

    The split is by prompt: all pairs of one prompt (same `prompt_key`, see prompt_key(); rows without
    one count as their own prompt) go to the same side, so an OP-COT pair held out never has its PP-COT
    sibling in training. A group gives at most half its pairs (a group of one gives none), so a kind with
    few pairs still trains. When no prompt left fits the remaining room exactly, the smallest one is held out
    and the set ends a little over its size (by less than one prompt's pairs)."""
    n_val = min(val_size, len(rows) // 4)
    if n_val < 8:
        if len(rows) < 16:
            raise UserError(f"pairs: only {len(rows)} pairs; reward tracking needs at least 8 held-out pairs "
                            f"and as many to train on (16 in all). On the self path, raise pairs.k or "
                            f"pairs.max_new_tokens, or use more prompts (data.limit)")
        n_val = 8
    rng = random.Random(seed)
    members: dict[str, list[dict]] = defaultdict(list)  # prompt key -> its pairs, in file order
    for r in rows:
        members[r.get("prompt_key") or f"row:{r['id']}"].append(r)
    buckets: dict[tuple, list[str]] = defaultdict(list)  # (type, kind) -> prompt keys with such a pair
    for key, rs in members.items():
        for tk in dict.fromkeys((r["type"], r["kind"]) for r in rs):
            buckets[tk].append(key)
    for b in buckets.values():
        rng.shuffle(b)
    # a group gives at most half its pairs to validation: round-robin alone would hold out every pair of a
    # small group (the self path's 8 PP-COT pairs among 136 went to validation, none to training)
    size = Counter((r["type"], r["kind"]) for r in rows)
    share = {k: size[k] // 2 for k in buckets}
    held_of = Counter()  # (type, kind) -> held-out pairs of that group
    groups = {key: Counter((r["type"], r["kind"]) for r in rs) for key, rs in members.items()}  # a prompt's pairs

    def within_share(key: str) -> bool:  # its pairs (siblings of other groups too) keep every group in its share
        return all(held_of[g] + n <= share[g] for g, n in groups[key].items())

    taken: set[str] = set()
    n_taken = 0
    order = sorted(buckets)
    while n_taken < n_val:
        progressed = False
        for k in order:  # round-robin: the next prompt of each (type, kind) that still fits
            fits = [key for key in buckets[k] if key not in taken and n_taken + len(members[key]) <= n_val
                    and within_share(key)]
            if fits:
                taken.add(fits[-1])
                n_taken += len(members[fits[-1]])
                held_of.update(groups[fits[-1]])
                progressed = True
        if not progressed:  # nothing fits exactly: the smallest prompt left, then stop
            free = [key for k in order for key in reversed(buckets[k]) if key not in taken and within_share(key)]
            if free:
                key = min(free, key=lambda x: len(members[x]))
                taken.add(key)
                n_taken += len(members[key])
            break
    held = {r["id"] for key in taken for r in members[key]}
    return [r for r in rows if r["id"] not in held], [r for r in rows if r["id"] in held]


def known_pair_records(r, both: bool = False) -> tuple[list[dict], list[dict]] | None:
    """The OP-COT / PP-COT records the pairs stage starts from, when they are known before it runs
    (pairs.source starter or file), loaded and limited exactly as run() does; None for teacher and self
    (those pairs exist only after the stage has run). both=True ignores pairs.use_op / use_pp: the
    validation split is drawn from both kinds of pairs, so an ablation that turns one off holds out the
    same prompts and trains on the same RW data as the full run (the pairs stage then drops the kind
    that is off from train and validation)."""
    kinds = r.data.kinds
    use_op, use_pp = (True, True) if both else (r.pairs.use_op, r.pairs.use_pp)
    if r.pairs.source == "file":
        op = load_op(r.pairs.op_path) if use_op and r.pairs.op_path else []
        pp = load_pp(r.pairs.pp_path) if use_pp and r.pairs.pp_path else []
    elif r.pairs.source == "starter":
        op = (load_op(STARTER_DIR / "op_cot.jsonl")
              + (load_op(STARTER_DIR / BALANCED_OP) if r.pairs.length_balanced else [])) if use_op else []
        pp = load_pp(STARTER_DIR / "pp_cot.jsonl") if use_pp else []
    else:
        return None
    return balanced_limit(op, r.pairs.op_limit, kinds, r.seed), balanced_limit(pp, r.pairs.pp_limit, kinds, r.seed)


def pair_index(op: list[dict], pp: list[dict]) -> list[dict]:
    """What split_val reads of each pair, in render_pairs' order: {id, type, kind, prompt_key, text}."""
    return ([{"id": f"op:{x['id']}", "type": "op", "kind": x["kind"], "prompt_key": prompt_key(x),
              "text": x["prompt"]} for x in op]
            + [{"id": f"pp:{x['id']}", "type": "pp", "kind": x["kind"], "prompt_key": prompt_key(x),
                "text": x["prompt"]} for x in pp])


def validation_prompts(r) -> set[str]:
    """The prompts (normalize_prompt) of the pairs the pairs stage will hold out for validation, computed
    from the recipe alone (same records, split, seed) so the data stage can leave them out of RW.
    Empty when the pairs are not known in advance (teacher, self) or too few to split."""
    recs = known_pair_records(r, both=True)
    if recs is None:
        return set()
    try:
        _, val = split_val(pair_index(*recs), r.pairs.val_size, r.seed)
    except UserError:
        return set()  # the pairs stage reports it
    return {normalize_prompt(x["text"]) for x in val}


# The settings validation_prompts() reads besides seed and data (part of the data stage's fingerprint).
VALIDATION_KEYS = ["pairs.source", "pairs.op_path", "pairs.pp_path",
                   "pairs.op_limit", "pairs.pp_limit", "pairs.val_size", "pairs.length_balanced"]
