"""Tests of evl_lite.data.preprocessing: filter responses, resampling, standardisation, R-peaks, SQI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import wfdb
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from evl_lite.constants import LEADS
from evl_lite.data.preprocessing import (
    PreprocessConfig,
    Standardiser,
    average_beat,
    bandpass,
    detect_r_peaks,
    heart_rate_bpm,
    notch_powerline,
    preprocess,
    remove_baseline_wander,
    resample,
    segment_beats,
    signal_quality,
    standardise_record,
)

LEAD_II = LEADS.index("II")


def sines(fs: float, seconds: float, freqs: tuple[float, ...]) -> np.ndarray:
    """Sum of unit-amplitude sinusoids [T]."""
    t = np.arange(int(round(fs * seconds))) / fs
    return sum(np.sin(2 * np.pi * f * t + 0.3) for f in freqs)


def amplitude(y: np.ndarray, fs: float, freq: float, trim: float = 0.1) -> float:
    """Least-squares amplitude of the freq-Hz component of y [T], edges (trim share each) dropped."""
    cut = int(trim * y.size)
    t = np.arange(y.size)[cut:y.size - cut] / fs
    basis = np.stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t), np.ones_like(t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, y[cut:y.size - cut], rcond=None)
    return float(np.hypot(coef[0], coef[1]))


def gaussian_ecg(fs: float, bpm: float, seconds: float = 10.0) -> np.ndarray:
    """A deterministic ECG-like lead [T] in mV: P, Q, R, S, T waves as Gaussians, one beat per 60/bpm s."""
    t = np.arange(int(round(fs * seconds))) / fs
    waves = ((-0.20, 0.15, 0.025), (-0.03, -0.10, 0.010), (0.0, 1.0, 0.010),
             (0.03, -0.25, 0.010), (0.25, 0.30, 0.040))  # (offset s, amplitude mV, width s)
    x = np.zeros_like(t)
    for beat in np.arange(0.5, seconds, 60.0 / bpm):
        for offset, amp, width in waves:
            x += amp * np.exp(-((t - beat - offset) ** 2) / (2 * width**2))
    return x


# ----------------------------------------------------------------------------- filters


def test_bandpass_keeps_10hz_and_removes_drift_and_60hz():
    fs = 500.0
    x = sines(fs, 20.0, (0.1, 10.0, 60.0))
    y = bandpass(x, fs, low=0.5, high=40.0)
    assert amplitude(y, fs, 10.0) == pytest.approx(1.0, abs=0.01)
    assert amplitude(y, fs, 0.1) < 0.01
    # 4th-order Butterworth run forwards and backwards: |H(60 Hz)|^2 = 1 / (1 + (60/40)^8) = 0.038
    # (-28 dB; one pass would leave 0.19)
    assert amplitude(y, fs, 60.0) == pytest.approx(1 / (1 + 1.5**8), abs=0.01)
    assert amplitude(x, fs, 60.0) == pytest.approx(1.0, abs=0.01)  # the measurement itself works


def test_bandpass_is_zero_phase():
    fs = 500.0
    x = sines(fs, 10.0, (10.0,))
    y = bandpass(x, fs)
    centre = slice(1500, 3500)  # 3-7 s: away from the edge transients of the 0.5 Hz high-pass
    assert np.max(np.abs(y[centre] - x[centre])) < 0.01  # no delay: the 10 Hz sine overlays itself


def test_bandpass_clips_high_cutoff_below_nyquist():
    fs = 100.0
    x = np.stack([sines(fs, 10.0, (10.0,)), sines(fs, 10.0, (0.1,))])  # [2, T]
    y = bandpass(x, fs, low=0.5, high=60.0)  # 60 Hz >= Nyquist 50 Hz: clipped to 45 Hz
    assert y.shape == x.shape and np.isfinite(y).all()
    assert amplitude(y[0], fs, 10.0) == pytest.approx(1.0, abs=0.01)
    assert amplitude(y[1], fs, 0.1) < 0.01
    with pytest.raises(ValueError, match="low < high"):
        bandpass(x, fs, low=47.0, high=60.0)


def test_remove_baseline_wander_removes_slow_drift_only():
    fs = 500.0
    x = 2.0 * sines(fs, 20.0, (0.1,)) + sines(fs, 20.0, (10.0,))
    y = remove_baseline_wander(x, fs, cutoff=0.5)
    assert amplitude(y, fs, 0.1) < 0.02
    assert amplitude(y, fs, 10.0) == pytest.approx(1.0, abs=0.01)


def test_notch_removes_50hz_and_keeps_neighbours():
    fs = 500.0
    x = np.stack([sines(fs, 10.0, (10.0, 40.0, 50.0))] * 3)  # [3, T]
    y = notch_powerline(x, fs, freq=50.0)
    assert y.shape == x.shape
    assert amplitude(y[1], fs, 50.0) < 0.01
    assert amplitude(y[1], fs, 10.0) == pytest.approx(1.0, abs=0.01)
    assert amplitude(y[1], fs, 40.0) == pytest.approx(1.0, abs=0.02)


def test_notch_is_skipped_when_mains_is_above_nyquist():
    x = np.random.default_rng(0).standard_normal((12, 1000))
    np.testing.assert_array_equal(notch_powerline(x, 100.0, freq=50.0), x)


def test_filters_refuse_signals_shorter_than_their_padding():
    with pytest.raises(ValueError, match="needs more than 27 samples"):
        bandpass(np.ones(20), 500.0)


# ----------------------------------------------------------------------------- resampling


@pytest.mark.parametrize("fs_in", [500, 1000, 250, 360])
def test_resample_to_100hz_keeps_length_and_amplitude(fs_in):
    x = np.stack([sines(fs_in, 10.0, (5.0,))] * 12)  # [12, 10 s]
    y = resample(x, fs_in, 100)
    assert y.shape == (12, 1000)
    assert amplitude(y[0], 100.0, 5.0) == pytest.approx(1.0, abs=0.01)


def test_resample_uses_reduced_fraction_and_keeps_float32():
    x = np.zeros((2, 3601), dtype=np.float32)
    y = resample(x, 360.0, 100.0)  # up 5, down 18
    assert y.shape == (2, math.ceil(3601 * 5 / 18)) and y.dtype == np.float32
    same = np.ones(7)
    assert resample(same, 100, 100) is not None and resample(same, 100, 100).shape == (7,)


# ----------------------------------------------------------------------------- standardisation


def _train_test(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    means, scales = rng.uniform(-2, 2, 12), rng.uniform(0.1, 3, 12)
    train = (means[:, None] + scales[:, None] * rng.standard_normal((40, 12, 300))).astype(np.float32)
    return train, means, scales, rng.standard_normal((5, 12, 300))


def test_standardiser_fits_train_statistics_only():
    train, means, scales, other = _train_test()
    s = Standardiser().fit(train)
    z = s.transform(train)  # [40, 12, 300]
    assert z.dtype == np.float32
    np.testing.assert_allclose(z.mean(axis=(0, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(z.std(axis=(0, 2)), 1.0, atol=1e-4)
    np.testing.assert_allclose(s.mean_, means, atol=0.05)
    # other data (mean 0, std 1) is mapped with the train statistics: not re-centred on itself
    z_other = s.transform(other)
    np.testing.assert_allclose(z_other.mean(axis=(0, 2)), -s.mean_ / s.std_, atol=0.1)
    np.testing.assert_allclose(s.transform(other[0]), z_other[0])  # [12, T] works too
    chunked = Standardiser().fit(train, chunk=3)
    np.testing.assert_allclose(chunked.std_, train.astype(np.float64).std(axis=(0, 2)), rtol=1e-10)


def test_standardiser_zero_std_lead_gets_std_one():
    train, *_ = _train_test()
    train[:, 4] = 7.0
    s = Standardiser().fit(train)
    assert s.std_[4] == 1.0 and s.mean_[4] == pytest.approx(7.0)
    assert np.all(s.transform(train)[:, 4] == 0.0)


def test_standardiser_round_trip_through_json():
    train, _, _, other = _train_test()
    s = Standardiser().fit(train)
    loaded = Standardiser.from_dict(json.loads(json.dumps(s.to_dict())))
    np.testing.assert_array_equal(loaded.transform(other), s.transform(other))


def test_standardiser_errors_are_clear():
    with pytest.raises(RuntimeError, match="not fitted"):
        Standardiser().transform(np.zeros((12, 10)))
    with pytest.raises(ValueError, match=r"\[N, leads, T\]"):
        Standardiser().fit(np.zeros((12, 10)))
    s = Standardiser().fit(np.random.default_rng(0).standard_normal((3, 12, 10)))
    with pytest.raises(ValueError, match="fitted on 12 leads"):
        s.transform(np.zeros((8, 10)))
    with pytest.raises(ValueError, match="positive"):
        Standardiser.from_dict({"mean": [0.0, 1.0], "std": [1.0, 0.0]})


def test_standardise_record_zscores_each_lead():
    x = np.random.default_rng(1).standard_normal((12, 500)) * np.arange(1, 13)[:, None] + 3.0
    x[5] = 2.0
    z = standardise_record(x)
    np.testing.assert_allclose(np.delete(z.mean(axis=1), 5), 0.0, atol=1e-12)
    np.testing.assert_allclose(np.delete(z.std(axis=1), 5), 1.0, atol=1e-12)
    assert np.all(z[5] == 0.0)


# ----------------------------------------------------------------------------- pipeline


def test_preprocess_500hz_record_to_100hz():
    fs = 500.0
    lead = gaussian_ecg(fs, 72) + 0.3 * sines(fs, 10.0, (0.2,)) + 0.2 * sines(fs, 10.0, (50.0,))
    x = np.stack([lead * g for g in np.linspace(0.5, 1.6, 12)]).astype(np.float32)  # [12, 5000]
    y, fs_out = preprocess(x, fs, PreprocessConfig())
    assert fs_out == 100 and y.shape == (12, 1000) and y.dtype == np.float32
    assert amplitude(y[0].astype(float), 100.0, 0.2) < 0.01  # wander gone
    clean, _ = preprocess(gaussian_ecg(fs, 72), fs)
    # lead 5 has gain 1.0: away from the edges it matches the clean ECG preprocessed alone
    assert np.max(np.abs(y[5, 200:800] - clean[200:800])) < 0.01
    z, _ = preprocess(x, fs, PreprocessConfig(zscore_per_record=True))
    np.testing.assert_allclose(z.std(axis=1), 1.0, atol=1e-4)


@pytest.mark.parametrize("shape", [(5000,), (12, 5000), (3, 12, 5000)])
def test_preprocess_works_along_the_last_axis(shape):
    x = np.broadcast_to(gaussian_ecg(500.0, 60), shape)
    y, _ = preprocess(x, 500.0)
    assert y.shape == shape[:-1] + (1000,)
    np.testing.assert_allclose(y.reshape(-1, 1000), preprocess(x.reshape(-1, 5000)[0], 500.0)[0][None, :]
                               .repeat(int(np.prod(shape[:-1])), axis=0), atol=1e-12)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_preprocess_refuses_non_finite_input(bad):
    x = np.zeros((12, 5000))
    x[3, 100] = bad
    with pytest.raises(ValueError, match=r"non-finite values \(NaN or inf\) at first-axis indices \[3\]"):
        preprocess(x, 500.0)
    with pytest.raises(ValueError, match="non-finite"):
        signal_quality(x, 500.0)


def test_preprocess_config_is_validated():
    with pytest.raises(ValueError, match="band"):
        PreprocessConfig(band=(40.0, 0.5))
    with pytest.raises(ValueError, match="target_fs"):
        PreprocessConfig(target_fs=0)


# ----------------------------------------------------------------------------- R-peaks and beats


@pytest.mark.parametrize("fs", [100, 250, 360, 500])
@pytest.mark.parametrize("bpm", [50, 75, 120])
def test_r_peaks_give_the_heart_rate(fs, bpm):
    lead = gaussian_ecg(fs, bpm) + 0.02 * np.random.default_rng(fs + bpm).standard_normal(10 * fs)
    peaks = detect_r_peaks(lead, fs)
    assert heart_rate_bpm(peaks, fs) == pytest.approx(bpm, abs=3)
    truth = np.arange(0.5, 10.0, 60.0 / bpm) * fs
    assert abs(peaks.size - truth.size) <= 1
    assert np.all(np.min(np.abs(peaks[:, None] - truth[None, :]), axis=1) <= 0.02 * fs)  # within 20 ms


@pytest.mark.parametrize("fs", [100, 500])
def test_r_peaks_on_neurokit_simulation(fs):
    import neurokit2 as nk

    # heart_rate=70, random_state=0: checked to finish (neurokit2 0.2.13's ecgsyn loops forever
    # for some settings, e.g. heart_rate=60, sampling_rate=100, random_state=0)
    ecg = nk.ecg_simulate(duration=10, sampling_rate=fs, heart_rate=70, noise=0.05, random_state=0)
    assert heart_rate_bpm(detect_r_peaks(ecg, fs), fs) == pytest.approx(70, abs=3)


def test_flat_or_short_lead_has_no_peaks():
    assert detect_r_peaks(np.zeros(1000), 100).size == 0
    assert detect_r_peaks(np.full(1000, 2.5), 100).size == 0
    assert detect_r_peaks(gaussian_ecg(100, 70, seconds=0.9), 100).size == 0
    flat_after_filtering, _ = preprocess(np.full((12, 5000), 300.0), 500.0)
    assert detect_r_peaks(flat_after_filtering[LEAD_II], 100).size == 0
    with pytest.raises(ValueError, match="one lead"):
        detect_r_peaks(np.zeros((12, 1000)), 100)


def test_heart_rate_bpm():
    assert heart_rate_bpm(np.arange(0, 1000, 50), 100) == pytest.approx(120.0)
    assert heart_rate_bpm(np.array([0, 100, 150, 250, 350]), 100) == pytest.approx(60.0)  # median RR
    assert math.isnan(heart_rate_bpm(np.array([10]), 100))


def test_segment_and_average_beats():
    fs = 100
    x = np.stack([gaussian_ecg(fs, 60) * (k + 1) for k in range(12)])  # [12, 1000], R at 0.5, 1.5, ... s
    peaks = np.array([10, 50, 150, 250, 950, 990])  # 10: too early, 990: too late (needs 45 after)
    beats = segment_beats(x, peaks, fs, before=0.25, after=0.45)
    assert beats.shape == (4, 12, 70)
    np.testing.assert_array_equal(beats[1], x[:, 150 - 25:150 + 45])
    assert segment_beats(x[0], peaks, fs).shape == (4, 70)
    true_peaks = (np.arange(0.5, 10.0, 1.0) * fs).astype(int)
    avg = average_beat(x, true_peaks, fs)  # [12, 70]
    assert avg.shape == (12, 70) and np.argmax(avg[0]) == 25  # R at `before`
    np.testing.assert_allclose(avg[0], x[0, 150 - 25:150 + 45], atol=1e-9)  # identical beats
    with pytest.raises(ValueError, match="no complete beat"):
        average_beat(x, np.array([5]), fs)


# ----------------------------------------------------------------------------- signal quality


def test_signal_quality_flat_line_is_zero():
    x = np.zeros((12, 5000))
    x[1] = 3.0
    x[2:] = gaussian_ecg(500, 70)
    q = signal_quality(x, 500)
    assert q.shape == (12,) and q[0] == 0.0 and q[1] == 0.0 and q[2] > 0.9


def test_signal_quality_saturation_lowers_the_score():
    fs = 500
    lead = gaussian_ecg(fs, 70)
    clipped = lead.copy()
    clipped[1000:3500] = 1.5  # amplifier pinned at its rail for 5 s of 10 s
    q_clean, q_clipped = signal_quality(np.stack([lead, clipped]), fs)
    assert q_clipped <= 0.5 * q_clean


@pytest.mark.parametrize("fs", [100, 500])
def test_signal_quality_prefers_clean_ecg(fs):
    rng = np.random.default_rng(3)
    clean = gaussian_ecg(fs, 70) + 0.01 * rng.standard_normal(10 * fs)
    noisy = clean + 0.5 * rng.standard_normal(clean.size)
    wander = clean + 2.0 * sines(fs, 10.0, (0.3,))
    q = signal_quality(np.stack([clean, noisy, wander, rng.standard_normal(clean.size)]), fs)
    assert q[0] > 0.9
    assert q[1] < 0.3 and q[2] < 0.3 and q[3] < 0.1
    assert signal_quality(clean, fs).shape == ()


def test_signal_quality_needs_the_qrs_band():
    with pytest.raises(ValueError, match="fs > 30"):
        signal_quality(np.ones(100), 25.0)


# ----------------------------------------------------------------------------- properties

RATES = st.sampled_from([100.0, 250.0, 360.0, 500.0])


def records(min_t: int, max_t: int = 1200):
    """Random finite records [leads, T >= min_t], amplitudes up to 1e4 (mV-scale and far beyond)."""
    shape = st.tuples(st.integers(1, 3), st.integers(min_t, max_t))
    return shape.flatmap(lambda s: arrays(np.float64, s, elements=st.floats(-1e4, 1e4, allow_nan=False)))


@settings(max_examples=40, deadline=None)
@given(x=records(min_t=28), fs=RATES)  # the 4 sections' zero-phase pad needs more than 27
def test_property_bandpass_is_finite_and_shape_preserving(x, fs):
    y = bandpass(x, fs)
    assert y.shape == x.shape and np.isfinite(y).all()


@settings(max_examples=40, deadline=None)
@given(x=records(min_t=34), fs=RATES)
def test_property_preprocess_contract(x, fs):
    y, fs_out = preprocess(x, fs)
    assert fs_out == 100
    assert y.shape == (x.shape[0], math.ceil(x.shape[1] * 100 / fs)) and np.isfinite(y).all()


@settings(max_examples=60, deadline=None)
@given(x=records(min_t=1), fs=RATES)
def test_property_signal_quality_in_unit_interval(x, fs):
    q = signal_quality(x, fs)
    assert q.shape == (x.shape[0],) and np.isfinite(q).all()
    assert np.all((q >= 0) & (q <= 1))


# ----------------------------------------------------------------------------- real PTB-XL


def test_real_record_heart_rate_matches_its_100hz_version(ptbxl500):
    hr_path = ptbxl500 / "records500" / "00000" / "00001_hr"
    x500 = wfdb.rdsamp(str(hr_path))[0].T  # [12, 5000] mV
    x100 = wfdb.rdsamp(str(ptbxl500 / "records100" / "00000" / "00001_lr"))[0].T  # [12, 1000]
    y, fs = preprocess(x500, 500.0)
    assert y.shape == (12, 1000)
    rate = heart_rate_bpm(detect_r_peaks(y[LEAD_II], fs), fs)
    y100, _ = preprocess(x100, 100.0)  # the notch is skipped at 100 Hz
    rate100 = heart_rate_bpm(detect_r_peaks(y100[LEAD_II], 100), 100)
    assert 40 <= rate <= 150
    assert rate == pytest.approx(rate100, abs=3)
    # our 500 -> 100 Hz resampling agrees with PTB-XL's stored 100 Hz version (0.986 when checked)
    ours = resample(x500, 500, 100)
    assert np.mean([np.corrcoef(ours[k], x100[k])[0, 1] for k in range(12)]) > 0.97
    assert np.corrcoef(y[LEAD_II], y100[LEAD_II])[0, 1] > 0.9
    assert signal_quality(y, fs).mean() > signal_quality(x500, 500.0).mean()
