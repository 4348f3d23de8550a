"""data and pairs stages: selection, validation pairs, record checks."""
import pytest

from saro_lite.errors import UserError
from saro_lite.data_sources.holdout import split_val
from saro_lite.data_sources.records import balanced_limit, load_op, load_pp, load_rit_d, STARTER_DIR


def rows(n_per_kind):
    return [{"id": f"{k}{i}", "kind": k} for k in ("harmful", "jailbreak", "benign", "borderline")
            for i in range(n_per_kind)]


def test_balanced_limit_spreads_over_kinds_and_is_deterministic():
    data = rows(10)
    kept = balanced_limit(data, 12, ["harmful", "jailbreak", "benign", "borderline"], seed=0)
    assert len(kept) == 12 and {r["kind"] for r in kept} == {"harmful", "jailbreak", "benign", "borderline"}
    assert all(sum(r["kind"] == k for r in kept) == 3 for k in ("harmful", "benign"))
    assert kept == balanced_limit(data, 12, ["harmful", "jailbreak", "benign", "borderline"], seed=0)


def test_balanced_limit_gives_a_short_kind_share_to_others():
    data = rows(10)[:12]  # 10 harmful, 2 jailbreak
    kept = balanced_limit(data, 8, ["harmful", "jailbreak"], seed=1)
    assert sum(r["kind"] == "jailbreak" for r in kept) == 2 and len(kept) == 8


def test_split_val_sizes():
    pairs = [{"id": str(i), "type": "op" if i % 3 else "pp", "kind": "benign"} for i in range(200)]
    train, val = split_val(pairs, 32, 0)
    assert len(val) == 32 and len(train) == 168 and not {r["id"] for r in val} & {r["id"] for r in train}
    train, val = split_val(pairs[:40], 32, 0)
    assert len(val) == 10  # a quarter of a small set
    train, val = split_val(pairs[:20], 32, 0)
    assert len(val) == 8  # never below 8
    with pytest.raises(UserError, match="at least 8 held-out pairs"):
        split_val(pairs[:10], 32, 0)


def test_record_validation_names_the_record(tmp_path):
    p = tmp_path / "rit.jsonl"
    p.write_text('{"id": "a", "prompt": "x", "kind": "harmful", "reasoning": ["s"], "answer": "y"}\n'
                 '{"id": "b", "prompt": "x", "kind": "evil", "reasoning": ["s"], "answer": "y"}\n')
    with pytest.raises(UserError, match=r"record 2 \(id 'b'\): 'kind' must be one of"):
        load_rit_d(p)
    q = tmp_path / "op.jsonl"
    q.write_text('{"id": "a", "prompt": "x", "kind": "benign", "chosen": {"reasoning": "oops", "answer": "y"}, '
                 '"rejected": {"reasoning": ["s"], "answer": "n"}}\n')
    with pytest.raises(UserError, match="'chosen' must be"):
        load_op(q)


def test_starter_pack_loads():
    assert len(load_rit_d(STARTER_DIR / "rit_d.jsonl")) >= 40
    assert len(load_op(STARTER_DIR / "op_cot.jsonl")) >= 40


def test_shorten_keeps_the_decision_and_first_sentences():
    from saro_lite.data_sources.records import shorten

    row = {"id": "a", "prompt": "p", "kind": "benign", "reasoning": ["s1", "s2", "s3", "s4", "Decision: help."],
           "answer": "First sentence. Second one! Third? Fourth."}
    assert shorten(row) == row  # both off: unchanged
    short = shorten(row, max_steps=3, max_sentences=2)
    assert short["reasoning"] == ["s1", "s2", "Decision: help."]
    assert short["answer"] == "First sentence. Second one!"
    assert row["reasoning"][1] == "s2" and len(row["reasoning"]) == 5  # the input is not modified
    assert shorten(row, max_steps=1)["reasoning"] == ["Decision: help."]
    assert shorten(row, max_steps=9, max_sentences=9) == {**row, "answer": row["answer"]}


def test_shorten_is_off_by_default_in_the_recipe():
    from saro_lite.recipe import Data

    assert Data().max_reasoning_steps is None and Data().max_answer_sentences is None


def test_shorten_pairs_cuts_both_sides_like_rw_and_keeps_the_pp_decision_point():
    from saro_lite.pairs import shorten_pairs
    from saro_lite.training.examples import render_pairs
    from saro_lite.recipe import Pairs

    assert Pairs().shorten is False
    op = load_op(STARTER_DIR / "op_cot.jsonl")[:3]
    pp = load_pp(STARTER_DIR / "pp_cot.jsonl")[:3]
    sop, spp = shorten_pairs(op, pp, 1, 1)
    for full, short in zip(op, sop):
        for side in ("chosen", "rejected"):
            assert short[side]["reasoning"] == full[side]["reasoning"][-1:]  # the decision step
            assert full[side]["answer"].startswith(short[side]["answer"])
            assert len(short[side]["answer"]) <= len(full[side]["answer"])
        assert short["chosen"] != short["rejected"]  # the pair still disagrees
    for full, short in zip(pp, spp):
        assert short["prefix"] == full["prefix"][-1:]  # the step the continuation answers
        for side in ("chosen", "rejected"):  # first step (the chosen side's reflection) + the decision
            steps = full[side]["steps"]
            assert short[side]["steps"] == (steps[:1] + steps[-1:] if len(steps) > 2 else steps)
        assert short["chosen"]["steps"][0] == full["chosen"]["steps"][0]  # the reflection survives
    assert shorten_pairs(op, pp, None, None) == (op, pp)  # both off: unchanged


def test_pair_traces_adds_chosen_sides_of_new_prompts():
    from saro_lite.data import pair_traces
    from saro_lite.recipe import Data

    assert Data().pair_trace_kinds == []
    rit = load_rit_d(STARTER_DIR / "rit_d.jsonl")
    extra = pair_traces(rit, ["harmful", "jailbreak", "benign", "borderline"])
    assert extra and all(x["reasoning"] and x["answer"] for x in extra)
    prompts = [x["prompt"].strip().lower() for x in rit + extra]
    assert len(prompts) == len(set(prompts))  # no prompt twice
    safe = pair_traces(rit, ["benign", "borderline"])
    assert safe and {x["kind"] for x in safe} == {"benign", "borderline"}
    assert pair_traces(rit, []) == []


def _raw_prompts(rows, op, pp):
    """The prompt text (normalized) of each rendered pair row, looked up by its record id."""
    from saro_lite.data_sources.holdout import normalize_prompt

    text = {f"op:{x['id']}": x["prompt"] for x in op} | {f"pp:{x['id']}": x["prompt"] for x in pp}
    return {normalize_prompt(text[r["id"]]) for r in rows}


def test_split_val_keeps_all_pairs_of_a_prompt_on_one_side():
    """Self-path shape: every prompt has an OP-COT and a PP-COT pair (same id, same text). No validation
    prompt may have a sibling pair in training, and the (type, kind) spread and sizes hold."""
    from collections import Counter

    from saro_lite.data_sources.holdout import prompt_key

    op = balanced_limit(load_op(STARTER_DIR / "op_cot.jsonl"), 80, ["harmful", "jailbreak", "benign", "borderline"], 0)
    pp = [{**x, "type": "pp"} for x in op]  # the same prompts again, as PP-COT pairs
    rows = ([{"id": f"op:{x['id']}", "type": "op", "kind": x["kind"], "prompt_key": prompt_key(x)} for x in op]
            + [{"id": f"pp:{x['id']}", "type": "pp", "kind": x["kind"], "prompt_key": prompt_key(x)} for x in pp])
    for seed in range(5):
        train, val = split_val(rows, 20, seed)
        assert len(val) == 20 and len(train) == len(rows) - 20
        assert not {r["prompt_key"] for r in val} & {r["prompt_key"] for r in train}
        spread = Counter((r["type"], r["kind"]) for r in val)
        assert len(spread) == 8 and max(spread.values()) - min(spread.values()) <= 2, spread
    # prompt_id (teacher records, one per sample) groups samples of one prompt whatever their text
    recs = [{"id": f"p{i}-s{j}", "prompt_id": f"p{i}", "prompt": f"prompt {i} sample {j}", "kind": "benign"}
            for i in range(20) for j in range(2)]
    rows = [{"id": f"op:{x['id']}", "type": "op", "kind": x["kind"], "prompt_key": prompt_key(x)} for x in recs]
    train, val = split_val(rows, 10, 0)
    assert len(val) == 10 and not {r["prompt_key"] for r in val} & {r["prompt_key"] for r in train}


def test_split_val_leaves_a_small_group_half_its_pairs_to_train_on():
    """The self path's shape: 128 OP-COT pairs over four kinds and 8 PP-COT pairs over two. Round-robin by
    (type, kind) alone held out all 8 PP-COT pairs, so SRPO trained on none; a group now gives at most half."""
    from collections import Counter

    kinds = ["harmful", "jailbreak", "benign", "borderline"]
    rows = ([{"id": f"op:{i}", "type": "op", "kind": kinds[i % 4], "prompt_key": f"p{i}"} for i in range(128)]
            + [{"id": f"pp:{i}", "type": "pp", "kind": kinds[i % 2], "prompt_key": f"p{i}"} for i in range(200, 208)])
    for seed in range(5):
        train, val = split_val(rows, 32, seed)
        assert len(val) == 32 and len(train) == len(rows) - 32
        held = Counter((r["type"], r["kind"]) for r in val)
        assert held[("pp", "harmful")] <= 2 and held[("pp", "jailbreak")] <= 2, held
        assert sum(r["type"] == "pp" for r in train) >= 4
        assert len(held) == 6  # every group is still represented
    # a group of one pair is never held out
    lone = rows[:40] + [{"id": "pp:x", "type": "pp", "kind": "harmful", "prompt_key": "px"}]
    assert "pp:x" not in {r["id"] for r in split_val(lone, 10, 0)[1]}


def test_no_validation_prompt_in_srpo_train_on_the_starter_pack(default_recipe, tiny_tok):
    from saro_lite.modeling.rendering import make_renderer
    from saro_lite.training.examples import render_pairs

    op, pp = load_op(STARTER_DIR / "op_cot.jsonl"), load_pp(STARTER_DIR / "pp_cot.jsonl")
    rows = render_pairs(make_renderer(default_recipe, tiny_tok), op, pp)
    for seed in range(3):
        train, val = split_val(rows, 32, seed)
        assert len(val) == 32
        assert not _raw_prompts(val, op, pp) & _raw_prompts(train, op, pp)


def test_no_validation_prompt_in_srpo_train_of_a_finished_run(tiny_run):
    from saro_lite.fileio import read_jsonl

    op, pp = read_jsonl(tiny_run / "data/op_cot.jsonl"), read_jsonl(tiny_run / "data/pp_cot.jsonl")
    train, val = read_jsonl(tiny_run / "data/srpo_train.jsonl"), read_jsonl(tiny_run / "data/srpo_val.jsonl")
    assert val and train
    assert not _raw_prompts(val, op, pp) & _raw_prompts(train, op, pp)


def _training_leaks(run):
    """Validation prompts (normalized text) found in the run's training files: data/rit_d.jsonl (RW) and
    data/srpo_train.jsonl (SRPO)."""
    from saro_lite.fileio import read_jsonl
    from saro_lite.data_sources.holdout import normalize_prompt

    op, pp = read_jsonl(run / "data/op_cot.jsonl"), read_jsonl(run / "data/pp_cot.jsonl")
    val = _raw_prompts(read_jsonl(run / "data/srpo_val.jsonl"), op, pp)
    assert val
    rw = {normalize_prompt(x["prompt"]) for x in read_jsonl(run / "data/rit_d.jsonl")}
    return (val & rw) | (val & _raw_prompts(read_jsonl(run / "data/srpo_train.jsonl"), op, pp))


def test_no_validation_prompt_in_any_training_file_of_a_finished_run(tiny_run):
    assert not _training_leaks(tiny_run)


def test_no_validation_prompt_in_rw_with_pair_traces(tmp_path, cache_dir):
    """data.pair_trace_kinds (the toy recipe) trains RW on the chosen sides of the starter pairs: the
    data stage leaves out the prompts the pairs stage (run after it) holds out for validation."""
    from conftest import FAST, sets
    from saro_lite.cli import main
    from saro_lite.fileio import read_jsonl
    from saro_lite.recipe import load_recipe

    fast = [x for x in FAST if not x.startswith("data.pair_trace_kinds")]
    assert load_recipe(None).data.pair_trace_kinds  # the toy recipe's setting, kept here
    assert main(["--stages", "data,pairs", *sets(*fast, f"output_dir={tmp_path}")]) == 0
    assert not _training_leaks(tmp_path)
    assert len(read_jsonl(tmp_path / "data/srpo_val.jsonl")) == 8
    # a validation setting the data stage reads re-runs it (and what builds on it)
    assert main(["--stages", "data,pairs", *sets(*fast, f"output_dir={tmp_path}", "pairs.val_size=12")]) == 0
    assert not _training_leaks(tmp_path)
    assert len(read_jsonl(tmp_path / "data/srpo_val.jsonl")) == 12


def test_star1_with_starter_safe_traces_beside_it(tmp_path, cache_dir):
    """data.source star1 + data.add_starter_kinds [benign, borderline]: STAR-1's harmful traces and the
    starter's safe ones in one RIT-D file (RW would otherwise see refusals only); the option is refused
    where it means nothing (the starter pack as source) or names an unknown kind."""
    from conftest import FAST, FIXTURES, sets
    from saro_lite.cli import main
    from saro_lite.fileio import read_jsonl
    from saro_lite.recipe import load_recipe

    star = FIXTURES / "sources" / "star1.json"
    extra = ["data.source=star1", f"data.path={star}", "data.limit=null", "data.add_starter_kinds=[benign, borderline]",
             f"output_dir={tmp_path}"]
    assert main(["--stages", "data", *sets(*FAST, *extra)]) == 0
    rows = read_jsonl(tmp_path / "data/rit_d.jsonl")
    kinds = [r["kind"] for r in rows]
    starter = read_jsonl(STARTER_DIR / "rit_d.jsonl")
    assert kinds.count("harmful") == 4  # the fixture's four STAR-1 rows
    safe = [r for r in rows if r["kind"] in ("benign", "borderline")]
    assert 0 < len(safe) <= sum(r["kind"] in ("benign", "borderline") for r in starter)
    assert {r["id"] for r in safe} <= {r["id"] for r in starter}  # the starter's own traces, as written
    with pytest.raises(UserError, match="data.add_starter_kinds: the starter pack is already the source"):
        load_recipe(None, ["data.add_starter_kinds=[benign]"])
    with pytest.raises(UserError, match="data.add_starter_kinds: unknown kind 'bengin'.*did you mean 'benign'"):
        load_recipe(None, ["data.source=star1", "data.add_starter_kinds=[bengin]"])
