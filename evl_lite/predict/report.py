"""``predict --report DIR``: one self-contained HTML page per record, and an ``index.html``.

A page opens offline: no script, no font or style sheet from a network, every figure an inline
SVG. It shows

- the probabilities of the five superclasses against their thresholds (tuned on validation), the
  decision, and for each class the 2.5 s window whose probability is the record's;
- the ECG on standard paper (:mod:`evl_lite.explorers.ecg_plots` geometry: 25 mm/s, 10 mm/mV, 1 mm and 5 mm
  grid, a 1 mV calibration pulse per row; the 3 x 4 printout with a rhythm strip of lead II), the
  first 10 s of the record after the band-pass (in mV; in NU for a normalised record);
- the student's evidence for each flagged class (the most likely one when none is flagged):
  occlusion (Zeiler & Fergus 2014, :func:`evl_lite.evaluation.interpretation.occlusion_map`, as notebook 08):
  the drop of ``p_c`` when one lead x 0.25 s cell of the driving window is set to zero, shaded on
  that window's ECG;
- the model, and the line "educational use only, not a diagnosis".

Every file is written atomically; the index comes last.
"""

from __future__ import annotations

import html
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from evl_lite.atomic import write_text_atomic
from evl_lite.constants import LEADS, SUPERCLASSES
from evl_lite.errors import ECGDataError
from evl_lite.evaluation.interpretation import DISCLAIMER, SUPERCLASS_NAMES, occlusion_map
from evl_lite.explorers.ecg_plots import (
    MAJOR_GRID,
    MINOR_GRID,
    MM_PER_MV,
    MM_PER_S,
    PAPER_BG,
    TRACE,
    calibration_path,
    display_lead,
    panel_slice,
    paper_extent,
    paper_panels,
)
from evl_lite.predict.pipeline import NOTE, Prediction

PAPER_SECONDS = 10.0  # the printout shows the first 10 s
SHADE = "#d62728"

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5em auto; max-width: 1100px;
       color: #111; padding: 0 1em; }
.note { background: #fff3cd; border: 1px solid #e0c36c; padding: 0.5em 0.8em; font-weight: 600; }
table { border-collapse: collapse; margin: 0.8em 0; }
td, th { border-bottom: 1px solid #ddd; padding: 0.3em 0.7em; text-align: left; }
.bar { position: relative; width: 220px; height: 12px; background: #eee; }
.bar span { position: absolute; top: 0; bottom: 0; left: 0; background: #1f4e9c; }
.bar i { position: absolute; top: -3px; bottom: -3px; width: 2px; background: #d62728; }
.flag { color: #b00020; font-weight: 600; }
.evidence { display: flex; flex-wrap: wrap; gap: 1.5em; }
figure { margin: 0.5em 0; } figcaption { font-size: 0.9em; color: #444; max-width: 640px; }
.small { font-size: 0.85em; color: #555; }
"""


def check_report_dir(path: str | os.PathLike) -> Path:
    """The report directory, created if missing and checked writable; an error naming it otherwise."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise ECGDataError(path, "--report needs a directory, and this is a file")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
        next(iter(os.scandir(path)), None)
    except OSError as exc:
        reason = exc.strerror or exc
        raise ECGDataError(path, f"cannot be written as the report directory ({reason})") from None
    return path


# --------------------------------------------------------------------------- ECG paper as SVG


def paper_svg(
    signal: np.ndarray,
    fs: float,
    layout: str = "3x4",
    rhythm_lead: str | None = "II",
    row_height_mv: float = 3.0,
    px_per_mm: float = 2.4,
    shade: np.ndarray | None = None,
    span: int | None = None,
    uid: str = "p",
) -> str:
    """An ECG [12, T] (LEADS order) on paper as an SVG string (25 mm/s, 10 mm/mV).

    ``shade`` [12, S]: values in [0, 1] drawn as red cells over spans of ``span`` samples (12x1 only).
    ``uid`` keeps the grid patterns of several figures on one page apart.
    """
    n_samples = signal.shape[1]
    duration = n_samples / fs
    panels = paper_panels(list(LEADS), duration, layout, row_height_mv, rhythm_lead)
    (x0, x1), (y0, y1) = paper_extent(panels, duration, row_height_mv)
    width, height = (x1 - x0) * MM_PER_S * px_per_mm, (y1 - y0) * MM_PER_MV * px_per_mm

    def px(t):
        return (np.asarray(t) - x0) * MM_PER_S * px_per_mm

    def py(v):
        return (y1 - np.asarray(v)) * MM_PER_MV * px_per_mm

    minor, major = px_per_mm, 5 * px_per_mm
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.1f} {height:.1f}" role="img">',
        "<defs>",
        f'<pattern id="{uid}-minor" width="{minor}" height="{minor}" patternUnits="userSpaceOnUse">'
        f'<path d="M {minor} 0 L 0 0 0 {minor}" fill="none" stroke="{MINOR_GRID}" stroke-width="0.4"/>'
        "</pattern>",
        f'<pattern id="{uid}-major" width="{major}" height="{major}" patternUnits="userSpaceOnUse">'
        f'<rect width="{major}" height="{major}" fill="url(#{uid}-minor)"/>'
        f'<path d="M {major} 0 L 0 0 0 {major}" fill="none" stroke="{MAJOR_GRID}" stroke-width="0.8"/>'
        "</pattern>",
        "</defs>",
        f'<rect width="100%" height="100%" fill="{PAPER_BG}"/>',
        f'<rect width="100%" height="100%" fill="url(#{uid}-major)"/>',
    ]
    if shade is not None and span:
        for p in panels:
            row = LEADS.index(p.lead)
            top, bottom = py(p.baseline_mv + row_height_mv / 2), py(p.baseline_mv - row_height_mv / 2)
            for s, value in enumerate(shade[row]):
                if value > 0.02:
                    a, b = px(s * span / fs), px((s + 1) * span / fs)
                    parts.append(f'<rect x="{a:.1f}" y="{top:.1f}" width="{b - a:.1f}" '
                                 f'height="{bottom - top:.1f}" fill="{SHADE}" '
                                 f'fill-opacity="{0.55 * min(float(value), 1.0):.2f}"/>')
    t = np.arange(n_samples) / fs
    for p in panels:
        s = panel_slice(p, fs, n_samples)
        xs, ys = px(t[s]), py(signal[LEADS.index(p.lead), s] + p.baseline_mv)
        points = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(xs, ys, strict=True))
        parts.append(f'<polyline points="{points}" fill="none" stroke="{TRACE}" stroke-width="0.9"/>')
        parts.append(f'<text x="{px(p.t0 + 0.05):.1f}" y="{py(p.baseline_mv + 0.3 * row_height_mv):.1f}" '
                     'font-size="11" font-family="sans-serif" font-weight="bold">'
                     f"{display_lead(p.lead)}</text>")
    cx, cy = calibration_path(sorted({p.baseline_mv for p in panels}, reverse=True))
    path, pen = [], "M"
    for a, b in zip(cx, cy, strict=True):
        if a is None:
            pen = "M"
            continue
        path.append(f"{pen} {px(a):.1f} {py(b):.1f}")
        pen = "L"
    parts.append(f'<path d="{" ".join(path)}" fill="none" stroke="{TRACE}" stroke-width="1.2"/>')
    parts.append("</svg>")
    return "\n".join(parts)


# --------------------------------------------------------------------------- pages


def page_names(predictions: Sequence[Prediction]) -> list[str]:
    """A distinct, file-system-safe ``<record>.html`` for every prediction."""
    used: set[str] = set()
    names = []
    for prediction in predictions:
        path = prediction.ref.path
        raw = path.stem if prediction.ref.kind == "EDF" else path.name
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", raw) or "record"
        name, k = f"{stem}.html", 2
        while name.lower() in used:
            name, k = f"{stem}-{k}.html", k + 1
        used.add(name.lower())
        names.append(name)
    return names


def _evidence_classes(prediction: Prediction) -> list[int]:
    """Flagged classes; the one closest to its threshold (highest p / t) when none is flagged."""
    flagged = [SUPERCLASSES.index(name) for name in prediction.decision]
    if flagged:
        return flagged
    ratio = prediction.probabilities / np.maximum(prediction.thresholds, 1e-9)
    return [int(np.argmax(ratio))]


def _model_line(model: dict) -> str:
    sha = (model.get("sha256") or "")[:12]
    return (f"{model.get('name')} ({model.get('method')}, seed {model.get('seed')}, distilled from "
            f"{model.get('teacher')} on {model.get('data')}), run by {model.get('runtime')}"
            + (f"; weights SHA-256 {sha}..." if sha else ""))


def record_page(prediction: Prediction, predictor) -> str:
    """The HTML page of one record (``prediction`` must hold its prepared input)."""
    prepared = prediction.prepared
    if prepared is None:
        raise ValueError("record_page needs the prepared record: predict with keep_inputs=True")
    model = predictor.describe()
    p, t = prediction.probabilities, prediction.thresholds
    rows = []
    for c, name in enumerate(SUPERCLASSES):
        start, end = prediction.window_seconds(prediction.driver(c))
        flagged = p[c] >= t[c]
        rows.append(
            f"<tr><td><b>{name}</b> {SUPERCLASS_NAMES[name]}</td><td>{p[c]:.3f}</td><td>{t[c]:.3f}</td>"
            f'<td><div class="bar"><span style="width:{100 * p[c]:.1f}%"></span>'
            f'<i style="left:{100 * t[c]:.1f}%"></i></div></td>'
            f"<td{' class=flag' if flagged else ''}>{'flagged' if flagged else '-'}</td>"
            f"<td>{start:.2f}-{end:.2f} s</td></tr>")
    decision = ", ".join(prediction.decision) or "no superclass reaches its threshold"
    unit = "NU (normalised)" if prediction.normalised else "mV, band-passed 0.5-40 Hz"
    shown = prepared.signal[:, : int(PAPER_SECONDS * prepared.fs)]
    seconds = prediction.n_samples_in / prediction.fs_in
    paper = paper_svg(shown, prepared.fs, px_per_mm=3.4, uid="paper")
    crop = prediction.crop
    span = crop // 10 if crop % 10 == 0 else crop
    figures = []
    for c in _evidence_classes(prediction):
        k = prediction.driver(c)
        start = int(prediction.starts[k])
        window = prepared.x[:, start : start + crop]
        occlusion = occlusion_map(predictor.module, window, c, span=span, fill="zero")
        drop = np.clip(occlusion.grid, 0, None)  # [12, S]
        shade = drop / drop.max() if drop.max() > 0 else drop
        leads = np.clip(occlusion.lead, 0, None)
        share = leads / leads.sum() if leads.sum() > 0 else leads
        top = ", ".join(f"{display_lead(LEADS[i])} {share[i]:.0%}"
                        for i in np.argsort(-share)[:3] if share[i] > 0)
        svg = paper_svg(prepared.signal[:, start : start + crop], prepared.fs, layout="12x1",
                        rhythm_lead=None, row_height_mv=2.0, px_per_mm=2.4, shade=shade, span=span,
                        uid=f"ev{c}")
        a, b = prediction.window_seconds(k)
        figures.append(
            f"<figure>{svg}<figcaption><b>{SUPERCLASSES[c]}</b>: window {a:.2f}-{b:.2f} s, p = "
            f"{occlusion.base:.3f}. Red: how much p falls when that lead x {span / prepared.fs:.2f} s is set "
            f"to zero (darkest = largest drop, {drop.max():.3f}). Leads whose removal lowers p most: "
            f"{top or 'none'}.</figcaption></figure>")
    model_text = html.escape(_model_line(model))
    record = html.escape(prediction.ref.shown)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{html.escape(prediction.ref.path.name)}: student reading</title>
<style>{_STYLE}</style></head><body>
<p class="note">{NOTE.capitalize()}.</p>
<h1>{html.escape(prediction.ref.path.name)}</h1>
<p class="small">{record} &middot; {prediction.ref.kind}, {prediction.fs_in:g} Hz, {seconds:.1f} s &middot;
model: {model_text}</p>
<h2>Decision: {html.escape(decision)}</h2>
<table><tr><th>superclass</th><th>probability</th><th>threshold</th><th></th><th>decision</th>
<th>window that drove it</th></tr>
{"".join(rows)}</table>
<p class="small">Probability: the highest of the student's outputs over {len(prediction.starts)} windows of
{crop / prepared.fs:g} s; a superclass is flagged when it reaches its threshold (tuned for F1 on the
validation split). Bar: probability; red mark: threshold.</p>
<h2>The ECG</h2>
<figure>{paper}<figcaption>25 mm/s, 10 mm/mV ({unit}); first {shown.shape[1] / prepared.fs:.1f} s of
{seconds:.1f} s, as the student reads it (before the per-lead z-scoring).</figcaption></figure>
<h2>What the student looked at</h2>
<div class="evidence">{"".join(figures)}</div>
<p class="small">{html.escape(DISCLAIMER)}</p>
<p class="note">{NOTE.capitalize()}.</p>
</body></html>
"""


def index_page(entries: Sequence[tuple[Prediction | ECGDataError, str | None]], predictor) -> str:
    """``index.html``: one row per record (link to its page, decision, probabilities), then those refused."""
    rows, refused = [], []
    for result, page in entries:
        if isinstance(result, ECGDataError):
            refused.append(f"<li>{html.escape(str(result))}</li>")
            continue
        p = result.probabilities
        cells = "".join(f"<td{' class=flag' if p[c] >= result.thresholds[c] else ''}>{p[c]:.2f}</td>"
                        for c in range(len(SUPERCLASSES)))
        link = f'<a href="{html.escape(page or "")}">{html.escape(result.ref.path.name)}</a>'
        rows.append(f"<tr><td>{link}</td>"
                    f"<td>{html.escape(', '.join(result.decision) or '-')}</td>{cells}</tr>")
    head = "".join(f"<th>{name}</th>" for name in SUPERCLASSES)
    refused_html = f"<h2>Not read</h2><ul>{''.join(refused)}</ul>" if refused else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Student readings</title>
<style>{_STYLE}</style></head><body>
<p class="note">{NOTE.capitalize()}.</p>
<h1>Student readings of {len(rows)} record(s)</h1>
<p class="small">model: {html.escape(_model_line(predictor.describe()))}</p>
<table><tr><th>record</th><th>decision</th>{head}</tr>{"".join(rows)}</table>
{refused_html}
<p class="small">{html.escape(DISCLAIMER)}</p>
</body></html>
"""


def write_report(directory: Path, results: Sequence[Prediction | ECGDataError], predictor) -> list[Path]:
    """Write one page per prediction and ``index.html`` (last) into ``directory``; returns the pages."""
    predictions = [r for r in results if isinstance(r, Prediction)]
    names = iter(page_names(predictions))
    entries, written = [], []
    for result in results:
        page = None
        if isinstance(result, Prediction):
            page = next(names)
            write_text_atomic(directory / page, record_page(result, predictor))
            written.append(directory / page)
        entries.append((result, page))
    write_text_atomic(directory / "index.html", index_page(entries, predictor))
    return written
