"""Stage bookkeeping: which stages run, which are skipped, and when a stage counts as finished.

A stage's record, `.stages/<name>.json` in the run folder, is written last, atomically, when the stage
ends; it is removed when the stage starts, so a run killed at any moment never leaves a stage that
looks finished but is not. It holds the settings the stage read, the identity of each upstream stage's
outputs *as they were when it ran* (read from their records, not recomputed from the recipe), and a
digest of every output. A stage is finished when its record matches the current settings, the
upstream records it was built on are the ones there now, and its outputs still have the recorded
digests; a stage whose upstream stage runs again runs again too. `--dry-run` prints the same plan the
run then follows (`Pipeline.plan`), with the reason for each stage that runs.
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
from .fileio import atomic_write_text, content_digest, set_open_permissions, write_json
from .arms import all_arms
from .recipe import artifact
from .modeling.devices import release_memory
from .ranks import barrier, is_main, world_size
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
TRAINING_STAGES = ["warmup", "srpo", "baselines"]  # the stages that run under accelerate launch


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

    # records --------------------------------------------------------------------------------
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

    def outputs(self, name: str) -> list[str]:
        return STAGES[name].outputs(self.recipe)

    def state(self, name: str) -> dict | None:
        import json

        p = self.state_dir / f"{name}.json"
        if not p.exists():
            return None
        try:
            st = json.loads(p.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            return None
        return st if isinstance(st, dict) else None

    def identity(self, name: str) -> str | None:
        """What a downstream stage was built on: the recorded identity of this stage's outputs."""
        st = self.state(name)
        return st.get("identity") if st else None

    def upstream(self, name: str) -> dict[str, str | None]:
        return {u: self.identity(u) for u in self.needs(name)}

    def expected_fingerprint(self, name: str) -> str:
        """The settings the stage reads + the identities of the upstream outputs on disk now. Trainer
        checkpoints are stamped with it: a resume only continues the same settings on the same inputs."""
        return fingerprint({"settings": self.settings(name), "upstream": self.upstream(name)})

    def digests(self, name: str) -> dict[str, str | None]:
        return {o: content_digest(self.run_dir / o) for o in self.outputs(name)}

    def stale_reason(self, name: str) -> str | None:
        """Why the stage's record does not match the run folder now (None: it matches)."""
        st = self.state(name)
        if st is None:
            return "not run yet" if not self.state_dir.joinpath(f"{name}.json").exists() else "its record is unreadable"
        if not isinstance(st.get("outputs"), dict) or "identity" not in st:
            return "recorded by an older saro-lite"
        changed = changed_keys(st.get("settings") or {}, self.settings(name))
        if changed:
            return "settings changed: " + ", ".join(changed[:4]) + (" ..." if len(changed) > 4 else "")
        recorded = st.get("upstream") or {}
        for u, ident in self.upstream(name).items():
            if recorded.get(u) != ident:
                return f"'{u}' ran again since (its outputs changed)"
        if st.get("fingerprint") != self.expected_fingerprint(name):
            return "settings changed"
        for o, digest in self.digests(name).items():
            if digest is None:
                return f"output missing: {o}"
            if st["outputs"].get(o) != digest:
                return f"output changed since: {o}"
        return None

    def is_current(self, name: str) -> bool:
        return self.stale_reason(name) is None

    def is_finished(self, name: str) -> bool:
        """Current, and so is everything it builds on: its results follow from the recipe as it is."""
        return self.is_current(name) and all(self.is_finished(u) for u in self.needs(name))

    def has_outputs(self, name: str) -> bool:
        return self.state(name) is not None and all(d is not None for d in self.digests(name).values())

    # the plan ---------------------------------------------------------------------------------
    def plan(self, selected: list[str], fresh: bool = False) -> dict[str, tuple[str, str]]:
        """stage -> (action, why) for every stage; action is run, skip or not selected. The run follows
        exactly this: a stage runs when --fresh asks, when its record does not match the folder, or
        when a stage it builds on runs before it."""
        plan: dict[str, tuple[str, str]] = {}
        for name in STAGE_ORDER:
            if name not in selected:
                plan[name] = ("not selected", "")
            elif not self.outputs(name):
                plan[name] = ("skip", "not needed: no safety_sft or dpo in eval.arms")
            elif fresh:
                plan[name] = ("run", "--fresh")
            elif (why := self.stale_reason(name)) is not None:
                plan[name] = ("run", why)
            elif (first := next((u for u in self.needs(name) if plan.get(u, ("",))[0] == "run"), None)):
                plan[name] = ("run", f"'{first}' runs first")
            else:
                stale = next((u for u in self.needs(name) if not self.is_finished(u)), None)
                plan[name] = ("skip", "finished, same settings and inputs" if stale is None else
                              f"finished on the outputs of '{stale}' as they are ('{stale}' is not selected "
                              "and its own inputs or settings changed)")
        return plan

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
                    why = self.stale_reason(up) or next(
                        f"'{u}' changed" for u in self.needs(up) if not self.is_finished(u))
                    self.console.print(f"[yellow]warning:[/] the outputs of '{up}' in {self.run_dir} do not match "
                                       f"the recipe ({why}); '{name}' uses them as they are")

    def write_resolved(self, resolved: dict) -> None:
        atomic_write_text(self.run_dir / "recipe.resolved.yaml", to_yaml(self.recipe, resolved))

    def run(self, selected: list[str], fresh: bool = False, ctx: Context | None = None) -> dict[str, str]:
        check_process_count(selected)
        self.check_needs(selected)
        ctx = ctx or Context(self.recipe, self.run_dir, self.console)
        ctx.fresh = fresh
        plan = self.plan(selected, fresh)
        outcome: dict[str, str] = {}
        for name in selected:
            action, why = plan[name]
            if action == "skip":
                self.console.print(f"[dim]stage {name}: skipped ({why})[/]")
                outcome[name] = "skipped"
                continue
            if fresh and is_main():  # --fresh means from scratch: no resuming from an earlier run's checkpoints
                import shutil

                for ckpt in self.run_dir.glob(f"{name}/**/checkpoints"):
                    shutil.rmtree(ckpt, ignore_errors=True)
            elif why != "not run yet":
                self.console.print(f"[dim]stage {name}: runs ({why})[/]")
            barrier()
            outcome[name] = self.run_stage(name, ctx)
        return outcome

    def run_stage(self, name: str, ctx: Context) -> str:
        stage = STAGES[name]
        marker = self.state_dir / f"{name}.json"
        upstream = self.upstream(name)  # what the stage is built on, as recorded by those stages
        ctx.fingerprint = self.expected_fingerprint(name)
        barrier()  # every process has read the records before the main one changes them
        if is_main():
            marker.unlink(missing_ok=True)  # not finished until proven otherwise
            check_free_space(name, self.recipe, self.run_dir)
        self.console.rule(f"[bold]stage {name}[/] — {stage.help}")
        t0 = time.time()
        quiet_libraries()
        release_memory()  # the last stage's model is gone before this one loads its own
        try:
            stage.run(ctx)
        except Exception as e:
            if disk_full(e):  # ENOSPC, or torch's "unexpected pos" when a checkpoint write hits a full disk
                raise UserError(disk_full_message(name, self.recipe, self.run_dir)) from None
            if type(e).__name__ != "OutOfMemoryError" and "out of memory" not in str(e).lower():
                raise
            # CUDA out of memory: say which settings to lower, not a raw trace
            raise UserError(out_of_memory_advice(name, self.recipe)) from None
        finally:
            release_memory()
        barrier()
        if not is_main():
            return "done"  # the main process checks and records the outputs
        missing = [o for o in self.outputs(name) if not (self.run_dir / o).exists()]
        if missing:
            raise RuntimeError(f"stage {name} finished without writing: {', '.join(missing)}")
        # safetensors (adapters, models, trainer checkpoints) writes owner-only files: give the stage's
        # outputs what a plain open() would
        for top in sorted({Path(o).parts[0] for o in self.outputs(name)} | {"figures"}):
            set_open_permissions(self.run_dir / top)
        seconds = round(time.time() - t0, 2)
        digests = self.digests(name)
        write_json(marker, {"stage": name, "fingerprint": ctx.fingerprint, "settings": self.settings(name),
                            "upstream": upstream, "outputs": digests,
                            "identity": fingerprint({"fingerprint": ctx.fingerprint, "outputs": digests}),
                            "seconds": seconds, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S")})
        self.console.print(f"stage {name}: done in {seconds:.1f} s")
        return "done"


def check_process_count(selected: list[str]) -> None:
    """Several processes (accelerate launch, torchrun) share the training stages; the others run once."""
    if world_size() > 1 and set(selected) - set(TRAINING_STAGES):
        others = ", ".join(s for s in selected if s not in TRAINING_STAGES)
        raise UserError(f"{world_size()} processes (accelerate launch / torchrun) train only: --stages "
                        f"{','.join(s for s in selected if s in TRAINING_STAGES) or 'warmup'}; run {others} as one "
                        "process (python run_all.py --stages ...)")


def changed_keys(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted names of the settings that differ between two nested dicts."""
    out = []
    for k in sorted(set(old) | set(new), key=str):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += changed_keys(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}")
    return out


# --------------------------------------------------------------------------------------------
# Disk space: what a stage will write, checked before it starts
# --------------------------------------------------------------------------------------------
SMALL_STAGE_BYTES = 64 << 20  # data, pairs, eval, report: JSONL, figures, embeddings


def stage_disk_bytes(name: str, r: Recipe) -> int:
    """What a stage writes to the run folder, estimated from the model's shape: the trained weights
    (adapter or model) plus `save_total_limit` + 1 trainer checkpoints (weights + optimizer state;
    the trainer writes a new one before it deletes the oldest), per trained arm."""
    from .modeling import memory

    if name not in ("warmup", "srpo", "baselines"):
        return SMALL_STAGE_BYTES
    try:
        shape = memory.shape_of(r)
    except UserError:  # no model.arch in the recipe: the memory estimate's own error is for --dry-run
        return SMALL_STAGE_BYTES
    arms = [a for a in r.eval.arms if a in ("safety_sft", "dpo")] if name == "baselines" else [name]
    total = 0
    for arm in arms:
        cfg = r.srpo if arm in ("srpo", "dpo") else r.warmup
        sizes = (memory.lora_tensors(shape, r.model.lora_r, r.model.lora_target_modules)
                 if r.model.finetune == "lora" else [shape.total_params()])
        weights = 4 * sum(sizes)  # saved in fp32 (LoRA) or at most fp32 (a whole model)
        checkpoint = weights + memory.optimizer_bytes(sizes, cfg.optim) + (1 << 20)
        total += int(weights + (cfg.save_total_limit + 1) * checkpoint)
    return total + SMALL_STAGE_BYTES


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def free_bytes(folder: Path) -> int | None:
    import shutil

    p = Path(folder)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def check_free_space(name: str, r: Recipe, folder: Path) -> None:
    need, free = stage_disk_bytes(name, r), free_bytes(folder)
    if free is not None and free < need:
        raise UserError(f"stage {name}: {folder} has {human_bytes(free)} free; the stage writes about "
                        f"{human_bytes(need)}; free some space or set output_dir to a disk with room "
                        "(finished stages are kept)")


def disk_full(e: BaseException) -> bool:
    import errno

    while e is not None:
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(e)
        if "No space left on device" in text or "unexpected pos" in text or "Disk quota exceeded" in text:
            return True
        e = e.__cause__ or e.__context__
    return False


def disk_full_message(name: str, r: Recipe, folder: Path) -> str:
    free = free_bytes(folder)
    return (f"stage {name}: the disk holding {folder} is full" + (f" ({human_bytes(free)} free)" if free is not None
                                                                    else "")
            + f"; the stage writes about {human_bytes(stage_disk_bytes(name, r))}. Free some space and run the "
            "same command again: finished stages are kept and this one resumes")
