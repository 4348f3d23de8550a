"""The exact strings the trainers see: SFT prompt/completion records and DPO prompt/chosen/rejected
rows, rendered by modeling.rendering's Renderer, each prompt ending on a token boundary."""
from __future__ import annotations

from ..data_sources.holdout import prompt_key


def render_pairs(renderer, op: list[dict], pp: list[dict]) -> list[dict]:
    """The exact strings SRPO trains on and tracking scores, the prompt ending on a token boundary."""
    rows = []
    for x in op:
        rejected = x["rejected"]
        # an unanswered sample (self path, pairs.unanswered_as_rejected) is the text the model wrote:
        # rendering it would invent a close tag, an answer and an end-of-turn it never reached
        rows.append(pair_row(renderer, f"op:{x['id']}", "op", x, renderer.prompt(x["prompt"]),
                             renderer.response(x["chosen"]["reasoning"], x["chosen"]["answer"]),
                             rejected["text"] if rejected.get("text") is not None
                             else renderer.response(rejected["reasoning"], rejected["answer"])))
    for x in pp:
        rows.append(pair_row(renderer, f"pp:{x['id']}", "pp", x, renderer.pp_prompt(x["prompt"], x["prefix"]),
                             renderer.pp_continuation(x["chosen"]["steps"], x["chosen"]["answer"]),
                             renderer.pp_continuation(x["rejected"]["steps"], x["rejected"]["answer"])))
    return rows


def pair_row(renderer, row_id: str, kind_of_pair: str, record: dict, prompt: str, chosen: str, rejected: str) -> dict:
    prompt, (chosen, rejected) = renderer.on_token_boundary(prompt, chosen, rejected)
    return {"id": row_id, "type": kind_of_pair, "kind": record["kind"], "prompt_key": prompt_key(record),
            "prompt": prompt, "chosen": chosen, "rejected": rejected}


def sft_dataset(renderer, rows: list[dict]):
    return prompt_completion_dataset(renderer, [(renderer.prompt(x["prompt"]),
                                                 renderer.response(x["reasoning"], x["answer"])) for x in rows])


def prompt_completion_dataset(renderer, pairs: list[tuple[str, str]]):
    """SFT records {prompt, completion}, the prompt ending on a token boundary (see modeling.rendering.split_on_token_boundary)."""
    from datasets import Dataset

    rows = []
    for prompt, completion in pairs:
        prompt, (completion,) = renderer.on_token_boundary(prompt, completion)
        rows.append({"prompt": prompt, "completion": completion})
    return Dataset.from_list(rows)


def dpo_dataset(rows: list[dict]):
    from datasets import Dataset

    return Dataset.from_list([{"prompt": x["prompt"], "chosen": x["chosen"], "rejected": x["rejected"]}
                              for x in rows])
