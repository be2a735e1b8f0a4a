"""`python -m evl_lite data check`: every bad input of the reliability list is reported, one line each."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import ecg_like, make_layout, write_record

from evl_lite.constants import LEADS
from evl_lite.data.check import check_dataset, lead_problems

GOOD = "{'NORM': 100.0, 'SR': 0.0}"


@pytest.fixture
def dataset(tmp_path):
    """Ten good records, one per fold, so every benchmark split is present."""
    return make_layout(tmp_path / "ptbxl", [GOOD] * 10, folds=list(range(1, 11)))


def messages(root) -> list[str]:
    return [str(p) for p in check_dataset(root, progress=False)]


def record(root, i: int) -> str:
    return str(root / f"records100/00000/{i:05d}_lr")


def replace_record(root, i: int, signal: np.ndarray, **kwargs) -> None:
    for ext in (".hea", ".dat"):
        (root / f"records100/00000/{i:05d}_lr{ext}").unlink()
    write_record(root / "records100/00000", f"{i:05d}_lr", signal, 100, **kwargs)


def test_a_good_dataset_and_the_real_one_have_no_problems(dataset, ptbxl500):
    assert messages(dataset) == []
    assert messages(ptbxl500) == []


def test_file_level_problems_each_get_a_line_naming_the_file(dataset):
    dat = dataset / "records100/00000/00001_lr.dat"
    dat.write_bytes(dat.read_bytes()[:5000])  # truncated
    hea = dataset / "records100/00000/00002_lr.hea"
    lines = hea.read_text().splitlines()
    lines[0] = lines[0].replace(" 1000", " 900")  # header and data disagree
    hea.write_text("\n".join(lines) + "\n")
    (dataset / "records100/00000/00003_lr.hea").unlink()  # missing header
    replace_record(dataset, 4, ecg_like(100, n_leads=11))  # fewer than 12 leads
    replace_record(dataset, 5, ecg_like(100), units=["furlong"] * 12)  # unknown unit
    found = messages(dataset)
    assert len(found) == 5, found
    assert any(m.startswith(record(dataset, 1) + ".dat") and "truncated" in m for m in found)
    assert any(m.startswith(record(dataset, 2)) and "header and data disagree" in m for m in found)
    assert any(m.startswith(record(dataset, 3) + ".hea") and "missing" in m for m in found)
    assert any(m.startswith(record(dataset, 4) + ".hea") and "missing ['V6']" in m for m in found)
    assert any(m.startswith(record(dataset, 5) + ".hea") and "'furlong'" in m for m in found)


def test_invalid_flat_and_saturated_leads_are_reported(dataset):
    dat = dataset / "records100/00000/00001_lr.dat"
    raw = bytearray(dat.read_bytes())
    raw[2 * (400 * 12 + 7) : 2 * (400 * 12 + 7) + 2] = (-32768).to_bytes(2, "little", signed=True)  # NaN
    dat.write_bytes(bytes(raw))
    flat = ecg_like(100, seed=2)
    flat[:, 3] = 0.2  # aVR stuck at a constant
    replace_record(dataset, 2, flat)
    clipped = ecg_like(100, seed=3)
    clipped[:, 1] = np.clip(clipped[:, 1], None, 0.3 * clipped[:, 1].max())  # lead II clipped
    replace_record(dataset, 3, clipped)
    found = messages(dataset)
    assert len(found) == 3, found
    assert any("NaN/inf or invalid samples in lead(s) ['V2']" in m for m in found)
    assert any(m.startswith(record(dataset, 2)) and "lead AVR is flat" in m for m in found)
    assert any(m.startswith(record(dataset, 3)) and "lead II is saturated" in m for m in found)


def test_what_read_record_fixes_is_not_a_problem(dataset):
    signal = ecg_like(100, n_leads=15, seed=6)
    replace_record(dataset, 1, signal, sig_name=[*LEADS, "vx", "vy", "vz"])  # PTB 15-lead layout
    order = [6, 7, 8, 9, 10, 11, 0, 1, 2, 3, 4, 5]
    names = [{"AVR": "aVR", "AVL": "aVL", "AVF": "aVF"}.get(LEADS[i], LEADS[i]) for i in order]
    replace_record(dataset, 2, ecg_like(100, seed=7)[:, order], sig_name=names)  # reordered, renamed
    replace_record(dataset, 3, ecg_like(100, seed=8) * 1000, units=["uV"] * 12, gain=1.0)  # microvolts
    for i, fs in zip((4, 5, 6, 7), (250, 360, 500, 1000), strict=True):  # other sampling rates
        for ext in (".hea", ".dat"):
            (dataset / f"records100/00000/{i:05d}_lr{ext}").unlink()
        write_record(dataset / "records100/00000", f"{i:05d}_lr", ecg_like(fs, seed=i), fs)
    assert messages(dataset) == []


def test_table_problems_are_all_listed(dataset):
    db = pd.read_csv(dataset / "ptbxl_database.csv")
    db.loc[0, "scp_codes"] = "{'NORM': 100.0"  # does not parse
    db.loc[1, "scp_codes"] = "{'NOTACODE': 100.0}"  # not in scp_statements.csv
    db.loc[2, "strat_fold"] = None
    db.loc[db["strat_fold"] == 10, "strat_fold"] = 9  # the test split becomes empty
    db.to_csv(dataset / "ptbxl_database.csv", index=False)
    found = messages(dataset)
    csv = str(dataset / "ptbxl_database.csv")
    assert all(m.startswith(csv) for m in found) and len(found) == 4, found
    assert any("ecg_id 1" in m and "scp_codes" in m for m in found)
    assert any("['NOTACODE'] not found in scp_statements.csv" in m for m in found)
    assert any("strat_fold missing or not in 1-10 for ecg_id(s) [3]" in m for m in found)
    assert any("the test split (strat_fold [10]) is empty" in m for m in found)


@pytest.mark.parametrize("missing", ["ptbxl_database.csv", "scp_statements.csv"])
def test_a_missing_csv_is_named(dataset, missing):
    (dataset / missing).unlink()
    found = messages(dataset)
    assert any(m.startswith(str(dataset / missing)) for m in found), found


def test_lead_problems_on_arrays():
    x = np.tile(np.sin(np.linspace(0, 20, 1000)), (12, 1)).astype(np.float32)
    assert lead_problems(x) == []
    x[0] = 0.0
    x[5] = np.clip(x[5], -0.5, 0.5)
    assert (
        lead_problems(x) == ["lead I is flat (peak-to-peak 0.0 µV)", lead_problems(x)[1]]
        and "lead AVF is saturated" in lead_problems(x)[1]
    )


def test_cli_prints_one_line_per_problem_and_exits_non_zero(dataset):
    ok = subprocess.run(
        [sys.executable, "-m", "evl_lite", "data", "check", str(dataset), "--quiet"],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and ok.stdout == "" and "0 problem(s)" in ok.stderr
    (dataset / "records100/00000/00004_lr.dat").unlink()
    bad = subprocess.run(
        [sys.executable, "-m", "evl_lite", "data", "check", str(dataset), "--quiet"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1
    assert bad.stdout.splitlines() == [
        f"{record(dataset, 4)}.dat: signal file named in the header is missing"
    ]
