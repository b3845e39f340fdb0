"""Atomic outputs: nothing half-written after an exception; the usual file mode after success."""

import os

import pytest

from chexplain.io import atomic_path, write_json


def test_success_replaces_with_umask_mode(tmp_path):
    target = write_json(tmp_path / "a.json", {"x": 1})
    assert target.read_text() == '{\n  "x": 1\n}\n'
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat(target).st_mode & 0o777 == 0o666 & ~mask


def test_exception_leaves_no_partial_file(tmp_path):
    (tmp_path / "b.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "b.txt") as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert (tmp_path / "b.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.txt"]
