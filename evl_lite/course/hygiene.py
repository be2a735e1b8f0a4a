"""Notebooks are committed clean: no outputs, no execution counts (executed copies are run products).

``python -m evl_lite notebooks check`` lists the notebooks that carry outputs and exits 1;
``python -m evl_lite notebooks strip`` removes them in place. Both default to ``notebooks/``;
the pre-commit configuration runs the check (and ruff, which lints notebooks too).
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat

from evl_lite.atomic import write_notebook_atomic
from evl_lite.course.runner import list_notebooks


def dirty_cells(nb: nbformat.NotebookNode) -> list[int]:
    """Indices of code cells that carry outputs or an execution count."""
    return [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count"))
    ]


def strip_outputs(nb: nbformat.NotebookNode) -> bool:
    """Clear outputs and execution counts in place; True if anything changed."""
    dirty = dirty_cells(nb)
    for i in dirty:
        nb.cells[i].outputs, nb.cells[i].execution_count = [], None
    return bool(dirty)


def check_notebooks(paths: list[str | os.PathLike] | None = None) -> list[str]:
    """One message per notebook with outputs (an empty list: all clean)."""
    return [
        f"{p}: cells {cells} carry outputs or execution counts; run `python -m evl_lite notebooks strip`"
        for p in map(Path, paths or list_notebooks())
        if (cells := dirty_cells(nbformat.read(p, as_version=4)))
    ]


def strip_notebooks(paths: list[str | os.PathLike] | None = None) -> list[Path]:
    """Strip every notebook in place (atomically); returns those that changed."""
    changed = []
    for path in map(Path, paths or list_notebooks()):
        nb = nbformat.read(path, as_version=4)
        if strip_outputs(nb):
            write_notebook_atomic(path, nb)
            changed.append(path)
    return changed
