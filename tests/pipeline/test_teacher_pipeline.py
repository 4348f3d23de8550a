"""The data and pairs stages from a teacher endpoint (a local OpenAI-compatible stub), then a rebuild
from the cache with zero teacher calls."""
from conftest import sets
from saro_lite.fileio import read_jsonl
from chat_stub import KEY, KEY_ENV, Stub


def test_pipeline_from_teacher_and_rebuild_from_cache(tmp_path, monkeypatch, cache_dir):
    from saro_lite.cli import main

    monkeypatch.setenv(KEY_ENV, KEY)
    stub = Stub()
    try:
        args = ["--stages", "data,pairs", *sets(
            f"output_dir={tmp_path}/run", f"cache_dir={tmp_path}/cache", "data.source=teacher",
            "pairs.source=teacher", "teacher.backend=openai", f"teacher.base_url={stub.url}",
            "teacher.model=stub-model", f"teacher.api_key_env={KEY_ENV}", "teacher.backoff_base=0.001",
            "teacher.backoff_cap=0.01", "data.limit=8", "pairs.op_limit=8", "pairs.pp_limit=8", "pairs.val_size=8",
            "data.max_reasoning_steps=null", "data.max_answer_sentences=null")]  # the teacher's traces as written
        assert main(args) == 0
        calls = len(stub.calls())
        assert calls > 0
        rit = read_jsonl(tmp_path / "run/data/rit_d.jsonl")
        assert len(rit) == 8 and all(len(r["reasoning"]) >= 3 for r in rit)
        assert len(read_jsonl(tmp_path / "run/data/op_cot.jsonl")) == 8
        assert len(read_jsonl(tmp_path / "run/data/srpo_val.jsonl")) == 8
        # the key never lands in the run folder or the cache
        for f in list((tmp_path / "run").rglob("*")) + list((tmp_path / "cache").rglob("*")):
            if f.is_file():
                assert KEY not in f.read_text(errors="ignore")
        # a fresh rebuild, key unset: every reply comes from the cache
        monkeypatch.delenv(KEY_ENV)
        assert main(args + ["--fresh"]) == 0
        assert len(stub.calls()) == calls
        assert read_jsonl(tmp_path / "run/data/rit_d.jsonl") == rit
    finally:
        stub.close()
