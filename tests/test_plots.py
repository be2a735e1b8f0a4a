"""ECG figures: paper geometry (pure functions) and the traces/axes the figures carry."""

from __future__ import annotations

import numpy as np
import pytest

from evl_lite.constants import LEADS
from evl_lite.errors import ECGDataError
from evl_lite.explorers import ecg_plots as plots

FS = 100.0


def record(seconds: float = 10.0, fs: float = FS) -> np.ndarray:
    """x [12, T]: lead i is a 1 Hz sine of amplitude (i + 1) / 10 mV."""
    t = np.arange(int(seconds * fs)) / fs
    return np.stack([(i + 1) / 10 * np.sin(2 * np.pi * t) for i in range(12)])


# --------------------------------------------------------------------------- geometry


def test_paper_grid_constants_follow_25_mm_per_s_and_10_mm_per_mv():
    assert plots.MINOR_S == pytest.approx(0.04) and plots.MINOR_MV == pytest.approx(0.1)
    assert plots.MAJOR_S == pytest.approx(0.2) and plots.MAJOR_MV == pytest.approx(0.5)
    # one small square is 1 mm by 1 mm, one large square 5 mm by 5 mm
    assert plots.to_mm(plots.MINOR_S, plots.MINOR_MV) == pytest.approx((1.0, 1.0))
    assert plots.to_mm(plots.MAJOR_S, plots.MAJOR_MV) == pytest.approx((5.0, 5.0))
    assert plots.to_mm(1.0, 1.0) == pytest.approx((25.0, 10.0))


def test_time_axis_is_in_seconds():
    t = plots.time_axis(500, 500.0)
    assert t[0] == 0.0 and t[-1] == pytest.approx(0.998) and t[1] - t[0] == pytest.approx(0.002)
    assert plots.beat_time_axis(70, 100.0, before=0.25)[25] == pytest.approx(0.0)
    with pytest.raises(ValueError):
        plots.time_axis(10, 0)


def test_3x4_layout_fills_columns_with_consecutive_time_windows():
    panels = plots.paper_panels(LEADS, 10.0, "3x4", row_height_mv=3.0, rhythm_lead="II")
    by_lead = {p.lead: p for p in panels[:12]}
    assert [by_lead[lead].col for lead in ("I", "II", "III")] == [0, 0, 0]
    assert [by_lead[lead].col for lead in ("AVR", "AVL", "AVF")] == [1, 1, 1]
    assert [by_lead[lead].row for lead in ("V4", "V5", "V6")] == [0, 1, 2]
    assert (by_lead["V1"].t0, by_lead["V1"].t1) == (5.0, 7.5)
    rhythm = panels[12]
    assert (rhythm.lead, rhythm.row, rhythm.t0, rhythm.t1) == ("II", 3, 0.0, 10.0)
    # baselines in the middle of each row, on a 0.5 mV major line
    assert [by_lead[lead].baseline_mv for lead in ("I", "II", "III")] == [-1.5, -4.5, -7.5]
    assert all(p.baseline_mv % plots.MAJOR_MV == 0 for p in panels)
    x_range, y_range = plots.paper_extent(panels, 10.0, 3.0)
    assert x_range == (-plots.CAL_MARGIN_S, 10.0) and y_range == (-12.0, 0.0)


def test_layout_errors_are_clear():
    with pytest.raises(ValueError, match="rows x columns"):
        plots.parse_layout("twelve")
    with pytest.raises(ValueError, match="6 places for 12 leads"):
        plots.paper_panels(LEADS, 10.0, "3x2")


def test_panel_slice_and_paper_size():
    panel = plots.Panel("V1", 0, 2, 5.0, 7.5, -1.5)
    assert plots.panel_slice(panel, 500.0, 5000) == slice(2500, 3750)
    # 10.4 s x 12 mV of paper = 260 mm x 120 mm; at 4 px/mm plus margins
    assert plots.paper_size_px((-0.4, 10.0), (-12.0, 0.0), 4.0, (10, 10, 50, 10)) == (1060, 540)


def test_calibration_pulse_is_1_mv_high_and_0_2_s_wide():
    xs, ys = plots.calibration_path([-1.5, -4.5])
    first_x, first_y = np.array(xs[:6], dtype=float), np.array(ys[:6], dtype=float)
    assert first_y.max() - first_y.min() == pytest.approx(1.0)
    high = first_x[first_y > -1.5]
    assert high.max() - high.min() == pytest.approx(0.2)
    assert xs[6] is None and ys[7] == -4.5


def test_lead_lookup_accepts_printed_names_and_rejects_bad_shapes():
    x = record(1.0)
    assert plots.lead_index("aVR") == 3
    np.testing.assert_array_equal(plots.lead_signal(x, "aVF"), x[5])
    assert plots.display_lead("AVL") == "aVL"
    with pytest.raises(ECGDataError, match=r"\[12, T\]"):
        plots.as_lead_dict(x[:3])
    with pytest.raises(ECGDataError, match="NaN"):
        bad = x.copy()
        bad[4, 10] = np.nan
        plots.as_lead_dict(bad)
    with pytest.raises(ECGDataError, match="same length"):
        plots.as_lead_dict({"I": np.zeros(10), "II": np.zeros(12)})


def test_renderer_choice():
    assert plots.choose_renderer(in_colab=True) == "colab"
    assert plots.choose_renderer(in_colab=False) == "plotly_mimetype+notebook"
    assert plots.choose_renderer(in_colab=False, env_renderer="browser") == "browser"


# --------------------------------------------------------------------------- figures


def test_ecg_paper_figure_12x1_has_one_trace_per_lead_and_square_millimetres():
    x = record()
    fig = plots.ecg_paper_figure(x, FS, title="test")
    assert len(fig.data) == 12 + 1  # leads + calibration pulses
    assert [d.name for d in fig.data[:12]] == [plots.display_lead(lead) for lead in LEADS]
    xa, ya = fig.layout.xaxis, fig.layout.yaxis
    assert xa.range[1] - xa.range[0] == pytest.approx(10.0 + plots.CAL_MARGIN_S)
    assert (xa.dtick, xa.minor.dtick, ya.dtick, ya.minor.dtick) == pytest.approx((0.2, 0.04, 0.5, 0.1))
    assert ya.scaleanchor == "x" and ya.scaleratio == pytest.approx(0.4)
    # the plot area is sized for the paper: px per mm equal on both axes
    width_px = fig.layout.width - fig.layout.margin.l - fig.layout.margin.r
    height_px = fig.layout.height - fig.layout.margin.t - fig.layout.margin.b
    width_mm = (xa.range[1] - xa.range[0]) * 25
    height_mm = (ya.range[1] - ya.range[0]) * 10
    assert width_px / width_mm == pytest.approx(height_px / height_mm, rel=0.01)
    # lead V6 (amplitude 1.2 mV) is drawn around its baseline, hover shows the true mV
    v6 = fig.data[11]
    assert np.max(v6.customdata) == pytest.approx(1.2, abs=1e-3)
    assert np.max(v6.y) - np.min(v6.y) == pytest.approx(2.4, abs=1e-3)


def test_ecg_paper_figure_3x4_with_rhythm_strip_and_lead_subset():
    x = record()
    fig = plots.ecg_paper_figure(x, FS, layout="3x4", rhythm_lead="II")
    assert len(fig.data) == 12 + 1 + 1
    v1 = next(d for d in fig.data if d.name == "V1")
    assert v1.x[0] == pytest.approx(5.0) and v1.x[-1] == pytest.approx(7.49)
    assert fig.data[12].x[-1] == pytest.approx(9.99)  # rhythm strip spans the record
    sub = plots.ecg_paper_figure({"II": x[1], "V5": x[10]}, FS, leads=["V5"], layout="1x1")
    assert [d.name for d in sub.data] == ["V5", "1 mV calibration"]


def test_before_after_figure():
    x500 = record(fs=500.0)
    x100 = x500[:, ::5]
    fig = plots.before_after_figure(x500, x100, 500.0, "V1", ("500 Hz", "100 Hz"), fs_after=100.0,
                                    window=(0.0, 2.0), overlay=np.zeros(5000))
    assert len(fig.data) == 3
    assert len(fig.data[0].x) == 1000 and len(fig.data[1].x) == 200
    assert fig.data[1].x[-1] == pytest.approx(1.99)
    np.testing.assert_allclose(fig.data[1].y, x500[6, :1000:5])


def test_beats_figure_draws_faint_beats_and_their_average():
    rng = np.random.default_rng(0)
    beats = rng.normal(size=(8, 12, 70))
    fig = plots.beats_figure(beats, 100.0, "V2")
    assert len(fig.data) == 9
    np.testing.assert_allclose(fig.data[-1].y, beats[:, 7].mean(axis=0))
    assert fig.data[-1].line.width > fig.data[0].line.width
    assert fig.data[0].x[0] == pytest.approx(-0.25) and fig.data[0].x[-1] == pytest.approx(0.44)
    assert len(plots.beats_figure(beats, 100.0, "V2", max_beats=3).data) == 4
    with pytest.raises(ECGDataError):
        plots.beats_figure(np.zeros((0, 70)), 100.0)


def test_rpeaks_figure_marks_the_peaks():
    x = record()
    peaks = np.array([25, 125, 225])
    fig = plots.rpeaks_figure(x[1], peaks, FS, "II", heart_rate=60.0)
    assert len(fig.data) == 2
    np.testing.assert_allclose(fig.data[1].x, peaks / FS)
    np.testing.assert_allclose(fig.data[1].y, x[1, peaks])
    assert "60 bpm" in fig.layout.title.text
    with pytest.raises(ValueError, match="peak indices"):
        plots.rpeaks_figure(x[1], np.array([5000]), FS)


def test_amplitude_range_holds_the_signals_on_major_grid_lines():
    assert plots.amplitude_range([np.array([-0.3, 1.2]), np.array([0.0, 2.6])]) == (-0.5, 3.0)
    assert plots.amplitude_range([np.array([-0.1, 0.2])], min_span_mv=2.0) == (-1.0, 1.0)


def test_class_examples_figure_one_column_per_class_on_a_shared_scale():
    x = record()
    records = {"NORM": x, "MI": -x, "STTC": 0.5 * x, "CD": x, "HYP": 2.5 * x}
    fig = plots.class_examples_figure(records, FS, lead=("II", "V5"), window=(0.0, 2.5))
    assert len(fig.data) == 5 * 2
    assert [a.text for a in fig.layout.annotations][:5] == list(records)
    mi_v5 = next(d for d in fig.data if d.name == "MI V5")
    np.testing.assert_allclose(mi_v5.y, -x[10, :250])
    # V5 of HYP swings +-2.5 * 1.1 = 2.75 mV: the whole V5 row (axes 6-10) gets -3 .. 3 mV
    v5_range = tuple(fig.layout["yaxis6"].range)
    assert v5_range == (-3.0, 3.0) and tuple(fig.layout["yaxis10"].range) == v5_range
    assert tuple(fig.layout.yaxis.range) == (-1.0, 1.0)
    for i in range(1, 11):
        xa, ya = fig.layout[f"xaxis{'' if i == 1 else i}"], fig.layout[f"yaxis{'' if i == 1 else i}"]
        assert tuple(xa.range) == (0.0, 2.5) and xa.minor.dtick == pytest.approx(0.04)
        assert ya.scaleanchor == f"x{'' if i == 1 else i}" and ya.scaleratio == pytest.approx(0.4)


def test_power_spectrum_and_spectrum_figure():
    t = np.arange(5000) / 500.0
    hum = np.sin(2 * np.pi * 50.0 * t)
    freqs, psd = plots.power_spectrum(hum, 500.0)
    assert freqs[1] - freqs[0] == pytest.approx(0.5)  # 2 s segments
    assert freqs[np.argmax(psd)] == pytest.approx(50.0)
    fig = plots.spectrum_figure({"raw": hum, "quiet": 0.1 * hum}, 500.0, marks_hz=[50.0])
    assert len(fig.data) == 2 and fig.layout.yaxis.type == "log"
    assert max(fig.data[1].y) == pytest.approx(0.01 * max(fig.data[0].y))
    assert fig.layout.shapes[0].x0 == 50.0 and tuple(fig.layout.xaxis.range) == (0.0, 250.0)
    assert plots.log_range([np.array([1e-6, 1e-2]), np.array([1e-20, 1e-1])]) == pytest.approx([-9.0, -0.5])
