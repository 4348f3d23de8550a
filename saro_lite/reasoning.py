"""The ONE rule that splits a reply into its reasoning and its answer, used for scoring, judging and
synthesis alike (so eval never records one answer and judges another).

    <think>step 1\n\nstep 2</think> answer        -> steps [step 1, step 2], answer "answer"

- The answer is what follows the LAST close tag: a reply that reasons twice
  (`<think>a</think> b <think>c</think> d`) answers with `d`, and nothing written inside a reasoning
  block is ever read as the answer.
- The reasoning is everything before that close tag (after the first open tag, when there is one; the
  tags themselves removed). A close tag with no open tag before it (templates that put `<think>` in the
  prompt) ends a reasoning block that began with the reply.
- An open tag with no close tag: the reasoning never finished, so there is no answer ("").
- Neither tag: all of it is the answer.
Steps are the reasoning's blank-line-separated paragraphs. Standard library only.
"""
from __future__ import annotations


def split_reasoning(text: str, open_tag: str = "<think>", close_tag: str = "</think>") -> tuple[str | None, str]:
    """(reasoning text or None when the reply has no reasoning block, answer), by the rule above."""
    text = text or ""
    start = text.find(open_tag)
    end = text.rfind(close_tag)
    if end < 0 or (start >= 0 and end < start):
        if start < 0:
            return None, text.strip()
        return text[start + len(open_tag):].replace(open_tag, "").replace(close_tag, ""), ""
    body = text[start + len(open_tag) if start >= 0 else 0:end]
    return body.replace(open_tag, "").replace(close_tag, ""), text[end + len(close_tag):].strip()


def parse_reasoning(text: str, open_tag: str = "<think>", close_tag: str = "</think>") -> tuple[list[str], str]:
    """(reasoning steps, answer): the reasoning split on blank lines."""
    body, answer = split_reasoning(text, open_tag, close_tag)
    steps = [s.strip() for s in (body or "").strip().split("\n\n") if s.strip()]
    return steps, answer


def strip_reasoning(text: str, open_tag: str = "<think>", close_tag: str = "</think>") -> str:
    """The answer alone: what an answer-only judge reads."""
    return split_reasoning(text, open_tag, close_tag)[1]
