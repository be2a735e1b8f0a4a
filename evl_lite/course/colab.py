"""Open a notebook in Google Colab and it sets itself up; anywhere else it does nothing.

Every notebook starts with the same small code cell (:func:`setup_cell_source`): in Colab it
installs ``evl_lite`` from the repository with its pinned dependencies (``pyproject.toml``),
then calls :func:`enable_colab`, which turns on Colab's widget manager (ipywidgets need it)
and selects plotly's ``colab`` renderer. The cell cannot call into ``evl_lite`` before it is
installed, so it only tests ``"google.colab" in sys.modules``; the rest lives here and is
tested offline (``tests/test_colab.py``). Each notebook's first markdown cell carries an
"Open in Colab" badge pointing at that notebook in the repository (:func:`badge_markdown`).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

import nbformat

from evl_lite.atomic import write_notebook_atomic, write_text_atomic

REPOSITORY = "evl-ecg-lite/evl-ecg-lite"  # owner/name on GitHub (set where the course is published)
BRANCH = "main"
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
SETUP_TAG = "colab-setup"


def in_colab(modules: Mapping[str, object] | None = None) -> bool:
    """True inside a Google Colab runtime (its ``google.colab`` module is loaded)."""
    return "google.colab" in (sys.modules if modules is None else modules)


def install_requirement(repository: str | None = None, branch: str | None = None) -> str:
    """The pip requirement that installs this package, pinned dependencies included, from the repository."""
    return f"evl-lite @ git+https://github.com/{repository or REPOSITORY}@{branch or BRANCH}"


def colab_url(notebook_name: str, repository: str | None = None, branch: str | None = None) -> str:
    """Colab's address for ``notebooks/<notebook_name>`` in the repository."""
    repository, branch = repository or REPOSITORY, branch or BRANCH
    return f"https://colab.research.google.com/github/{repository}/blob/{branch}/notebooks/{notebook_name}"


def badge_markdown(notebook_name: str) -> str:
    """The "Open in Colab" badge (Markdown) for one notebook."""
    return f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(notebook_name)})"


def setup_cell_source(repository: str | None = None, branch: str | None = None) -> str:
    """Source of every notebook's first code cell."""
    return (
        "# In Colab: install evl_lite and its pinned dependencies, enable widgets (elsewhere: nothing)\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        f'    %pip install --quiet "{install_requirement(repository, branch)}"\n'
        "    from evl_lite.course.colab import enable_colab\n"
        "\n"
        "    enable_colab()"
    )


def enable_colab() -> dict[str, object]:
    """In Colab: custom widget manager on (ipywidgets), plotly's ``colab`` renderer. Returns what it did."""
    if not in_colab():
        return {"colab": False}
    from google.colab import output  # type: ignore[import-not-found]

    from evl_lite.explorers.ecg_plots import setup_plotly

    output.enable_custom_widget_manager()
    return {"colab": True, "widgets": "custom widget manager enabled", "plotly_renderer": setup_plotly()}


def add_colab_cells(nb: nbformat.NotebookNode, notebook_name: str) -> bool:
    """Put the badge at the top of the first markdown cell and the setup cell first; True if changed.

    Idempotent: an existing badge or setup cell (tagged ``colab-setup``) is brought up to date.
    """
    before = nbformat.writes(nb)
    badge = badge_markdown(notebook_name)
    first_md = next((c for c in nb.cells if c.cell_type == "markdown"), None)
    if first_md is None:
        first_md = nbformat.v4.new_markdown_cell("")
        nb.cells.insert(0, first_md)
    lines = [line for line in first_md.source.splitlines() if "colab-badge.svg" not in line]
    first_md.source = "\n".join([badge, *lines]).rstrip()
    setup = next((c for c in nb.cells if SETUP_TAG in c.metadata.get("tags", [])), None)
    if setup is None:
        setup = nbformat.v4.new_code_cell(setup_cell_source())
        setup.metadata["tags"] = [SETUP_TAG]
        nb.cells.insert(nb.cells.index(first_md) + 1, setup)
    setup.source = setup_cell_source()
    setup.outputs, setup.execution_count = [], None
    return nbformat.writes(nb) != before


def readme_with_badge(text: str, notebook_name: str = "01_ecg_preprocessing.ipynb") -> str:
    """The README text with its "Open in Colab" badge line pointing at ``notebook_name``."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if "colab-badge.svg" in line:
            lines[i] = badge_markdown(notebook_name)
            return "\n".join(lines) + ("\n" if text.endswith("\n") else "")
    raise ValueError("the README has no line with an 'Open in Colab' badge (colab-badge.svg)")


def update_colab_links(notebooks: list[Path], readme: Path | None) -> list[Path]:
    """Bring every badge and setup cell in step with :data:`REPOSITORY` and :data:`BRANCH`.

    Publishing the course under another GitHub address: set ``REPOSITORY`` above, then run
    ``python -m evl_lite notebooks colab``. Returns the files it changed (none on a second run).
    """
    changed = []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        if add_colab_cells(nb, path.name):
            write_notebook_atomic(path, nb)
            changed.append(path)
    if readme is not None:
        text = readme.read_text()
        updated = readme_with_badge(text)
        if updated != text:
            write_text_atomic(readme, updated)
            changed.append(readme)
    return changed
