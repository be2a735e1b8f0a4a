"""Interactive preprocessing explorer: move the filter cut-offs and watch a lead, its spectrum,
its R peaks, heart rate and signal quality change.

The chain is the one :func:`evl_lite.data.preprocessing.preprocess` applies, with the cut-offs
free: an IIR notch at the mains frequency (``notch_powerline``), then a zero-phase
Butterworth band-pass (``bandpass``; the PTB-XL benchmark and most ECG pipelines keep
0.5-40 Hz). A filter is only defined for ``0 < low < high < fs / 2`` (Nyquist-Shannon:
a digital filter cannot act at or above half the sampling rate), so impossible settings
give a message instead of an exception.

:func:`explorer_state` is the pure, tested logic; :class:`PreprocessingExplorer` wires it
to ipywidgets (record and lead dropdowns, cut-off sliders, notch toggle) and redraws a
plotly figure into an ``Output`` widget, which works in JupyterLab, Colab and papermill
without the ``anywidget`` package that plotly's ``FigureWidget`` needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from IPython.display import display
from plotly.subplots import make_subplots
from scipy.signal import periodogram

from evl_lite.constants import LEADS
from evl_lite.data.preprocessing import (
    bandpass,
    detect_r_peaks,
    heart_rate_bpm,
    notch_powerline,
    signal_quality,
)
from evl_lite.errors import ECGDataError
from evl_lite.explorers import TEMPLATE
from evl_lite.explorers.ecg_plots import (
    AFTER,
    BEFORE,
    PEAK,
    display_lead,
    lead_index,
    power_spectrum,
    time_axis,
)

NOTCH_CHOICES = (("off", 0.0), ("50 Hz", 50.0), ("60 Hz", 60.0))


def validate_cutoffs(fs: float, low_hz: float, high_hz: float, notch_hz: float | None) -> str | None:
    """Why these filter settings cannot work at ``fs``, or None when they can."""
    nyquist = fs / 2
    if not 0 < low_hz:
        return f"The low cut-off must be above 0 Hz (got {low_hz:g} Hz)."
    if low_hz >= high_hz:
        return f"The low cut-off ({low_hz:g} Hz) must be below the high cut-off ({high_hz:g} Hz)."
    if high_hz >= nyquist:
        return (f"The high cut-off ({high_hz:g} Hz) must be below the Nyquist frequency, half the "
                f"sampling rate: {nyquist:g} Hz for this {fs:g} Hz record.")
    if notch_hz and notch_hz >= nyquist:
        return (f"A {notch_hz:g} Hz notch needs a sampling rate above {2 * notch_hz:g} Hz; this record "
                f"has {fs:g} Hz (Nyquist {nyquist:g} Hz). Switch the notch off.")
    return None


def band_power(x: np.ndarray, fs: float, low_hz: float, high_hz: float) -> float:
    """Power of x [T] in the band low_hz <= f < high_hz (periodogram, Hann window, mean removed)."""
    freqs, psd = periodogram(np.asarray(x, dtype=float), fs, window="hann", detrend="constant")
    band = (freqs >= low_hz) & (freqs < high_hz)
    return float(psd[band].sum() * (freqs[1] - freqs[0]))


def removed_fraction(before: float, after: float) -> float:
    """Share of a power that a filter removed: 1 - after / before (0 when there was none)."""
    return 0.0 if before <= 0 else float(1.0 - after / before)


def explorer_state(x_raw: np.ndarray, fs: float, lead: str = "II", low_hz: float = 0.5, high_hz: float = 40.0,
                   notch_hz: float | None = 50.0) -> dict[str, Any]:
    """Filter a record with the given cut-offs and measure what changed, for one lead.

    x_raw: [12, T] in mV. Returns ``ok`` and ``message`` (why the settings are impossible;
    the filtered entries are then None), the time axis ``t`` [T], the lead ``raw`` and
    ``filtered`` [T], ``peaks`` (R-peak indices in the filtered lead), ``heart_rate_bpm``,
    the lead's signal quality ``sqi_raw``/``sqi_filtered`` in [0, 1], spectra ``freqs``,
    ``psd_raw``/``psd_filtered`` (Welch, mV^2/Hz) and ``baseline_removed``/``noise_removed``:
    shares of the power below the low cut-off and above the high cut-off that were removed.
    """
    x = np.asarray(x_raw, dtype=float)
    if x.ndim != 2 or x.shape[0] != len(LEADS):
        raise ECGDataError(None, f"the explorer needs a record [12, T]; got shape {x.shape}")
    index = lead_index(lead)
    raw = x[index]
    notch = float(notch_hz) if notch_hz else None
    freqs, psd_raw = power_spectrum(raw, fs)
    message = validate_cutoffs(fs, low_hz, high_hz, notch)
    state: dict[str, Any] = {
        "ok": message is None, "message": message or "", "fs": float(fs), "lead": LEADS[index],
        "low_hz": float(low_hz), "high_hz": float(high_hz), "notch_hz": notch,
        "t": time_axis(raw.size, fs), "raw": raw, "freqs": freqs, "psd_raw": psd_raw,
        "sqi_raw": float(signal_quality(x, fs)[index]),
        "filtered": None, "psd_filtered": None, "peaks": np.zeros(0, dtype=int), "heart_rate_bpm": None,
        "sqi_filtered": None, "baseline_removed": None, "noise_removed": None,
    }
    if message is not None:
        return state
    y = notch_powerline(x, fs, freq=notch) if notch else x
    y = bandpass(y, fs, low=low_hz, high=high_hz)  # [12, T]
    filtered = y[index]
    peaks = np.asarray(detect_r_peaks(filtered, fs), dtype=int)
    state.update(
        filtered=filtered,
        psd_filtered=power_spectrum(filtered, fs)[1],
        peaks=peaks,
        heart_rate_bpm=float(heart_rate_bpm(peaks, fs)) if peaks.size >= 2 else None,
        sqi_filtered=float(signal_quality(y, fs)[index]),
        baseline_removed=removed_fraction(band_power(raw, fs, 0.0, low_hz),
                                          band_power(filtered, fs, 0.0, low_hz)),
        noise_removed=removed_fraction(band_power(raw, fs, high_hz, np.inf),
                                       band_power(filtered, fs, high_hz, np.inf)),
    )
    return state


def status_text(state: Mapping[str, Any]) -> str:
    """One line summarising a state: the problem, or heart rate and signal quality."""
    if not state["ok"]:
        return f"Cannot filter: {state['message']}"
    rate = "no heart rate (fewer than 2 R peaks)" if state["heart_rate_bpm"] is None else (
        f"heart rate {state['heart_rate_bpm']:.0f} bpm from {state['peaks'].size} R peaks")
    return (f"lead {display_lead(state['lead'])}: {rate}; signal quality {state['sqi_raw']:.2f} raw -> "
            f"{state['sqi_filtered']:.2f} filtered; removed: {100 * state['baseline_removed']:.0f}% of the "
            f"power below {state['low_hz']:g} Hz, {100 * state['noise_removed']:.0f}% of the power above "
            f"{state['high_hz']:g} Hz")


def explorer_figure() -> go.Figure:
    """Empty explorer figure: time panel (raw, filtered, R peaks) over spectrum panel (raw, filtered)."""
    fig = make_subplots(rows=2, cols=1, row_heights=[0.62, 0.38], vertical_spacing=0.14,
                        subplot_titles=("signal", "power spectrum (Welch)"))
    fig.add_trace(go.Scatter(mode="lines", line=dict(color=BEFORE, width=1), name="raw"), row=1, col=1)
    fig.add_trace(go.Scatter(mode="lines", line=dict(color=AFTER, width=1.2), name="filtered"), row=1, col=1)
    fig.add_trace(go.Scatter(mode="markers", marker=dict(color=PEAK, size=8, symbol="x"), name="R peaks"),
                  row=1, col=1)
    fig.add_trace(go.Scatter(mode="lines", line=dict(color=BEFORE, width=1), name="raw spectrum",
                             showlegend=False), row=2, col=1)
    fig.add_trace(go.Scatter(mode="lines", line=dict(color=AFTER, width=1.2), name="filtered spectrum",
                             showlegend=False), row=2, col=1)
    fig.update_layout(height=560, template=TEMPLATE, legend=dict(orientation="h", y=1.08, x=0.0),
                      margin=dict(t=90))
    fig.update_xaxes(title_text="time (s)", range=[0.0, 5.0], row=1, col=1)
    fig.update_yaxes(title_text="mV", row=1, col=1)
    fig.update_xaxes(title_text="frequency (Hz)", row=2, col=1)
    fig.update_yaxes(title_text="mV²/Hz", type="log", row=2, col=1)
    return fig


def cutoff_shapes(state: Mapping[str, Any]) -> list[dict]:
    """Spectrum-panel marks: the pass band shaded, the notch frequency dotted."""
    ref = {"xref": "x2", "yref": "y2 domain", "y0": 0.0, "y1": 1.0}
    shapes = [dict(type="rect", x0=state["low_hz"], x1=state["high_hz"], fillcolor=AFTER, opacity=0.08,
                   line_width=0, **ref)]
    if state["notch_hz"]:
        shapes.append(dict(type="line", x0=state["notch_hz"], x1=state["notch_hz"],
                           line=dict(color=PEAK, dash="dot"), **ref))
    return shapes


def update_explorer_figure(fig: go.Figure, state: Mapping[str, Any]) -> None:
    """Write a state into an :func:`explorer_figure` in place (traces, cut-off marks, title)."""
    empty = np.zeros(0)
    filtered = state["filtered"]
    peaks = state["peaks"]
    with fig.batch_update():
        fig.data[0].update(x=state["t"], y=state["raw"])
        fig.data[1].update(x=state["t"] if filtered is not None else empty,
                           y=filtered if filtered is not None else empty)
        fig.data[2].update(x=state["t"][peaks], y=filtered[peaks] if filtered is not None else empty)
        fig.data[3].update(x=state["freqs"], y=state["psd_raw"])
        fig.data[4].update(x=state["freqs"] if filtered is not None else empty,
                           y=state["psd_filtered"] if filtered is not None else empty)
        fig.layout.shapes = cutoff_shapes(state) if state["ok"] else ()
        fig.update_xaxes(range=[0.0, state["fs"] / 2], row=2, col=1)
        fig.layout.title = f"lead {display_lead(state['lead'])} at {state['fs']:g} Hz" + (
            "" if state["ok"] else " (settings impossible: showing the raw signal)")


def figure_bundle(fig: go.Figure) -> dict[str, Any]:
    """Display data of a figure for the default plotly renderer(s) ("plotly_mimetype" when none is set).

    Unlike ``fig._repr_mimebundle_()``, this does not re-activate the renderers, which for the
    "notebook" renderer would embed plotly.js (about 5 MB) into the notebook again on every redraw.
    """
    bundle: dict[str, Any] = {"text/plain": f"<plotly figure: {fig.layout.title.text}>"}
    for name in (pio.renderers.default or "plotly_mimetype").split("+"):
        renderer = pio.renderers[name]
        if hasattr(renderer, "to_mimebundle"):  # mimetype renderers; external ones (browser) have none
            bundle.update(renderer.to_mimebundle(fig.to_dict()))
    return bundle


class PreprocessingExplorer:
    """ipywidgets controls wired to :func:`explorer_state` and a plotly figure.

    ``records``: {label: (x [12, T] in mV, fs)}. Changing any control recomputes the state,
    updates ``figure`` in place, the ``status`` line, and redraws ``output``.
    Display the explorer (or its ``widget``) as the last expression of a cell.
    """

    def __init__(self, records: Mapping[str, tuple[np.ndarray, float]], lead: str = "II", low_hz: float = 0.5,
                 high_hz: float = 40.0, notch_hz: float | None = 50.0):
        if not records:
            raise ValueError("the preprocessing explorer needs at least one record")
        self.records = {str(k): (np.asarray(x, dtype=float), float(fs)) for k, (x, fs) in records.items()}
        style = {"description_width": "initial"}
        self.record = widgets.Dropdown(options=list(self.records), description="record", style=style)
        self.lead = widgets.Dropdown(options=[(display_lead(n), n) for n in LEADS],
                                     value=LEADS[lead_index(lead)], description="lead", style=style)
        self.low = widgets.FloatSlider(value=low_hz, min=0.05, max=5.0, step=0.05,
                                       description="low cut-off (Hz)", continuous_update=False, style=style)
        self.high = widgets.FloatSlider(value=high_hz, min=5.0, max=300.0, step=1.0,
                                        description="high cut-off (Hz)", continuous_update=False, style=style)
        self.notch = widgets.ToggleButtons(options=NOTCH_CHOICES, value=float(notch_hz or 0.0),
                                           description="notch", style=style)
        self.status = widgets.HTML()
        self.output = widgets.Output()
        self.figure = explorer_figure()
        self.state: dict[str, Any] = {}
        for control in (self.record, self.lead, self.low, self.high, self.notch):
            control.observe(self._on_change, names="value")
        self.widget = widgets.VBox([widgets.HBox([self.record, self.lead, self.notch]),
                                    widgets.HBox([self.low, self.high]), self.status, self.output])
        self.update()

    def _on_change(self, _change: dict) -> None:
        self.update()

    def update(self) -> None:
        """Recompute the state from the controls and redraw."""
        x, fs = self.records[self.record.value]
        self.state = explorer_state(x, fs, self.lead.value, self.low.value, self.high.value, self.notch.value)
        update_explorer_figure(self.figure, self.state)
        colour = "#1f4e9c" if self.state["ok"] else "#b00020"
        self.status.value = f'<span style="color:{colour}">{status_text(self.state)}</span>'
        # Replace the Output widget's content directly: capturing with `with output:` and
        # clear_output(wait=True) can hang nbclient/papermill (jupyter/nbclient#312).
        shown = {"output_type": "display_data", "data": figure_bundle(self.figure), "metadata": {}}
        self.output.outputs = (shown,)

    def _ipython_display_(self) -> None:
        display(self.widget)


def preprocessing_explorer(records: Mapping[str, tuple[np.ndarray, float]],
                           **kwargs: Any) -> PreprocessingExplorer:
    """Build the explorer (see :class:`PreprocessingExplorer`); in Colab, enable its widget manager first
    (Colab renders ipywidgets 8 only through its custom widget manager)."""
    try:
        from google.colab import output as colab_output
    except ImportError:
        pass
    else:
        colab_output.enable_custom_widget_manager()
    return PreprocessingExplorer(records, **kwargs)
