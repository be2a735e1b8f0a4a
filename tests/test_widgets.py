"""Preprocessing explorer: the pure state logic and the ipywidgets wiring (no browser needed)."""

from __future__ import annotations

import numpy as np
import pytest

from evl_lite.constants import LEADS
from evl_lite.data.synthetic import synthesize_record
from evl_lite.errors import ECGDataError
from evl_lite.explorers import widgets

FS = 500.0
II = LEADS.index("II")


@pytest.fixture(scope="module")
def noisy() -> tuple[np.ndarray, dict]:
    """A synthetic NORM record at 500 Hz, x [12, 5000], with added drift, 50 Hz hum and EMG-like noise."""
    x, info = synthesize_record(seed=0, ecg_id=7, superclasses=("NORM",), noise=False)
    t = np.arange(x.shape[1]) / FS
    rng = np.random.default_rng(1)
    x = x + 0.5 * np.sin(2 * np.pi * 0.2 * t) + 0.1 * np.sin(2 * np.pi * 50.0 * t)
    x = x + 0.02 * rng.standard_normal(x.shape) * np.linspace(0.5, 1.5, 12)[:, None]
    return x, info


def test_validate_cutoffs_explains_impossible_settings():
    assert widgets.validate_cutoffs(500.0, 0.5, 40.0, 50.0) is None
    assert "below the high cut-off" in widgets.validate_cutoffs(500.0, 5.0, 5.0, None)
    assert "Nyquist" in widgets.validate_cutoffs(100.0, 0.5, 50.0, None)
    assert "250 Hz" in widgets.validate_cutoffs(500.0, 0.5, 300.0, None)
    assert "above 0 Hz" in widgets.validate_cutoffs(500.0, 0.0, 40.0, None)
    assert "Switch the notch off" in widgets.validate_cutoffs(100.0, 0.5, 40.0, 50.0)
    assert widgets.validate_cutoffs(100.0, 0.5, 40.0, 0.0) is None


def test_band_power_and_removed_fraction():
    t = np.arange(5000) / FS
    x = np.sin(2 * np.pi * 10.0 * t) + 0.5 * np.sin(2 * np.pi * 60.0 * t)
    assert widgets.band_power(x, FS, 9.0, 11.0) == pytest.approx(0.5, rel=0.02)  # mean square of a unit sine
    assert widgets.band_power(x, FS, 59.0, 61.0) == pytest.approx(0.125, rel=0.02)
    assert widgets.band_power(x, FS, 20.0, 50.0) < 1e-3
    assert widgets.removed_fraction(2.0, 0.5) == 0.75 and widgets.removed_fraction(0.0, 0.0) == 0.0


def test_default_state_filters_and_finds_the_true_heart_rate(noisy):
    x, info = noisy
    state = widgets.explorer_state(x, FS, "II", 0.5, 40.0, 50.0)
    assert state["ok"] and state["message"] == ""
    assert state["filtered"].shape == (5000,) and state["t"][-1] == pytest.approx(9.998)
    assert state["heart_rate_bpm"] == pytest.approx(info["heart_rate_bpm"], abs=3.0)
    assert state["baseline_removed"] > 0.9  # the 0.2 Hz drift is gone
    assert state["noise_removed"] > 0.9  # the 50 Hz hum and the noise above 40 Hz too
    assert 0.0 <= state["sqi_raw"] <= 1.0 and 0.0 <= state["sqi_filtered"] <= 1.0
    assert state["sqi_filtered"] >= state["sqi_raw"]
    assert "heart rate" in widgets.status_text(state)


def test_changing_cut_offs_changes_the_output_as_expected(noisy):
    x, _ = noisy
    base = widgets.explorer_state(x, FS, "II", 0.5, 40.0, None)
    narrow = widgets.explorer_state(x, FS, "II", 0.5, 15.0, None)
    wide = widgets.explorer_state(x, FS, "II", 0.5, 100.0, None)
    f = base["freqs"]

    def power_above(state, hz):
        return state["psd_filtered"][f > hz].sum()

    # a lower high cut-off leaves less power above 20 Hz; a higher one lets the 50 Hz hum through
    assert power_above(narrow, 20.0) < 0.2 * power_above(base, 20.0)
    hum = (f > 48) & (f < 52)
    assert wide["psd_filtered"][hum].sum() > 10 * base["psd_filtered"][hum].sum()
    # the notch removes the hum that a 100 Hz high cut-off keeps
    notched = widgets.explorer_state(x, FS, "II", 0.5, 100.0, 50.0)
    assert notched["psd_filtered"][hum].sum() < 0.1 * wide["psd_filtered"][hum].sum()
    # a higher low cut-off removes more of the slow content
    slow = (f > 0) & (f < 1.5)
    high_pass_3 = widgets.explorer_state(x, FS, "II", 3.0, 40.0, None)
    assert high_pass_3["psd_filtered"][slow].sum() < 0.5 * base["psd_filtered"][slow].sum()
    # another lead gives another signal
    v1 = widgets.explorer_state(x, FS, "V1", 0.5, 40.0, None)
    assert v1["lead"] == "V1" and not np.allclose(v1["filtered"], base["filtered"])


@pytest.mark.parametrize("low, high, notch, expected", [
    (5.0, 2.0, None, "below the high cut-off"),
    (0.5, 250.0, None, "Nyquist"),
    (0.5, 40.0, 300.0, "notch"),
])
def test_invalid_cut_offs_give_a_message_not_a_crash(noisy, low, high, notch, expected):
    x, _ = noisy
    state = widgets.explorer_state(x, FS, "II", low, high, notch)
    assert not state["ok"] and expected in state["message"]
    assert state["filtered"] is None and state["heart_rate_bpm"] is None and state["peaks"].size == 0
    np.testing.assert_array_equal(state["raw"], x[II])
    assert widgets.status_text(state).startswith("Cannot filter")


def test_bad_records_raise_a_clear_error():
    with pytest.raises(ECGDataError, match=r"\[12, T\]"):
        widgets.explorer_state(np.zeros((3, 100)), FS)
    with pytest.raises(ValueError, match="unknown lead"):
        widgets.explorer_state(np.zeros((12, 1000)), FS, lead="V7")


def test_explorer_builds_and_a_slider_updates_the_figure(noisy):
    x, _ = noisy
    explorer = widgets.preprocessing_explorer({"noisy": (x, FS), "100 Hz": (x[:, ::5], 100.0)}, lead="II")
    fig = explorer.figure
    assert len(fig.data) == 5
    np.testing.assert_allclose(fig.data[1].y, explorer.state["filtered"])
    before = np.array(fig.data[1].y)
    assert fig.layout.shapes[0].x1 == 40.0

    explorer.high.value = 15.0
    after = np.array(fig.data[1].y)
    assert explorer.state["high_hz"] == 15.0 and fig.layout.shapes[0].x1 == 15.0
    assert not np.allclose(before, after)
    assert np.abs(np.diff(after)).mean() < np.abs(np.diff(before)).mean()  # smoother
    (shown,) = explorer.output.outputs  # the Output widget shows the updated figure
    assert shown["data"]["application/vnd.plotly.v1+json"]["layout"]["shapes"][0]["x1"] == 15.0

    explorer.lead.value = "V5"
    np.testing.assert_allclose(fig.data[0].y, x[LEADS.index("V5")])

    explorer.record.value = "100 Hz"  # a 50 Hz notch is impossible at 100 Hz: message, raw only
    assert not explorer.state["ok"] and "Cannot filter" in explorer.status.value
    assert len(fig.data[1].y) == 0 and len(fig.data[0].y) == 1000
    explorer.notch.value = 0.0
    assert explorer.state["ok"] and len(fig.data[1].y) == 1000


def test_explorer_needs_records():
    with pytest.raises(ValueError, match="at least one record"):
        widgets.preprocessing_explorer({})
