"""Stage bookkeeping: which stages run, which are skipped, and when a stage counts as finished.

A stage is finished when `.stages/<name>.json` exists in the run folder, holds the fingerprint of
the settings the stage reads (plus the fingerprints of the stages it builds on), and every output
it lists exists. The marker is removed when a stage starts and written last, atomically, so a run
killed at any moment never leaves a stage that looks finished but is not.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import baselines, data, eval as eval_stage, pairs, report, srpo, warmup
from .context import Context
from .data_sources.eval_sets import eval_set_names
from .data_sources.holdout import VALIDATION_KEYS
from .errors import UserError
from .fileio import atomic_write_text, set_open_permissions, write_json
from .modeling.arms import all_arms
from .modeling.loading import artifact
from .recipe import TEACHER_DATA_KEYS, Recipe, fingerprint, run_dir, select, to_yaml

def _no_kernels_hub_notice(record) -> bool:
    return not str(record.msg).startswith("Failed to load CPU gemm_4bit_forward from kernels-community")


def quiet_libraries() -> None:
    """Keep the terminal for the kit's own progress: no per-map progress bars from datasets, no
    weight-loading bars, no deprecation noise from the pinned stack (TRL's own warnings stay)."""
    import logging
    import os
    import sys
    import warnings

    # bitsandbytes' CPU backend, on import (every run imports it through transformers/peft/trl, also
    # runs that never use 4-bit), on CPUs with AVX512-BF16, asks for the optional `kernels` package:
    # "Failed to load CPU gemm_4bit_forward from kernels-community ... pip install kernels". Without it
    # bitsandbytes uses its own CPU 4-bit kernel; nothing is wrong, so the notice is dropped (only it).
    bnb_cpu = logging.getLogger("bitsandbytes.backends.cpu.ops")
    if _no_kernels_hub_notice not in bnb_cpu.filters:
        bnb_cpu.addFilter(_no_kernels_hub_notice)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", category=FutureWarning, message=r".*(checkpointing|deprecated).*")
    warnings.filterwarnings("ignore", message=r".*pin_memory.*")
    # datasets reads this at import; importing it here just to switch the bars off cost ~0.5 s in
    # every command, also in stages that never touch datasets (eval).
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    if "datasets" in sys.modules:
        sys.modules["datasets"].disable_progress_bars()
    try:
        import transformers

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except ImportError:
        pass


STAGE_ORDER = ["data", "warmup", "pairs", "srpo", "baselines", "eval", "report"]


def _eval_outputs(r: Recipe) -> list[str]:
    return [f"eval/{arm}/{name}.jsonl" for arm in all_arms(r) for name in eval_set_names(r)]


@dataclass
class Stage:
    name: str
    run: Callable[[Context], None]  # the stage script's run(ctx)
    needs: list[str]
    reads: Callable[[Recipe], list[str]]
    outputs: Callable[[Recipe], list[str]]
    help: str = ""


MODEL_KEYS = ["model"]
STAGES: dict[str, Stage] = {s.name: s for s in [
    Stage("data", data.run, [],
          # + the settings that decide the validation pairs' prompts, which the data stage leaves out
          lambda r: ["seed", "data"] + (TEACHER_DATA_KEYS if r.data.source == "teacher" else [])
          + (VALIDATION_KEYS if r.pairs.source in ("starter", "file") else []),
          lambda r: ["data/prompts.jsonl", "data/rit_d.jsonl"],
          "prompts and RIT-D reasoning traces"),
    Stage("warmup", warmup.run, ["data"],
          lambda r: ["seed", "model", "warmup"],
          lambda r: [artifact(r, "warmup"), "warmup/metrics.jsonl"],
          "Reasoning-style Warmup: SFT on RIT-D"),
    Stage("pairs", pairs.run, ["data"],
          lambda r: ["seed", "pairs", "model"] + (TEACHER_DATA_KEYS if r.pairs.source == "teacher" else []),
          lambda r: ["data/op_cot.jsonl", "data/pp_cot.jsonl", "data/srpo_train.jsonl", "data/srpo_val.jsonl"],
          "OP-COT and PP-COT preference pairs + held-out validation pairs"),
    Stage("srpo", srpo.run, ["warmup", "pairs"],
          lambda r: ["seed", "model", "srpo"],
          lambda r: [artifact(r, "srpo"), "srpo/metrics.jsonl"],
          "SRPO: DPO from the RW model with the RW model as reference"),
    Stage("baselines", baselines.run, ["data"],
          lambda r: ["seed", "model", "warmup", "srpo", "eval.arms", "baselines"],
          lambda r: [x for a in r.eval.arms if a in ("safety_sft", "dpo")
                     for x in (artifact(r, f"baselines/{a}"), f"baselines/{a}/metrics.jsonl")],
          "safety-SFT and plain-DPO baselines (only the arms named in eval.arms)"),
    Stage("eval", eval_stage.run, ["srpo"],
          lambda r: ["seed", "model", "eval"],
          _eval_outputs,
          "generate with each arm, judge, score"),
    Stage("report", report.run, ["eval"],
          lambda r: ["report"],
          lambda r: ["report.json", "report.md"],
          "report.json, report.md, figures"),
]}


def out_of_memory_advice(stage: str, r: Recipe) -> str:
    if stage in ("warmup", "srpo"):
        cfg = getattr(r, stage)
        return (f"stage {stage}: CUDA out of memory. Lower {stage}.per_device_train_batch_size "
                f"(now {cfg.per_device_train_batch_size}) and raise {stage}.gradient_accumulation_steps, lower "
                f"{stage}.max_length (now {cfg.max_length}), keep {stage}.gradient_checkpointing true"
                + (", keep srpo.precompute_ref_log_probs false" if stage == "srpo" else "")
                + "; the run resumes from the last checkpoint")
    if stage == "eval":
        return (f"stage eval: CUDA out of memory. Lower eval.batch_size (now {r.eval.batch_size}) or "
                f"eval.max_new_tokens (now {r.eval.max_new_tokens})")
    if stage == "pairs":
        return (f"stage pairs: CUDA out of memory while sampling. Lower pairs.batch_size (now {r.pairs.batch_size}) "
                f"or pairs.max_new_tokens (now {r.pairs.max_new_tokens})")
    return f"stage {stage}: CUDA out of memory; use a smaller model or a GPU with more memory"


def parse_stages(text: str | None) -> list[str]:
    if not text:
        return list(STAGE_ORDER)
    names = [s.strip() for s in text.split(",") if s.strip()]
    for n in names:
        if n not in STAGES:
            raise UserError(f"--stages: unknown stage '{n}' (stages: {', '.join(STAGE_ORDER)})")
    return [s for s in STAGE_ORDER if s in names]  # always in pipeline order


class Pipeline:
    def __init__(self, recipe: Recipe, console, run_directory: Path | None = None):
        self.recipe = recipe
        self.console = console
        self.run_dir = Path(run_directory) if run_directory else run_dir(recipe)
        self.state_dir = self.run_dir / ".stages"

    # fingerprints -------------------------------------------------------------------------
    def needs(self, name: str) -> list[str]:
        """Stages whose outputs this one reads (the self path samples pairs from the RW model)."""
        extra = ["warmup"] if name == "pairs" and self.recipe.pairs.source == "self" else []
        if name == "baselines" and "dpo" in self.recipe.eval.arms:
            extra = ["pairs"]
        if name == "eval" and any(a in ("safety_sft", "dpo") for a in self.recipe.eval.arms):
            extra = ["baselines"]
        return STAGES[name].needs + extra

    def settings(self, name: str) -> dict:
        return select(self.recipe, STAGES[name].reads(self.recipe))

    def expected_fingerprint(self, name: str) -> str:
        stage = STAGES[name]
        return fingerprint({"settings": self.settings(name),
                            "upstream": {u: self.expected_fingerprint(u) for u in self.needs(stage.name)}})

    def state(self, name: str) -> dict | None:
        import json

        p = self.state_dir / f"{name}.json"
        if not p.exists():
            return None
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except ValueError:
            return None

    def outputs_exist(self, name: str) -> bool:
        return all((self.run_dir / o).exists() for o in STAGES[name].outputs(self.recipe))

    def is_finished(self, name: str) -> bool:
        st = self.state(name)
        return bool(st) and st.get("fingerprint") == self.expected_fingerprint(name) and self.outputs_exist(name)

    def has_outputs(self, name: str) -> bool:
        return self.state(name) is not None and self.outputs_exist(name)

    # running --------------------------------------------------------------------------------
    def check_needs(self, selected: list[str]) -> None:
        """Fail before any work when a selected stage builds on a missing, unselected stage."""
        for name in selected:
            for up in self.needs(name):
                if up in selected:
                    continue
                if not self.has_outputs(up):
                    raise UserError(f"stage '{name}' needs the outputs of stage '{up}', which are missing in "
                                    f"{self.run_dir}; run it first: --stages {up},{name}")
                if not self.is_finished(up):
                    self.console.print(f"[yellow]warning:[/] the outputs of '{up}' in {self.run_dir} were made "
                                       f"with other settings; '{name}' uses them as they are")

    def write_resolved(self, resolved: dict) -> None:
        atomic_write_text(self.run_dir / "recipe.resolved.yaml", to_yaml(self.recipe, resolved))

    def run(self, selected: list[str], fresh: bool = False, ctx: Context | None = None) -> dict[str, str]:
        self.check_needs(selected)
        ctx = ctx or Context(self.recipe, self.run_dir, self.console)
        outcome: dict[str, str] = {}
        for name in selected:
            if not fresh and self.is_finished(name):
                self.console.print(f"[dim]stage {name}: skipped (finished, same settings)[/]")
                outcome[name] = "skipped"
                continue
            if fresh:  # --fresh means from scratch: no resuming from an earlier run's trainer checkpoints
                import shutil

                for ckpt in self.run_dir.glob(f"{name}/**/checkpoints"):
                    shutil.rmtree(ckpt, ignore_errors=True)
            outcome[name] = self.run_stage(name, ctx)
        return outcome

    def run_stage(self, name: str, ctx: Context) -> str:
        stage = STAGES[name]
        marker = self.state_dir / f"{name}.json"
        marker.unlink(missing_ok=True)  # not finished until proven otherwise
        self.console.rule(f"[bold]stage {name}[/] — {stage.help}")
        t0 = time.time()
        quiet_libraries()
        ctx.fingerprint = self.expected_fingerprint(name)
        try:
            stage.run(ctx)
        except Exception as e:  # CUDA out of memory: say which settings to lower, not a raw trace
            if type(e).__name__ != "OutOfMemoryError" and "out of memory" not in str(e).lower():
                raise
            raise UserError(out_of_memory_advice(name, self.recipe)) from None
        missing = [o for o in stage.outputs(self.recipe) if not (self.run_dir / o).exists()]
        if missing:
            raise RuntimeError(f"stage {name} finished without writing: {', '.join(missing)}")
        # safetensors (adapters, models, trainer checkpoints) writes owner-only files: give the stage's
        # outputs what a plain open() would
        for top in sorted({Path(o).parts[0] for o in stage.outputs(self.recipe)} | {"figures"}):
            set_open_permissions(self.run_dir / top)
        seconds = round(time.time() - t0, 2)
        write_json(marker, {"stage": name, "fingerprint": self.expected_fingerprint(name),
                            "settings": self.settings(name),
                            "upstream": {u: self.expected_fingerprint(u) for u in self.needs(stage.name)},
                            "outputs": stage.outputs(self.recipe), "seconds": seconds,
                            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S")})
        self.console.print(f"stage {name}: done in {seconds:.1f} s")
        return "done"
