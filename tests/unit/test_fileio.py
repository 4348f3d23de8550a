"""Crash-safe writes and JSONL reading that names file and line."""
from pathlib import Path

import pytest

from saro_lite.errors import UserError
from saro_lite.fileio import append_jsonl, atomic_write_text, read_jsonl, write_jsonl


def test_atomic_write_leaves_no_temp_files(tmp_path):
    p = tmp_path / "sub" / "a.jsonl"
    write_jsonl(p, [{"a": 1}, {"b": "é"}])
    atomic_write_text(p, '{"c": 3}\n')
    assert read_jsonl(p) == [{"c": 3}]
    assert [x.name for x in p.parent.iterdir()] == ["a.jsonl"]


def test_a_torn_last_line_is_dropped_only_from_the_kits_own_logs(tmp_path):
    p = tmp_path / "m.jsonl"
    append_jsonl(p, {"step": 1})
    append_jsonl(p, {"step": 2})
    with open(p, "a") as f:
        f.write('{"step": 3, "lo')  # a run killed mid-write
    assert [r["step"] for r in read_jsonl(p, torn_ok=True)] == [1, 2]  # metrics.jsonl
    with pytest.raises(UserError, match=r"m\.jsonl:3: the last line is cut off"):
        read_jsonl(p)  # any other file: the rows it lost would be lost without a word


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


@pytest.fixture
def umask_022():
    import os

    old = os.umask(0o022)
    yield
    os.umask(old)


def plain_open_mode(tmp_path, name="plain"):
    import os
    import stat

    p = tmp_path / name
    open(p, "w").close()
    mode = stat.S_IMODE(os.stat(p).st_mode)
    p.unlink()
    return mode


def test_written_files_get_plain_open_permissions(tmp_path, umask_022):
    """mkstemp (the atomic writer) and safetensors make owner-only files; the kit's files come out
    as a plain open() would make them: 0666 & ~umask (0644 under umask 022), folders 0755."""
    import os
    import stat
    import tempfile

    import numpy as np
    from safetensors.numpy import save_file

    from saro_lite.fileio import atomic_write_with, current_umask, file_mode, set_open_permissions

    mode = lambda p: stat.S_IMODE(os.stat(p).st_mode)  # noqa: E731
    assert current_umask() == 0o022 and file_mode() == 0o644 == plain_open_mode(tmp_path)
    atomic_write_text(tmp_path / "report.md", "# r\n")
    write_jsonl(tmp_path / "d/rows.jsonl", [{"a": 1}])
    atomic_write_with(tmp_path / "fig.png", lambda tmp: open(tmp, "wb").write(b"png"))
    for name in ("report.md", "d/rows.jsonl", "fig.png"):
        assert mode(tmp_path / name) == 0o644, name
    folder = Path(tempfile.mkdtemp(dir=tmp_path))  # 0700, like the export's staging folder
    (folder / "sub").mkdir()
    save_file({"w": np.zeros(2, dtype=np.float32)}, str(folder / "sub/model.safetensors"))
    set_open_permissions(folder)
    assert mode(folder) == 0o755 and mode(folder / "sub") == 0o755
    assert mode(folder / "sub/model.safetensors") == 0o644
    os.umask(0o027)  # follows the umask, it does not force 0644
    atomic_write_text(tmp_path / "other.md", "x\n")
    assert mode(tmp_path / "other.md") == 0o640 == plain_open_mode(tmp_path)
