"""What every training stage (warmup, srpo, baselines' safety_sft and dpo) shares:

    TrainingRun (checkpoint dir, resume point, metrics log) -> load the model -> TRL config -> trainer
    -> run.train -> run.save -> run.finish (summary)

Each stage makes those calls in that order itself (srpo.py, baselines.py; train_sft below for the two SFT
stages). The TRL configs are built here and only here (`sft_config`, `dpo_config`; the recipe test builds
them through the same functions): recipe.Warmup's fields reach SFTConfig, and recipe.Srpo's (e.g.
`srpo.beta`) reach DPOConfig, by name. Also here: the metrics log, a rich progress bar in place of
transformers' raw per-step printing, checkpoint resume under the stage's fingerprint, and stops or
warnings on degenerate training."""
from __future__ import annotations

import math
import os
import re
import shutil
from pathlib import Path

from ..fileio import append_jsonl, atomic_write_text, read_jsonl, write_json, write_jsonl
from ..errors import UserError
from ..ranks import barrier, is_main
from ..recipe import artifact
from ..modeling.qlora import cast_trainable_to_fp32, lora_config, prepare_for_qlora
from ..modeling.devices import check_gpu_for_training, device_and_dtypes
from ..modeling.loading import load_model
from ..recipe import Recipe, Train

# Recipe fields handed to TRL's configs as they are (the kit's own fields are not TRL's).
TRL_FIELDS = ["learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
              "gradient_accumulation_steps", "max_length", "lr_scheduler_type", "warmup_steps", "weight_decay",
              "max_grad_norm", "logging_steps", "gradient_checkpointing", "optim", "save_steps",
              "save_total_limit", "report_to"]


def trainer_args(recipe: Recipe, cfg: Train, out_dir: Path) -> dict:
    import torch

    device, dtype, _ = device_and_dtypes(recipe)
    on_gpu = device == "cuda"
    args = {k: getattr(cfg, k) for k in TRL_FIELDS}
    optim = args["optim"]
    if not on_gpu and optim.startswith("paged_"):
        optim = "adamw_torch"  # paged optimizers are a GPU memory feature; on CPU they only warn
    args.update(
        output_dir=str(out_dir), optim=optim, seed=recipe.seed, data_seed=recipe.seed,
        use_cpu=not on_gpu, bf16=on_gpu and dtype == torch.bfloat16, fp16=on_gpu and dtype == torch.float16,
        gradient_checkpointing_kwargs={"use_reentrant": False} if cfg.gradient_checkpointing else None,
        save_strategy="steps", disable_tqdm=True, dataloader_pin_memory=on_gpu,
        report_to=[] if cfg.report_to in ("none", "", None) else [cfg.report_to],
    )
    if int(os.environ.get("WORLD_SIZE", 1)) > 1:
        # `accelerate launch` (DDP): LoRA leaves most base weights without gradients, and non-reentrant
        # checkpointing is DDP-safe only without the unused-parameter search
        args["ddp_find_unused_parameters"] = False
    return args


def checkpoint_problem(ckpt: Path) -> str | None:
    """Why a trainer checkpoint cannot be resumed from (None: it can). Checked without loading a model:
    trainer_state.json parses, every .safetensors file's header parses and its tensors end where the
    file ends, every .pt/.pth/.bin file (optimizer, scheduler, RNG states: torch zip archives) is an
    intact zip. A crash or a full disk mid-save leaves one of these torn."""
    import json
    import struct
    import zipfile

    state = ckpt / "trainer_state.json"
    if not state.exists():
        return "no trainer_state.json"
    try:
        json.loads(state.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return "trainer_state.json is torn"
    for f in sorted(ckpt.rglob("*.safetensors")):
        try:
            with open(f, "rb") as fh:
                (n,) = struct.unpack("<Q", fh.read(8))
                header = json.loads(fh.read(n))
            end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
            if f.stat().st_size != 8 + n + end:
                return f"{f.name} is truncated"
        except (struct.error, ValueError, KeyError, TypeError, UnicodeDecodeError):
            return f"{f.name} is torn"
    for f in sorted([*ckpt.rglob("*.pt"), *ckpt.rglob("*.pth"), *ckpt.rglob("*.bin")]):
        try:
            with zipfile.ZipFile(f) as z:
                if z.testzip() is not None:
                    return f"{f.name} is corrupt"
        except (zipfile.BadZipFile, OSError):
            return f"{f.name} is torn"
    return None


def latest_checkpoint(out_dir: Path, fp: str, console=None) -> str | None:
    """The newest intact checkpoint written under the same settings; a torn newer one is skipped, and the
    console says which it resumes from instead (or that the stage starts over)."""
    stamp = out_dir / "fingerprint.txt"
    if not stamp.exists() or stamp.read_text().strip() != fp:
        return None
    ckpts = sorted(out_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    skipped = []
    for ckpt in reversed(ckpts):
        problem = checkpoint_problem(ckpt)
        if problem is None:
            if skipped and console:
                console.print(f"[yellow]checkpoint {skipped[0][0]} cannot be resumed ({skipped[0][1]}): resuming "
                              f"from {ckpt.name} instead[/]")
            return str(ckpt)
        skipped.append((ckpt.name, problem))
    if skipped and console:
        console.print(f"[yellow]checkpoint {skipped[0][0]} cannot be resumed ({skipped[0][1]}) and there is no "
                      f"earlier intact one: the stage starts over[/]")
    return None


def start_checkpoint_dir(out_dir: Path, fp: str, console=None) -> str | None:
    """Resume point for this stage, or a clean checkpoint folder stamped with the settings."""
    resume = latest_checkpoint(out_dir, fp, console)
    if resume is None:
        import shutil

        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out_dir / "fingerprint.txt", fp + "\n")
    return resume


def checkpoint_step(path: str | None) -> int:
    return int(re.search(r"checkpoint-(\d+)", path).group(1)) if path else 0


def trim_metrics(path: Path, max_step: int) -> None:
    """On resume, keep only log rows up to the checkpoint, so no step is logged twice."""
    if not path.exists():
        return
    if max_step == 0:
        path.unlink()
        return
    write_jsonl(path, [r for r in read_jsonl(path, allow_empty=True, torn_ok=True) if r.get("step", 0) <= max_step])


def _callback_base():
    from transformers import TrainerCallback

    return TrainerCallback


NON_FINITE_ADVICE = ("training stops here (the last checkpoint is kept). In fp16 (GPUs without bf16) models such as "
                     "Qwen2.5 and Gemma overflow: use a GPU with bf16 or model.dtype float32; else lower the "
                     "learning rate or check the data")


def make_metrics_logger(path: Path, console, stage: str):
    """Append one JSON object per logged step (TRL's keys), and warn on degenerate values."""
    TrainerCallback = _callback_base()

    class MetricsLogger(TrainerCallback):
        def __init__(self):
            self.rows: list[dict] = []
            self.summary: dict = {}
            self._warned: set[str] = set()
            self._bad_grads = 0

        def on_log(self, args, state, control, logs=None, **kw):
            if not logs or not state.is_world_process_zero:  # one writer under accelerate launch
                return
            if "loss" not in logs:
                if "train_runtime" in logs:
                    self.summary = dict(logs)
                return
            row = {"step": state.global_step, **{k: (float(v) if isinstance(v, (int, float)) else v)
                                                   for k, v in logs.items()}}
            self.rows.append(row)
            append_jsonl(path, row)
            self._check(row)

        def _warn(self, key: str, msg: str):
            if key not in self._warned:
                self._warned.add(key)
                console.print(f"[yellow]warning ({stage}):[/] {msg}")

        def _check(self, row: dict):
            loss, grad = row.get("loss"), row.get("grad_norm")
            if loss is not None and not math.isfinite(loss):
                raise UserError(f"stage {stage}: the loss is {loss} at step {row['step']}; {NON_FINITE_ADVICE}")
            # fp16's GradScaler skips a step whose gradients overflow, silently; a few at the start are
            # how it finds its scale, but overflow on every logged step means nothing is being learned
            self._bad_grads = self._bad_grads + 1 if isinstance(grad, float) and not math.isfinite(grad) else 0
            if self._bad_grads >= 3:
                raise UserError(f"stage {stage}: the gradient norm is {grad} on {self._bad_grads} logged steps in a row "
                                f"(last: step {row['step']}); {NON_FINITE_ADVICE}")
            if stage == "srpo" and loss is not None and len(self.rows) >= 3:
                last = self.rows[-3:]
                if all(abs(r["loss"] - 0.6931) < 1e-3 and abs(r.get("rewards/margins", 0)) < 1e-6 for r in last):
                    self._warn("stuck", "DPO loss is stuck at 0.693 with zero rewards: the completions may be "
                                        "fully masked or truncated (raise srpo.max_length)")

    return MetricsLogger()


def make_progress(console, description: str):
    """A rich progress bar over optimizer steps, showing the latest loss (replaces PrinterCallback)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn

    TrainerCallback = _callback_base()

    class RichProgress(TrainerCallback):
        def __init__(self):
            self.progress = None
            self.task = None

        def on_train_begin(self, args, state, control, **kw):
            self.progress = Progress(TextColumn(f"[bold]{description}[/]"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                     console=console, transient=False)
            self.progress.start()
            self.task = self.progress.add_task(description, total=state.max_steps, completed=state.global_step,
                                               info="")

        def on_step_end(self, args, state, control, **kw):
            if self.progress:
                self.progress.update(self.task, completed=state.global_step)

        def on_log(self, args, state, control, logs=None, **kw):
            if self.progress and logs and "loss" in logs:
                info = f"loss {logs['loss']:.4f}"
                if "rewards/accuracies" in logs:
                    info += f"  acc {logs['rewards/accuracies']:.2f}  margin {logs['rewards/margins']:.3f}"
                self.progress.update(self.task, info=info)

        def on_train_end(self, args, state, control, **kw):
            if self.progress:
                self.progress.update(self.task, completed=state.global_step)
                self.progress.stop()
                self.progress = None

    return RichProgress()


def quiet_trainer(trainer, progress) -> None:
    """Swap transformers' raw per-step printing for the kit's progress bar."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(progress)


def cuda_memory() -> dict:
    import torch

    if not torch.cuda.is_available():
        return {}
    return {"cuda_max_memory_allocated_gb": round(torch.cuda.max_memory_allocated() / 2**30, 3),
            "cuda_max_memory_reserved_gb": round(torch.cuda.max_memory_reserved() / 2**30, 3)}


def sft_config(recipe: Recipe, out_dir: Path, eos_token: str):
    """TRL's SFTConfig from recipe.warmup: loss on the completion only, the template's end-of-turn as EOS."""
    from trl import SFTConfig

    return SFTConfig(**trainer_args(recipe, recipe.warmup, out_dir), completion_only_loss=True, eos_token=eos_token,
                     dataset_num_proc=None)


def dpo_config(recipe: Recipe, out_dir: Path, learning_rate: float | None = None):
    """TRL's DPOConfig from recipe.srpo (beta, loss_type, precompute_ref_log_probs); long pairs keep their
    start (the prompt) and lose their end. learning_rate: another rate than srpo's (the DPO baseline)."""
    from trl import DPOConfig

    args = trainer_args(recipe, recipe.srpo, out_dir)
    if learning_rate is not None:
        args["learning_rate"] = learning_rate
    return DPOConfig(**args, beta=recipe.srpo.beta,
                     loss_type=list(recipe.srpo.loss_type),
                     precompute_ref_log_probs=recipe.srpo.precompute_ref_log_probs, truncation_mode="keep_start",
                     dataset_num_proc=None)


def load_base_for_training(ctx, cfg: Train):
    """The base model to train and, for LoRA, a fresh adapter's config (4-bit bases prepared for QLoRA)."""
    r = ctx.recipe
    model = load_model(r, ctx.model_path, for_training=True)
    peft_config = None
    if r.model.finetune == "lora":
        peft_config = lora_config(r)
        if getattr(model, "is_loaded_in_4bit", False):
            prepare_for_qlora(model, cfg.gradient_checkpointing)
    return model, peft_config


class TrainingRun:
    """One training stage's run, in the order the stage file calls it:

        run = TrainingRun(ctx, "srpo", "srpo", progress="srpo (DPO)")   # checkpoints, resume point, metrics log
        trainer = DPOTrainer(..., args=dpo_config(r, run.ckpt_dir), callbacks=[run.logger, ...])
        run.train(trainer)                                              # resumes from run.resume
        run.save(trainer)                                               # the adapter (or model)
        summary = run.finish(trainer, {...})                            # <stage>/summary.json

    Checkpoints are stamped with the stage's fingerprint (ctx.fingerprint): a resume only continues the
    same settings on the same inputs. Under accelerate launch one process prepares and writes the folders;
    the others wait for it (ranks.barrier) and train."""

    def __init__(self, ctx, stage_dir: str, name: str, progress: str | None = None):
        import torch

        check_gpu_for_training(torch)
        self.ctx, self.stage_dir, self.name, self.progress = ctx, stage_dir, name, progress or name
        self.ckpt_dir = ctx.path(f"{stage_dir}/checkpoints")
        self.metrics_path = ctx.path(f"{stage_dir}/metrics.jsonl")
        self.out = ctx.path(artifact(ctx.recipe, stage_dir))
        if is_main():
            self.resume = start_checkpoint_dir(self.ckpt_dir, ctx.fingerprint, ctx.console)
            trim_metrics(self.metrics_path, checkpoint_step(self.resume))
        barrier()
        if not is_main():
            self.resume = latest_checkpoint(self.ckpt_dir, ctx.fingerprint)
        if self.resume:
            ctx.console.print(f"resuming {name} from {self.resume}")
        self.logger = make_metrics_logger(self.metrics_path, ctx.console, name)

    def train(self, trainer) -> None:
        quiet_trainer(trainer, make_progress(self.ctx.console, self.progress))
        trainer.train(resume_from_checkpoint=self.resume)

    def save(self, trainer, save=None) -> Path:
        """The trained weights to <stage>/adapter (or /model): trainer.save_model, or save(out) where a
        stage saves otherwise (SRPO: the policy adapter without the frozen reference)."""
        if is_main():
            shutil.rmtree(self.out, ignore_errors=True)
        barrier()  # no process may still read the old folder's files while they go
        if save is None:
            trainer.save_model(str(self.out))  # every process calls it; transformers writes from the main one
        elif trainer.args.should_save:
            save(self.out)
        barrier()
        return self.out

    def finish(self, trainer, extra: dict | None = None, report_loss: bool = False) -> dict:
        """<stage>/summary.json (TRL's run summary, peak GPU memory, `extra`); report_loss: the loss of the
        whole run (resumed parts too) on the console."""
        summary = {**self.logger.summary, **cuda_memory(), **(extra or {})}
        if is_main():
            write_json(self.ctx.path(f"{self.stage_dir}/summary.json"), summary)
        rows = self.logger.rows
        if report_loss and rows:
            whole = read_jsonl(self.metrics_path, allow_empty=True, torn_ok=True)  # resumed parts too
            first = whole[0] if whole else rows[0]
            since = f" (this session from step {checkpoint_step(self.resume)})" if self.resume else ""
            self.ctx.console.print(f"{self.name}: loss {first['loss']:.3f} -> {rows[-1]['loss']:.3f} over "
                                   f"{rows[-1]['step']} steps{since}")
        return summary


def train_sft(ctx, dataset, stage_dir: str, label: str) -> dict:
    """SFT on prompt/completion strings from the base (a fresh adapter, or all weights with
    model.finetune: full): the RW warmup and the safety-SFT baseline."""
    from trl import SFTTrainer

    run = TrainingRun(ctx, stage_dir, label)
    model, peft_config = load_base_for_training(ctx, ctx.recipe.warmup)
    tok = ctx.tokenizer()
    trainer = SFTTrainer(model=model, args=sft_config(ctx.recipe, run.ckpt_dir, tok.eos_token), train_dataset=dataset,
                         processing_class=tok, peft_config=peft_config, callbacks=[run.logger])
    cast_trainable_to_fp32(trainer.model)  # TRL made the trainable LoRA weights bf16
    run.train(trainer)
    run.save(trainer)
    return run.finish(trainer, {"records": len(dataset)}, report_loss=True)
