"""Crash-safe writes and JSONL reading that names file and line."""
import pytest

from saro_lite.errors import UserError
from saro_lite.fileio import append_jsonl, atomic_write_text, read_jsonl, write_jsonl


def test_atomic_write_leaves_no_temp_files(tmp_path):
    p = tmp_path / "sub" / "a.jsonl"
    write_jsonl(p, [{"a": 1}, {"b": "é"}])
    atomic_write_text(p, '{"c": 3}\n')
    assert read_jsonl(p) == [{"c": 3}]
    assert [x.name for x in p.parent.iterdir()] == ["a.jsonl"]


def test_append_then_torn_last_line_is_dropped(tmp_path):
    p = tmp_path / "m.jsonl"
    append_jsonl(p, {"step": 1})
    append_jsonl(p, {"step": 2})
    with open(p, "a") as f:
        f.write('{"step": 3, "lo')  # a run killed mid-write
    assert [r["step"] for r in read_jsonl(p)] == [1, 2]


def test_broken_line_in_the_middle_names_file_and_line(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"id": 1}\n{"id": 2,,}\n{"id": 3}\n')
    with pytest.raises(UserError, match=r"d\.jsonl:2: broken JSON line"):
        read_jsonl(p)


def test_missing_fields_and_encoding(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"id": 1}\n')
    with pytest.raises(UserError, match=r"d\.jsonl:1: missing field\(s\) prompt, kind"):
        read_jsonl(p, required=("id", "prompt", "kind"))
    q = tmp_path / "latin1.jsonl"
    q.write_bytes('{"id": "caf\xe9"}\n'.encode("latin-1"))
    with pytest.raises(UserError, match="not UTF-8"):
        read_jsonl(q)
    with pytest.raises(UserError, match="file not found"):
        read_jsonl(tmp_path / "nope.jsonl")
