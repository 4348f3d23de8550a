"""Shared fixtures: one tiny run (data -> warmup -> pairs -> srpo) per test session, offline, CPU.

Heavy imports happen once per process (about 6 s), so the whole suite runs in one pytest process.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
SHARED_DATA = REPO.parent / "shared" / "data"  # real external data beside the checkout (development only)
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from saro_lite.cli import tune_threads  # noqa: E402  (before torch: sleeping OpenMP waits on a busy machine)

tune_threads()

# Small and fast, but large enough that learning is visible. The first line pins the mechanics
# configuration (real QLoRA: NF4 base + LoRA, on a random-init tiny model) independently of the
# tiny-cpu defaults, which run the toy world (pretrained base, full fine-tuning; see test_toy_world.py).
FAST = ["model.finetune=lora", "model.load_in_4bit=true", "model.lora_dropout=0.0", "model.tiny.vocab_size=1024",
        "model.tiny.pretrain_steps=0", "data.pair_trace_kinds=[]", "data.max_reasoning_steps=null",
        "data.max_answer_sentences=null", "warmup.learning_rate=5e-3", "warmup.gradient_accumulation_steps=1",
        "warmup.save_steps=30", "srpo.learning_rate=2e-3", "srpo.loss_type=[sigmoid]", "srpo.save_steps=20",
        "data.limit=48", "warmup.max_steps=30", "warmup.per_device_train_batch_size=8",
        "pairs.op_limit=48", "pairs.pp_limit=24", "pairs.val_size=8", "srpo.max_steps=16",
        "srpo.track_every=8", "srpo.per_device_train_batch_size=8", "eval.limit_per_set=4",
        "eval.max_new_tokens=48"]


def sets(*items: str) -> list[str]:
    out = []
    for it in items:
        out += ["--set", it]
    return out


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cache")
    os.environ["SARO_LITE_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, cache_dir) -> Path:
    """A finished run through srpo on the tiny default recipe."""
    from saro_lite.cli import main

    out = tmp_path_factory.mktemp("run")
    rc = main(["--stages", "data,warmup,pairs,srpo", *sets(*FAST, f"output_dir={out}")])
    assert rc == 0
    return out


@pytest.fixture(scope="session")
def tiny_recipe(tiny_run):
    from saro_lite.recipe import load_recipe

    return load_recipe(tiny_run / "recipe.resolved.yaml")


@pytest.fixture(scope="session")
def tokenizer(tiny_recipe):
    from saro_lite.modeling.loading import load_tokenizer

    return load_tokenizer(tiny_recipe, tiny_recipe.model.name_or_path)


@pytest.fixture(scope="session")
def default_recipe(cache_dir):
    from saro_lite.recipe import load_recipe

    # the tiny-cpu recipe with the mechanics model (no pretraining: the tokenizer fixtures stay instant)
    return load_recipe(None, [x for x in FAST if x.startswith("model.")])


@pytest.fixture(scope="session")
def tiny_tok(default_recipe):
    from saro_lite.modeling.loading import load_tokenizer
    from saro_lite.modeling.toy import tiny_model_path

    return load_tokenizer(default_recipe, str(tiny_model_path(default_recipe)))


# A test is slow when it lives with the pipeline or real-model tests, or needs a fixture that trains the tiny
# run: `pytest -m "not slow" tests` then runs the fast part (pytest.ini registers the marker).
SLOW_FOLDERS = {"pipeline", "real"}
SLOW_FIXTURES = {"tiny_run", "tiny_recipe", "tokenizer", "tiny_report", "finished", "evaluated", "checkpointed"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if Path(str(item.fspath)).parent.name in SLOW_FOLDERS or SLOW_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)
