#!/usr/bin/env python
"""saro-lite: reproduce SaRO (reasoning-style warmup + safety-oriented reasoning process optimization)
on one GPU — or on a laptop CPU with the offline tiny default.

    python run_all.py                                        # recipes/tiny-cpu.yaml, all stages, offline
    python run_all.py --recipe recipes/qwen2.5-1.5b-instruct.yaml
    python run_all.py --recipe R --stages warmup,srpo        # any subset, in pipeline order
    python run_all.py --recipe R --set srpo.beta=0.05 --set output_dir=runs/b05
    python run_all.py --recipe R --fresh                     # ignore finished stages
    python run_all.py --recipe R --dry-run                   # validate and print the plan
    python run_all.py --list-recipes
    python run_all.py judge --input F.csv --response-field completion [--prompt-field prompt] --output OUT.jsonl
    python run_all.py chat --run runs/tiny-cpu [--arm saro|rw|base] [--prompt TEXT] [--show-reasoning]
    python run_all.py export --run runs/tiny-cpu --output DIR [--arm saro] [--merge]
    python run_all.py compare runs/a runs/b [--output compare.md]

Stages: data -> warmup -> pairs -> srpo -> baselines -> eval -> report (baselines only train the
safety_sft / dpo arms when eval.arms names them). Re-running resumes: finished stages are
skipped. See README.md.
"""
import sys

from saro_lite.cli import main

if __name__ == "__main__":
    sys.exit(main())
