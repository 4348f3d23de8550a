"""The one rendering path: records -> text -> records, responses ending exactly at end-of-turn."""
import pytest

from saro_lite.modeling.loading import Renderer, detect_end_of_turn, make_renderer, parse_reasoning

STEPS = ["The user asks how to stop a Python process.", "Wait — 'kill' here means ending a program (P9a).",
         "This is routine; I'll help."]
ANSWER = "Use `kill <PID>` on Linux or Task Manager on Windows.\nIn Python: `os.kill(pid, signal.SIGTERM)`."


def test_round_trip(tiny_tok, default_recipe):
    r = make_renderer(default_recipe, tiny_tok)
    text = r.response(STEPS, ANSWER)
    assert text.startswith("<think>\n") and text.endswith("<|im_end|>")
    assert r.parse(text) == (STEPS, ANSWER)


def test_response_ends_exactly_at_end_of_turn_token(tiny_tok, default_recipe):
    r = make_renderer(default_recipe, tiny_tok)
    assert tiny_tok.eos_token == "<|im_end|>" == detect_end_of_turn(tiny_tok)
    ids = tiny_tok(r.prompt("hi") + r.response(STEPS, ANSWER))["input_ids"]
    assert ids[-1] == tiny_tok.convert_tokens_to_ids("<|im_end|>")
    assert ids.count(tiny_tok.eos_token_id) == 2  # end of the user turn and of the assistant turn, no extra


def test_prompt_is_a_token_prefix_of_the_full_sequence(tiny_tok, default_recipe):
    r = make_renderer(default_recipe, tiny_tok)
    p = tiny_tok(r.prompt("How do I kill a Python process?"))["input_ids"]
    full = tiny_tok(r.prompt("How do I kill a Python process?") + r.response(STEPS, ANSWER))["input_ids"]
    assert full[:len(p)] == p


def test_pp_prompt_plus_continuation_equals_full_rendering(tiny_tok, default_recipe):
    r = make_renderer(default_recipe, tiny_tok)
    prefix, rest = STEPS[:1], STEPS[1:]
    assert r.pp_prompt("q", prefix) + r.pp_continuation(rest, ANSWER) == r.prompt("q") + r.response(STEPS, ANSWER)
    assert r.pp_prompt("q", prefix).endswith("<think>\n" + prefix[0] + "\n\n")


def test_system_prompt_and_custom_tags(tiny_tok):
    r = Renderer(tiny_tok, "<|im_end|>", system_prompt="Follow the policy.", open_tag="<reasoning>",
                 close_tag="</reasoning>")
    assert r.prompt("hi").startswith("<|im_start|>system\nFollow the policy.<|im_end|>")
    text = r.response(STEPS, ANSWER)
    assert "<reasoning>" in text and r.parse(text) == (STEPS, ANSWER)


@pytest.mark.parametrize("text,steps,answer", [
    ("<think>\na\n\nb\n</think>\n\nfinal", ["a", "b"], "final"),
    ("no reasoning at all", [], "no reasoning at all"),
    ("<think>\nstill thinking when the budget ran out", ["still thinking when the budget ran out"], ""),
    ("a\n\nb\n</think>answer", ["a", "b"], "answer"),  # templates that put <think> in the prompt
])
def test_parse_reasoning_edge_cases(text, steps, answer):
    assert parse_reasoning(text) == (steps, answer)
