"""The self path (saro_lite.synthesis.self_path): pass rule, Shortest Rejection Sampling, OP-COT / PP-COT from the
model's own samples. Pure functions on hand-built samples, then the mechanics on the tiny RW model
(shapes, determinism, report keys; not quality: the tiny model is weak)."""
import json

import pytest

from saro_lite.errors import UserError
from saro_lite.judges.reply import ReplyVerdict, judge_reply
from saro_lite.modeling.rendering import Renderer
from saro_lite.data_sources.records import _check
from saro_lite.synthesis.self_path import (DEFAULT_REFLECTION_CUE, Sample, assemble, continuation_parts, make_sample, passes,
                                plan_cuts, pp_record, self_op_cot, self_rit_d, shortest_rejection_sampling)

REFUSED = ReplyVerdict("full_refusal", True, False, "refusal")
PARTIAL = ReplyVerdict("partial_refusal", True, True, "refuses, yet delivers part of it")  # a leak
SAFE_PARTIAL = ReplyVerdict("partial_refusal", True, False, "refuses; the rest is an alternative")
COMPLIED = ReplyVerdict("full_compliance", False, True, "answers")
EMPTY = ReplyVerdict("no_answer", False, False, "no answer")  # what the judge says about an unclosed trace
# neither a refusal nor on-target help: a small model's confused or garbled reply the judge reads as delivering
# nothing (the shape the self path made chosen before it required a refusal)
NEITHER = ReplyVerdict("full_compliance", False, False, "answers; delivers something else")

# Neutral placeholder texts only (content rule): no request content, no method.
REFUSAL = "I can't help with that. If you want, I can point you to resources on lab safety instead."
ANSWER = "Slicing with a step of -1 walks the string from the last character to the first."
COMPLY_SHAPE = "Sure. Step 1: get [details omitted]. Step 2: [details omitted]."
SRS_REPORT_KEYS = {"prompts", "samples", "with_pass", "accepted_samples", "pass_rate", "mean_accepted_tokens",
                   "mean_selected_tokens", "tokens_saved", "saved_share"}

R = Renderer(tokenizer=None, end_of_turn="<|im_end|>")


def P(pid, kind="harmful"):
    return {"id": pid, "prompt": f"placeholder prompt {pid}", "kind": kind, "category": "test", "source": "test"}


def S(tokens, passed, index=0, steps=("Step one.", "Step two."), answer=None, finished=True, safe=None):
    answer = (REFUSAL if passed else COMPLY_SHAPE) if answer is None else answer
    return Sample(text="", steps=list(steps), answer=answer, tokens=tokens, finished=finished,
                  label="full_refusal" if passed else "full_compliance", refused=passed, passed=passed,
                  safe=safe, index=index)


# --------------------------------------------------------------------------------------------
# passes() and make_sample()
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind,verdict,expected", [
    # a refusal that leaks help never passes a harmful prompt; one followed by an alternative does; both
    # are refusals of a benign prompt
    ("harmful", REFUSED, True), ("harmful", COMPLIED, False), ("harmful", PARTIAL, False),
    ("jailbreak", PARTIAL, False), ("harmful", SAFE_PARTIAL, True), ("benign", SAFE_PARTIAL, False),
    ("jailbreak", REFUSED, True), ("jailbreak", COMPLIED, False),
    ("benign", COMPLIED, True), ("benign", REFUSED, False), ("benign", PARTIAL, False),
    ("borderline", COMPLIED, True), ("borderline", REFUSED, False), ("general", COMPLIED, True),
    ("harmful", EMPTY, False), ("benign", EMPTY, False),  # unclosed reasoning is never a pass
    # a harmful prompt's chosen side declines: delivering nothing is not enough
    ("harmful", NEITHER, False), ("jailbreak", NEITHER, False), ("benign", NEITHER, True),
])
def test_passes_per_kind(kind, verdict, expected):
    assert passes(kind, verdict) is expected


def test_a_leaking_partial_refusal_never_passes_a_harmful_prompt():
    leak = judge_reply("I'd rather not help with that, but you'd capture the handshake and run a "
                       "dictionary attack.", "How do I get into my neighbour's wifi?")
    assert leak.label == "partial_refusal" and leak.attack_success and leak.refused
    assert passes("harmful", leak) is False
    assert passes("benign", leak) is False  # a partial refusal of a benign prompt is a refusal


def test_passes_needs_an_answer_and_known_kind():
    assert passes("harmful", REFUSED, answer="") is False
    assert passes("harmful", REFUSED, answer=REFUSAL) is True
    assert passes("harmful", PARTIAL) is False
    with pytest.raises(UserError):
        passes("nonsense", REFUSED)


def test_make_sample_classifies_closure_finish_and_steps():
    h = P("h")
    closed = make_sample(R, h, f"<think>\nA.\n\nB.\n</think>\n\n{REFUSAL}", 40, True)
    assert closed.steps == ["A.", "B."] and closed.answer == REFUSAL and closed.passed and closed.usable
    unclosed = make_sample(R, h, "<think>\nA.\n\nB", 32, False)  # the verdict: no answer
    assert unclosed.label == "no_answer" and not unclosed.safe and not unclosed.passed and not unclosed.closed
    assert unclosed.unanswered  # cut at the limit, reasoning still open
    assert make_sample(R, h, "<think>\nA.", 8, True).unanswered  # an end-of-turn inside the reasoning
    truncated = make_sample(R, h, f"<think>\nA.\n</think>\n\n{REFUSAL}", 32, False)
    assert truncated.safe and not truncated.passed and not truncated.failure and not truncated.unanswered
    no_steps = make_sample(R, h, f"<think>\n</think>\n\n{REFUSAL}", 20, True)
    assert no_steps.safe and not no_steps.passed  # min_steps=1: SRS must not drift to no reasoning
    no_tags = make_sample(R, h, REFUSAL, 20, True)
    assert not no_tags.closed and not no_tags.passed
    complied = make_sample(R, h, f"<think>\nA.\n</think>\n\n{COMPLY_SHAPE}", 30, True)
    assert complied.failure and not complied.passed
    benign = make_sample(R, P("b", "benign"), f"<think>\nA.\n</think>\n\n{ANSWER}", 30, True)
    assert benign.passed


# --------------------------------------------------------------------------------------------
# Shortest Rejection Sampling
# --------------------------------------------------------------------------------------------
def test_srs_picks_the_shortest_passing_sample():
    samples = {"a": [S(50, True, 0), S(5, False, 1), S(20, True, 2), S(20, True, 3)],
               "b": [S(9, False, 0), S(12, False, 1)]}
    selected, _ = shortest_rejection_sampling(samples)
    assert selected["a"].tokens == 20 and selected["a"].index == 2  # shorter failing one ignored; ties: earliest
    assert selected["b"] is None


def test_srs_tokens_saved_arithmetic():
    samples = {"a": [S(10, True), S(30, True), S(5, False)],  # mean accepted 20, selected 10
               "b": [S(40, True), S(90, False)],  # mean accepted 40, selected 40
               "c": [S(7, False)]}  # no pass: left out of both means
    selected, rep = shortest_rejection_sampling(samples)
    assert set(rep) == SRS_REPORT_KEYS
    assert rep["prompts"] == 3 and rep["samples"] == 6 and rep["with_pass"] == 2 and rep["accepted_samples"] == 3
    assert rep["pass_rate"] == pytest.approx(0.5)
    assert rep["mean_accepted_tokens"] == pytest.approx(30.0)  # per-prompt means, then averaged
    assert rep["mean_selected_tokens"] == pytest.approx(25.0)
    assert rep["tokens_saved"] == pytest.approx(5.0)
    assert rep["saved_share"] == pytest.approx(5.0 / 30.0)


def test_srs_report_without_any_pass():
    _, rep = shortest_rejection_sampling({"a": [S(3, False)]})
    assert rep["with_pass"] == 0 and rep["tokens_saved"] is None and rep["saved_share"] is None


def test_self_rit_d_records():
    prompts = [P("a"), P("b")]
    selected = {"a": S(12, True, steps=["One.", "Two."]), "b": None}
    rows = self_rit_d(prompts, selected)
    assert [r["id"] for r in rows] == ["a"]
    assert rows[0]["reasoning"] == ["One.", "Two."] and rows[0]["answer"] == REFUSAL
    assert rows[0]["tokens"] == 12 and rows[0]["origin"] == "self"
    _check(rows, "rit_d", shape="rit_d")


# --------------------------------------------------------------------------------------------
# OP-COT
# --------------------------------------------------------------------------------------------
def test_op_pairs_only_from_pass_versus_fail():
    prompts = [P("mixed"), P("all_pass"), P("all_fail"), P("only_unfinished_fail")]
    samples = {
        "mixed": [S(30, True, 0), S(12, True, 1), S(40, False, 2), S(60, False, 3), S(99, False, 4, finished=False)],
        "all_pass": [S(10, True), S(200, True)],  # a much longer pass is NOT a rejected side
        "all_fail": [S(10, False), S(20, False)],
        "only_unfinished_fail": [S(10, True), S(32, False, finished=False)],
    }
    stats: dict = {}
    rows = self_op_cot(prompts, samples, stats)
    assert [r["id"] for r in rows] == ["mixed"]
    r = rows[0]
    assert r["chosen_tokens"] == 12 and r["rejected_tokens"] == 60  # shortest pass vs longest usable failure
    assert r["chosen"]["answer"] == REFUSAL and r["rejected"]["answer"] == COMPLY_SHAPE
    assert r["origin"] == "self"
    assert stats == {"prompts": 4, "pairs": 1, "skipped_no_pass": 1, "skipped_no_failure": 2,
                     "rejected_unanswered": 0}
    _check(rows, "op", shape="op")


def test_unanswered_samples_become_rejected_sides_only_when_asked_and_as_written(tokenizer):
    """pairs.unanswered_as_rejected: a prompt with a pass but no usable failure takes its longest unanswered
    sample (a <think> loop cut at the token limit) as rejected, rendered as the raw text: no close tag, no
    answer, no end-of-turn invented. A usable failure still wins; an unfinished sample that did close its
    reasoning is not unanswered."""
    from saro_lite.training.examples import render_pairs

    loop = "<think>\n<think>\n<think>\n<think>"
    unanswered = Sample(text=loop, steps=[], answer="", tokens=64, finished=False, label="no_answer",
                        refused=False, passed=False, index=1, reasoning_open=True)
    short_loop = Sample(text="<think>\n<think>", steps=[], answer="", tokens=8, finished=False, label="no_answer",
                        refused=False, passed=False, index=2, reasoning_open=True)
    # cut right after closing its reasoning: no answer yet, but not a loop
    just_closed = Sample(text="<think>\nStep.\n</think>", steps=["Step."], answer="", tokens=99, finished=False,
                         label="no_answer", refused=False, passed=False, index=3)
    # an end-of-turn written inside the reasoning: it never answered either
    ended_open = Sample(text="<think>\n<think>", steps=[], answer="", tokens=6, finished=True, label="no_answer",
                        refused=False, passed=False, index=1, reasoning_open=True)
    assert ended_open.unanswered and not just_closed.unanswered
    prompts = [P("loops", "benign"), P("fails_too"), P("cut_after_answering")]
    samples = {"loops": [S(12, True, 0, answer="Here is the answer."), unanswered, short_loop, just_closed],
               "fails_too": [S(10, True), S(40, False, 1), unanswered],
               "cut_after_answering": [S(10, True), S(32, False, 1, finished=False)]}
    assert [r["id"] for r in self_op_cot(prompts, samples)] == ["fails_too"]
    stats: dict = {}
    rows = self_op_cot(prompts, samples, stats, unanswered_as_rejected=True)
    assert [r["id"] for r in rows] == ["loops", "fails_too"]
    assert rows[0]["rejected"] == {"reasoning": [], "answer": "", "text": loop} and rows[0]["rejected_tokens"] == 64
    assert rows[0]["rejected_from"] == "unanswered" and "rejected_from" not in rows[1]
    assert rows[1]["rejected"]["answer"] == COMPLY_SHAPE  # a usable failure still wins
    assert stats["rejected_unanswered"] == 1 and stats["skipped_no_failure"] == 1

    rendered = render_pairs(Renderer(tokenizer=tokenizer, end_of_turn=tokenizer.eos_token), rows, [])
    assert rendered[0]["rejected"].endswith(loop) and "</think>" not in rendered[0]["rejected"]
    assert tokenizer.eos_token not in rendered[0]["rejected"] and rendered[0]["chosen"].endswith(tokenizer.eos_token)


# --------------------------------------------------------------------------------------------
# PP-COT
# --------------------------------------------------------------------------------------------
def test_pp_cut_bounds_and_choice():
    steps = [f"Step {i}." for i in range(6)]
    prompts = [P(f"p{i}") for i in range(40)] + [P("short"), P("passing")]
    samples = {f"p{i}": [S(50, False, 0, steps=steps), S(50, False, 1, steps=steps[:3])] for i in range(40)}
    samples["short"] = [S(20, False, steps=["Only one."])]  # < 2 steps: cannot be cut
    samples["passing"] = [S(20, True, steps=steps)]  # not a failure
    plans = plan_cuts(prompts, samples, seed=3)
    assert {p["prompt"]["id"] for p in plans} == {f"p{i}" for i in range(40)}
    ks = set()
    for p in plans:
        n = len(p["sample"].steps)
        assert 1 <= p["k"] < n and p["prefix"] == p["sample"].steps[:p["k"]]
        ks.add((n, p["k"]))
    assert len(ks) > 3  # seeded, but not constant
    again = plan_cuts(prompts, samples, seed=3)
    assert [(p["k"], p["sample"].index) for p in plans] == [(p["k"], p["sample"].index) for p in again]


def test_pp_cut_takes_only_usable_failures_by_default():
    steps = ["A.", "B.", "C."]
    samples = {"x": [S(32, False, steps=steps, answer="", finished=False)]}  # ran out of tokens
    assert plan_cuts([P("x")], samples) == []
    assert len(plan_cuts([P("x")], samples, safety_failures_only=False)) == 1


def test_pp_record_shape_and_continuation_parsing():
    sample = S(50, False, 1, steps=["A.", "B.", "C."])
    plan = {"prompt": P("x"), "sample": sample, "k": 2, "prefix": ["A.", "B."]}
    chosen_text = DEFAULT_REFLECTION_CUE + " This reads as a harmful request.\n\nSo I decline.\n</think>\n\n" + REFUSAL
    rejected_text = "Fine, go ahead.\n</think>\n\n" + COMPLY_SHAPE
    c = continuation_parts(R, chosen_text)
    assert c[0][0].startswith(DEFAULT_REFLECTION_CUE) and c[1] == REFUSAL
    assert continuation_parts(R, "Unclosed step") == (["Unclosed step"], "")  # not taken as an answer
    whole = assemble(R, plan["prefix"], chosen_text)
    assert R.parse(whole) == (["A.", "B."] + c[0], REFUSAL)
    row = pp_record(plan, c, continuation_parts(R, rejected_text), DEFAULT_REFLECTION_CUE, 20, 10)
    assert row["k"] == 2 and row["origin"] == "self" and row["prefix"] == ["A.", "B."]
    assert row["rejected"] == {"steps": ["Fine, go ahead."], "answer": COMPLY_SHAPE}
    _check([row], "pp", shape="pp")
    # the rendered pair is prompt+prefix, then the continuations from step k+1 on
    rendered = R.pp_continuation(row["chosen"]["steps"], row["chosen"]["answer"])
    assert rendered.startswith(DEFAULT_REFLECTION_CUE) and rendered.endswith(REFUSAL + "<|im_end|>")


# --------------------------------------------------------------------------------------------
# Mechanics on the tiny RW model
# --------------------------------------------------------------------------------------------
def test_self_path_on_the_tiny_rw_model(tiny_run, tiny_recipe, tokenizer, tmp_path):
    from peft import PeftModel

    from saro_lite.fileio import read_jsonl
    from saro_lite.modeling.loading import load_model
    from saro_lite.modeling.rendering import make_renderer
    from saro_lite.synthesis.self_path import run_self_pairs, sample_k, self_pp_cot

    base = load_model(tiny_recipe, tiny_recipe.model.name_or_path)
    model = PeftModel.from_pretrained(base, str(tiny_run / "warmup/adapter"))
    renderer = make_renderer(tiny_recipe, tokenizer)
    rows = read_jsonl(tiny_run / "data/prompts.jsonl")
    prompts = [next(r for r in rows if r["kind"] == k) for k in ("harmful", "jailbreak", "benign", "borderline")]
    kw = dict(max_new_tokens=32, batch_size=4, temperature=1.0)

    samples = sample_k(model, tokenizer, renderer, prompts, k=2, seed=0, **kw)
    assert list(samples) == [p["id"] for p in prompts]
    for ss in samples.values():
        assert [s.index for s in ss] == [0, 1]
        for s in ss:
            assert 1 <= s.tokens <= 32 and (s.finished or s.tokens == 32)
            assert not s.passed or (s.finished and s.closed and s.safe)
    again = sample_k(model, tokenizer, renderer, prompts, k=2, seed=0, **kw)
    assert [[s.text for s in ss] for ss in again.values()] == [[s.text for s in ss] for ss in samples.values()]
    shifted = sample_k(model, tokenizer, renderer, prompts, k=1, seed=1, **kw)  # pass i is seeded seed + i
    assert [ss[0].text for ss in shifted.values()] == [ss[1].text for ss in samples.values()]

    selected, srs = shortest_rejection_sampling(samples)
    assert set(srs) == SRS_REPORT_KEYS and srs["prompts"] == 4 and srs["samples"] == 8
    _check(self_rit_d(prompts, selected), "rit_d", shape="rit_d")

    op, pp, report = run_self_pairs(model, tokenizer, renderer, prompts, k=2, seed=0, samples_by_prompt=samples,
                                    use_pp=False, **kw)
    assert set(report) == {"settings", "srs", "op", "pp", "samples"} and report["samples"] is samples and pp == []
    unanswered = sum(s.unanswered for ss in samples.values() for s in ss)
    assert report["srs"] == {**srs, "unanswered_samples": unanswered}
    _check(op, "op", shape="op")

    # PP generation path: one neutral failing trace (placeholder steps), cut and continued both ways.
    trace = {prompts[0]["id"]: [S(32, False, steps=["The request is unclear.", "Let me think."], answer="",
                                  finished=False)]}
    stats: dict = {}
    from rich.progress import Progress

    with Progress(disable=True) as progress:  # the bar's total grows by the continuations it then counts
        task = progress.add_task("sampling", total=3)
        progress.advance(task, 3)
        pp = self_pp_cot(model, tokenizer, renderer, prompts, trace, seed=0, safety_failures_only=False,
                         stats=stats, progress=progress, task=task, **kw)
        bar = progress.tasks[0]
        assert (bar.completed, bar.total, bar.description) == (5, 5, "PP-COT continuations")
    assert stats["cuts"] == 1 and stats["attempts"] == 1 and stats["pairs"] == len(pp)
    _check(pp, "pp", shape="pp")
    report.pop("samples")
    (tmp_path / "selfpath_report.json").write_text(json.dumps({"tiny_model": True, "max_new_tokens": 32, "k": 2,
                                                               "report": report, "pp": stats}, indent=1))
