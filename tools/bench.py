"""Performance ratios of the finished pipeline, measured as whole-command wall times in one sitting.

    python -m tools.bench                         # the tiny recipe, a run folder under runs/bench
    python -m tools.bench --recipe recipes/qwen2.5-0.5b-instruct.yaml --run runs/bench-q05
    python -m tools.bench --set eval.limit_per_set=24      # overrides go to every command

On the tiny recipe the bench runs the QLoRA path (`model.finetune=lora`, 4-bit base + LoRA, the path
every real recipe takes; the toy default fine-tunes fully) with 8 eval prompts per set, so the
one-at-a-time eval stays a few minutes; other recipes run as written.

Measures:
- eval:      `--stages eval --fresh --set eval.batch_size=1` vs the same batched (target: >= 4x faster)
- tracking:  `--stages srpo --fresh` vs the same with `--set srpo.track_every=0` (target: <= 1.15x)
- reference: SRPO seconds per step with and without `srpo.precompute_ref_log_probs`
- overhead:  the kit's warmup stage vs a plain TRL+PEFT SFT script on the same model, data and steps
  (target: ~1x, counted as met at <= 1.1x)
Writes <run>/bench.json and prints a table that says, per target, whether it is met.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

PLAIN_SFT = r'''
import json, sys, tempfile, time, torch
from saro_lite.cli import tune_malloc; tune_malloc()  # the same allocator settings as the kit: a fair race
from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig
from trl import SFTConfig, SFTTrainer
path, data, steps, bs, ga, lr, max_len, r, alpha, q4 = sys.argv[1:11]
tok = AutoTokenizer.from_pretrained(path); tok.eos_token = "<|im_end|>"
rows = [json.loads(l) for l in open(data)]
def prompt(t): return tok.apply_chat_template([{"role": "user", "content": t}], tokenize=False, add_generation_prompt=True)
def resp(x): return "<think>\n" + "\n\n".join(x["reasoning"]) + "\n</think>\n\n" + x["answer"] + "<|im_end|>"
ds = Dataset.from_list([{"prompt": prompt(x["prompt"]), "completion": resp(x)} for x in rows])
kw = {}
if q4 == "1":
    kw["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.float32)
model = AutoModelForCausalLM.from_pretrained(path, device_map={"": "cpu"}, **kw)
args = SFTConfig(output_dir=tempfile.mkdtemp(), max_steps=int(steps), per_device_train_batch_size=int(bs),
                 gradient_accumulation_steps=int(ga),
                 learning_rate=float(lr), max_length=int(max_len), use_cpu=True, bf16=False,
                 gradient_checkpointing=False, logging_steps=1, report_to=[], save_strategy="no", disable_tqdm=True,
                 lr_scheduler_type="constant_with_warmup", warmup_steps=5, optim="adamw_torch",
                 dataloader_pin_memory=False, seed=0)
t = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok,
               peft_config=LoraConfig(r=int(r), lora_alpha=int(alpha), lora_dropout=0.0, target_modules="all-linear",
                                      task_type="CAUSAL_LM"))
out = t.train()
print(json.dumps({"train_runtime": out.metrics["train_runtime"]}))
'''


def run_cmd(args: list[str]) -> float:
    t0 = time.time()
    p = subprocess.run([sys.executable, str(REPO / "run_all.py"), *args], cwd=REPO, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"command failed: {' '.join(args)}\n{p.stderr[-2000:]}")
    return time.time() - t0


TINY_BENCH = ["model.finetune=lora", "eval.limit_per_set=8"]
EXTRA: list[str] = []  # --set overrides for every command


def sets(run: str, *items: str) -> list[str]:
    out = ["--set", f"output_dir={run}"]
    for it in [*EXTRA, *items]:
        out += ["--set", it]
    return out


def srpo_seconds_per_step(run: Path) -> float:
    s = json.loads((run / "srpo/summary.json").read_text())
    return s["train_runtime"] / max(1, _steps(run))


def _steps(run: Path) -> int:
    from saro_lite.fileio import read_jsonl

    return max(r["step"] for r in read_jsonl(run / "srpo/metrics.jsonl"))


def bench_rows(results: dict) -> list[dict]:
    """The printed table: each row's values in the order its label names them, the ratio, the target
    and whether the target is met (None: no target)."""
    e, tr, pre, ov = results["eval"], results["tracking"], results["precompute_ref"], results["overhead"]
    return [
        {"key": "eval", "measure": "eval: batch 1 / batched", "values": f"{e['batch1_s']} s / {e['batched_s']} s",
         "ratio": f"{e['speedup']}x faster batched", "target": ">= 4x", "met": e["speedup"] >= 4},
        {"key": "tracking", "measure": "srpo: tracking on / off",
         "values": f"{tr['track_on_s']} s / {tr['track_off_s']} s", "ratio": f"{tr['ratio']}x", "target": "<= 1.15x",
         "met": tr["ratio"] <= 1.15},
        {"key": "precompute_ref", "measure": "srpo step: precomputed ref / ref forward",
         "values": f"{pre['step_s_precomputed']} s / {pre['step_s_reference_forward']} s", "ratio": f"{pre['ratio']}x",
         "target": "-", "met": None},
        {"key": "overhead", "measure": "warmup: kit / plain TRL+PEFT",
         "values": f"{ov['kit_warmup_train_s']} s / {ov['plain_trl_peft_train_s']} s", "ratio": f"{ov['ratio']}x",
         "target": "~1x (<= 1.1x)", "met": ov["ratio"] <= 1.1},
    ]


def print_bench(rows: list[dict], title: str, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    t = Table(title=title)
    for c in ("measure", "values", "ratio", "target", "met"):
        t.add_column(c)
    for r in rows:
        met = "-" if r["met"] is None else ("yes" if r["met"] else "[red]NO[/]")
        t.add_row(r["measure"], r["values"], r["ratio"], r["target"], met)
    console.print(t)
    judged = [r for r in rows if r["met"] is not None]
    missed = [r for r in judged if not r["met"]]
    console.print(f"targets met: {len(judged) - len(missed)} of {len(judged)}"
                  + ("" if not missed else "; missed: " + ", ".join(
                      f"{r['measure']} ({r['ratio']}, target {r['target']})" for r in missed)))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.bench")
    p.add_argument("--recipe", default=str(REPO / "recipes/tiny-cpu.yaml"))
    p.add_argument("--run", default="runs/bench")
    p.add_argument("--set", action="append", default=None, metavar="KEY=VALUE",
                   help="recipe override for every command (default on the tiny recipe: "
                        + " ".join(TINY_BENCH) + ")")
    args = p.parse_args(argv)
    EXTRA[:] = args.set if args.set is not None else (TINY_BENCH if Path(args.recipe).stem == "tiny-cpu" else [])
    if EXTRA:
        print("overrides: " + " ".join(EXTRA), flush=True)
    base = ["--recipe", args.recipe]
    run = args.run
    results: dict = {}
    print("preparing a finished run ...", flush=True)
    run_cmd(base + sets(run))

    print("eval: batch 1 vs batched ...", flush=True)
    t1 = run_cmd(base + ["--stages", "eval", "--fresh"] + sets(run, "eval.batch_size=1"))
    tb = run_cmd(base + ["--stages", "eval", "--fresh"] + sets(run))
    results["eval"] = {"batch1_s": round(t1, 1), "batched_s": round(tb, 1), "speedup": round(t1 / tb, 2)}

    print("srpo: tracking on vs off ...", flush=True)
    on = run_cmd(base + ["--stages", "srpo", "--fresh"] + sets(run))
    off = run_cmd(base + ["--stages", "srpo", "--fresh"] + sets(run, "srpo.track_every=0"))
    results["tracking"] = {"track_on_s": round(on, 1), "track_off_s": round(off, 1), "ratio": round(on / off, 3)}

    print("srpo: precompute_ref_log_probs ...", flush=True)
    run_cmd(base + ["--stages", "srpo", "--fresh"] + sets(run, "srpo.track_every=0"))
    plain_step = srpo_seconds_per_step(Path(run))
    run_cmd(base + ["--stages", "srpo", "--fresh"] + sets(run, "srpo.track_every=0",
                                                           "srpo.precompute_ref_log_probs=true"))
    pre_step = srpo_seconds_per_step(Path(run))
    results["precompute_ref"] = {"step_s_reference_forward": round(plain_step, 4),
                                 "step_s_precomputed": round(pre_step, 4), "ratio": round(pre_step / plain_step, 3)}
    run_cmd(base + ["--stages", "srpo", "--fresh"] + sets(run))  # leave the run as the recipe says

    print("warmup: kit vs plain TRL+PEFT script ...", flush=True)
    from saro_lite.recipe import load_recipe

    r = load_recipe(Path(run) / "recipe.resolved.yaml")
    kit = json.loads((Path(run) / "warmup/summary.json").read_text())["train_runtime"]
    steps = r.warmup.max_steps
    out = subprocess.run([sys.executable, "-c", PLAIN_SFT, r.model.name_or_path, str(Path(run) / "data/rit_d.jsonl"),
                          str(steps), str(r.warmup.per_device_train_batch_size),
                          str(r.warmup.gradient_accumulation_steps), str(r.warmup.learning_rate),
                          str(r.warmup.max_length), str(r.model.lora_r), str(r.model.lora_alpha),
                          "1" if r.model.load_in_4bit else "0"], capture_output=True, text=True, cwd=REPO)
    if out.returncode != 0:
        raise SystemExit(out.stderr[-2000:])
    plain = json.loads(out.stdout.strip().splitlines()[-1])["train_runtime"]
    results["overhead"] = {"kit_warmup_train_s": round(kit, 2), "plain_trl_peft_train_s": round(plain, 2),
                           "ratio": round(kit / plain, 3), "steps": steps}

    results["overrides"] = list(EXTRA)
    rows = bench_rows(results)
    results["targets"] = {r["key"]: {"target": r["target"], "met": r["met"]} for r in rows if r["met"] is not None}
    print_bench(rows, f"saro-lite bench ({Path(args.recipe).name} {' '.join(EXTRA)})")
    (Path(run) / "bench.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
