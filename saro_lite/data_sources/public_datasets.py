"""Public datasets -> the kit's records, from a HuggingFace Hub id or a local file.

Every source knows its hub id (with config/split defaults), the real column names of the dataset
and how a row becomes a kit record (DEVELOPERS.md, "Record formats"):

- prompt records  {id, prompt, kind, category, source}   XSTest, AdvBench, HarmBench, StrongREJECT,
                                                         JBB-Behaviors, WildJailbreak, Salad-Data, file
- RIT-D records   prompt fields + reasoning [steps] + answer      STAR-1, STAIR-SFT (warmup data)
- general records prompt fields + answer (kind "general")         GSM8K, MMLU

    python -m saro_lite.data_sources.public_datasets                                  # list the sources
    python -m saro_lite.data_sources.public_datasets star1 --path STAR-1.json --limit 3
    python -m saro_lite.data_sources.public_datasets xstest --output xstest.jsonl     # from the Hub (needs network)
    python -m saro_lite.data_sources.public_datasets file --path my.csv --prompt-field text --kind benign

`path` may be a local CSV/TSV/JSON/JSONL/parquet file, a folder holding the data files (for example
one made by `hf download --repo-type dataset ID --local-dir DIR`; the file whose name matches the
config/split is picked), or another hub id (a mirror, optionally `id:split` or `id:config:split`).
With no path the source's own hub id is loaded through `datasets.load_dataset`.

Kinds, and why:
- XSTest: label safe -> borderline (sounds risky, should be answered), unsafe -> harmful.
- JBB-Behaviors: split harmful -> harmful; split benign -> borderline (topic twins of the harmful
  behaviors, made to measure over-refusal).
- WildJailbreak data_type: adversarial_harmful -> jailbreak, adversarial_benign -> borderline
  (jailbreak-shaped but harmless: refusing them is over-refusal), vanilla_harmful -> harmful,
  vanilla_benign -> benign (the last two only exist in the `train` config).
- Salad-Data: base_set -> harmful, attack_enhanced_set -> jailbreak.
- STAR-1: harmful (every prompt comes from a harmful-prompt benchmark).
- STAIR-SFT: a `kind` column if there is one; otherwise from the answer (the kit's refusal judge):
  refused -> harmful, answered -> benign (STAIR mixes safety prompts with general helpfulness data).
- `kind=...` overrides the kind of every record, for any source.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from ..errors import UserError, hub_error
from ..fileio import read_jsonl, read_table, require_columns
from ..reasoning import parse_reasoning
from ..vocabulary import KINDS

RECORD_KINDS = KINDS + ("general",)
DATA_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl", ".parquet")
# Columns that carry a dataset's own row id, most specific first (Salad's attack rows share `qid`).
ID_COLUMNS = ("id", "aid", "qid", "Index", "BehaviorID")
_HUB_REF = re.compile(r"[\w.-]+/[\w.-]+(?::[\w.+\-\[\]%]*){0,2}")


# --------------------------------------------------------------------------------------------
# The Source type
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RowContext:
    """What a row mapper needs besides the row: resolved column names and the load settings."""

    source: "Source"
    cols: Mapping[str, str | None]  # logical field -> real column (None: optional and absent)
    config: str | None
    split: str | None
    prompt_overridden: bool = False


@dataclass(frozen=True)
class Source:
    name: str
    hub_id: str | None
    produces: str  # "prompt" | "rit_d" | "general"
    map_row: Callable[[dict, RowContext], dict | None]  # -> {prompt, kind, category, ...}; None skips the row
    # required columns: logical field -> accepted real names, the first being the dataset's own
    columns: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    optional: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    config_columns: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)  # extra, per config
    alternative: Mapping[str, tuple[str, ...]] | None = None  # another complete column set (used when present)
    config: str | None = None
    split: str | None = None
    configs: tuple[str, ...] = ()  # configs the mapping understands (empty: any)
    splits: tuple[str, ...] = ()  # splits that change the mapping (also read from a local file's name)
    detect_config: Callable[[set], str | None] | None = None  # a local file's config from its columns
    load_kwargs: Mapping = field(default_factory=dict)
    mirrors: Mapping[str, Mapping] = field(default_factory=dict)  # other hub ids: {config, split}
    description: str = ""

    # ---- columns -----------------------------------------------------------------------
    def resolve_columns(self, present: set, config: str | None, prompt_field: str | None, where: str) -> dict:
        """Logical field -> real column; a UserError lists every missing column at once."""
        required = {**self.columns, **self.config_columns.get(config or "", {})}
        if self.alternative and all(any(c in present for c in cands) for cands in self.alternative.values()):
            required = dict(self.alternative)
        if prompt_field:
            required["prompt"] = (prompt_field,)
        cols, missing = {}, []
        for key, cands in required.items():
            cols[key] = next((c for c in cands if c in present), None)
            if cols[key] is None:
                missing.append((key, cands))
        for key, cands in self.optional.items():
            if key not in cols:
                cols[key] = next((c for c in cands if c in present), None)
        if missing:
            try:
                require_columns(where, [dict.fromkeys(present)], [cands[0] for _, cands in missing])
            except UserError as e:
                hints = [f"{c[0]!r} may also be named {' or '.join(repr(x) for x in c[1:])}"
                         for _, c in missing if len(c) > 1]
                if self.alternative and not prompt_field:
                    hints.append(f"or give {', '.join(repr(c[0]) for c in self.alternative.values())} instead")
                if any(key == "prompt" for key, _ in missing):
                    hints.append("set prompt_field to use another prompt column")
                raise UserError(f"{e}{'; ' + '; '.join(hints) if hints else ''}") from None
        return cols

    # ---- rows -> records -----------------------------------------------------------------
    def to_records(self, rows: list[dict], *, config: str | None = None, split: str | None = None,
                   prompt_field: str | None = None, kind: str | None = None, id_prefix: str | None = None,
                   source_label: str | None = None, where: str | None = None, present: set | None = None,
                   log: Callable[[str], None] | None = None) -> list[dict]:
        """Map dataset rows (dicts keyed by the real column names) to the kit's records."""
        where = where or f"source '{self.name}'"
        if not rows:
            raise UserError(f"{where}: no rows")
        present = set(present) if present is not None else set(rows[0])
        if config is None:
            config = (self.detect_config(present) if self.detect_config else None) or self.config
        split = split or self.split
        if self.configs and config not in self.configs:
            raise UserError(f"{where}: config {config!r} is not supported (supported: {', '.join(self.configs)})")
        if kind is not None and kind not in RECORD_KINDS:
            raise UserError(f"{where}: kind must be one of {', '.join(RECORD_KINDS)}, got {kind!r}")
        if self.name == "file":
            if not prompt_field:
                raise UserError(f"{where}: source 'file' needs prompt_field (the column with the prompt)")
            if not kind:
                raise UserError(f"{where}: source 'file' needs kind ({', '.join(RECORD_KINDS)})")
        ctx = RowContext(self, self.resolve_columns(present, config, prompt_field, where), config, split,
                  prompt_overridden=bool(prompt_field))
        prefix = id_prefix or self.id_prefix(config, split)
        label = source_label or self.hub_id or self.name
        id_col = next((c for c in ID_COLUMNS if c in present), None)
        out, seen, skipped = [], set(), 0
        for i, row in enumerate(rows):
            try:
                mapped = self.map_row(row, ctx)
            except (ValueError, KeyError, TypeError) as e:
                raise UserError(f"{where}: row {i + 1}: {e}") from None
            if not mapped or not mapped["prompt"].strip():
                skipped += 1
                continue
            if self.produces == "rit_d" and not (mapped.get("reasoning") and mapped.get("answer", "").strip()):
                skipped += 1
                continue
            native = _text(row.get(id_col)) if id_col else ""
            rid = f"{prefix}-{native or i}"
            if rid in seen:
                rid = f"{prefix}-{native or 'row'}-{i}"
            seen.add(rid)
            rec = {"id": rid, "prompt": mapped["prompt"].strip(), "kind": kind or mapped["kind"],
                   "category": mapped.get("category") or "", "source": label}
            rec.update({k: v for k, v in mapped.items()
                        if k not in rec and k not in ("kind", "category") and (v != "" or k == "answer")})
            out.append(rec)
        if skipped and log:
            why = "an empty prompt" + (", or no reasoning or answer" if self.produces == "rit_d" else "")
            log(f"{where}: skipped {skipped} of {len(rows)} rows with {why}")
        if not out:
            why = "an empty prompt" + (", or no reasoning and answer" if self.produces == "rit_d" else "")
            raise UserError(f"{where}: no usable rows (every row had {why})")
        return out

    def id_prefix(self, config: str | None, split: str | None) -> str:
        if self.name == "jbb":
            return f"jbb-{split or 'harmful'}"
        if self.name == "salad":
            return "salad-attack" if config == "attack_enhanced_set" else "salad"
        if self.name == "harmbench" and config not in (None, "standard"):
            return f"harmbench-{config}"
        return self.name


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------
def _text(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and v != v:  # NaN from pandas-made files
        return ""
    return str(v).strip()


def _as_list(v) -> list:
    """A list column, also when a CSV stored it as JSON or a Python literal ("['a', 'b']")."""
    if isinstance(v, (list, tuple)):
        return list(v)
    s = _text(v)
    if s.startswith("["):
        for parse in (json.loads, ast.literal_eval):
            try:
                out = parse(s)
                if isinstance(out, list):
                    return out
            except (ValueError, SyntaxError):
                pass
    return [s] if s else []


def _col(row: dict, ctx: RowContext, key: str) -> str:
    col = ctx.cols.get(key)
    return _text(row.get(col)) if col else ""


def _one_paragraph(step: str) -> str:
    """A step is one paragraph: the renderer joins steps with blank lines, the parser splits on them."""
    return re.sub(r"\n\s*\n+", "\n", step.strip())


_STAIR_STEP = re.compile(r"<\|Reasoning_step\|>(.*?)<\|/Reasoning_step\|>", re.S)
_STAIR_OUT = re.compile(r"<\|Output\|>(.*?)(?:<\|/Output\|>|$)", re.S)


def parse_trace(text: str) -> tuple[list[str], str]:
    """A reply with reasoning -> (steps, answer): `<think>…</think>` (saro_lite.reasoning.parse_reasoning), or
    STAIR's structured form `<|Reasoning_step|>…<|/Reasoning_step|>` … `<|Output|>…<|/Output|>`."""
    if "<think>" in text or "</think>" in text:
        return parse_reasoning(text)
    steps = [_one_paragraph(s) for s in _STAIR_STEP.findall(text) if s.strip()]
    if steps:
        out = _STAIR_OUT.search(text)
        answer = out.group(1) if out else text[text.rindex("<|/Reasoning_step|>") + len("<|/Reasoning_step|>"):]
        answer = re.sub(r"^\s*(?:\*\*)?Final Answer:?(?:\*\*)?\s*", "", answer.strip(), flags=re.I)
        return steps, answer.strip()
    return [], text.strip()


def _kind_from_answer(answer: str, prompt: str, answered_kind: str) -> str:
    from ..judges.refusal import judge_refusal

    return "harmful" if judge_refusal(answer, prompt).refused else answered_kind


# --------------------------------------------------------------------------------------------
# Row mappers, one per dataset
# --------------------------------------------------------------------------------------------
def _xstest(row, ctx):
    label = _col(row, ctx, "label").lower()
    if label not in ("safe", "unsafe"):
        raise ValueError(f"'{ctx.cols['label']}' must be 'safe' or 'unsafe', got {label!r}")
    return {"prompt": _col(row, ctx, "prompt"), "kind": "borderline" if label == "safe" else "harmful",
            "category": _col(row, ctx, "category")}


def _harmful(row, ctx):
    """AdvBench, StrongREJECT: a harmful goal per row."""
    return {"prompt": _col(row, ctx, "prompt"), "kind": "harmful", "category": _col(row, ctx, "category")}


def _harmbench(row, ctx):
    prompt, context = _col(row, ctx, "prompt"), _col(row, ctx, "context")
    if context and prompt:  # HarmBench's own layout for contextual behaviors
        prompt = f"{context}\n\n---\n\n{prompt}"
    return {"prompt": prompt, "kind": "harmful", "category": _col(row, ctx, "category") or (ctx.config or "")}


def _jbb(row, ctx):
    kind = "borderline" if ctx.split == "benign" else "harmful"
    return {"prompt": _col(row, ctx, "prompt"), "kind": kind, "category": _col(row, ctx, "category")}


_WJ_KINDS = {"adversarial_harmful": "jailbreak", "adversarial_benign": "borderline",
             "vanilla_harmful": "harmful", "vanilla_benign": "benign"}


def _wildjailbreak(row, ctx):
    data_type = _col(row, ctx, "data_type")
    if data_type not in _WJ_KINDS:
        raise ValueError(f"'{ctx.cols['data_type']}' must be one of {', '.join(_WJ_KINDS)}, got {data_type!r}")
    col = "prompt"
    if data_type.startswith("vanilla") and not ctx.prompt_overridden:
        if not ctx.cols.get("vanilla"):
            raise ValueError(f"a {data_type} row needs the 'vanilla' column")
        col = "vanilla"
    return {"prompt": _col(row, ctx, col), "kind": _WJ_KINDS[data_type], "category": data_type}


def _salad(row, ctx):
    kind = "jailbreak" if ctx.config == "attack_enhanced_set" else "harmful"
    return {"prompt": _col(row, ctx, "prompt"), "kind": kind, "category": _col(row, ctx, "category")}


def _star1(row, ctx):
    steps, answer = parse_trace(_col(row, ctx, "response"))
    categories = [_text(c) for c in _as_list(row.get(ctx.cols["category"])) if _text(c)]
    return {"prompt": _col(row, ctx, "prompt"), "kind": "harmful", "category": ", ".join(categories),
            "reasoning": steps, "answer": answer}


_USER_ROLES, _ASSISTANT_ROLES = ("user", "human"), ("assistant", "gpt", "bot", "model")


def _stair(row, ctx):
    if ctx.cols.get("messages") and not ctx.prompt_overridden:
        messages = _as_list(row.get(ctx.cols["messages"]))
        turns = [(_text(m.get("role", m.get("from"))).lower(), _text(m.get("content", m.get("value"))))
                 for m in messages if isinstance(m, dict)]
        user = next((i for i, (r, _) in enumerate(turns) if r in _USER_ROLES), None)
        reply = next((t for r, t in turns[(user or 0) + 1:] if r in _ASSISTANT_ROLES), "") if user is not None else ""
        prompt = turns[user][1] if user is not None else ""
    else:
        prompt, reply = _col(row, ctx, "prompt"), _col(row, ctx, "response")
        extra = _col(row, ctx, "input")  # alpaca layout: instruction + optional input
        if extra:
            prompt = f"{prompt}\n\n{extra}"
    steps, answer = parse_trace(reply)
    kind = _col(row, ctx, "kind")
    if kind not in KINDS:
        kind = _kind_from_answer(answer, prompt, "benign") if answer else "harmful"
    return {"prompt": prompt, "kind": kind, "category": _col(row, ctx, "category"),
            "reasoning": steps, "answer": answer}


def _gsm8k(row, ctx):
    solution = _col(row, ctx, "answer")
    m = re.search(r"####\s*(.+?)\s*$", solution)
    if not m:
        raise ValueError(f"'{ctx.cols['answer']}' has no final '#### <number>' line")
    return {"prompt": _col(row, ctx, "prompt"), "kind": "general", "category": "math",
            "answer": m.group(1).replace(",", "").replace("$", "").strip()}


LETTERS = "ABCDEFGHIJ"


def _mmlu(row, ctx):
    if ctx.cols.get("choices"):
        choices = [_text(c) for c in _as_list(row.get(ctx.cols["choices"]))]
    else:
        choices = [_text(row.get(ctx.cols[k])) for k in "ABCD"]
    if not 2 <= len(choices) <= len(LETTERS):
        raise ValueError(f"expected 2 to {len(LETTERS)} choices, got {len(choices)}")
    raw = row.get(ctx.cols["answer"])
    key = _text(raw).upper()
    if isinstance(raw, int) or key.isdigit():
        index = int(key)
    elif len(key) == 1 and key in LETTERS:
        index = LETTERS.index(key)
    else:
        raise ValueError(f"'{ctx.cols['answer']}' must be a choice index (0-{len(choices) - 1}) or letter, got {raw!r}")
    if not 0 <= index < len(choices):
        raise ValueError(f"answer index {index} is out of range for {len(choices)} choices")
    lines = "\n".join(f"{LETTERS[i]}) {c}" for i, c in enumerate(choices))
    question = _col(row, ctx, "prompt")
    return {"prompt": f"{question}\n{lines}\nAnswer with the letter." if question else "", "kind": "general",
            "category": "mcq", "answer": LETTERS[index], "subject": _col(row, ctx, "subject")}


def _file(row, ctx):
    rec = {"prompt": _col(row, ctx, "prompt"), "kind": "", "category": _col(row, ctx, "category")}
    if _col(row, ctx, "answer"):
        rec["answer"] = _col(row, ctx, "answer")
    return rec


# --------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------
def _salad_config(present: set) -> str | None:
    return "attack_enhanced_set" if "augq" in present else "base_set" if "question" in present else None


SOURCES: dict[str, Source] = {s.name: s for s in (
    Source("star1", "UCSC-VLAA/STAR-1", "rit_d", _star1, split="train",
           columns={"prompt": ("question",), "response": ("response",), "category": ("category",)},
           description="STAR-1: 1k policy-grounded safety reasoning traces (RIT-D, kind harmful)"),
    Source("stair_sft", "thu-ml/STAIR-SFT", "rit_d", _stair, split="train",
           columns={"prompt": ("instruction", "prompt", "question", "query"),
                    "response": ("output", "response", "completion", "answer")},
           alternative={"messages": ("messages", "conversations")},
           optional={"input": ("input",), "kind": ("kind",), "category": ("category", "source", "type")},
           description="STAIR-SFT: structured safety reasoning (RIT-D; kind from a kind column or the answer)"),
    Source("xstest", "Paul/XSTest", "prompt", _xstest, split="train",
           columns={"prompt": ("prompt",), "category": ("type",), "label": ("label",)},
           mirrors={"walledai/XSTest": {"split": "test"}},
           description="XSTest v2: 250 safe (borderline) + 200 unsafe (harmful) prompts; over-refusal"),
    Source("advbench", "walledai/AdvBench", "prompt", _harmful, split="train",
           columns={"prompt": ("prompt", "goal")}, optional={"category": ("category",)},
           description="AdvBench: 520 harmful goals"),
    Source("harmbench", "walledai/HarmBench", "prompt", _harmbench, config="standard", split="train",
           columns={"prompt": ("prompt", "Behavior")},
           config_columns={"standard": {"category": ("category", "SemanticCategory")},
                           "contextual": {"category": ("category", "SemanticCategory"),
                                          "context": ("context", "ContextString")}},
           optional={"category": ("category", "SemanticCategory"), "context": ("context", "ContextString")},
           description="HarmBench behaviors (configs standard, contextual, copyright; kind harmful)"),
    Source("strongreject", "walledai/StrongREJECT", "prompt", _harmful, split="train",
           columns={"prompt": ("forbidden_prompt", "prompt"), "category": ("category",)},
           description="StrongREJECT: 313 forbidden prompts in 6 categories"),
    Source("jbb", "JailbreakBench/JBB-Behaviors", "prompt", _jbb, config="behaviors", split="harmful",
           splits=("harmful", "benign"), columns={"prompt": ("Goal", "goal"), "category": ("Category", "category")},
           description="JailbreakBench behaviors: split harmful (harmful) or benign (borderline), 100 each"),
    Source("wildjailbreak", "allenai/wildjailbreak", "prompt", _wildjailbreak, config="eval", split="train",
           configs=("eval", "train"), detect_config=lambda p: "train" if "vanilla" in p else "eval",
           columns={"prompt": ("adversarial",), "data_type": ("data_type",)}, optional={"vanilla": ("vanilla",)},
           load_kwargs={"delimiter": "\t", "keep_default_na": False},
           description="WildJailbreak (gated): adversarial_harmful -> jailbreak, adversarial_benign -> borderline"),
    Source("salad", "OpenSafetyLab/Salad-Data", "prompt", _salad, config="base_set", split="train",
           configs=("base_set", "attack_enhanced_set"), detect_config=_salad_config,
           columns={"category": ("1-category",)},
           config_columns={"base_set": {"prompt": ("question",)}, "attack_enhanced_set": {"prompt": ("augq",)}},
           description="Salad-Data: base_set (harmful) or attack_enhanced_set (jailbreak)"),
    Source("gsm8k", "openai/gsm8k", "general", _gsm8k, config="main", split="test",
           columns={"prompt": ("question",), "answer": ("answer",)},
           description="GSM8K grade-school math (general; answer = the number after ####)"),
    Source("mmlu", "cais/mmlu", "general", _mmlu, config="all", split="test",
           columns={"prompt": ("question",), "choices": ("choices",), "answer": ("answer",)},
           alternative={"prompt": ("question",), "A": ("A",), "B": ("B",), "C": ("C",), "D": ("D",),
                        "answer": ("answer",)},
           optional={"subject": ("subject",)},
           description="MMLU multiple choice (general; prompt with A) ... D) lines, answer letter)"),
    Source("file", None, "prompt", _file, optional={"category": ("category", "type"), "answer": ("answer",)},
           description="any table of prompts: needs prompt_field and kind"),
)}

ALIASES = {"star-1": "star1", "stair": "stair_sft", "stair-sft": "stair_sft", "jbb-behaviors": "jbb",
           "jailbreakbench": "jbb", "salad-data": "salad", "salad-bench": "salad", "strong-reject": "strongreject"}
RIT_D_SOURCES = tuple(n for n, s in SOURCES.items() if s.produces == "rit_d")


def get_source(name: str) -> Source:
    """A source by its name, an alias, or its hub id (a mirror too), case-insensitively."""
    key = str(name).strip().lower()
    key = ALIASES.get(key, key)
    for s in SOURCES.values():
        ids = [s.hub_id or "", *s.mirrors]
        if key in (s.name, s.name.replace("_", "-")) or key.split(":")[0] in (i.lower() for i in ids if i):
            return s
    raise UserError(f"unknown data source {name!r} (known: {', '.join(SOURCES)})")


# --------------------------------------------------------------------------------------------
# Reading: local files, folders, the Hub
# --------------------------------------------------------------------------------------------
def is_hub_ref(path: str) -> bool:
    """'org/name', 'org/name:split' or 'org/name:config:split' that is not a file here."""
    p = str(path)
    return (not Path(p).expanduser().exists() and bool(_HUB_REF.fullmatch(p))
            and Path(p.split(":")[0]).suffix.lower() not in DATA_SUFFIXES)


def read_rows(path: Path) -> list[dict]:
    """Rows of a CSV/TSV/JSON/JSONL file (saro_lite.fileio.read_table) or a parquet file (pyarrow)."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        if not path.exists():
            raise UserError(f"{path}: file not found")
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise UserError(f"{path}: reading parquet needs pyarrow (pip install pyarrow), or convert it to JSONL") from None
        try:
            return pq.read_table(path).to_pylist()
        except Exception as e:  # a broken or non-parquet file
            raise UserError(f"{path}: cannot read parquet ({e.__class__.__name__}: {str(e).splitlines()[0][:120]})") from None
    try:
        return read_table(path)
    except UserError:
        if suffix == ".json":  # some datasets ship JSON Lines under a .json name
            try:
                rows = read_jsonl(path)
                if rows:
                    return rows
            except UserError:
                pass
        raise


def _token_in(token: str, name: str) -> bool:
    return bool(re.search(rf"(?:^|[^a-z0-9]){re.escape(token.lower())}(?:[^a-z0-9]|$)", name.lower()))


def pick_data_files(folder: Path, config: str | None, split: str | None, where: str) -> list[Path]:
    """The data file(s) in a downloaded dataset folder that match the config and split."""
    files = [p for p in sorted(folder.rglob("*")) if p.is_file() and p.suffix.lower() in DATA_SUFFIXES
             and not any(part.startswith(".") for part in p.relative_to(folder).parts)]
    if not files:
        raise UserError(f"{where}: {folder} holds no data file ({', '.join(DATA_SUFFIXES)})")
    for token in (config, split):
        if token and len(files) > 1:
            hits = [p for p in files if _token_in(token, str(p.relative_to(folder)))]
            files = hits or files
    if len(files) > 1 and not all("-of-" in p.name for p in files):  # shards of one split are read together
        names = ", ".join(str(p.relative_to(folder)) for p in files[:8])
        raise UserError(f"{where}: {folder} holds several data files ({names}{', ...' if len(files) > 8 else ''}); "
                        f"set the path to one of them")
    return files


def _hub_error(repo: str, where: str, err: Exception) -> UserError:
    """A dataset that cannot be loaded (errors.hub_error's line)."""
    return hub_error(where, repo, err, dataset=True,
                     otherwise="set the path to DIR, a data file in it, or any local file")


def load_hub(repo: str, config: str | None, split: str | None, where: str, load_kwargs: Mapping = (),
             log: Callable[[str], None] | None = None) -> tuple[list[dict], set]:
    """Rows of a hub dataset through `datasets.load_dataset`; any failure is one clear UserError."""
    try:
        from datasets import load_dataset

        ds = load_dataset(repo, config, split=split, **dict(load_kwargs or {}))
    except ValueError as e:  # a wrong config or split name (the Hub was reached)
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        if re.search(r"split|config", msg, re.I) and "offline" not in msg.lower():
            raise UserError(f"{where}: '{repo}' (config {config!r}, split {split!r}): {msg[:300]}") from None
        raise _hub_error(repo, where, e) from None
    except Exception as e:  # offline, gated, unknown id
        raise _hub_error(repo, where, e) from None
    if split is None and hasattr(ds, "keys"):  # a DatasetDict: one split, else test, else train
        names = list(ds.keys())
        split = names[0] if len(names) == 1 else next((n for n in ("test", "train") if n in names), names[0])
        if log and len(names) > 1:
            log(f"{where}: '{repo}' has splits {', '.join(names)}; using '{split}'")
        ds = ds[split]
    return ds.to_list(), set(ds.column_names)


def load_source(name: str, path: str | os.PathLike | None = None, split: str | None = None,
                config: str | None = None, limit: int | None = None, prompt_field: str | None = None, *,
                kind: str | None = None, id_prefix: str | None = None, where: str | None = None,
                log: Callable[[str], None] | None = None) -> list[dict]:
    """Load a registered source (SOURCES; aliases and hub ids work too) as the kit's records.

    path: None -> the source's hub id; a local CSV/TSV/JSON/JSONL/parquet file; a folder of data
          files; or another hub id (`id`, `id:split`, `id:config:split`).
    split/config: override the source's defaults (for a local JBB file, a split name in the file
          name is used: harmful-behaviors.csv / benign-behaviors.csv).
    prompt_field: the prompt column, for any source. kind: the kind of every record.
    id_prefix: the ids' prefix (default: the source name). where: the error prefix (e.g. "data.path").
    log: called with one line when rows are skipped (empty prompt, no reasoning) or a split is chosen.
    """
    source = get_source(name)
    where = where or f"source '{source.name}'"
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise UserError(f"{where}: limit must be a positive integer, got {limit!r}")
    ref = str(path) if path is not None else None
    if ref is None or is_hub_ref(ref):
        if ref is None and source.hub_id is None:
            raise UserError(f"{where}: source '{source.name}' needs a path (a local file or a hub id)")
        parts = (ref or source.hub_id).split(":")
        repo = parts[0]
        ref_config = parts[1] if len(parts) == 3 else None
        ref_split = parts[-1] if len(parts) > 1 else None
        defaults = ({"config": source.config, "split": source.split} if repo == source.hub_id
                    else dict(source.mirrors.get(repo, {})))
        config = ref_config or config or defaults.get("config")
        split = ref_split or split or defaults.get("split")
        rows, present = load_hub(repo, config, split, where, source.load_kwargs, log)
        label = source.hub_id if repo in (source.hub_id, *source.mirrors) else repo
    else:
        local = Path(ref).expanduser()
        if source.splits and split is None:
            split = next((s for s in source.splits if _token_in(s, local.name)), None)
        if local.is_dir():
            files = pick_data_files(local, config or source.config, split or source.split, where)
        else:
            files = [local]
        rows = [r for f in files for r in read_rows(f)]
        where = f"{where} ({files[0] if len(files) == 1 else local})"
        present = set(rows[0]) if rows else set()
        label = source.hub_id or str(ref)
    records = source.to_records(rows, config=config, split=split, prompt_field=prompt_field, kind=kind,
                                id_prefix=id_prefix, source_label=label, where=where, present=present, log=log)
    return records[:limit] if limit else records


# --------------------------------------------------------------------------------------------
# Command line: list sources, preview or export one
# --------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    from ..errors import guarded

    p = argparse.ArgumentParser(prog="python -m saro_lite.data_sources.public_datasets", description="load a public dataset as kit records")
    p.add_argument("name", nargs="?", help=f"one of: {', '.join(SOURCES)} (omit to list them)")
    p.add_argument("--path", default=None, help="local file or folder, or another hub id (default: the source's hub id)")
    p.add_argument("--split", default=None)
    p.add_argument("--config", default=None)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--prompt-field", default=None)
    p.add_argument("--kind", default=None, choices=RECORD_KINDS)
    p.add_argument("--output", default=None, help="write the records to this JSONL file")
    p.add_argument("--debug", action="store_true")
    args = p.parse_args(argv)

    def run(a, console):
        if not a.name:
            for s in SOURCES.values():
                console.print(f"{s.name:14} {s.hub_id or '(local file)':30} {s.description}", markup=False, soft_wrap=True)
            return 0
        rows = load_source(a.name, a.path, a.split, a.config, a.limit, a.prompt_field, kind=a.kind,
                           log=lambda m: console.print(m, markup=False, soft_wrap=True))
        counts = Counter(r["kind"] for r in rows)
        console.print(f"{len(rows)} records ({', '.join(f'{k} {n}' for k, n in counts.items())})", markup=False, soft_wrap=True)
        if a.output:
            from ..fileio import write_jsonl

            write_jsonl(a.output, rows)
            console.print(f"-> {a.output}", markup=False, soft_wrap=True)
        else:
            for r in rows[:3]:
                console.print(json.dumps({k: (v[:160] if isinstance(v, str) else v) for k, v in r.items()},
                                         ensure_ascii=False)[:600], markup=False, soft_wrap=True)
        return 0

    return guarded(run, args, args.debug)


if __name__ == "__main__":
    raise SystemExit(main())
