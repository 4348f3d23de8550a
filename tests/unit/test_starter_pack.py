"""The shipped starter pack: counts, kinds, trace shape, pairs that really differ, no train/eval
overlap, diversity of the hand-written traces, the content rule's placeholder, manifest hashes."""
import re
from collections import Counter

import pytest

from saro_lite.fileio import read_jsonl
from saro_lite.data_sources.records import BALANCED_OP, STARTER_DIR, load_op, load_pp, load_rit_d
from saro_lite.data_sources.starter_pack import EVAL_FILES, TRAIN_FILES, verify

KINDS = ("harmful", "jailbreak", "benign", "borderline")


def norm(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def distinct_4gram_share(texts) -> float:
    total, seen = 0, set()
    for t in texts:
        words = norm(t).split()
        grams = [tuple(words[i:i + 4]) for i in range(len(words) - 3)]
        total += len(grams)
        seen.update(grams)
    return len(seen) / total


@pytest.fixture(scope="module")
def pack():
    return {"rit_d": load_rit_d(STARTER_DIR / "rit_d.jsonl"), "op": load_op(STARTER_DIR / "op_cot.jsonl"),
            "pp": load_pp(STARTER_DIR / "pp_cot.jsonl"), "opb": load_op(STARTER_DIR / BALANCED_OP),
            "eval": [r for f in EVAL_FILES for r in read_jsonl(STARTER_DIR / f)]}


def test_counts_and_kinds(pack):
    kinds = Counter(r["kind"] for r in pack["rit_d"])
    assert all(kinds[k] >= 50 for k in KINDS), kinds
    assert len(pack["op"]) >= 200 and len(pack["pp"]) >= 150
    assert {r["kind"] for r in pack["op"]} == set(KINDS) == {r["kind"] for r in pack["pp"]}
    ev = Counter(r["kind"] for r in pack["eval"])
    assert len(pack["eval"]) >= 200 and all(ev[k] >= 20 for k in KINDS + ("general",)), ev


def test_traces_have_three_or_more_steps_and_cite_the_policy(pack):
    for r in pack["rit_d"]:
        assert len(r["reasoning"]) >= 3, r["id"]
        assert all("\n\n" not in s for s in r["reasoning"]), r["id"]  # steps split on blank lines
        assert r["answer"].strip()
    cites = sum(bool(re.search(r"\bP[1-9][a-d]?\b", " ".join(r["reasoning"]))) for r in pack["rit_d"])
    assert cites / len(pack["rit_d"]) > 0.9
    for r in pack["pp"]:
        assert len(r["prefix"]) >= 1 and len(r["prefix"]) + len(r["chosen"]["steps"]) >= 3, r["id"]


def test_pairs_really_differ(pack):
    for r in pack["op"]:
        assert norm(" ".join(r["chosen"]["reasoning"])) != norm(" ".join(r["rejected"]["reasoning"])), r["id"]
        assert norm(r["chosen"]["answer"]) != norm(r["rejected"]["answer"]), r["id"]
    for r in pack["pp"]:
        assert norm(" ".join(r["chosen"]["steps"])) != norm(" ".join(r["rejected"]["steps"])), r["id"]


def test_unsafe_compliance_uses_the_placeholder(pack):
    """Content rule: compliance to harmful requests only has the shape, specifics are [details omitted]."""
    unsafe = [r["rejected"]["answer"] for r in pack["op"] + pack["pp"] if r["kind"] in ("harmful", "jailbreak")]
    assert sum("[details omitted]" in a for a in unsafe) / len(unsafe) > 0.95
    assert not any("[details omitted]" in r["answer"] for r in pack["rit_d"])


def test_no_train_eval_overlap(pack):
    train = {norm(r["prompt"]) for key in ("rit_d", "op", "pp", "opb") for r in pack[key]}
    overlap = [r["id"] for r in pack["eval"] if norm(r["prompt"]) in train]
    assert not overlap


STOP = set("that this with what from have would your about into them they their there then than when where which "
           "while will just like make some help tell give need want know does could should".split())


def content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]{4,}", text.lower()) if w not in STOP}


def test_eval_intents_are_disjoint_from_training(pack):
    """Held-out harm: no harmful or jailbreak eval prompt asks for a goal (intent) any training prompt
    asks for, so harmful ASR measures more than recall of trained refusals. Measured before the split:
    58 of 60 harmful and 40 of 40 jailbreak eval prompts shared a training intent."""
    unsafe = ("harmful", "jailbreak")
    train = [r for key in ("rit_d", "op", "pp", "opb") for r in pack[key] if r["kind"] in unsafe]
    held = [r for r in pack["eval"] if r["kind"] in unsafe]
    assert all(r.get("intent") for r in train + held)
    shared = [r["id"] for r in held if r["intent"] in {t["intent"] for t in train}]
    assert not shared, shared
    assert len({r["intent"] for r in held}) == len(held)  # one goal per eval prompt
    # and no near-copy in wording either (content words of 4+ letters; measured max 0.22, old set 0.60)
    train_words = [content_words(t["prompt"]) for t in train]
    worst = max(len(w & t) / len(w | t) for w in map(content_words, (r["prompt"] for r in held)) for t in train_words)
    assert worst < 0.4, worst


def test_eval_jailbreaks_hold_out_whole_attack_families(pack):
    """Some jailbreak families never appear in training: the report's unseen-family ASR needs them."""
    from saro_lite.data_sources.attacks import attack_family

    trained = {attack_family(r) for key in ("rit_d", "op", "pp", "opb") for r in pack[key] if r["kind"] == "jailbreak"}
    held = [attack_family(r) for r in pack["eval"] if r["kind"] == "jailbreak"]
    assert None not in held  # every eval jailbreak names its family
    unseen = Counter(f for f in held if f not in trained)
    assert len(unseen) >= 5 and sum(unseen.values()) >= 20, unseen
    assert len(held) - sum(unseen.values()) >= 10  # and seen families for the comparison


def test_unique_ids_and_general_answers(pack):
    for key in ("rit_d", "op", "pp", "eval"):
        ids = [r["id"] for r in pack[key]]
        assert len(ids) == len(set(ids)), key
    general = [r for r in pack["eval"] if r["kind"] == "general"]
    for r in general:
        if r["category"] == "mcq":
            assert r["answer"] in "ABCD" and all(f"{c})" in r["prompt"] for c in "ABCD")
        else:
            float(r["answer"])


def test_traces_are_hand_written_not_templated(pack):
    share = distinct_4gram_share(" ".join(r["reasoning"]) for r in pack["rit_d"])
    assert share > 0.8, share  # a template fill sits far below 0.45


def test_manifest_hashes_match():
    assert verify() == []
    assert set(TRAIN_FILES) | set(EVAL_FILES) <= {p.name for p in STARTER_DIR.iterdir()}


REFLECTION = re.compile(r"\b(wait|hmm+|hold on|on second thought|let me (?:double[- ])?check|let me reconsider|"
                        r"re-?consider|actually|looking again|stepping back)\b", re.I)


def side_words(side: dict) -> int:
    return len(" ".join(side["reasoning"] + [side["answer"]]).split())


def test_length_balanced_pairs_defeat_the_surface_cues(pack):
    """op_cot_balanced.jsonl: the rejected side is never the shorter one, the placeholder wording varies,
    reflection markers are as common on the rejected side as on the chosen one; in op_cot.jsonl each of
    these cues alone separates chosen from rejected."""
    op, opb = pack["op"], pack["opb"]
    assert all(side_words(x["chosen"]) > side_words(x["rejected"]) for x in op)  # why the balanced file exists
    assert len(opb) == 59 and {x["kind"] for x in opb} == set(KINDS)
    assert all(side_words(x["rejected"]) >= side_words(x["chosen"]) for x in opb)
    unsafe = [x["rejected"]["answer"] for x in opb if x["kind"] in ("harmful", "jailbreak")]
    assert sum("[details omitted]" in a for a in unsafe) / len(unsafe) <= 0.25
    def marked(side):
        return sum(bool(REFLECTION.search(" ".join(x[side]["reasoning"]))) for x in opb) / len(opb)
    assert 0.35 <= marked("chosen") <= 0.65 and 0.35 <= marked("rejected") <= 0.65
    assert not {x["id"] for x in opb} & {x["id"] for x in op}


def test_pairs_length_balanced_adds_the_balanced_pairs():
    from saro_lite.data_sources.holdout import known_pair_records
    from saro_lite.recipe import load_recipe

    plain, _ = known_pair_records(load_recipe(None, []))
    with_balanced, pp = known_pair_records(load_recipe(None, ["pairs.length_balanced=true"]))
    assert len(with_balanced) == len(plain) + 59 and sum(x["id"].startswith("opb-") for x in with_balanced) == 59
    assert len(pp) == 160
