"""The Colab set-up, tested offline: detection, the install cell, widgets and plotly, the badges."""

from __future__ import annotations

import sys
import types

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager

from evl_lite.course import colab
from evl_lite.course.runner import list_notebooks


def run_setup_cell(modules: dict) -> list[tuple[str, str]]:
    """Execute the setup cell as IPython would, with a fake IPython shell recording magics."""
    calls: list[tuple[str, str]] = []
    shell = types.SimpleNamespace(run_line_magic=lambda name, line: calls.append((name, line)))
    code = TransformerManager().transform_cell(colab.setup_cell_source())
    fake_sys = types.SimpleNamespace(modules=modules)
    exec(code, {"get_ipython": lambda: shell, "__builtins__": __builtins__}, {"sys": fake_sys})
    return calls


def test_setup_cell_does_nothing_outside_colab():
    assert "google.colab" not in sys.modules
    assert run_setup_cell(dict(sys.modules)) == []
    assert colab.enable_colab() == {"colab": False}
    assert not colab.in_colab({"numpy": object()})


def test_setup_cell_installs_the_pinned_package_and_enables_widgets_in_colab(monkeypatch):
    enabled = []
    output = types.SimpleNamespace(enable_custom_widget_manager=lambda: enabled.append(True))
    google = types.ModuleType("google")
    google_colab = types.ModuleType("google.colab")
    google_colab.output = output
    google.colab = google_colab
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", google_colab)
    import plotly.io as pio

    monkeypatch.setattr(pio.renderers, "default", pio.renderers.default)
    calls = run_setup_cell(sys.modules)
    assert calls == [("pip", f'install --quiet "{colab.install_requirement()}"')]
    assert colab.install_requirement().startswith("evl-lite @ git+https://github.com/")
    assert enabled == [True]  # enable_colab ran inside the cell
    assert pio.renderers.default == "colab"


@pytest.mark.parametrize("path", list_notebooks(), ids=lambda p: p.stem)
def test_every_notebook_has_its_badge_and_the_setup_cell_first(path):
    nb = nbformat.read(path, as_version=4)
    first_md = next(c for c in nb.cells if c.cell_type == "markdown")
    assert colab.badge_markdown(path.name) in first_md.source
    assert f"/notebooks/{path.name})" in colab.badge_markdown(path.name)
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    assert colab.SETUP_TAG in first_code.metadata.get("tags", [])
    assert first_code.source == colab.setup_cell_source()


def test_add_colab_cells_is_idempotent():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Title"), nbformat.v4.new_code_cell("SMOKE = False")]
    assert colab.add_colab_cells(nb, "09_x.ipynb") is True
    assert nb.cells[0].source.splitlines()[0] == colab.badge_markdown("09_x.ipynb")
    assert nb.cells[1].source == colab.setup_cell_source() and nb.cells[2].source == "SMOKE = False"
    assert colab.add_colab_cells(nb, "09_x.ipynb") is False
    assert len(nb.cells) == 3


def test_the_readme_badge_opens_notebook_01_in_this_repository():
    readme = (list_notebooks()[0].parent.parent / "README.md").read_text()
    assert colab.badge_markdown("01_ecg_preprocessing.ipynb") in readme.splitlines()
    assert colab.readme_with_badge(readme) == readme
    with pytest.raises(ValueError, match="no line with an 'Open in Colab' badge"):
        colab.readme_with_badge("# no badge here\n")


def test_update_colab_links_follows_the_repository_and_is_idempotent(tmp_path, monkeypatch):
    import shutil

    notebook = tmp_path / "notebooks" / list_notebooks()[0].name
    notebook.parent.mkdir()
    shutil.copy(list_notebooks()[0], notebook)
    readme = tmp_path / "README.md"
    readme.write_text("# Course\n\n" + colab.badge_markdown(notebook.name) + "\n")
    assert colab.update_colab_links([notebook], readme) == []  # the committed files are in step
    monkeypatch.setattr(colab, "REPOSITORY", "someone/elsewhere")
    assert colab.update_colab_links([notebook], readme) == [notebook, readme]
    nb = nbformat.read(notebook, as_version=4)
    assert "github/someone/elsewhere/blob/main/notebooks/" in nb.cells[0].source
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    assert "git+https://github.com/someone/elsewhere@main" in first_code.source
    assert "github/someone/elsewhere/blob/main/notebooks/01_" in readme.read_text()
    assert colab.update_colab_links([notebook], readme) == []
