"""The results page's tables (docs/results.md), generated from the committed experiment results.

``python -m evl_lite results docs/results.md results/experiment_ptbxl500 results/experiment_synthetic``
rewrites what lies between ``<!-- results:begin -->`` and ``<!-- results:end -->`` with one
subsection per experiment directory, built from its ``results.json`` by
:func:`evl_lite.experiments.single_split.results_markdown` (or, for a 10-fold rotation,
:func:`evl_lite.experiments.rotation.rotation_markdown`). A test regenerates the section from the
committed results and compares, so the page cannot drift from them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from evl_lite.atomic import write_text_atomic
from evl_lite.errors import ECGDataError
from evl_lite.experiments.rotation import rotation_markdown
from evl_lite.experiments.single_split import results_markdown

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def results_section(result_dirs: list[str | os.PathLike]) -> str:
    """Markdown for the given experiment directories, in order."""
    parts = []
    for directory in map(Path, result_dirs):
        path = directory / "results.json"
        if not path.is_file():
            raise ECGDataError(path, "is missing: run `python -m evl_lite experiment --out DIR` first")
        results = json.loads(path.read_text())
        table = rotation_markdown(results) if results.get("folds") == "rotate" else results_markdown(results)
        parts.append(f"### `{directory.as_posix()}`\n\n{table}")
    return "\n".join(parts)


def replace_section(text: str, section: str, begin: str = BEGIN, end: str = END) -> str:
    """``text`` with the part between the markers replaced by ``section`` (markers kept)."""
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise ValueError(f"the page must hold one {begin} ... {end} block")
    head, rest = text.split(begin)
    _, tail = rest.split(end)
    return f"{head}{begin}\n{section.strip()}\n{end}{tail}"


def rewrite_block(page: str | os.PathLike, section: str, begin: str = BEGIN, end: str = END) -> bool:
    """Replace the block between ``begin`` and ``end`` in the file ``page``; True if it changed."""
    path = Path(page)
    old = path.read_text()
    new = replace_section(old, section, begin, end)
    if new != old:
        write_text_atomic(path, new)
    return new != old


def update_readme(readme: str | os.PathLike, result_dirs: list[str | os.PathLike]) -> bool:
    """Rewrite the results block of ``readme``; True if it changed."""
    return rewrite_block(readme, results_section(result_dirs))
