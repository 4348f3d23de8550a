"""The kit's names, in one place: prompt kinds, eval sets, arms, judge scopes, metric keys, and where the
shipped starter pack lives.

The recipe checks every name a user writes against these when it loads (so `--dry-run` catches a
typo), and the stages read them from here. Standard library only; imports nothing of the kit.
"""
from __future__ import annotations

from pathlib import Path

# The starter pack shipped inside the package: RIT-D traces, OP-COT / PP-COT pairs, eval prompts, the policy.
STARTER_DIR = Path(__file__).resolve().parent / "starter"

# The four kinds of prompt the method trains and evaluates on.
KINDS = ("harmful", "jailbreak", "benign", "borderline")

# Built-in eval sets (saro_lite/starter/eval_<set>.jsonl): one per kind, plus general capability.
BUILTIN_SETS = KINDS + ("general",)
# Real eval sets read from a pinned PyPI wheel (data_sources/real_sets.py): HarmBench and Do-Not-Answer
# (kind harmful), in-the-wild jailbreak templates x HarmBench behaviors (kind jailbreak).
REAL_SETS = ("harmbench", "donotanswer", "wild_jailbreak")
# eval.sets may name any of these; their rows make the main table's rates, by kind. eval.extra_sets are
# reported per set, apart.
MAIN_SETS = BUILTIN_SETS + REAL_SETS
SAFETY_KINDS = {"harmful": "harmful_asr", "jailbreak": "jailbreak_asr"}  # kind -> its attack-success metric
OVER_REFUSAL_KINDS = ("benign", "borderline")

# Arms: `base` (adapters off) and the stage folder whose adapter or model each other arm is.
ARM_STAGES = {"rw": "warmup", "saro": "srpo", "safety_sft": "baselines/safety_sft", "dpo": "baselines/dpo"}
ARMS = ("base",) + tuple(ARM_STAGES)
BASELINE_ARMS = ("safety_sft", "dpo")

# The kit's own jailbreak templates (data_sources/attacks.py defines one per name, in this order).
ATTACK_TEMPLATES = ("prefix_injection", "refusal_suppression", "distractors", "poem", "roleplay_persona",
                    "evil_confidant", "hypothetical", "payload_split", "research_pretext", "translation")

# Generation loops (model.generation_loop): the kit's own decode loop or transformers' `generate`.
GENERATION_LOOPS = ("kit", "transformers")

# What the judges read of a reply: the whole reply (reasoning included) or the final answer only.
JUDGE_SCOPES = ("full", "answer")

# The per-arm numbers the eval stage prints when it ends.
SUMMARY_KEYS = ("harmful_asr", "jailbreak_asr", "over_refusal_rate", "general_accuracy", "no_answer_rate",
                "unfinished_rate")

# The per-arm metrics in report.json (arms.<arm>.<key>): rates in [0, 1] except the token count.
METRIC_KEYS = ("harmful_asr", "jailbreak_asr", "over_refusal_rate", "general_accuracy", "avg_response_tokens",
               "reflection_rate")
