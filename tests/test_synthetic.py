"""Synthetic PTB-XL-layout generator: layout, determinism, lead algebra, labels, folds, physiology.

The physiological tests measure the written 100 Hz records (median beats around the true R
peaks), so they fail if the files stop carrying the morphology the labels claim.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb
from scipy.signal import butter, filtfilt, find_peaks, resample_poly

from evl_lite.constants import LEADS, SUPERCLASSES
from evl_lite.data.ptbxl import load_ptbxl
from evl_lite.data.synthetic import (
    LABEL_MIX,
    TRUTH_CSV,
    allocate_labels,
    assign_folds,
    benchmark_generation,
    generate_dataset,
    record_name,
    synthesize_record,
    synthetic_draw,
)
from evl_lite.errors import ECGDataError

N = 300
FS = 100
PRE, POST = 40, 50  # median-beat window around the R peak, samples at 100 Hz (-400 .. +500 ms)
LEAD = {name: i for i, name in enumerate(LEADS)}
STATEMENT_COLUMNS = [
    "description", "diagnostic", "form", "rhythm", "diagnostic_class", "diagnostic_subclass",
    "Statement Category", "SCP-ECG Statement Description", "AHA code", "aECG REFID", "CDISC Code",
    "DICOM Code",
]


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_dataset(tmp_path_factory.mktemp("synth") / "ptbxl", N, seed=0, progress=False, workers=2)


@pytest.fixture(scope="module")
def loaded(synth: Path) -> dict:
    """Database, truth, signals x [N, 12, 1000] (mV) and baseline-corrected median beats [N, 12, 90]."""
    db = pd.read_csv(synth / "ptbxl_database.csv", index_col="ecg_id")
    truth = pd.read_csv(synth / TRUTH_CSV, index_col="ecg_id", keep_default_na=False)
    x = np.stack([wfdb.rdrecord(str(synth / rel)).p_signal.T for rel in db["filename_lr"]])
    beats = []
    for k, peaks in enumerate(truth["r_peaks_s"]):
        idx = [round(float(t) * FS) for t in peaks.split()]
        tpl = np.median(np.stack([x[k][:, i - PRE:i + POST] for i in idx if PRE <= i <= 1000 - POST]), axis=0)
        beats.append(tpl - tpl[:, PRE - 9:PRE - 5].mean(axis=1, keepdims=True))  # PR segment = 0
    labels = [set(s.split("|")) for s in truth["superclasses"]]
    return {"db": db, "truth": truth, "x": x, "beats": np.stack(beats), "labels": labels}


def _mask(loaded: dict, predicate) -> np.ndarray:
    return np.array([predicate(ls) for ls in loaded["labels"]])


# --------------------------------------------------------------------------- layout


def test_layout_reads_back_with_wfdb(synth: Path) -> None:
    for name in ("ptbxl_database.csv", "scp_statements.csv", TRUTH_CSV):
        assert (synth / name).is_file()
    db = pd.read_csv(synth / "ptbxl_database.csv", index_col="ecg_id")
    assert list(db.index) == list(range(1, N + 1))
    required = {"patient_id", "age", "sex", "scp_codes", "strat_fold", "filename_lr", "filename_hr"}
    assert required <= set(db.columns)
    assert db["patient_id"].is_unique
    assert db["filename_hr"].isna().all()  # written as empty strings without write_hr
    assert all(re.fullmatch(rf"records100/00000/{i:05d}_lr", f) for i, f in db["filename_lr"].items())
    for rel in db["filename_lr"].iloc[[0, 1, N - 1]]:
        record = wfdb.rdrecord(str(synth / rel))
        assert record.sig_name == list(LEADS)
        assert record.units == ["mV"] * 12
        assert (record.fs, record.sig_len, record.n_sig) == (100, 1000, 12)
        assert record.fmt == ["16"] * 12 and record.adc_gain == [1000.0] * 12 and record.baseline == [0] * 12
        assert np.isfinite(record.p_signal).all() and 0.05 < np.abs(record.p_signal).max() < 10


def test_leads_have_no_dc_offset_like_ptbxl(loaded: dict) -> None:
    # AC-coupled recorders remove the mean (PTB-XL-500: mean |lead mean| = 0.003 mV), so the
    # mean of a lead cannot give away the T-wave area of a class
    assert np.abs(loaded["x"].mean(axis=2)).mean() < 0.005


def test_project_loader_reads_labels(synth: Path, loaded: dict) -> None:
    ptbxl = load_ptbxl(synth)  # unknown codes raise: every code is in scp_statements.csv
    assert [set(s) for s in ptbxl.database["superclasses"]] == loaded["labels"]


def test_record_names_follow_ptbxl_folders() -> None:
    assert record_name(1, 100) == "records100/00000/00001_lr"
    assert record_name(999, 100) == "records100/00000/00999_lr"
    assert record_name(1000, 100) == "records100/01000/01000_lr"
    assert record_name(21837, 500) == "records500/21000/21837_hr"


def test_high_rate_records_match_low_rate(tmp_path: Path) -> None:
    out = generate_dataset(tmp_path / "hr", 3, seed=5, sampling_rate=500, progress=False)
    db = pd.read_csv(out / "ptbxl_database.csv", index_col="ecg_id")
    assert list(db["filename_hr"]) == [f"records500/00000/0000{i}_hr" for i in (1, 2, 3)]
    for lr_name, hr_name in zip(db["filename_lr"], db["filename_hr"], strict=True):
        hr, lr = wfdb.rdrecord(str(out / hr_name)), wfdb.rdrecord(str(out / lr_name))
        assert (hr.fs, hr.sig_len, hr.sig_name) == (500, 5000, list(LEADS))
        decimated = resample_poly(hr.p_signal, 1, 5, axis=0)  # [1000, 12]
        np.testing.assert_allclose(decimated[20:-20], lr.p_signal[20:-20], atol=0.004)


def test_same_seed_same_bytes_whatever_the_workers(tmp_path: Path) -> None:
    a = generate_dataset(tmp_path / "a", 12, seed=3, progress=False, workers=1)
    b = generate_dataset(tmp_path / "b", 12, seed=3, progress=False, workers=2)
    c = generate_dataset(tmp_path / "c", 12, seed=4, progress=False, workers=1)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) == 4 + 2 * 12  # two CSVs, the truth, the draw's seed, and 12 records (.hea/.dat)
    assert synthetic_draw(a) == {"seed": 3, "records": 12} and synthetic_draw(c)["seed"] == 4
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    for rel in (Path("ptbxl_database.csv"), Path(record_name(1, 100) + ".dat")):
        assert (a / rel).read_bytes() != (c / rel).read_bytes(), rel


# --------------------------------------------------------------------------- lead algebra


def test_einthoven_and_goldberger_hold_in_written_records(synth: Path, loaded: dict) -> None:
    d = np.stack([wfdb.rdrecord(str(synth / rel), physical=False).d_signal.T.astype(np.int64)
                  for rel in loaded["db"]["filename_lr"]])  # [N, 12, 1000] in uV
    i, ii, iii, avr, avl, avf = (d[:, LEAD[k]] for k in ("I", "II", "III", "AVR", "AVL", "AVF"))
    # each lead is rounded to 1 uV on its own, so the identities hold to a digit or two
    assert np.abs(iii - (ii - i)).max() <= 1
    assert np.abs(2 * avr + i + ii).max() <= 2
    assert np.abs(2 * avl - 2 * i + ii).max() <= 2
    assert np.abs(2 * avf - 2 * ii + i).max() <= 2
    assert np.abs(iii).max() > 100  # not trivially zero


@pytest.mark.parametrize("noise", [False, True])
def test_einthoven_exact_before_quantisation(noise: bool) -> None:
    x, _ = synthesize_record(0, 7, ("MI", "CD"), noise=noise)  # [12, 5000] at 500 Hz
    assert x.shape == (12, 5000)
    i, ii = x[LEAD["I"]], x[LEAD["II"]]
    np.testing.assert_allclose(x[LEAD["III"]], ii - i, atol=1e-12)
    np.testing.assert_allclose(x[LEAD["AVR"]], -(i + ii) / 2, atol=1e-12)
    np.testing.assert_allclose(x[LEAD["AVL"]], i - ii / 2, atol=1e-12)
    np.testing.assert_allclose(x[LEAD["AVF"]], ii - i / 2, atol=1e-12)


def test_clean_and_noisy_share_the_heart() -> None:
    clean, info_clean = synthesize_record(0, 11, ("NORM",), noise=False)
    noisy, info_noisy = synthesize_record(0, 11, ("NORM",), noise=True)
    assert info_clean["r_peaks_s"] == info_noisy["r_peaks_s"]
    residual = noisy - clean
    assert 0.001 < residual.std() < 0.5 * clean.std()


# --------------------------------------------------------------------------- labels and folds


def test_scp_codes_parse_and_are_all_described(synth: Path, loaded: dict) -> None:
    statements = pd.read_csv(synth / "scp_statements.csv", index_col=0)
    assert list(statements.columns) == STATEMENT_COLUMNS
    diagnostic = statements[statements["diagnostic"] == 1]
    for raw, labels in zip(loaded["db"]["scp_codes"], loaded["labels"], strict=True):
        codes = ast.literal_eval(raw)
        assert isinstance(codes, dict) and codes.get("SR") == 0.0
        assert all(isinstance(v, float) and 0.0 <= v <= 100.0 for v in codes.values())
        assert set(codes) <= set(statements.index)
        assert {diagnostic.at[c, "diagnostic_class"] for c in codes if c in diagnostic.index} == labels


def test_statements_copy_real_ptbxl(synth: Path, ptbxl500: Path) -> None:
    ours = pd.read_csv(synth / "scp_statements.csv", index_col=0)
    real = pd.read_csv(ptbxl500 / "scp_statements.csv", index_col=0)
    assert list(ours.columns) == list(real.columns)
    pd.testing.assert_frame_equal(ours, real.loc[ours.index])


def test_class_frequencies_like_ptbxl(loaded: dict) -> None:
    share = {c: _mask(loaded, lambda ls, c=c: c in ls).mean() for c in SUPERCLASSES}
    bounds = {"NORM": (0.40, 0.50), "MI": (0.15, 0.27), "STTC": (0.15, 0.27), "CD": (0.15, 0.27),
              "HYP": (0.06, 0.16)}
    for c, (low, high) in bounds.items():
        assert low <= share[c] <= high, (c, share[c])
    multi = _mask(loaded, lambda ls: len(ls) > 1).mean()
    assert 0.10 <= multi <= 0.30
    assert not _mask(loaded, lambda ls: "NORM" in ls and len(ls) > 1).any()


def test_label_allocation_is_exact() -> None:
    labels = allocate_labels(1000, np.random.default_rng(0))
    for combo, p in LABEL_MIX.items():
        assert labels.count(combo) == round(1000 * p)


def test_folds_are_stratified(loaded: dict) -> None:
    folds = loaded["db"]["strat_fold"].to_numpy()
    sizes = np.bincount(folds, minlength=11)[1:]
    assert sizes.sum() == N and sizes.max() - sizes.min() <= 1
    for fold in range(1, 11):
        present = set().union(*(ls for ls, f in zip(loaded["labels"], folds, strict=True) if f == fold))
        assert present == set(SUPERCLASSES), (fold, present)
    assert (loaded["truth"]["strat_fold"].to_numpy() == folds).all()


def test_rare_class_reaches_every_fold() -> None:
    labels = [("NORM",)] * 90 + [("HYP",)] * 10
    folds = assign_folds(labels, np.random.default_rng(1))
    assert sorted(folds[90:]) == list(range(1, 11))


# --------------------------------------------------------------------------- physiology


def test_hypertrophy_raises_sokolow_lyon(loaded: dict) -> None:
    beats, qrs = loaded["beats"], slice(PRE - 6, PRE + 7)
    sokolow = -beats[:, LEAD["V1"], qrs].min(1) + np.maximum(beats[:, LEAD["V5"], qrs].max(1),
                                                           beats[:, LEAD["V6"], qrs].max(1))
    norm = _mask(loaded, lambda ls: ls == {"NORM"})
    hyp = _mask(loaded, lambda ls: "HYP" in ls and "CD" not in ls)
    assert 1.2 < sokolow[norm].mean() < 3.0  # PTB-XL-500 normals: 2.2 mV
    assert sokolow[hyp].mean() > sokolow[norm].mean() + 0.6  # PTB-XL-500: +1.25 mV


def test_inferior_infarction_elevates_inferior_st(loaded: dict) -> None:
    st = loaded["beats"][:, :, PRE + 8]  # 80 ms after the R peak [N, 12]
    truth = loaded["truth"]
    norm = _mask(loaded, lambda ls: ls == {"NORM"})
    inferior = (truth["mi_territory"] == "inferior").to_numpy()
    acute = inferior & (truth["mi_stage"] == "acute").to_numpy()
    assert inferior.sum() >= 20 and acute.sum() >= 3
    leads = [LEAD["II"], LEAD["III"], LEAD["AVF"]]
    assert st[inferior][:, leads].mean() > st[norm][:, leads].mean() + 0.025
    assert st[acute][:, leads].mean() > st[norm][:, leads].mean() + 0.08
    assert st[inferior, LEAD["AVL"]].mean() < st[norm, LEAD["AVL"]].mean() - 0.02  # reciprocal depression


def test_bundle_branch_block_widens_qrs(loaded: dict) -> None:
    def width_ms(beat: np.ndarray) -> float:
        """Span around R where the spatial velocity exceeds 10% of its peak."""
        speed = np.abs(np.diff(beat, axis=1)).sum(0)  # [89] spatial velocity
        peak = PRE - 6 + int(np.argmax(speed[PRE - 6:PRE + 6]))
        above = speed > 0.1 * speed[peak]
        lo = hi = peak
        while lo > 0 and above[lo - 1]:
            lo -= 1
        while hi < above.size - 1 and above[hi + 1]:
            hi += 1
        return (hi - lo + 2) * 1000 / FS

    widths = np.array([width_ms(b) for b in loaded["beats"]])
    norm = _mask(loaded, lambda ls: ls == {"NORM"})
    cd = loaded["truth"]["cd_type"]
    rbbb, lbbb, avb = ((cd == kind).to_numpy() for kind in ("CRBBB", "CLBBB", "1AVB"))
    assert rbbb.sum() >= 10 and lbbb.sum() >= 4
    assert widths[rbbb].mean() > widths[norm].mean() + 20
    assert widths[lbbb].mean() > widths[norm].mean() + 40
    assert abs(widths[avb].mean() - widths[norm].mean()) < 15  # AV block delays P, not QRS


def test_first_degree_av_block_moves_p_away_from_qrs(loaded: dict) -> None:
    truth = loaded["truth"]
    slow = (truth["heart_rate_bpm"] < 80).to_numpy()  # so the previous T wave lies before -400 ms
    norm = _mask(loaded, lambda ls: ls == {"NORM"}) & slow
    avb = (truth["cd_type"] == "1AVB").to_numpy() & slow
    assert avb.sum() >= 5
    lead_ii = loaded["beats"][:, LEAD["II"], :PRE - 6]  # -400 .. -70 ms
    p_to_r_ms = (PRE - np.argmax(lead_ii, axis=1)) * 1000 / FS
    assert p_to_r_ms[avb].mean() > p_to_r_ms[norm].mean() + 50
    assert np.corrcoef(p_to_r_ms[norm | avb], truth["pr_ms"][norm | avb])[0, 1] > 0.7


def test_truth_heart_rate_matches_lead_ii_r_peaks(loaded: dict) -> None:
    truth = loaded["truth"]
    b, a = butter(2, [5 / 50, 30 / 50], btype="band")
    chosen = _mask(loaded, lambda ls: ls == {"NORM"}) & truth["qrs_axis_deg"].between(20, 100).to_numpy()
    assert chosen.sum() >= 60
    errors, matched = [], []
    for k in np.nonzero(chosen)[0]:
        lead_ii = filtfilt(b, a, loaded["x"][k, LEAD["II"]])
        peaks, _ = find_peaks(lead_ii, height=0.5 * lead_ii.max(), distance=int(0.3 * FS))
        errors.append(60 * FS / np.mean(np.diff(peaks)) - truth["heart_rate_bpm"].iloc[k])
        true_peaks = np.array([float(t) for t in truth["r_peaks_s"].iloc[k].split()]) * FS
        matched += [np.min(np.abs(peaks - t)) <= 2 for t in true_peaks]
    assert np.mean(np.abs(errors) < 3.0) >= 0.95
    assert np.mean(matched) >= 0.95
    assert 50 <= truth["heart_rate_bpm"].min() and truth["heart_rate_bpm"].max() <= 115


def test_crude_global_features_do_not_separate_classes(loaded: dict) -> None:
    """Per-lead std and mean carry little label information; the median-beat morphology does."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = np.array([[c in ls for c in SUPERCLASSES] for ls in loaded["labels"]], dtype=int)  # [N, 5]
    x = loaded["x"]
    features = {"crude": np.concatenate([x.std(axis=2), x.mean(axis=2)], axis=1),  # [N, 24]
                "beats": loaded["beats"][:, :, ::3].reshape(N, -1)}  # [N, 360], 33 Hz median beats
    auc = {}
    for name, f in features.items():
        model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, solver="liblinear"))
        scores = [cross_val_predict(model, f, y[:, c], cv=5, method="predict_proba")[:, 1]
                  for c in range(len(SUPERCLASSES))]
        auc[name] = [roc_auc_score(y[:, c], s) for c, s in enumerate(scores)]
    assert np.mean(auc["crude"]) < 0.80 and max(auc["crude"]) < 0.92, auc["crude"]
    assert np.mean(auc["beats"]) > np.mean(auc["crude"]) + 0.1, auc


# --------------------------------------------------------------------------- input and benchmark


def test_bad_arguments_name_the_directory(tmp_path: Path) -> None:
    with pytest.raises(ECGDataError, match=r"n_records must be"):
        generate_dataset(tmp_path / "x", 0, progress=False)
    with pytest.raises(ECGDataError, match=r"sampling_rate must be 100 or 500"):
        generate_dataset(tmp_path / "x", 5, sampling_rate=250, progress=False)
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ECGDataError, match=re.escape(str(blocker))):
        generate_dataset(blocker, 5, progress=False)
    with pytest.raises(ECGDataError, match=r"seed must be"):
        generate_dataset(tmp_path / "x", 5, seed=-1, progress=False)
    with pytest.raises(ECGDataError, match=r"superclasses"):
        synthesize_record(0, 1, ("AFIB",))


def test_benchmark_reports_its_figures() -> None:
    result = benchmark_generation(n_records=8, seed=1)
    assert result["records"] == 8 and result["target_seconds"] == 60
    assert result["seconds"] > 0
    # Both figures are rounded (seconds to 1 ms, the rate to 0.1): the rate must
    # lie in the interval the rounded time allows, widened by the rate's rounding.
    low = 8 / (result["seconds"] + 0.0005) - 0.05
    high = 8 / max(result["seconds"] - 0.0005, 1e-9) + 0.05
    assert low <= result["records_per_second"] <= high
