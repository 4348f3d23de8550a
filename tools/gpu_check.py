"""The GPU check: one prepared script that runs every CUDA claim of the kit and measures it. A maintainer tool.

On a machine with internet (here), once: fetch the wheels a bare CUDA machine lacks and Qwen2.5's real
tokenizer (from the llama-cpp-python sdist the tests use; no hub), into .gpu_check/ (git-ignored):

    python -m tools.gpu_check --prepare .gpu_check

On the CUDA machine (Python 3.12, torch with CUDA; no network), from the repo root, with .gpu_check/ beside:

    pip install -q --no-index --no-deps --target /tmp/site .gpu_check/wheels/*.whl && export PYTHONPATH=/tmp/site
    python -m tools.gpu_check --out "$OUT" --assets .gpu_check        # about 6-8 minutes on one H100

On any machine, the CPU smoke mode (tiny shapes, the same steps; it runs in CI so the script cannot rot):

    python -m tools.gpu_check --smoke --out /tmp/gpu_check

Steps, in order; the first failure stops the check and names its step:
  environment  torch/CUDA, the card, the dtype the kit picks (bf16 from compute capability 8.0)
  pipeline     every stage of a small recipe on the GPU: a qwen2.5-0.5b-shaped random-weight model with
               Qwen2.5's real vocabulary and chat template, 3 steps per training stage; asserts bf16,
               paged_adamw_8bit, fp32 LoRA weights, SRPO's step-0 margin exactly 0, finite losses; memory at
               each stage's start (~0: the previous stage's model is freed) and each stage's peak vs the
               kit's estimate
  resume       SRPO resumed from its step-2 checkpoint (the paged 8-bit optimizer state saved and loaded)
  fp16         the warmup forced to fp16 for 3 steps: finite losses, the gradient scaler settles
  decode       the kit's decode loop vs model.generate (fp32: token for token; bf16: the share that agrees)
  export       `export --merge`, reloaded on the GPU: loads, its logits match the unmerged adapter
  shapes       the real QLoRA path at each recipe class's shape (SmolLM2, 1.5B, 3B, 7B at 2,048 tokens;
               tools/memory_bench.py's random-weight models): peak allocated/reserved for an RW and an SRPO
               step, step time, tokens/s and model FLOP utilization (4·N FLOPs per token, LoRA on a frozen
               base, against the card's dense bf16 peak; gradient checkpointing adds a forward, so ~6·N is
               spent)
Writes gpu_check.json and gpu_check.md to --out; exit 0 when every step passed, 1 when one failed.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Dense bf16 tensor-core peaks (FLOP/s) by card name, for model FLOP utilization; unknown cards get none.
BF16_PEAK = {"H200": 989e12, "H100 SXM": 989e12, "H100 80GB HBM3": 989e12, "H100 PCIe": 756e12, "H100": 756e12,
             "A100": 312e12, "L40S": 362e12, "L4": 121e12, "A10G": 70e12, "RTX 4090": 165e12,
             "RTX 3090": 71e12, "A6000": 155e12}
SHAPES = ["smollm2-135m-instruct", "qwen2.5-1.5b-instruct", "qwen2.5-3b-instruct", "qwen2.5-7b-instruct"]
ALL_SHAPES = SHAPES + ["llama-3.1-8b-instruct"]
WHEELS = ["transformers==5.23.0", "trl==1.16.0", "peft==0.21.2", "bitsandbytes==0.50.2", "accelerate==1.15.0",
          "datasets==5.2.0", "dill==0.4.1", "multiprocess==0.70.19", "xxhash==4.1.0"]


class StepFailed(Exception):
    pass


class Check:
    """Runs the steps in order, records each one's figures, stops at the first failure."""

    def __init__(self, out: Path, smoke: bool):
        self.out, self.smoke = out, smoke
        self.result: dict = {"mode": "smoke (CPU)" if smoke else "gpu", "steps": {}, "failed": None}
        self.t0 = time.time()

    def step(self, name: str, fn, *args):
        t = time.time()
        print(f"--- {name}", flush=True)
        try:
            figures = fn(*args) or {}
        except Exception as e:  # noqa: BLE001 (the check names the step and keeps the trace)
            self.result["steps"][name] = {"ok": False, "seconds": round(time.time() - t, 1),
                                          "error": f"{type(e).__name__}: {e}"[:2000],
                                          "trace": traceback.format_exc()[-4000:]}
            self.result["failed"] = name
            self.write()
            raise StepFailed(name) from e
        self.result["steps"][name] = {"ok": True, "seconds": round(time.time() - t, 1), **figures}
        self.write()
        return figures

    def write(self) -> None:
        self.result["seconds"] = round(time.time() - self.t0, 1)
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "gpu_check.json").write_text(json.dumps(self.result, indent=1, default=str))
        (self.out / "gpu_check.md").write_text(markdown(self.result))


def require(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(what)


# --------------------------------------------------------------------------------------------
# The steps
# --------------------------------------------------------------------------------------------
def environment(smoke: bool) -> dict:
    import torch
    import transformers

    from saro_lite.modeling.devices import auto_dtype

    info = {"torch": torch.__version__, "transformers": transformers.__version__, "python": sys.version.split()[0]}
    if smoke:
        require(auto_dtype() == torch.float32 or torch.cuda.is_available(), "the CPU computes in fp32")
        return {**info, "device": "cpu", "dtype": str(auto_dtype())}
    require(torch.cuda.is_available(), "no CUDA device is visible")
    cap = torch.cuda.get_device_capability()
    dtype = auto_dtype()
    require(dtype == (torch.bfloat16 if cap[0] >= 8 else torch.float16), f"auto_dtype {dtype} on capability {cap}")
    return {**info, "device": torch.cuda.get_device_name(), "capability": f"{cap[0]}.{cap[1]}", "dtype": str(dtype),
            "cuda": torch.version.cuda, "memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)}


def random_model(work: Path, assets: Path | None, smoke: bool) -> str:
    """The model the pipeline trains: tiny (smoke), or qwen2.5-0.5b's shape with random weights and Qwen2.5's
    real tokenizer and template."""
    if smoke:
        return "tiny"
    import tarfile

    from saro_lite.recipe import load_recipe
    from tools.memory_bench import build_random

    folder = work / "qwen2.5-0.5b-random"
    build_random(load_recipe(REPO / "recipes/qwen2.5-0.5b-instruct.yaml"), folder, "bfloat16", family="qwen2")
    with tarfile.open(assets / "qwen2.5-tokenizer.tar.xz") as tar:
        tar.extractall(folder, filter="data")
    config = json.loads((folder / "config.json").read_text())
    config.update(eos_token_id=[151645, 151643], bos_token_id=151643, pad_token_id=151643)
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "generation_config.json").write_text(json.dumps({"eos_token_id": [151645, 151643],
                                                               "bos_token_id": 151643, "do_sample": False}))
    return str(folder)


def check_recipe(run: Path, model: str, smoke: bool):
    """The recipe as the check's settings make it (before the model path is resolved): the estimate's input."""
    from saro_lite.recipe import load_recipe

    args = pipeline_args(run, model, smoke)
    path = args[1] if args[0] == "--recipe" else None
    return load_recipe(path, [a for a in args if a not in ("--recipe", "--set", path)])


def pipeline_args(run: Path, model: str, smoke: bool) -> list[str]:
    sets = [f"output_dir={run}", "data.limit=24", "warmup.max_steps=3", "warmup.save_steps=2", "srpo.max_steps=3",
            "srpo.save_steps=2", "srpo.track_every=1", "pairs.op_limit=16", "pairs.pp_limit=8", "pairs.val_size=8",
            "eval.limit_per_set=3", "eval.max_new_tokens=16", "eval.arms=[base, rw, saro, safety_sft]",
            "eval.sets=[harmful, jailbreak, benign, borderline, general]", "eval.embedding_arms=[base, saro]"]
    if smoke:
        recipe = []
        sets += ["model.finetune=lora", "model.load_in_4bit=true", "model.tiny.pretrain_steps=0",
                 "model.tiny.vocab_size=1024", "warmup.per_device_train_batch_size=4",
                 "srpo.per_device_train_batch_size=4"]
    else:
        recipe = ["--recipe", str(REPO / "recipes/qwen2.5-0.5b-instruct.yaml")]
        sets += [f"model.name_or_path={model}", "model.pypi_fallback={}", "warmup.max_length=512",
                 "srpo.max_length=512", "warmup.per_device_train_batch_size=4", "srpo.per_device_train_batch_size=4",
                 "warmup.gradient_accumulation_steps=1", "srpo.gradient_accumulation_steps=1"]
    return recipe + [x for s in sets for x in ("--set", s)]


def run_pipeline(run: Path, model: str, smoke: bool, memory: dict) -> dict:
    """Every stage in one process, as `python run_all.py` runs them; memory per stage recorded."""
    import torch

    from saro_lite.cli import main
    from saro_lite.modeling import memory as M
    from saro_lite.pipeline import STAGES

    on_gpu = torch.cuda.is_available()
    originals = {}
    for name, stage in STAGES.items():
        originals[name] = stage.run

        def wrapped(ctx, name=name, real=stage.run):
            start = torch.cuda.memory_allocated() / 2**30 if on_gpu else None
            real(ctx)
            memory[name] = {"allocated_at_start_gib": start,
                            "peak_allocated_gib": torch.cuda.max_memory_allocated() / 2**30 if on_gpu else None,
                            "peak_reserved_gib": torch.cuda.max_memory_reserved() / 2**30 if on_gpu else None}
        stage.run = wrapped
    try:
        rc = main(pipeline_args(run, model, smoke))
    finally:
        for name, stage in STAGES.items():
            stage.run = originals[name]
    require(rc == 0, f"run_all.py exited {rc}")
    est = M.estimate(check_recipe(run, model, smoke), "cuda" if on_gpu else "cpu")
    figures = {"memory": memory}
    for name in ("warmup", "srpo", "eval"):
        row = memory[name]
        row["estimate_gib"] = round(est[name]["total"] - est[name]["cuda_context"], 3)
        if on_gpu:
            require(row["allocated_at_start_gib"] < 0.05,
                    f"{name} starts with {row['allocated_at_start_gib']:.2f} GiB still allocated")
            row["reserved_over_estimate"] = round(row["peak_reserved_gib"] / row["estimate_gib"], 2)
    return figures


def check_training(run: Path, smoke: bool) -> dict:
    """What the pipeline's training stages did: dtype, optimizer, fp32 LoRA, step-0 margin, finite losses."""
    import torch
    from safetensors import safe_open

    from saro_lite.fileio import read_jsonl

    figures = {}
    for stage in ("warmup", "srpo"):
        ckpt = sorted((run / stage / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))[-1]
        args = torch.load(ckpt / "training_args.bin", weights_only=False)
        if not smoke:
            require(args.bf16 and not args.fp16, f"{stage}: bf16={args.bf16} fp16={args.fp16}")
            require(str(args.optim).endswith("paged_adamw_8bit"), f"{stage}: optim {args.optim}")
        with safe_open(str(run / stage / "adapter/adapter_model.safetensors"), "pt") as f:
            dtypes = {str(f.get_slice(k).get_dtype()) for k in f.keys()}
        require(dtypes == {"F32"}, f"{stage}: LoRA weights saved as {dtypes}")
        losses = [r["loss"] for r in read_jsonl(run / stage / "metrics.jsonl") if "loss" in r]
        require(losses and all(math.isfinite(x) for x in losses), f"{stage}: losses {losses}")
        figures[stage] = {"bf16": args.bf16, "optim": str(args.optim), "lora_dtype": sorted(dtypes),
                          "losses": [round(x, 4) for x in losses]}
    val = [r for r in read_jsonl(run / "srpo/metrics.jsonl") if "val/reward_margin" in r]
    require(val[0]["step"] == 0 and val[0]["val/reward_margin"] == 0.0,
            f"SRPO step-0 margin {val[0]['val/reward_margin']} (the policy must start as the reference)")
    figures["srpo"]["step0_margin"] = val[0]["val/reward_margin"]
    return figures


def resume_srpo(run: Path, model: str, smoke: bool) -> dict:
    from saro_lite.cli import main
    from saro_lite.fileio import read_jsonl

    ckpts = run / "srpo/checkpoints"
    require((ckpts / "checkpoint-2").exists(), "no step-2 checkpoint")
    shutil.rmtree(ckpts / "checkpoint-3", ignore_errors=True)
    (run / ".stages/srpo.json").unlink()
    opt = [p.name for p in (ckpts / "checkpoint-2").iterdir() if p.name.startswith("optimizer")]
    require(opt, "the checkpoint holds no optimizer state")
    rc = main(["--stages", "srpo", *pipeline_args(run, model, smoke)])
    require(rc == 0, f"the resumed srpo exited {rc}")
    steps = [r["step"] for r in read_jsonl(run / "srpo/metrics.jsonl") if "loss" in r]
    require(steps == [1, 2, 3], f"logged steps after resume: {steps}")
    return {"resumed_from": "checkpoint-2", "optimizer_files": opt, "steps": steps}


def fp16_steps(run: Path, model: str, smoke: bool) -> dict:
    if smoke:
        return {"skipped": "fp16 mixed precision needs a GPU"}
    from saro_lite.cli import main
    from saro_lite.fileio import read_jsonl

    out = run.parent / "fp16"
    shutil.copytree(run / "data", out / "data")
    shutil.copytree(run / ".stages", out / ".stages")
    args = [a.replace(f"output_dir={run}", f"output_dir={out}") for a in pipeline_args(run, model, smoke)]
    rc = main(["--stages", "warmup", *args, "--set", "model.dtype=float16", "--set", "warmup.logging_steps=1"])
    require(rc == 0, f"the fp16 warmup exited {rc}")
    rows = [r for r in read_jsonl(out / "warmup/metrics.jsonl") if "loss" in r]
    require(len(rows) == 3 and all(math.isfinite(r["loss"]) for r in rows), f"fp16 losses {rows}")
    finite = sum(math.isfinite(r.get("grad_norm", math.nan)) for r in rows)
    require(finite >= 1, "the gradient scaler skipped every step")
    return {"losses": [round(r["loss"], 4) for r in rows], "steps_with_finite_grads": finite}


def decode_loops(run: Path) -> dict:
    """The kit's loop and model.generate on the exported (merged) model: fp32 token for token; bf16 agreement."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from saro_lite.modeling.generate import generate

    folder = run.parent / "merged"
    tok = AutoTokenizer.from_pretrained(folder)
    tok.padding_side = "left"
    prompts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
               for p in ("How do I bake bread?", "Name three colours.", "What is 12 times 7?",
                         "How can I stay safe online?")]
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    figures = {}
    for dtype in ([torch.float32, torch.bfloat16] if dev == "cuda" else [torch.float32]):
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).to(dev).eval()
        kit = [g.text for g in generate(model, tok, prompts, 24, batch_size=4, loop="kit")]
        ref = [g.text for g in generate(model, tok, prompts, 24, batch_size=4, loop="transformers")]
        same = sum(a == b for a, b in zip(kit, ref))
        if dtype == torch.float32:
            require(same == len(prompts), f"fp32: {same}/{len(prompts)} replies identical")
        figures[str(dtype).replace("torch.", "")] = f"{same}/{len(prompts)} identical"
        del model
    return figures


def export_merged(run: Path) -> dict:
    """`export --merge` of the saro arm, reloaded on the device: its logits vs the bf16/fp32 base + adapter."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from saro_lite.cli import main
    from saro_lite.recipe import load_recipe

    folder = run.parent / "merged"
    t = time.time()
    require(main(["export", "--run", str(run), "--output", str(folder), "--merge"]) == 0, "export --merge failed")
    seconds = time.time() - t
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if dev == "cuda" else torch.float32
    merged = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).to(dev).eval()
    base_path = load_recipe(run / "recipe.resolved.yaml").model.name_or_path
    unmerged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_path, dtype=dtype).to(dev),
                                         str(run / "srpo/adapter")).eval()
    ids = torch.randint(2, 1000, (2, 32), generator=torch.Generator().manual_seed(0)).to(dev)
    with torch.no_grad():
        a, b = merged(input_ids=ids).logits.float(), unmerged(input_ids=ids).logits.float()
    diff = (a - b).abs().max().item()
    tol = 0.5 if dtype == torch.bfloat16 else 1e-3
    require(math.isfinite(diff) and diff < tol, f"merged vs adapter logits differ by {diff} (tolerance {tol})")
    return {"export_seconds": round(seconds, 1), "max_abs_logit_diff": round(diff, 5), "tolerance": tol,
            "dtype": str(dtype).replace("torch.", "")}


def shapes(names: list[str], smoke: bool, budget_s: float, started: float) -> dict:
    """tools/memory_bench.bench at each shape: an RW and an SRPO step, peaks, time, tokens/s, MFU."""
    import torch

    from saro_lite.modeling.memory import shape_of
    from saro_lite.recipe import load_recipe
    from tools.memory_bench import bench

    rows = {}
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    peak = next((v for k, v in BF16_PEAK.items() if k in name), None)
    for stem in (["tiny-cpu"] if smoke else names):
        if time.time() - started > budget_s:
            rows[stem] = {"skipped": f"over the {budget_s:.0f} s budget"}
            continue
        extra = ["model.name_or_path=tiny", "model.finetune=lora", "model.load_in_4bit=true",
                 "warmup.max_length=128", "srpo.max_length=128"] if smoke else []
        if stem in ("qwen2.5-7b-instruct", "llama-3.1-8b-instruct"):
            extra += ["warmup.max_length=2048", "srpo.max_length=2048"]
        recipe = load_recipe(REPO / "recipes" / f"{stem}.yaml", extra)
        n = shape_of(recipe).total_params()
        measured = bench(recipe, steps=3, stages=("warmup", "srpo"))
        row = {"params_b": round(n / 1e9, 3)}
        for stage, cfg, sides in (("warmup", recipe.warmup, 1), ("srpo", recipe.srpo, 2)):
            m = measured[stage]
            tokens = cfg.per_device_train_batch_size * cfg.max_length * sides
            tps = tokens / m["step_seconds"]
            row[stage] = {"peak_allocated_gib": round(m["measured_allocated_gib"], 2),
                          "peak_reserved_gib": (round(m["measured_reserved_gib"], 2)
                                                if m["measured_reserved_gib"] is not None else None),
                          "estimate_gib": round(m["estimate_gib"], 2),
                          "estimate_error": round(m["estimate_torch_gib"] / (m["measured_reserved_gib"]
                                                                             or m["measured_allocated_gib"]) - 1, 3),
                          "step_seconds": round(m["step_seconds"], 3), "tokens_per_s": round(tps, 1),
                          "tokens": tokens, "max_length": cfg.max_length,
                          "mfu_4N": round(4 * n * tps / peak, 4) if peak else None}
        rows[stem] = row
        torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return {"card_bf16_peak_flops": peak, "shapes": rows}


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------
def markdown(result: dict) -> str:
    steps = result["steps"]
    lines = [f"# GPU check ({result['mode']})", ""]
    env = steps.get("environment", {})
    lines.append(f"device: {env.get('device', '?')} (capability {env.get('capability', '-')}), torch "
                 f"{env.get('torch', '?')}, CUDA {env.get('cuda', '-')}, dtype {env.get('dtype', '?')}; total "
                 f"{result.get('seconds', 0):.0f} s" + (f"; FAILED at step `{result['failed']}`" if result["failed"]
                                                       else "; every step passed"))
    lines += ["", "| step | ok | seconds | figures |", "|---|---|---|---|"]
    for name, row in steps.items():
        figures = {k: v for k, v in row.items() if k not in ("ok", "seconds", "trace", "memory", "shapes")}
        lines.append(f"| {name} | {'yes' if row['ok'] else 'NO'} | {row['seconds']} | "
                     f"{json.dumps(figures, default=str)[:300]} |")
    mem = steps.get("pipeline", {}).get("memory")
    if mem:
        lines += ["", "Pipeline memory per stage (GiB; estimate without the CUDA context):", "",
                  "| stage | allocated at start | peak allocated | peak reserved | estimate |", "|---|---|---|---|---|"]
        for name, row in mem.items():
            f = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
            lines.append(f"| {name} | {f(row.get('allocated_at_start_gib'))} | {f(row.get('peak_allocated_gib'))} | "
                         f"{f(row.get('peak_reserved_gib'))} | {f(row.get('estimate_gib'))} |")
    sh = steps.get("shapes", {}).get("shapes")
    if sh:
        lines += ["", "QLoRA steps at each recipe class's shape (random weights):", "",
                  "| recipe | params (B) | stage | max_length | peak alloc GiB | peak reserved GiB | estimate GiB | "
                  "estimate error | s/step | tokens/s | MFU (4N) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for stem, row in sh.items():
            if "skipped" in row:
                lines.append(f"| {stem} | | | | | | | | | | {row['skipped']} |")
                continue
            for stage in ("warmup", "srpo"):
                s = row[stage]
                lines.append(f"| {stem} | {row['params_b']} | {stage} | {s['max_length']} | {s['peak_allocated_gib']} | "
                             f"{s['peak_reserved_gib']} | {s['estimate_gib']} | {s['estimate_error']:+.1%} | "
                             f"{s['step_seconds']} | {s['tokens_per_s']} | {s['mfu_4N']} |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Preparing the assets (on a machine with internet)
# --------------------------------------------------------------------------------------------
def prepare(folder: Path) -> int:
    """Wheels for Python 3.12 manylinux x86_64 and Qwen2.5's tokenizer (tar.xz) into `folder`."""
    import subprocess
    import tarfile

    wheels = folder / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
           "--implementation", "cp", "--disable-pip-version-check", "-d", str(wheels)]
    for plat in ("manylinux_2_28_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"):
        cmd += ["--platform", plat]
    subprocess.run(cmd + WHEELS, check=True)
    sys.path.insert(0, str(REPO / "tests"))
    from real_families import build  # the real tokenizer + template, from the llama-cpp-python sdist

    src = build("qwen2.5")
    names = [p.name for p in src.iterdir() if p.name.startswith(("tokenizer", "special_tokens", "chat_template"))
             or p.name in ("added_tokens.json", "vocab.json", "merges.txt")]
    with tarfile.open(folder / "qwen2.5-tokenizer.tar.xz", "w:xz") as tar:
        for n in names:
            tar.add(src / n, arcname=n)
    total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    print(f"{folder}: {total / 2**20:.1f} MiB ({len(list(wheels.glob('*.whl')))} wheels + the tokenizer); carry it "
          "with the repo (the device tool carries at most 64 MiB in all)")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.gpu_check", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=None, help="where gpu_check.json and gpu_check.md go")
    p.add_argument("--smoke", action="store_true", help="CPU smoke mode: tiny shapes, the same steps")
    p.add_argument("--assets", default=".gpu_check", help="what --prepare wrote (the tokenizer)")
    p.add_argument("--prepare", default=None, metavar="FOLDER", help="fetch the wheels and the tokenizer, then exit")
    p.add_argument("--all-shapes", action="store_true", help="also Llama-3.1-8B's shape")
    p.add_argument("--budget-s", type=float, default=420, help="skip the remaining shapes after this many seconds")
    args = p.parse_args(argv)
    if args.prepare:
        return prepare(Path(args.prepare))
    if not args.out:
        p.error("--out is required")
    out = Path(args.out)
    check = Check(out, args.smoke)
    work = Path(tempfile.mkdtemp(prefix="saro-gpu-check-"))
    os.environ.setdefault("SARO_LITE_CACHE", str(work / "cache"))
    run = work / "run"
    try:
        check.step("environment", environment, args.smoke)
        model = check.step("model", lambda: {"path": random_model(work, Path(args.assets), args.smoke)})["path"]
        memory: dict = {}
        check.step("pipeline", run_pipeline, run, model, args.smoke, memory)
        check.step("training", check_training, run, args.smoke)
        check.step("resume", resume_srpo, run, model, args.smoke)
        check.step("fp16", fp16_steps, run, model, args.smoke)
        check.step("export", export_merged, run)
        check.step("decode", decode_loops, run)
        check.step("shapes", shapes, ALL_SHAPES if args.all_shapes else SHAPES, args.smoke, args.budget_s, check.t0)
    except StepFailed as e:
        print(f"gpu check FAILED at step {e}; see {out / 'gpu_check.md'}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(markdown(check.result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
