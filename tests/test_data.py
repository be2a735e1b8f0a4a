"""The PTB-XL data layer: label aggregation, splits, record reading and every bad input it must name."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import ecg_like, make_layout, write_record

from evl_lite.constants import LEADS
from evl_lite.data.ptbxl import load_ptbxl, load_signals, read_record, summary
from evl_lite.errors import ECGDataError


def test_summary_of_real_ptbxl_500(ptbxl500):
    s = summary(ptbxl500)
    assert s["records"] == 500
    assert s["superclass_counts"] == {"NORM": 297, "MI": 73, "STTC": 96, "CD": 78, "HYP": 40}
    assert s["fold_sizes"] == {
        "1": 58,
        "2": 51,
        "3": 34,
        "4": 42,
        "5": 47,
        "6": 33,
        "7": 44,
        "8": 44,
        "9": 81,
        "10": 66,
    }
    assert s["records_without_superclass"] == 12
    assert s["sampling_rates"] == [100, 500]


def test_cli_data_summary_prints_json(ptbxl500):
    out = subprocess.run(
        [sys.executable, "-m", "evl_lite", "data", "summary", str(ptbxl500)],
        capture_output=True,
        text=True,
        check=True,
    )
    s = json.loads(out.stdout)
    assert s["records"] == 500 and s["superclass_counts"]["HYP"] == 40


def test_cli_bad_path_is_one_clear_line(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "evl_lite", "data", "summary", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert "nope" in out.stderr and "does not exist" in out.stderr and "Traceback" not in out.stderr


def test_label_sets_follow_the_benchmark_aggregation(tiny_layout):
    db = load_ptbxl(tiny_layout)
    assert db.database.loc[1, "superclasses"] == ["NORM"]
    assert db.database.loc[2, "superclasses"] == ["HYP", "MI"]
    assert db.database.loc[2, "subclasses"] == ["IMI", "LVH"]
    assert db.database.loc[3, "superclasses"] == []  # SR is a rhythm statement, not diagnostic
    assert db.database.loc[1, "statements_all"] == ["NORM", "SR"]
    y = db.superclass_targets([1, 2, 3])
    np.testing.assert_array_equal(y, [[1, 0, 0, 0, 0], [0, 1, 0, 0, 1], [0, 0, 0, 0, 0]])
    assert list(db.split_ids("train")) == [1, 2]
    assert list(db.split_ids("val")) == [3]
    assert list(db.split_ids("test")) == [4, 5]


def test_real_records_read_in_millivolts_at_both_rates(ptbxl500):
    x100, fs100 = read_record(ptbxl500 / "records100/00000/00001_lr")
    x500, fs500 = read_record(ptbxl500 / "records500/00000/00001_hr")
    assert (fs100, fs500) == (100.0, 500.0)
    assert x100.shape == (12, 1000) and x500.shape == (12, 5000) and x100.dtype == np.float32
    assert np.isfinite(x100).all() and 0.2 < np.abs(x100).max() < 10  # mV scale
    # Einthoven: III = II - I on the real data (quantised to 1 uV)
    np.testing.assert_allclose(x500[2], x500[1] - x500[0], atol=0.01)


def test_load_signals_stacks_a_split(ptbxl500):
    db = load_ptbxl(ptbxl500)
    ids = db.split_ids("test")[:5]
    x = load_signals(db, ids, sampling_rate=100, progress=False)
    assert x.shape == (5, 12, 1000) and np.isfinite(x).all()


def test_unlabelled_records_need_normalised_units_knowingly(ptbxl_unlabelled):
    db = load_ptbxl(ptbxl_unlabelled)
    base = db.record_base(int(db.ecg_ids[0]))
    with pytest.raises(ECGDataError, match="NU"):
        read_record(base)
    x, fs = read_record(base, allow_normalised=True)
    assert x.shape == (12, 1000) and abs(float(x.std()) - 1) < 0.2


# ----------------------------------------------------------------------------- bad input


def test_missing_directory_and_csvs(tmp_path, tiny_layout):
    with pytest.raises(ECGDataError, match="does not exist"):
        load_ptbxl(tmp_path / "missing")
    (tiny_layout / "scp_statements.csv").unlink()
    with pytest.raises(ECGDataError, match=r"scp_statements\.csv.*missing"):
        load_ptbxl(tiny_layout)


def test_missing_database_csv(tiny_layout):
    (tiny_layout / "ptbxl_database.csv").unlink()
    with pytest.raises(ECGDataError, match=r"ptbxl_database\.csv.*missing"):
        load_ptbxl(tiny_layout)


def test_malformed_scp_codes_names_the_record(tmp_path):
    root = make_layout(tmp_path / "d", ["{'NORM': 100.0}", "{'NORM': 100.0"])
    with pytest.raises(ECGDataError, match=r"ptbxl_database\.csv: ecg_id 2: scp_codes .* does not parse"):
        load_ptbxl(root)
    root = make_layout(tmp_path / "e", ["['NORM']"])
    with pytest.raises(ECGDataError, match="ecg_id 1"):
        load_ptbxl(root)


def test_unknown_scp_code_is_an_error_or_ignored_on_request(tmp_path):
    root = make_layout(tmp_path / "d", ["{'NORM': 100.0}", "{'XYZ': 100.0, 'NORM': 50.0}"])
    with pytest.raises(
        ECGDataError, match=r"ecg_id 2: SCP code\(s\) \['XYZ'\] not found in scp_statements\.csv"
    ):
        load_ptbxl(root)
    db = load_ptbxl(root, unknown_codes="ignore")
    assert db.database.loc[2, "superclasses"] == ["NORM"]
    assert db.database.loc[2, "scp"] == {"XYZ": 100.0, "NORM": 50.0}


def test_truncated_dat_names_the_file(tiny_layout):
    dat = tiny_layout / "records100/00000/00001_lr.dat"
    dat.write_bytes(dat.read_bytes()[:5000])
    with pytest.raises(ECGDataError, match=r"00001_lr\.dat: holds 5000 bytes .*truncated"):
        read_record(tiny_layout / "records100/00000/00001_lr")


def test_header_and_data_disagree(tiny_layout):
    hea = tiny_layout / "records100/00000/00001_lr.hea"
    lines = hea.read_text().splitlines()
    lines[0] = lines[0].replace(" 1000", " 900")  # header now promises fewer samples
    hea.write_text("\n".join(lines) + "\n")
    with pytest.raises(ECGDataError, match="header and data disagree"):
        read_record(tiny_layout / "records100/00000/00001_lr")


def test_missing_header_or_dat(tiny_layout):
    (tiny_layout / "records100/00000/00002_lr.hea").unlink()
    with pytest.raises(ECGDataError, match=r"00002_lr\.hea: header file is missing"):
        read_record(tiny_layout / "records100/00000/00002_lr")
    (tiny_layout / "records100/00000/00003_lr.dat").unlink()
    with pytest.raises(ECGDataError, match=r"00003_lr\.dat: signal file named in the header is missing"):
        read_record(tiny_layout / "records100/00000/00003_lr")


def test_invalid_samples_are_named_not_passed_on_as_nan(tiny_layout):
    dat = tiny_layout / "records100/00000/00001_lr.dat"
    raw = bytearray(dat.read_bytes())
    sample, lead = 400, 7  # fmt 16 interleaves leads; -32768 is WFDB's "invalid sample"
    offset = 2 * (sample * 12 + lead)
    raw[offset : offset + 2] = (-32768).to_bytes(2, "little", signed=True)
    dat.write_bytes(bytes(raw))
    with pytest.raises(
        ECGDataError, match=r"00001_lr\.dat: 1 NaN/inf or invalid samples in lead\(s\) \['V2'\]"
    ):
        read_record(tiny_layout / "records100/00000/00001_lr")


def test_too_few_leads(tmp_path):
    write_record(tmp_path, "r", ecg_like(100, n_leads=11), 100)
    with pytest.raises(ECGDataError, match=r"r\.hea: has 11 lead\(s\) .* missing \['V6'\]"):
        read_record(tmp_path / "r")


def test_fifteen_lead_record_keeps_the_twelve(tmp_path):
    signal = ecg_like(100, n_leads=15, seed=3)
    write_record(tmp_path, "ptb", signal, 100, sig_name=[*LEADS, "vx", "vy", "vz"])
    x, _ = read_record(tmp_path / "ptb")
    assert x.shape == (12, 1000)
    np.testing.assert_allclose(x, signal[:, :12].T, atol=1e-3)


def test_reordered_and_renamed_leads_are_put_in_standard_order(tmp_path):
    signal = ecg_like(100, seed=4)
    order = [6, 7, 8, 9, 10, 11, 0, 1, 2, 3, 4, 5]  # precordial first
    names = [{"AVR": "aVR", "AVL": "aVL", "AVF": "aVF"}.get(LEADS[i], LEADS[i]) for i in order]
    write_record(tmp_path, "r", signal[:, order], 100, sig_name=names)
    x, _ = read_record(tmp_path / "r")
    np.testing.assert_allclose(x, signal.T, atol=1e-3)


def test_microvolts_become_millivolts(tmp_path):
    signal = ecg_like(100, seed=5)
    write_record(tmp_path, "uv", signal * 1000, 100, units=["uV"] * 12, gain=1.0)
    x, _ = read_record(tmp_path / "uv")
    np.testing.assert_allclose(x, signal.T, atol=2e-3)


def test_unknown_unit_is_refused(tmp_path):
    write_record(tmp_path, "r", ecg_like(100), 100, units=["mmHg"] * 12)
    with pytest.raises(ECGDataError, match="unit 'mmHg'"):
        read_record(tmp_path / "r")


def test_paths_cannot_escape_the_dataset(tiny_layout):
    csv = tiny_layout / "ptbxl_database.csv"
    table = pd.read_csv(csv)
    table.loc[0, "filename_lr"] = "../../etc/passwd"
    table.to_csv(csv, index=False)
    db = load_ptbxl(tiny_layout)
    with pytest.raises(ECGDataError, match="outside the dataset directory"):
        db.record_base(1)


def test_empty_split_is_named(tmp_path):
    root = make_layout(tmp_path / "d", ["{'NORM': 100.0}"], folds=[1])
    db = load_ptbxl(root)
    with pytest.raises(ECGDataError, match="holds no records"):
        load_signals(db, db.split_ids("test"))


def test_records_of_another_rate_are_resampled(tmp_path):
    root = make_layout(tmp_path / "d", ["{'NORM': 100.0}"], fs=100)
    write_record(root / "records100/00000", "00001_lr", ecg_like(250, seed=1), 250)  # a 250 Hz file
    x = load_signals(load_ptbxl(root), [1], sampling_rate=100, progress=False)
    assert x.shape == (1, 12, 1000)
