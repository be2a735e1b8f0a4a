"""HTML exports of executed notebooks that open offline: equations, figures and widgets included.

nbconvert's default page fetches MathJax and the Jupyter widget manager from CDNs, so offline the
equations stay raw ``$$...$$`` and the explorers blank. :func:`export_html` needs no network:

- **equations** are rendered at export: every ``$...$`` and ``$$...$$`` of a markdown cell is
  converted to MathML (``latex2mathml``), which browsers draw natively; no MathJax is loaded;
- **widgets** are written as their saved state: an explorer's figure (the outputs of its
  ``Output`` widget) and its status line become ordinary outputs, under a line that names the
  controls and their values (they move only in a running notebook);
- **plotly figures** already carry plotly.js inside the notebook (``ecg_plots.setup_plotly``).
"""

from __future__ import annotations

import copy
import html
import re
from pathlib import Path

import nbformat

from evl_lite.atomic import write_text_atomic

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
# $$...$$ (display) first, then $...$ (inline: no space just inside the dollars, as in Jupyter)
MATH = re.compile(r"\$\$(.+?)\$\$|(?<![\\$])\$(?!\s)([^$\n]+?)(?<!\s)\$", re.S)
CONTROLS = {"DropdownModel": "options", "SelectionSliderModel": "options", "ToggleButtonsModel": "options"}


def latex_to_mathml(latex: str, display: bool) -> str:
    """MathML for one LaTeX formula; the formula itself, escaped, when it cannot be converted."""
    from latex2mathml.converter import convert

    try:
        return convert(latex.strip(), display="block" if display else "inline")
    except Exception:  # noqa: BLE001 - an unsupported macro: show the source rather than fail the export
        return f"<code>{html.escape(latex)}</code>"


def render_math(nb: nbformat.NotebookNode) -> dict[str, str]:
    """Replace each formula of the markdown cells by a placeholder; returns placeholder -> MathML."""
    rendered: dict[str, str] = {}

    def swap(match: re.Match) -> str:
        display = match.group(1) is not None
        key = f"EVLMATH{len(rendered):05d}X"
        rendered[key] = latex_to_mathml(match.group(1) if display else match.group(2), display)
        return key

    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = MATH.sub(swap, cell.source)
    return rendered


def _widget_outputs(model_id: str, state: dict, controls: list[str]) -> list[dict]:
    """The outputs a widget shows in its saved state (recursing into boxes); controls are named."""
    model = state.get(model_id, {})
    name, values = model.get("model_name", ""), model.get("state", {})
    children = [c.removeprefix("IPY_MODEL_") for c in values.get("children", [])]
    if name in ("VBoxModel", "HBoxModel", "BoxModel"):
        return [out for child in children for out in _widget_outputs(child, state, controls)]
    if name == "OutputModel":
        return list(values.get("outputs", []))
    if name in ("HTMLModel", "HTMLMathModel", "LabelModel") and values.get("value"):
        return [nbformat.v4.new_output("display_data", {"text/html": str(values["value"])})]
    if "value" in values or "index" in values:  # a control: its description and current value
        label = values.get("description") or name.removesuffix("Model")
        value = values.get("value")
        if value is None and name in CONTROLS and values.get("_options_labels"):
            value = values["_options_labels"][values.get("index") or 0]
        controls.append(f"{label} {value}")
    return []


def flatten_widgets(nb: nbformat.NotebookNode) -> int:
    """Replace every widget view by the outputs of its saved state; returns how many were replaced."""
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    replaced = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        outputs = []
        for out in cell.get("outputs", []):
            view = (
                out.get("data", {}).get(WIDGET_VIEW)
                if out.get("output_type") in ("display_data", "execute_result")
                else None
            )
            if view is None:
                outputs.append(out)
                continue
            controls: list[str] = []
            shown = _widget_outputs(view["model_id"], state, controls)
            note = (
                "<p><em>Interactive explorer, shown as it was saved"
                + (f" ({html.escape('; '.join(controls))})" if controls else "")
                + ": its controls move in a running notebook.</em></p>"
            )
            outputs += [nbformat.v4.new_output("display_data", {"text/html": note}), *shown]
            replaced += 1
        cell.outputs = outputs
    nb.metadata.pop("widgets", None)  # nothing left for the CDN widget manager to load
    return replaced


def offline_html(nb: nbformat.NotebookNode) -> str:
    """The HTML page of an executed notebook, complete without network access (module docstring)."""
    from nbconvert import HTMLExporter

    nb = copy.deepcopy(nb)
    flatten_widgets(nb)
    formulas = render_math(nb)
    exporter = HTMLExporter(mathjax_url="")
    body, _ = exporter.from_notebook_node(nb)
    body = re.sub(
        r'<script[^>]*src="https://cdnjs\.cloudflare\.com/ajax/libs/mathjax[^"]*"[^>]*></script>', "", body
    )
    for key, mathml in formulas.items():
        body = body.replace(key, mathml)
    return body


def export_html(executed: Path, html_dir: Path) -> str | None:
    """Write ``html_dir/<name>.html`` for an executed notebook (see the module docstring); its path."""
    if not executed.is_file():
        return None
    body = offline_html(nbformat.read(executed, as_version=4))
    html_dir.mkdir(parents=True, exist_ok=True)
    target = html_dir / f"{executed.stem}.html"
    write_text_atomic(target, body)
    return str(target)
