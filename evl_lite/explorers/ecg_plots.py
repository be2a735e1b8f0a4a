"""Plotly figures of ECGs: ECG paper, preprocessing before/after and spectra, R-peaks, beats, classes.

ECG paper follows the convention of clinical 12-lead printouts (e.g. AHA/ACCF/HRS
recommendations for the standardisation of the ECG, Kligfield et al. 2007, Circulation
115:1306): paper speed 25 mm/s and gain 10 mm/mV, so one small 1 mm square is 0.04 s by
0.1 mV and one large 5 mm square 0.2 s by 0.5 mV; a 1 mV, 0.2 s calibration pulse starts
every row. Figures draw in seconds and millivolts and tie the axes together
(``yaxis.scaleanchor = "x"``, ``scaleratio = 10/25``) so that 1 mm stays square on screen.

The geometry (time axes, panel positions, paper extent, sizes in mm and pixels) lives in
small pure functions that the tests check; the ``*_figure`` functions only assemble traces.

One figure of results rather than signals: :func:`label_efficiency_figure`, the experiment's
test macro-AUC against the number of labelled records (``evl_lite.data.label_budget``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots
from scipy.signal import welch

from evl_lite.constants import LEADS
from evl_lite.data.ptbxl import canonical_lead_name
from evl_lite.errors import ECGDataError
from evl_lite.explorers import TEMPLATE

# ECG paper: paper speed and gain, and the grid they imply.
MM_PER_S = 25.0  # paper speed, mm per second
MM_PER_MV = 10.0  # gain, mm per millivolt
MINOR_S, MINOR_MV = 1.0 / MM_PER_S, 1.0 / MM_PER_MV  # 1 mm: 0.04 s, 0.1 mV
MAJOR_S, MAJOR_MV = 5.0 / MM_PER_S, 5.0 / MM_PER_MV  # 5 mm: 0.2 s, 0.5 mV
PAPER_SCALE_RATIO = MM_PER_MV / MM_PER_S  # plotly scaleratio of y (mV) tied to x (s): 1 mm square
CAL_MARGIN_S = 0.4  # left margin of every row holding the 1 mV calibration pulse (10 mm)
CAL_PULSE = (-0.32, -0.12, 1.0)  # pulse start, end (s) and height (mV): 0.2 s x 1 mV

PAPER_BG = "#fff7f7"
MINOR_GRID = "#f6c9cf"
MAJOR_GRID = "#e8838f"
TRACE = "#111111"
BEFORE, AFTER, PEAK, MEAN_BEAT = "#9aa0a6", "#1f4e9c", "#d62728", "#111111"


# --------------------------------------------------------------------------- renderer


def choose_renderer(in_colab: bool, env_renderer: str | None = None) -> str:
    """The plotly renderer for this front end.

    ``PLOTLY_RENDERER`` wins when set. In Colab, ``"colab"`` (Colab shows neither the plotly
    mimetype nor the notebook renderer's require.js output). Elsewhere
    ``"plotly_mimetype+notebook"``: JupyterLab renders the mimetype bundle, while the
    ``text/html`` part (plotly.js embedded once per notebook) keeps the figures alive in
    HTML exported with nbconvert from papermill runs; plotly's own default inside a kernel,
    ``"plotly_mimetype"`` alone, leaves those exports blank.
    """
    if env_renderer:
        return env_renderer
    return "colab" if in_colab else "plotly_mimetype+notebook"


def setup_plotly() -> str:
    """Set and return the default plotly renderer (see :func:`choose_renderer`)."""
    try:
        import google.colab  # noqa: F401

        in_colab = True
    except ImportError:
        in_colab = False
    name = choose_renderer(in_colab, os.environ.get("PLOTLY_RENDERER"))
    pio.renderers.default = name
    return name


# --------------------------------------------------------------------------- pure geometry


def time_axis(n_samples: int, fs: float, start: float = 0.0) -> np.ndarray:
    """Sample times in seconds [T]: ``start + k / fs``."""
    if fs <= 0:
        raise ValueError(f"sampling rate must be positive, not {fs}")
    return start + np.arange(n_samples) / float(fs)


def to_mm(t_s: np.ndarray | float, v_mv: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Seconds and millivolts -> millimetres of ECG paper (25 mm/s, 10 mm/mV)."""
    return np.asarray(t_s) * MM_PER_S, np.asarray(v_mv) * MM_PER_MV


def display_lead(name: str) -> str:
    """PTB-XL's upper-case lead names as printed on ECGs: 'AVR' -> 'aVR'."""
    return {"AVR": "aVR", "AVL": "aVL", "AVF": "aVF"}.get(name, name)


def parse_layout(layout: str) -> tuple[int, int]:
    """'3x4' -> (3 rows, 4 columns)."""
    match = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", layout)
    if not match or int(match[1]) < 1 or int(match[2]) < 1:
        raise ValueError(f"layout must look like '12x1', '6x2' or '3x4' (rows x columns), not {layout!r}")
    return int(match[1]), int(match[2])


@dataclass(frozen=True)
class Panel:
    """One lead's strip on the paper: rows count from the top, times in seconds."""

    lead: str
    row: int
    col: int
    t0: float  # first second of the record shown
    t1: float  # end of the window (exclusive)
    baseline_mv: float  # where 0 mV of this strip sits on the paper's y axis


def paper_panels(leads: Sequence[str], duration_s: float, layout: str = "12x1", row_height_mv: float = 3.0,
                 rhythm_lead: str | None = None) -> list[Panel]:
    """Where each lead goes on the paper.

    Leads fill the ``rows x cols`` grid column by column (the standard '3x4' puts I, II, III in
    the first column, aVR, aVL, aVF in the second, ...). Columns show consecutive time
    windows of ``duration_s / cols`` seconds, as a printout of simultaneous recordings
    does. ``rhythm_lead`` adds a full-length strip below. Baselines sit in the middle of
    each row, on a major (0.5 mV) grid line.
    """
    rows, cols = parse_layout(layout)
    if len(leads) > rows * cols:
        raise ValueError(f"layout {layout!r} has {rows * cols} places for {len(leads)} leads")
    if row_height_mv <= 0 or duration_s <= 0:
        raise ValueError("row_height_mv and duration_s must be positive")
    width = duration_s / cols

    def baseline(row: int) -> float:
        return float(np.round(-(row + 0.5) * row_height_mv / MAJOR_MV) * MAJOR_MV)

    panels = [
        Panel(lead, i % rows, i // rows, (i // rows) * width, (i // rows + 1) * width, baseline(i % rows))
        for i, lead in enumerate(leads)
    ]
    if rhythm_lead is not None:
        panels.append(Panel(rhythm_lead, rows, 0, 0.0, duration_s, baseline(rows)))
    return panels


def panel_slice(panel: Panel, fs: float, n_samples: int) -> slice:
    """The samples of a record [T] that a panel shows."""
    return slice(int(round(panel.t0 * fs)), min(n_samples, int(round(panel.t1 * fs))))


def paper_extent(panels: Sequence[Panel], duration_s: float,
                 row_height_mv: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """x range (s, with the calibration margin) and y range (mV) of the paper."""
    n_rows = max(p.row for p in panels) + 1
    return (-CAL_MARGIN_S, float(duration_s)), (-n_rows * row_height_mv, 0.0)


def paper_size_px(x_range: tuple[float, float], y_range: tuple[float, float], px_per_mm: float,
                  margin_px: tuple[int, int, int, int] = (10, 10, 50, 10)) -> tuple[int, int]:
    """Figure width and height in pixels so that the plot area holds the paper at ``px_per_mm``.

    ``margin_px`` = (left, right, top, bottom) as in plotly's ``layout.margin``.
    """
    width_mm = (x_range[1] - x_range[0]) * MM_PER_S
    height_mm = (y_range[1] - y_range[0]) * MM_PER_MV
    left, right, top, bottom = margin_px
    return int(round(width_mm * px_per_mm)) + left + right, int(round(height_mm * px_per_mm)) + top + bottom


def calibration_path(baselines: Sequence[float]) -> tuple[list[float | None], list[float | None]]:
    """x, y of the 1 mV x 0.2 s calibration pulses at the start of each row (None separates rows)."""
    start, end, height = CAL_PULSE
    xs: list[float | None] = []
    ys: list[float | None] = []
    for b in baselines:
        xs += [-CAL_MARGIN_S, start, start, end, end, 0.0, None]
        ys += [b, b, b + height, b + height, b, b, None]
    return xs, ys


def as_lead_dict(x: np.ndarray | Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """x [12, T] (LEADS order) or {lead: [T]} -> {lead: [T]}, checked: same length, finite."""
    if isinstance(x, Mapping):
        signals = {str(k): np.asarray(v, dtype=float) for k, v in x.items()}
    else:
        arr = np.asarray(x, dtype=float)
        if arr.ndim != 2 or arr.shape[0] != len(LEADS):
            raise ECGDataError(None, f"expected an ECG [12, T] in the order {LEADS}; got shape {arr.shape}")
        signals = dict(zip(LEADS, arr, strict=True))
    lengths = {v.shape for v in signals.values()}
    if not signals or len(lengths) != 1 or len(next(iter(lengths))) != 1:
        raise ECGDataError(None, f"every lead must be a 1-D signal of the same length; got shapes {lengths}")
    bad = [k for k, v in signals.items() if not np.isfinite(v).all()]
    if bad:
        raise ECGDataError(None, f"lead(s) {bad} hold NaN or inf samples")
    return signals


def resolve_lead(lead: str, signals: Mapping[str, np.ndarray]) -> str:
    """The key of ``lead`` in ``signals``, accepting printed names ('aVR' for 'AVR')."""
    if lead in signals:
        return lead
    canonical = canonical_lead_name(lead)
    if canonical in signals:
        return canonical
    raise ECGDataError(None, f"lead {lead!r} not in the record (it has {list(signals)})")


def lead_signal(x: np.ndarray, lead: str | int) -> np.ndarray:
    """One lead [T] of x [12, T] (by name or index); a 1-D x [T] is returned as is."""
    arr = np.asarray(x, dtype=float)
    if arr.ndim == 1:
        return arr
    if arr.ndim != 2 or arr.shape[0] != len(LEADS):
        raise ECGDataError(None, f"expected an ECG [12, T] or one lead [T]; got shape {arr.shape}")
    index = lead if isinstance(lead, int) else lead_index(lead)
    return arr[index]


def lead_index(lead: str) -> int:
    """Row of a lead in LEADS ('aVR' and 'AVR' both -> 3)."""
    key = lead.strip().upper()
    if key not in LEADS:
        raise ValueError(f"unknown lead {lead!r}; expected one of {LEADS}")
    return LEADS.index(key)


def window_slice(n_samples: int, fs: float, window: tuple[float, float] | None) -> slice:
    """Samples of the time window (start s, end s); the whole record for None."""
    if window is None:
        return slice(0, n_samples)
    start, end = window
    if not 0 <= start < end:
        raise ValueError(f"window must satisfy 0 <= start < end, not {window}")
    return slice(int(round(start * fs)), min(n_samples, int(round(end * fs))))


# --------------------------------------------------------------------------- styling


def _paper_axes(fig: go.Figure, row: int | None = None, col: int | None = None, square: bool = True,
                labels: bool = False) -> None:
    """Pink 1 mm / 5 mm grid on one (sub)plot; ``square`` ties y to x at 10 mm/mV : 25 mm/s."""
    sel = {} if row is None else {"row": row, "col": col}
    grid = dict(showgrid=True, gridcolor=MAJOR_GRID, gridwidth=1, zeroline=False, showticklabels=labels,
                ticks="", showline=False)
    fig.update_xaxes(dtick=MAJOR_S, tick0=0.0, minor=dict(dtick=MINOR_S, tick0=0.0, showgrid=True,
                     gridcolor=MINOR_GRID, gridwidth=0.5), constrain="domain", **grid, **sel)
    fig.update_yaxes(dtick=MAJOR_MV, tick0=0.0, minor=dict(dtick=MINOR_MV, tick0=0.0, showgrid=True,
                     gridcolor=MINOR_GRID, gridwidth=0.5), constrain="domain", **grid, **sel)
    if square:
        for x_name, y_name in _axis_pairs(fig, row, col):
            fig.layout[y_name].update(scaleanchor=x_name.replace("axis", ""), scaleratio=PAPER_SCALE_RATIO)


def _axis_pairs(fig: go.Figure, row: int | None, col: int | None) -> list[tuple[str, str]]:
    """Layout names ('xaxis2', 'yaxis2') of the (sub)plots selected by row/col."""
    if row is None:
        xs = sorted(k for k in fig.layout.to_plotly_json() if k.startswith("xaxis")) or ["xaxis"]
        return [(x, "y" + x[1:]) for x in xs]
    sub = fig.get_subplot(row, col)
    return [(sub.xaxis.plotly_name, sub.yaxis.plotly_name)]


# --------------------------------------------------------------------------- figures


def ecg_paper_figure(x: np.ndarray | Mapping[str, np.ndarray], fs: float, leads: Sequence[str] | None = None,
                     title: str | None = None, layout: str = "12x1", row_height_mv: float = 3.0,
                     rhythm_lead: str | None = None, px_per_mm: float = 3.5) -> go.Figure:
    """A record drawn on ECG paper (25 mm/s, 10 mm/mV, 1 mm squares kept square).

    x: [12, T] in mV (LEADS order) or {lead: [T]}. ``layout``: 'rows x cols', filled column
    by column ('12x1' one lead per row over the whole record; '3x4' the classic printout
    with 2.5 s per column); ``rhythm_lead`` adds a full-length strip (e.g. 'II').
    Traces: one per panel, then one for the calibration pulses.
    """
    signals = as_lead_dict(x)
    names = [resolve_lead(lead, signals) for lead in (leads or list(signals))]
    rhythm = None if rhythm_lead is None else resolve_lead(rhythm_lead, signals)
    n_samples = next(iter(signals.values())).shape[0]
    duration = n_samples / float(fs)
    panels = paper_panels(names, duration, layout, row_height_mv, rhythm)
    t = time_axis(n_samples, fs)
    fig = go.Figure()
    for p in panels:
        s = panel_slice(p, fs, n_samples)
        v = signals[p.lead][s]
        fig.add_trace(go.Scatter(
            x=t[s], y=v + p.baseline_mv, customdata=v, mode="lines", line=dict(color=TRACE, width=1),
            name=display_lead(p.lead), showlegend=False,
            hovertemplate=f"{display_lead(p.lead)}: %{{customdata:.2f}} mV at %{{x:.2f}} s<extra></extra>",
        ))
        fig.add_annotation(x=p.t0 + 0.05, y=p.baseline_mv + 0.45 * row_height_mv,
                           text=f"<b>{display_lead(p.lead)}</b>", showarrow=False, xanchor="left",
                           yanchor="top", font=dict(size=12, color=TRACE))
    baselines = sorted({p.baseline_mv for p in panels}, reverse=True)
    cx, cy = calibration_path(baselines)
    fig.add_trace(go.Scatter(x=cx, y=cy, mode="lines", line=dict(color=TRACE, width=1.5),
                             name="1 mV calibration", showlegend=False, hoverinfo="skip"))
    x_range, y_range = paper_extent(panels, duration, row_height_mv)
    margin = (10, 10, 50, 10)
    width, height = paper_size_px(x_range, y_range, px_per_mm, margin)
    fig.update_layout(
        title=dict(text=(title + "<br>" if title else "") + "<sup>25 mm/s, 10 mm/mV</sup>"),
        width=width, height=height, plot_bgcolor=PAPER_BG, paper_bgcolor="white",
        margin=dict(l=margin[0], r=margin[1], t=margin[2], b=margin[3]),
    )
    _paper_axes(fig)
    fig.update_xaxes(range=list(x_range))
    fig.update_yaxes(range=list(y_range))
    return fig


def before_after_figure(x_before: np.ndarray, x_after: np.ndarray, fs: float, lead: str | int = "II",
                        titles: tuple[str, str] = ("before", "after"), fs_after: float | None = None,
                        window: tuple[float, float] | None = None, overlay: np.ndarray | None = None,
                        overlay_name: str = "removed") -> go.Figure:
    """One lead before (top) and after (bottom) a preprocessing step, on a shared time axis.

    x_before, x_after: [12, T] or [T] in mV. ``fs_after``: rate of ``x_after`` when the step
    resamples. ``overlay`` [T] (at ``fs``) is drawn over the top panel, e.g. the estimated
    baseline that a filter removes. Traces: before, after (then overlay).
    """
    fs_after = fs if fs_after is None else fs_after
    before, after = lead_signal(x_before, lead), lead_signal(x_after, lead)
    sb, sa = window_slice(before.size, fs, window), window_slice(after.size, fs_after, window)
    name = display_lead(lead if isinstance(lead, str) else LEADS[lead])
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1,
                        subplot_titles=(f"{titles[0]} ({fs:g} Hz)", f"{titles[1]} ({fs_after:g} Hz)"))
    tb, ta = time_axis(before.size, fs), time_axis(after.size, fs_after)
    fig.add_trace(go.Scatter(x=tb[sb], y=before[sb], mode="lines", line=dict(color=BEFORE, width=1),
                             name=titles[0]), row=1, col=1)
    fig.add_trace(go.Scatter(x=ta[sa], y=after[sa], mode="lines+markers" if fs_after < fs else "lines",
                             marker=dict(size=3), line=dict(color=AFTER, width=1), name=titles[1]),
                  row=2, col=1)
    if overlay is not None:
        fig.add_trace(go.Scatter(x=tb[sb], y=np.asarray(overlay, dtype=float)[sb], mode="lines",
                                 line=dict(color=PEAK, width=2, dash="dash"), name=overlay_name),
                      row=1, col=1)
    fig.update_layout(title=f"lead {name}", height=480, template=TEMPLATE,
                      legend=dict(orientation="h", y=-0.15))
    fig.update_xaxes(title_text="time (s)", row=2, col=1)
    fig.update_yaxes(title_text="mV")
    return fig


def beat_time_axis(n_samples: int, fs: float, before: float = 0.25) -> np.ndarray:
    """Time of each beat sample relative to the R peak, in seconds [L] (R peak at 0)."""
    return time_axis(n_samples, fs, start=-before)


def beats_figure(beats: np.ndarray, fs: float, lead: str | int = "II", before: float = 0.25,
                 max_beats: int = 60) -> go.Figure:
    """Individual beats (faint) and their average (bold) for one lead, on ECG paper.

    beats: [n_beats, 12, L] or [n_beats, L] windows around R peaks, ``before`` seconds
    before each peak. Traces: up to ``max_beats`` beats, then the average of all beats.
    """
    arr = np.asarray(beats, dtype=float)
    if arr.ndim == 3:
        arr = arr[:, lead if isinstance(lead, int) else lead_index(lead)]
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ECGDataError(None, "expected beats [n_beats, 12, L] or [n_beats, L] with n_beats >= 1; "
                           f"got shape {np.shape(beats)}")
    t = beat_time_axis(arr.shape[1], fs, before)
    name = display_lead(lead if isinstance(lead, str) else LEADS[lead])
    fig = go.Figure()
    for i, beat in enumerate(arr[:max_beats]):
        fig.add_trace(go.Scatter(x=t, y=beat, mode="lines", line=dict(color=BEFORE, width=1), opacity=0.35,
                                 name="beats", legendgroup="beats", showlegend=i == 0, hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=t, y=arr.mean(axis=0), mode="lines", line=dict(color=MEAN_BEAT, width=3),
                             name=f"average of {arr.shape[0]} beats"))
    fig.update_layout(title=f"lead {name}: {arr.shape[0]} beats aligned on the R peak", plot_bgcolor=PAPER_BG,
                      height=420, width=560, legend=dict(orientation="h", y=-0.2))
    _paper_axes(fig, square=False, labels=True)
    fig.update_xaxes(title_text="time from R peak (s)")
    fig.update_yaxes(title_text="mV")
    return fig


def rpeaks_figure(lead_signal_: np.ndarray, peaks: np.ndarray, fs: float, lead: str = "II",
                  heart_rate: float | None = None, window: tuple[float, float] | None = None) -> go.Figure:
    """One lead [T] with its detected R peaks marked. Traces: signal, peaks."""
    signal = np.asarray(lead_signal_, dtype=float)
    if signal.ndim != 1:
        raise ECGDataError(None, f"rpeaks_figure draws one lead [T]; got shape {signal.shape}")
    peaks = np.asarray(peaks, dtype=int)
    if peaks.size and (peaks.min() < 0 or peaks.max() >= signal.size):
        raise ValueError(f"peak indices must lie in 0..{signal.size - 1}")
    s = window_slice(signal.size, fs, window)
    t = time_axis(signal.size, fs)
    shown = peaks[(peaks >= s.start) & (peaks < s.stop)]
    fig = go.Figure([
        go.Scatter(x=t[s], y=signal[s], mode="lines", line=dict(color=AFTER, width=1),
                   name=f"lead {display_lead(lead)}"),
        go.Scatter(x=t[shown], y=signal[shown], mode="markers", marker=dict(color=PEAK, size=9, symbol="x"),
                   name=f"{peaks.size} R peaks"),
    ])
    rate = "" if heart_rate is None else f": heart rate {heart_rate:.0f} bpm"
    fig.update_layout(title=f"R peaks in lead {display_lead(lead)}{rate}", template=TEMPLATE,
                      height=320, xaxis_title="time (s)", yaxis_title="mV",
                      legend=dict(orientation="h", y=-0.3))
    return fig


def amplitude_range(signals: Sequence[np.ndarray], min_span_mv: float = 2.0) -> tuple[float, float]:
    """y range (mV) that holds every signal, ending on major (0.5 mV) grid lines, at least
    ``min_span_mv`` tall (padded equally above and below)."""
    lo = float(np.floor(min(float(np.min(v)) for v in signals) / MAJOR_MV) * MAJOR_MV)
    hi = float(np.ceil(max(float(np.max(v)) for v in signals) / MAJOR_MV) * MAJOR_MV)
    pad = float(np.ceil(max(0.0, min_span_mv - (hi - lo)) / 2 / MAJOR_MV) * MAJOR_MV)
    return lo - pad, hi + pad


def class_examples_figure(records: Mapping[str, np.ndarray], fs: float,
                          lead: str | Sequence[str] = ("II", "V2", "V5"),
                          window: tuple[float, float] = (0.0, 2.5), px_per_mm: float = 2.5,
                          min_span_mv: float = 2.0) -> go.Figure:
    """One example record per class side by side (columns), selected leads as rows, on ECG paper.

    records: {class name: x [12, T] in mV}. Each panel shows ``window`` seconds of one lead
    with 1 mm squares kept square; all panels of a row share one amplitude range
    (:func:`amplitude_range`), so voltages compare across classes. Traces: one per (class, lead).
    """
    if not records:
        raise ValueError("class_examples_figure needs at least one record")
    leads = [lead] if isinstance(lead, str) else list(lead)
    classes = list(records)
    shown = {(name, ld): lead_signal(records[name], ld) for name in classes for ld in leads}
    s = window_slice(next(iter(shown.values())).size, fs, window)
    ranges = [amplitude_range([shown[name, ld][s] for name in classes], min_span_mv) for ld in leads]
    spans = [hi - lo for lo, hi in ranges]
    h_gap, v_gap = 0.02, 0.03
    fig = make_subplots(rows=len(leads), cols=len(classes), column_titles=classes, horizontal_spacing=h_gap,
                        vertical_spacing=v_gap, row_heights=[span / sum(spans) for span in spans])
    duration = window[1] - window[0]
    for c, name in enumerate(classes, start=1):
        for r, ld in enumerate(leads, start=1):
            signal = shown[name, ld]
            t = time_axis(signal.size, fs)[s] - window[0]
            fig.add_trace(go.Scatter(x=t, y=signal[s], mode="lines", line=dict(color=TRACE, width=1),
                                     name=f"{name} {display_lead(ld)}", showlegend=False), row=r, col=c)
            _paper_axes(fig, row=r, col=c)
            fig.update_xaxes(range=[0.0, duration], row=r, col=c)
            fig.update_yaxes(range=list(ranges[r - 1]), row=r, col=c)
            if c == 1:
                fig.update_yaxes(title_text=display_lead(ld), title_standoff=2, row=r, col=c)
    margin = dict(l=50, r=10, t=70, b=10)
    width_px = len(classes) * duration * MM_PER_S * px_per_mm / (1 - h_gap * (len(classes) - 1))
    height_px = sum(spans) * MM_PER_MV * px_per_mm / (1 - v_gap * (len(leads) - 1))
    fig.update_layout(width=int(width_px) + margin["l"] + margin["r"],
                      height=int(height_px) + margin["t"] + margin["b"], plot_bgcolor=PAPER_BG, margin=margin,
                      title=f"one example per class, first {duration:g} s (25 mm/s, 10 mm/mV)")
    return fig


def power_spectrum(x: np.ndarray, fs: float, segment_s: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Welch power spectral density of one lead [T]: frequencies [F] (Hz) and PSD [F] (mV^2/Hz).

    Segments of ``segment_s`` seconds (frequency resolution 1 / segment_s Hz), Hann window.
    """
    x = np.asarray(x, dtype=float)
    return welch(x, fs, nperseg=min(x.size, int(round(segment_s * fs))))


def log_range(spectra: Sequence[np.ndarray], decades_below: float = 3.0) -> list[float]:
    """log10 y range for spectra: from ``decades_below`` decades under the first spectrum's
    smallest positive value (filtered spectra fall to ~1e-20 otherwise) to above the largest."""
    first = np.asarray(spectra[0])
    low = float(np.log10(first[first > 0].min())) - decades_below
    high = float(np.log10(max(np.max(s) for s in spectra))) + 0.5
    return [low, high]


def spectrum_figure(signals: Mapping[str, np.ndarray], fs: float, title: str = "",
                    marks_hz: Sequence[float] = ()) -> go.Figure:
    """Power spectra (log scale) of one lead in several versions, e.g. {"raw": [T], "notched": [T]}.

    ``marks_hz`` draws dotted vertical lines (a notch frequency, cut-offs). Traces: one per signal.
    """
    colours = [BEFORE, AFTER, PEAK, TRACE]
    fig = go.Figure()
    spectra = [power_spectrum(x, fs) for x in signals.values()]
    for i, (name, (freqs, psd)) in enumerate(zip(signals, spectra, strict=True)):
        fig.add_trace(go.Scatter(x=freqs, y=psd, mode="lines", name=name,
                                 line=dict(color=colours[i % len(colours)], width=1.2)))
    for hz in marks_hz:
        fig.add_vline(x=hz, line=dict(color=PEAK, dash="dot", width=1))
    fig.update_layout(title=title, template=TEMPLATE, height=330, xaxis_title="frequency (Hz)",
                      yaxis_title="power (mV²/Hz)", legend=dict(orientation="h", y=-0.25))
    fig.update_yaxes(type="log", exponentformat="power", range=log_range([psd for _, psd in spectra]))
    fig.update_xaxes(range=[0.0, fs / 2])
    return fig


# --------------------------------------------------------------------------- label efficiency


def label_efficiency_figure(
    results: Mapping | Sequence[Mapping], teacher_auc: float | None = None
) -> go.Figure:
    """Test macro-AUC against labelled records (log x): a line per method, a band of ± 1 sd over seeds.

    ``results``: an experiment's results (its ``label_efficiency`` rows are read) or those rows
    (``method``, ``n_labelled``, ``macro_auc``, ``macro_auc_sd``). The teacher is a dashed
    horizontal line at ``teacher_auc``, by default the results' teacher test macro-AUC when
    present. Traces: per method its band, then its line.
    """
    rows = results["label_efficiency"] if isinstance(results, Mapping) else list(results)
    if teacher_auc is None and isinstance(results, Mapping):
        teacher_auc = results.get("teacher", {}).get("test_macro_auc")
    if not rows:
        raise ValueError("label_efficiency_figure needs at least one (method, labelled records) row")
    palette = pio.templates["plotly_white"].layout.colorway
    fig = go.Figure()
    for i, method in enumerate(dict.fromkeys(r["method"] for r in rows)):
        points = sorted((r for r in rows if r["method"] == method), key=lambda r: r["n_labelled"])
        n = [r["n_labelled"] for r in points]  # [K] budgets, ascending
        mean = np.array([r["macro_auc"] for r in points])  # [K]
        sd = np.array([r["macro_auc_sd"] for r in points])  # [K]
        colour = palette[i % len(palette)]
        band = np.concatenate([mean + sd, (mean - sd)[::-1]])  # upper edge out, lower edge back
        fig.add_trace(go.Scatter(x=n + n[::-1], y=band, fill="toself", fillcolor=colour, opacity=0.2,
                                 line=dict(width=0), hoverinfo="skip", legendgroup=method, showlegend=False,
                                 name=f"{method} ± sd"))
        hover = f"{method}: %{{y:.3f}} ± %{{customdata:.3f}} at %{{x}} labelled<extra></extra>"
        fig.add_trace(go.Scatter(x=n, y=mean, mode="lines+markers", name=method, legendgroup=method,
                                 line=dict(color=colour), customdata=sd, hovertemplate=hover))
    if teacher_auc is not None:
        fig.add_hline(y=teacher_auc, line=dict(color=TRACE, dash="dash", width=1.5),
                      annotation_text=f"teacher {teacher_auc:.3f}", annotation_position="bottom right")
    ticks = sorted({r["n_labelled"] for r in rows})
    fig.update_xaxes(type="log", title="labelled training records", tickvals=ticks,
                     ticktext=[str(t) for t in ticks])
    fig.update_layout(title="label efficiency: test macro-AUC (mean ± sd over seeds)",
                      template=TEMPLATE, yaxis_title="test macro-AUC", height=460,
                      legend=dict(orientation="h", y=-0.2))
    return fig


def label_efficiency_png(
    rows: Sequence[Mapping], path: str | os.PathLike, teacher_auc: float | None = None, title: str = ""
) -> Path:
    """The label-efficiency figure as a static PNG (for the README, where no plotly runs).

    The same content as :func:`label_efficiency_figure` (a line per method, a band of +-1 sd over
    seeds, the teacher dashed), drawn with matplotlib's Agg backend; written atomically.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from evl_lite.atomic import replace_atomically

    fig, ax = plt.subplots(figsize=(7.5, 4.6), dpi=120)
    for method in dict.fromkeys(r["method"] for r in rows):
        points = sorted((r for r in rows if r["method"] == method), key=lambda r: r["n_labelled"])
        n = np.array([r["n_labelled"] for r in points])  # [K]
        mean = np.array([r["macro_auc"] for r in points])  # [K]
        sd = np.array([r["macro_auc_sd"] for r in points])  # [K]
        (line,) = ax.plot(n, mean, marker="o", label=method)
        ax.fill_between(n, mean - sd, mean + sd, color=line.get_color(), alpha=0.2, linewidth=0)
    if teacher_auc is not None:
        ax.axhline(teacher_auc, color="0.3", linestyle="--", linewidth=1.2,
                   label=f"teacher {teacher_auc:.3f}")
    ticks = sorted({r["n_labelled"] for r in rows})
    ax.set_xscale("log")
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("labelled training records")
    ax.set_ylabel("test macro-AUC (mean +- sd over seeds)")
    ax.set_title(title or "label efficiency")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    replace_atomically(tmp, path)
    return path
