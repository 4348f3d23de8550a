"""The one rendering path: records -> text -> records, responses ending exactly at end-of-turn."""
from datetime import datetime

import pytest

from families import FAMILIES, TEMPLATES
from saro_lite.modeling.loading import load_tokenizer
from saro_lite.modeling.rendering import Renderer, detect_end_of_turn, make_renderer, strip_auto_bos
from saro_lite.reasoning import parse_reasoning
from saro_lite.recipe import RECIPES_DIR, load_recipe

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


# --------------------------------------------------------------------------------------------
# Every chat-template family: real ones where they can be had offline, look-alikes on the tiny tokenizer
# --------------------------------------------------------------------------------------------
USER = "How do I kill a Python process?"


@pytest.fixture(scope="module")
def family_tok(tiny_tok, default_recipe, tmp_path_factory):
    """family, tokenizer_adds_bos -> (tokenizer as loaded by load_tokenizer, raw tokenizer before it)."""
    from transformers import AutoTokenizer

    cache: dict = {}
    root = tmp_path_factory.mktemp("families")

    def make(fam: str, adds_bos: bool | None = None):
        spec = FAMILIES[fam]
        adds_bos = spec["tokenizer_adds_bos"] if adds_bos is None else adds_bos
        if spec.get("real"):  # the family's real tokenizer and template (tests/real_families.py)
            if adds_bos != spec["tokenizer_adds_bos"]:
                pytest.skip("a real tokenizer decides whether it adds BOS")
            if fam not in cache:
                from real_families import build

                folder = build(spec["real"])
                cache[fam] = (load_tokenizer(default_recipe, str(folder)), AutoTokenizer.from_pretrained(folder))
            return cache[fam]
        if (fam, adds_bos) not in cache:
            raw = AutoTokenizer.from_pretrained(tiny_tok.name_or_path)  # a fresh copy: tiny_tok is shared
            raw.add_special_tokens({"additional_special_tokens": spec["special_tokens"]})
            if spec["added_tokens"]:
                raw.add_tokens(spec["added_tokens"])
            if spec["bos_token"]:
                raw.bos_token = spec["bos_token"]
                raw.add_bos_token = adds_bos
            raw.eos_token = spec["eos_token"]
            raw.chat_template = (TEMPLATES / spec["template"]).read_text(encoding="utf-8")
            out = root / f"{fam}-{'bos' if adds_bos else 'nobos'}"
            raw.save_pretrained(out)
            cache[(fam, adds_bos)] = (load_tokenizer(default_recipe, str(out)), raw)
        return cache[(fam, adds_bos)]

    return make


def ids_of(tok, text: str) -> list[int]:
    return tok(text)["input_ids"]  # special tokens on: how TRL (text records), tracking and generation tokenize


@pytest.mark.parametrize("fam", FAMILIES)
def test_end_of_turn_is_detected(fam, family_tok):
    tok, raw = family_tok(fam)
    expected = FAMILIES[fam]["expected_end_of_turn"]
    assert detect_end_of_turn(raw) == expected
    assert tok.eos_token == expected  # load_tokenizer makes the end of turn the EOS TRL appends / stops on
    assert tok.pad_token != tok.eos_token


@pytest.mark.parametrize("fam", FAMILIES)
def test_response_round_trips_and_ends_exactly_at_end_of_turn(fam, family_tok):
    tok, _ = family_tok(fam)
    eot = FAMILIES[fam]["expected_end_of_turn"]
    r = Renderer(tok, eot, system_prompt=None)
    text = r.response(STEPS, ANSWER)
    assert text.startswith("<think>\n") and text.endswith(eot)
    assert r.parse(text) == (STEPS, ANSWER)
    ids = ids_of(tok, r.prompt(USER) + text)
    eot_id = tok.convert_tokens_to_ids(eot)
    assert ids[-1] == eot_id and tok.convert_ids_to_tokens(ids[-1]) == eot
    resp_ids = ids_of(tok, text)
    assert [i for i in resp_ids if i == eot_id] == [eot_id]  # one end of turn in the response, no extra token


@pytest.mark.parametrize("fam", FAMILIES)
def test_prompt_tokens_are_a_prefix_of_prompt_plus_response(fam, family_tok):
    """TRL scores DPO completions from where prompt and prompt+completion token lists diverge."""
    tok, _ = family_tok(fam)
    r = Renderer(tok, FAMILIES[fam]["expected_end_of_turn"], system_prompt=None)
    p = ids_of(tok, r.prompt(USER))
    full = ids_of(tok, r.prompt(USER) + r.response(STEPS, ANSWER))
    assert full[:len(p)] == p and len(full) > len(p)
    # PP-COT: the prefix ends with a blank line a real BPE merges with the next step, so the kit moves the
    # boundary (Renderer.on_token_boundary, as pairs are built); the text stays the same
    pp, (cont,) = r.on_token_boundary(r.pp_prompt(USER, STEPS[:1]), r.pp_continuation(STEPS[1:], ANSWER))
    assert pp + cont == r.prompt(USER) + r.response(STEPS, ANSWER)
    pp_ids = ids_of(tok, pp)
    assert ids_of(tok, pp + cont)[:len(pp_ids)] == pp_ids


@pytest.mark.parametrize("adds_bos", [True, False], ids=["tokenizer-adds-bos", "tokenizer-no-bos"])
@pytest.mark.parametrize("fam", FAMILIES)
def test_at_most_one_bos(fam, adds_bos, family_tok):
    spec = FAMILIES[fam]
    if not spec["bos_token"] and adds_bos:
        pytest.skip("family has no BOS token")
    tok, _ = family_tok(fam, adds_bos)
    r = Renderer(tok, spec["expected_end_of_turn"], system_prompt=None)
    prompt = r.prompt(USER)
    assert strip_auto_bos(tok, prompt) == prompt  # idempotent
    ids = ids_of(tok, prompt + r.response(STEPS, ANSWER))
    expected = 1 if spec["bos_token"] and (spec["template_writes_bos"] or adds_bos
                                           or prompt.startswith(spec["bos_token"])) else 0
    if spec["bos_token"]:
        bos_id = tok.convert_tokens_to_ids(spec["bos_token"])
        lead = next(i for i, t in enumerate(ids) if t != bos_id)  # SmolLM2's BOS is also its turn marker
        assert lead == expected


@pytest.mark.parametrize("fam", FAMILIES)
def test_system_prompt_behaviour(fam, family_tok):
    from jinja2.exceptions import TemplateError

    spec = FAMILIES[fam]
    tok, _ = family_tok(fam)
    eot = spec["expected_end_of_turn"]
    plain = Renderer(tok, eot, system_prompt=None).prompt(USER)
    for piece in spec["prompt_contains"]:
        assert piece in plain
    with_system = Renderer(tok, eot, system_prompt="Follow the policy.")
    if not spec["supports_system"]:
        with pytest.raises(TemplateError, match="System role not supported"):
            with_system.prompt(USER)
        return
    text = with_system.prompt(USER)
    assert "Follow the policy." in text
    if spec.get("default_system_prompt"):
        assert spec["default_system_prompt"] in plain and spec["default_system_prompt"] not in text
    if spec["system_folded_into_user"]:
        assert "system" not in text.replace("Follow the policy.", "")


@pytest.mark.parametrize("fam", [f for f in FAMILIES if FAMILIES[f]["strict_alternation"]])
def test_strict_alternation_families_accept_the_single_user_turn(fam, family_tok):
    from jinja2.exceptions import TemplateError

    tok, _ = family_tok(fam)
    assert USER in Renderer(tok, FAMILIES[fam]["expected_end_of_turn"]).prompt(USER)
    with pytest.raises(TemplateError, match="alternate"):
        tok.apply_chat_template([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], tokenize=False)


@pytest.mark.parametrize("fam", list(FAMILIES))
def test_rendering_matches_the_template_s_own_full_conversation(fam, family_tok, default_recipe):
    """prompt + response (the kit's renderer, built as the pipeline builds it) must be what the model's
    template itself writes for [user, assistant]."""
    tok, _ = family_tok(fam)
    r = make_renderer(default_recipe, tok)
    response = r.response(STEPS, ANSWER)
    content = response[:-len(r.end_of_turn)]
    native = tok.apply_chat_template([{"role": "user", "content": USER}, {"role": "assistant", "content": content}],
                                     tokenize=False)
    assert strip_auto_bos(tok, native).startswith(r.prompt(USER) + response)


@pytest.mark.parametrize("fam", [f for f in FAMILIES if FAMILIES[f].get("clock_dependent")])
def test_prompt_does_not_depend_on_the_wall_clock(fam, family_tok):
    tok, _ = family_tok(fam)
    recipe = load_recipe(RECIPES_DIR / "llama-3.2-1b-instruct.yaml")  # the renderer as that recipe builds it
    today = datetime.now().strftime("%d %b %Y")
    messages = [{"role": "user", "content": USER}]
    pinned = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, date_string="26 Jul 2024")
    assert today not in pinned or today == "26 Jul 2024"  # the proposed fix works on this template
    assert today not in make_renderer(recipe, tok).prompt(USER)


def test_qwen3_prompt_is_in_thinking_mode_and_think_tags_are_single_tokens(family_tok):
    tok, _ = family_tok("qwen3")
    r = Renderer(tok, "<|im_end|>")
    prompt = r.prompt(USER)
    assert prompt.endswith("<|im_start|>assistant\n")  # no empty <think></think>: the response opens it
    no_think = tok.apply_chat_template([{"role": "user", "content": USER}], tokenize=False,
                                       add_generation_prompt=True, enable_thinking=False)
    assert no_think.endswith("<think>\n\n</think>\n\n")  # why the kit must not pass enable_thinking=False
    ids = ids_of(tok, r.response(STEPS, ANSWER))
    assert ids[0] == tok.convert_tokens_to_ids("<think>") and tok.convert_tokens_to_ids("</think>") in ids
