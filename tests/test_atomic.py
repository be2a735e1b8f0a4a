"""Atomic writes: the target holds the old content or the new one, and every step reaches the disk."""

from __future__ import annotations

import json
import os

import pytest

from evl_lite import atomic


def test_write_json_and_text_replace_the_target_and_leave_no_temporary_file(tmp_path):
    target = tmp_path / "sub" / "results.json"
    atomic.write_json_atomic(target, {"auc": 0.9})
    atomic.write_json_atomic(target, {"auc": 0.8})
    assert json.loads(target.read_text()) == {"auc": 0.8}
    atomic.write_text_atomic(tmp_path / "index.html", "<p>é</p>")
    assert (tmp_path / "index.html").read_text(encoding="utf-8") == "<p>é</p>"
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["index.html", "results.json"]


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="reads file names from /proc")
def test_every_file_and_directory_is_synced_before_and_after_the_replace(tmp_path, monkeypatch):
    synced, events = [], []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")),
                                                         events.append("fsync"), real_fsync(fd)))
    monkeypatch.setattr(atomic.os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b)))
    checkpoint = tmp_path / ".checkpoint.tmp"
    checkpoint.mkdir()
    (checkpoint / "model.safetensors").write_bytes(b"weights")
    (checkpoint / "state.json").write_text("{}")
    atomic.replace_atomically(checkpoint, tmp_path / "checkpoint")
    assert (tmp_path / "checkpoint" / "state.json").read_text() == "{}"
    # the two files and the directory before it takes its name, then the parent directory
    assert {os.path.basename(p) for p in synced[:3]} == {"model.safetensors", "state.json", ".checkpoint.tmp"}
    assert events.index("replace") == 3 and synced[3] == str(tmp_path)


def test_syncing_a_parent_directory_does_not_read_through_its_files(tmp_path, monkeypatch):
    (tmp_path / "big.safetensors").write_bytes(b"x")
    opened = []
    real_open = os.open

    def recording_open(path, flags):
        opened.append(str(path))
        return real_open(path, flags)

    monkeypatch.setattr(atomic.os, "open", recording_open)
    atomic.fsync_path(tmp_path, recursive=False)
    assert opened == [str(tmp_path)]
    atomic.fsync_path(tmp_path / "missing")  # nothing to flush: skipped, no error


def test_a_notebook_is_written_as_nbformat_writes_it(tmp_path):
    import nbformat

    cells = [nbformat.v4.new_markdown_cell("# é"), nbformat.v4.new_code_cell("x = 1")]
    nb = nbformat.v4.new_notebook(cells=cells)
    nbformat.write(nb, tmp_path / "reference.ipynb")
    atomic.write_notebook_atomic(tmp_path / "atomic.ipynb", nb)
    assert (tmp_path / "atomic.ipynb").read_bytes() == (tmp_path / "reference.ipynb").read_bytes()
