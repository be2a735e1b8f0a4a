"""Notebooks are committed clean: no outputs, no execution counts (executed copies are run products).

``python -m evl_lite notebooks check`` lists the notebooks that carry outputs, or do not read as
lessons (:func:`lesson_problems`: a dictionary dump, a setup cell over 15 lines, research history
in the prose), and exits 1;
``python -m evl_lite notebooks strip`` removes them in place. Both default to ``notebooks/``;
the pre-commit configuration runs the check (and ruff, which lints notebooks too).
"""

from __future__ import annotations

import ast
import os
import re
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
    """One message per problem: outputs committed, or a lesson problem (:func:`lesson_problems`).

    An empty list: every notebook is clean.
    """
    messages = []
    for p in map(Path, paths or list_notebooks()):
        nb = nbformat.read(p, as_version=4)
        if cells := dirty_cells(nb):
            messages.append(f"{p}: cells {cells} carry outputs or execution counts; "
                            "run `python -m evl_lite notebooks strip`")
        messages += [f"{p}: {problem}" for problem in lesson_problems(nb)]
    return messages


def strip_notebooks(paths: list[str | os.PathLike] | None = None) -> list[Path]:
    """Strip every notebook in place (atomically); returns those that changed."""
    changed = []
    for path in map(Path, paths or list_notebooks()):
        nb = nbformat.read(path, as_version=4)
        if strip_outputs(nb):
            write_notebook_atomic(path, nb)
            changed.append(path)
    return changed


# ----------------------------------------------------------------------------- lessons

SETUP_LINE_LIMIT = 15  # non-blank lines of a notebook's setup cell (the first after the parameters)
# A markdown cell names no issue and no dated run: research history belongs in docs/, not in a lesson.
HISTORY_PATTERN = re.compile(
    r"\bissue\s*#?\d+|(?<![\w&])#\d+\b|\b20\d\d-\d\d-\d\d\b|\bruns/\w+|\.\./shared", re.I
)
# A progress bar frozen into a saved output: "37%|###   |" or carriage-return redraws.
PROGRESS_PATTERN = re.compile(r"\d+%\|| \d+/\d+ \[\d|\r(?!\n)")


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _dumps_a_dictionary(source: str) -> bool:
    """Whether a code cell ends by displaying a dictionary (a literal, a comprehension or ``metrics``)."""
    try:
        python = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
        tree = ast.parse("\n".join(python))
    except SyntaxError:
        return False
    last = tree.body[-1] if tree.body else None
    return isinstance(last, ast.Expr) and (
        isinstance(last.value, (ast.Dict, ast.DictComp))
        or (isinstance(last.value, ast.Name) and last.value.id in ("metrics", "record"))
    )


def lesson_problems(nb: nbformat.NotebookNode) -> list[str]:
    """What keeps a notebook from reading as a lesson: dictionary dumps, a long setup cell, history."""
    problems = []
    code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    after_parameters = [(i, c) for i, c in code if not {"parameters", "colab-setup"} & set(_tags(c))]
    if after_parameters:
        i, setup = after_parameters[0]
        lines = [line for line in setup.source.splitlines() if line.strip()]
        if len(lines) > SETUP_LINE_LIMIT:
            problems.append(f"cell {i}: the setup cell has {len(lines)} lines (at most {SETUP_LINE_LIMIT}); "
                            "import what a cell uses where it is used")
    problems += [f"cell {i}: ends by displaying a dictionary; record figures with record(...) instead"
                 for i, c in code if _dumps_a_dictionary(c.source)]
    for i, c in enumerate(nb.cells):
        if c.cell_type == "markdown" and (m := HISTORY_PATTERN.search(c.source)):
            problems.append(f"cell {i}: markdown names {m.group(0)!r}; research history belongs in docs/")
    return problems


def output_problems(nb: nbformat.NotebookNode) -> list[str]:
    """What an executed notebook should not show: output on stderr, progress bars frozen into outputs."""
    problems = []
    for i, c in enumerate(nb.cells):
        for out in c.get("outputs", []) if c.cell_type == "code" else []:
            text = out.get("text", "") if out.get("output_type") == "stream" else ""
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                problems.append(f"cell {i}: wrote to stderr: {text.strip()[:120]!r}")
            elif PROGRESS_PATTERN.search(text):
                problems.append(f"cell {i}: a progress bar froze into the output: {text.strip()[:80]!r}")
            data = out.get("data", {})
            text_plain = str(data.get("text/plain", "")).lower()
            if "application/vnd.jupyter.widget-view+json" in data and "progress" in text_plain:
                problems.append(f"cell {i}: a progress-bar widget froze into the output")
    return problems
