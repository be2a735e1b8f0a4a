"""Every notebook: committed clean, parameters first, and executed by papermill in smoke mode.

The whole collection runs once per session through the command line (``python -m evl_lite
run --mode smoke``), and each notebook's recorded ``metrics.json`` is checked against what
that notebook must have computed, not only that it ran.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from evl_lite.notebook_runner import list_notebooks

NOTEBOOKS = list_notebooks()
REQUIRED_PARAMETERS = {"SMOKE", "DATA_SOURCE", "DATA_DIR", "SEED", "OUTPUT_DIR"}


def test_the_course_has_its_notebooks():
    names = [p.stem for p in NOTEBOOKS]
    assert "01_ecg_preprocessing" in names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path: Path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs or execution counts; strip them"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_first_code_cell_is_tagged_parameters(path: Path):
    nb = nbformat.read(path, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert "parameters" in first.metadata.get("tags", []), f"{path.name}: first code cell lacks the tag"
    names = {line.split("=")[0].strip() for line in first.source.splitlines() if "=" in line}
    assert REQUIRED_PARAMETERS <= names, f"{path.name}: parameters cell lacks {REQUIRED_PARAMETERS - names}"


def _run(out: Path, data_root: Path, *extra: str) -> dict:
    env = {**os.environ, "EVL_LITE_DATA": str(data_root)}
    proc = subprocess.run(
        [sys.executable, "-m", "evl_lite", "run", "--mode", "smoke", "--out", str(out), *extra],
        capture_output=True, text=True, env=env, timeout=1200,
    )
    summary_file = out / "summary.json"
    assert summary_file.is_file(), f"no summary.json; stderr:\n{proc.stderr[-3000:]}"
    summary = json.loads(summary_file.read_text())
    failed = {k: v.get("error") for k, v in summary["notebooks"].items() if v["status"] != "ok"}
    assert proc.returncode == 0 and not failed, f"failed notebooks: {failed}\n{proc.stderr[-3000:]}"
    return summary


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("smoke")
    return _run(base / "runs", base / "data")


def metrics_of(summary: dict, stem: str) -> dict:
    entry = summary["notebooks"][f"{stem}.ipynb"]
    assert entry["metrics"] is not None, f"{stem} recorded no metrics.json"
    return entry["metrics"]


def test_smoke_run_writes_executed_notebooks_and_summary(smoke_run):
    out = Path(smoke_run["out_dir"])
    assert set(smoke_run["notebooks"]) == {p.name for p in NOTEBOOKS}
    for name, entry in smoke_run["notebooks"].items():
        executed = nbformat.read(out / name, as_version=4)
        assert any(c.get("outputs") for c in executed.cells if c.cell_type == "code"), f"{name} has no outputs"
        assert entry["seconds"] > 0
