"""``python -m evl_lite predict``: records as people have them, the shipped student, reports, bad input."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ecg_like, write_record
from test_wfdb_files import write_cinc, write_ptb

from evl_lite.cli import main
from evl_lite.constants import LEADS, SUPERCLASSES
from evl_lite.data.ptbxl import read_record
from evl_lite.errors import ECGDataError
from evl_lite.foundation.hub import WEIGHTS_DIR, sha256_file
from evl_lite.predict.from_experiment import choose_run, read_results, ship_student
from evl_lite.predict.pipeline import window_grid
from evl_lite.predict.predictor import export_student, load_predictor
from evl_lite.predict.student_hub import (
    DEFAULT_STUDENT,
    STUDENT_WEIGHTS_DIR,
    StudentCard,
    load_student_card,
    shipped_students,
)

REPO = Path(__file__).resolve().parents[1]
KEYS = {"record", "probabilities", "decision", "thresholds", "model", "evidence", "note"}


def predict(capsys, *args: str) -> tuple[int, list | str, str]:
    """Run ``predict``; (exit status, parsed JSON list or table text, stderr)."""
    code = main(["predict", *map(str, args)])
    out, err = capsys.readouterr()
    return code, (out if "table" in args else json.loads(out)), err


@pytest.fixture(scope="module")
def records(tmp_path_factory, one_thread) -> dict[str, Path]:
    """Small records of every layout ``predict`` reads (12 leads unless named otherwise)."""
    root = tmp_path_factory.mktemp("records")
    made = {}
    write_record(root / "ptbxl", "00001_lr", ecg_like(100, seed=1), 100)
    made["ptbxl_100hz"] = root / "ptbxl" / "00001_lr"
    order = [11, 0, 5, 3, 1, 2, 4, 6, 7, 8, 9, 10]
    names = [{"AVR": "aVR", "AVL": "aVL", "AVF": "aVF"}.get(LEADS[i], LEADS[i]).lower() for i in order]
    write_record(root / "shuffled", "00001_lr", ecg_like(100, seed=1)[:, order], 100, sig_name=names)
    made["shuffled"] = root / "shuffled" / "00001_lr"
    write_record(root / "hz500", "long", ecg_like(500, seconds=23, seed=2), 500)
    made["500hz_23s"] = root / "hz500" / "long"
    (root / "cinc").mkdir()
    write_cinc(root / "cinc")
    made["cinc_mat"] = root / "cinc" / "E07500.mat"
    (root / "ptb").mkdir()
    write_ptb(root / "ptb", "s0010_re", ecg_like(1000, seconds=3, n_leads=15, seed=7))
    (root / "ptb" / "s0010_re.xyz").unlink()  # the Frank leads only
    made["ptb_without_xyz"] = root / "ptb" / "s0010_re.hea"
    return made


@pytest.fixture(scope="module")
def shipped(one_thread):
    return load_predictor()


# ----------------------------------------------------------------------------- predictions


def test_every_layout_gets_probabilities_a_decision_and_its_windows(records, capsys):
    code, out, err = predict(capsys, *records.values())
    assert code == 0 and err == ""
    assert [Path(o["record"]).name for o in out] == ["00001_lr.hea", "00001_lr.hea", "long.hea", "E07500.hea",
                                                     "s0010_re.hea"]
    for o in out:
        assert KEYS <= set(o) and o["note"] == "educational use only, not a diagnosis"
        assert list(o["probabilities"]) == list(SUPERCLASSES)
        assert o["decision"] == [c for c in SUPERCLASSES if o["probabilities"][c] >= o["thresholds"][c]]
        assert o["model"]["name"] == DEFAULT_STUDENT and o["model"]["runtime"] == "pytorch"
        for c, e in o["evidence"].items():  # the driving window holds the record's probability
            assert e["probability"] == pytest.approx(o["probabilities"][c])
            assert e["window_s"][1] - e["window_s"][0] == pytest.approx(2.5)
    assert out[0]["probabilities"] == out[1]["probabilities"]  # lead order and case do not matter
    by_name = {Path(o["record"]).stem: o for o in out}
    assert by_name["long"]["windows"] == len(window_grid(2300, 250, 7, 1000)) == 18
    assert by_name["long"]["evidence"]["NORM"]["window_s"][1] <= 23.0
    assert by_name["E07500"]["sampling_rate_hz"] == 500 and by_name["s0010_re"]["seconds"] == 3.0


def test_a_ten_second_record_gets_the_validation_windows():
    assert window_grid(1000, 250, 7, 1000) == [0, 125, 250, 375, 500, 625, 750]
    assert window_grid(250, 250, 7, 1000) == [0] and window_grid(300, 250, 7, 1000) == [0, 50]


def test_predict_scores_as_the_experiment_evaluates(records, shipped):
    """Read, band-pass, z-score, 7 windows, max: the numbers training.predict gives the student."""
    from evl_lite.data.benchmark import model_preprocessing
    from evl_lite.data.preprocessing import preprocess, standardise_record
    from evl_lite.predict.pipeline import predict_records
    from evl_lite.predict.records import resolve_path
    from evl_lite.training.loop import predict as evaluate_predict

    student, _ = load_student_card()
    x, fs = read_record(records["ptbxl_100hz"])
    prepared = standardise_record(preprocess(x, fs, model_preprocessing())[0])
    expected = evaluate_predict(student, prepared[None], 250, 7)[0]
    (result,) = predict_records(resolve_path(records["ptbxl_100hz"]), shipped)
    np.testing.assert_allclose(result.probabilities, expected, atol=1e-6)


def test_the_table_is_readable(records, capsys):
    code, out, _ = predict(capsys, records["cinc_mat"], "--format", "table")
    assert code == 0
    assert "E07500.hea (WFDB, 500 Hz, 10.0 s)" in out and "decision:" in out
    assert all(name in out for name in SUPERCLASSES) and out.strip().endswith("not a diagnosis")


def test_a_directory_is_searched_and_ptbxl_twins_are_read_once(tmp_path, capsys):
    for rate, suffix in ((100, "lr"), (500, "hr")):
        for i in (1, 2):
            directory = tmp_path / f"records{rate}" / "00000"
            write_record(directory, f"0000{i}_{suffix}", ecg_like(rate, seed=i), rate)
    code, out, _ = predict(capsys, tmp_path)
    assert code == 0 and [Path(o["record"]).name for o in out] == ["00001_lr.hea", "00002_lr.hea"]


def test_normalised_records_need_the_flag_and_are_not_filtered_again(tmp_path, capsys, shipped):
    from evl_lite.data.preprocessing import standardise_record

    signal = standardise_record(ecg_like(100, seed=9).T).T
    write_record(tmp_path, "nu", signal, 100, units=["NU"] * 12)
    code, out, err = predict(capsys, tmp_path / "nu")
    assert code == 2 and out == [] and "nu.hea: lead I is in unit 'NU'" in err
    code, out, err = predict(capsys, tmp_path / "nu", "--allow-normalised")
    assert code == 0 and out[0]["units"].startswith("NU")
    x = standardise_record(read_record(tmp_path / "nu", allow_normalised=True)[0])
    windows = np.stack([x[:, s : s + 250] for s in window_grid(1000, 250, 7, 1000)])
    expected = shipped.probabilities(windows).max(axis=0)
    np.testing.assert_allclose(list(out[0]["probabilities"].values()), expected, atol=1e-6)


def write_edf(directory: Path, name: str, n_leads: int = 12, seed: int = 0, fs: int = 250) -> Path:
    """A 10 s EDF file (Kemp et al. 1992: ASCII header, then 1 s data records of int16 per signal)
    with labels such as 'ECG I', in mV, -10..10 mV over the full int16 range."""
    names = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")[:n_leads]
    signal = ecg_like(fs, seed=seed, n_leads=n_leads)  # [T, n]
    digital = np.round(signal / 10.0 * 32767).astype("<i2")  # [T, n]
    seconds = len(signal) // fs

    def field(value, width: int, n: int = 1) -> bytes:
        values = value if isinstance(value, list) else [value] * n
        return b"".join(str(v).ljust(width)[:width].encode("ascii") for v in values)

    header = (field("0", 8) + field("X X X X", 80) + field("Startdate 01-JAN-2020 X X X", 80)
              + field("01.01.20", 8) + field("00.00.00", 8) + field(256 * (n_leads + 1), 8) + field("", 44)
              + field(seconds, 8) + field(1, 8) + field(n_leads, 4)
              + field([f"ECG {n}" for n in names], 16) + field("AgAgCl electrode", 80, n_leads)
              + field("mV", 8, n_leads) + field(-10, 8, n_leads) + field(10, 8, n_leads)
              + field(-32767, 8, n_leads) + field(32767, 8, n_leads) + field("", 80, n_leads)
              + field(fs, 8, n_leads) + field("", 32, n_leads))
    blocks = digital.reshape(seconds, fs, n_leads).transpose(0, 2, 1)  # [records, n, fs]
    out = directory / f"{name}.edf"
    out.write_bytes(header + blocks.tobytes())
    return out


def test_edf_files_are_read_with_their_ecg_labels(tmp_path, capsys):
    from evl_lite.predict.records import read_edf

    edf = write_edf(tmp_path, "holter")
    recording = read_edf(edf)
    assert recording.fs == 250 and recording.x.shape == (12, 2500)
    np.testing.assert_allclose(recording.x, ecg_like(250, seed=0).T, atol=1e-3)
    code, out, _ = predict(capsys, edf)
    assert code == 0 and out[0]["format"] == "EDF" and out[0]["sampling_rate_hz"] == 250


def test_onnx_export_predicts_as_pytorch(records, tmp_path, capsys, shipped):
    path, parity = export_student(shipped, tmp_path / "student.onnx")
    assert parity < 1e-4
    _, torch_out, _ = predict(capsys, records["ptbxl_100hz"], records["500hz_23s"])
    code, onnx_out, _ = predict(capsys, records["ptbxl_100hz"], records["500hz_23s"], "--model", path)
    assert code == 0 and onnx_out[0]["model"]["runtime"] == "onnxruntime"
    for a, b in zip(torch_out, onnx_out, strict=True):
        np.testing.assert_allclose(list(a["probabilities"].values()), list(b["probabilities"].values()),
                                   atol=1e-5)
        assert a["decision"] == b["decision"]


def test_an_onnx_file_without_a_card_is_refused(tmp_path, records, shipped, capsys):
    import torch

    from evl_lite.evaluation.deployment import export_onnx

    plain = export_onnx(shipped.module, torch.zeros(2, 12, 250), tmp_path / "plain.onnx")
    assert main(["predict", str(records["ptbxl_100hz"]), "--model", str(plain)]) == 2
    err = capsys.readouterr().err
    assert "plain.onnx: carries no student model card" in err and err.count("\n") == 1


# ----------------------------------------------------------------------------- the report


def test_the_report_is_one_offline_page_per_record_and_an_index(records, tmp_path, capsys):
    report = tmp_path / "report"
    code, out, err = predict(capsys, records["ptbxl_100hz"], records["cinc_mat"], "--report", report)
    assert code == 0 and len(out) == 2
    pages = sorted(p.name for p in report.iterdir())
    assert pages == ["00001_lr.html", "E07500.html", "index.html"]
    for name in pages[:2]:
        page = (report / name).read_text()
        assert page.count("<svg") >= 2 and "Educational use only, not a diagnosis" in page
        assert "<script" not in page and "https://" not in page and "src=" not in page  # works offline
        assert "What the student looked at" in page and "25 mm/s, 10 mm/mV" in page
    index = (report / "index.html").read_text()
    assert 'href="00001_lr.html"' in index and 'href="E07500.html"' in index


# ----------------------------------------------------------------------------- bad input


def one_error(capsys, *args) -> str:
    """Run predict on bad input: exit 2, nothing but [] on stdout, exactly one error line; returns it."""
    code = main(["predict", *map(str, args)])
    out, err = capsys.readouterr()
    assert code == 2 and json.loads(out or "[]") == []
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_a_mat_file_with_a_wrong_byte_offset(tmp_path, capsys):
    write_cinc(tmp_path, "16")
    line = one_error(capsys, tmp_path / "E07500.hea")
    assert "E07500.mat: holds 120024 bytes" in line and "format field should read 16+24" in line


def test_a_missing_signal_file_that_holds_standard_leads(tmp_path, capsys):
    write_ptb(tmp_path, "s0010_re", ecg_like(1000, seconds=3, n_leads=15, seed=7), in_dat=9)
    (tmp_path / "s0010_re.xyz").unlink()
    line = one_error(capsys, tmp_path / "s0010_re")
    assert "s0010_re.xyz: signal file named in the header is missing" in line and "['V4', 'V5', 'V6']" in line


def test_a_record_shorter_than_one_window(tmp_path, capsys):
    write_record(tmp_path, "short", ecg_like(100, seconds=2.4), 100)
    line = one_error(capsys, tmp_path / "short")
    assert "short.hea: lasts 2.40 s" in line and "at least 2.5 s" in line


def test_flat_or_nan_leads(tmp_path, capsys):
    signal = ecg_like(100, seed=3)
    signal[:, 8] = 0.0
    write_record(tmp_path, "flat", signal, 100)
    assert "flat.hea: lead(s) ['V3'] are flat" in one_error(capsys, tmp_path / "flat")
    signal = ecg_like(100, seed=3)
    signal[100:120, 1] = np.nan
    write_record(tmp_path, "nan", signal, 100)
    assert "nan.dat: 20 NaN/inf or invalid samples in lead(s) ['II']" in one_error(capsys, tmp_path / "nan")


def test_a_directory_without_records_and_a_path_that_does_not_exist(tmp_path, capsys):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "sub" / "notes.txt").write_text("no ECG here")
    assert "empty: holds no records" in one_error(capsys, tmp_path / "empty")
    assert "nowhere.hea: does not exist" in one_error(capsys, tmp_path / "nowhere.hea")


def test_an_edf_with_fewer_than_twelve_ecg_channels(tmp_path, capsys):
    line = one_error(capsys, write_edf(tmp_path, "two", n_leads=2))
    assert "two.edf: has 2 lead(s) ['ECG I', 'ECG II']" in line and "missing ['III'" in line


def test_a_two_lead_record_fails_alone_and_the_others_are_predicted(records, tmp_path, capsys):
    write_record(tmp_path, "100", ecg_like(360, n_leads=2), 360, sig_name=["MLII", "V1"])
    code, out, err = predict(capsys, tmp_path / "100", records["ptbxl_100hz"])
    assert code == 2 and [Path(o["record"]).name for o in out] == ["00001_lr.hea"]
    assert err.count("\n") == 1 and "100.hea: has 2 lead(s) ['MLII', 'V1']; missing ['I', 'III'" in err


def test_an_unwritable_report_directory(records, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert "file: --report needs a directory" in one_error(
        capsys, records["ptbxl_100hz"], "--report", tmp_path / "file")
    assert "cannot be written as the report directory" in one_error(
        capsys, records["ptbxl_100hz"], "--report", tmp_path / "file" / "sub")
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert "locked: cannot be written" in one_error(capsys, records["ptbxl_100hz"], "--report", locked)


def test_a_bad_report_path_writes_nothing_and_a_bad_record_gets_no_page(records, tmp_path, capsys):
    write_record(tmp_path / "in", "short", ecg_like(100, seconds=1), 100)
    report = tmp_path / "report"
    assert main(["predict", str(tmp_path / "in" / "short"), str(records["ptbxl_100hz"]), "--report",
                 str(report)]) == 2
    capsys.readouterr()
    assert sorted(p.name for p in report.iterdir()) == ["00001_lr.html", "index.html"]
    assert "short.hea: lasts 1.00 s" in (report / "index.html").read_text()


def copy_shipped(target: Path) -> Path:
    shutil.copytree(STUDENT_WEIGHTS_DIR / DEFAULT_STUDENT, target)
    return target


def test_model_directories_from_another_config_are_refused(records, tmp_path, capsys):
    student = copy_shipped(tmp_path / "student")
    config = json.loads((student / "config.json").read_text())
    config["stage_channels"] = [16, 32, 64, 64]
    (student / "config.json").write_text(json.dumps(config))
    line = one_error(capsys, records["ptbxl_100hz"], "--model", student)
    assert "config.json: does not match the model card: stage_channels" in line
    line = one_error(capsys, records["ptbxl_100hz"], "--model", WEIGHTS_DIR / "ptbxl")
    assert "card.json: is the model card of a teacher, not of a distilled student" in line
    teacher = shutil.copytree(WEIGHTS_DIR / "ptbxl", tmp_path / "teacher")
    (teacher / "card.json").unlink()
    line = one_error(capsys, records["ptbxl_100hz"], "--model", teacher)
    assert "config.json: is a 'ecg_transformer' checkpoint without a student model card" in line
    card_dir = copy_shipped(tmp_path / "other_input")
    card = json.loads((card_dir / "card.json").read_text())
    card["input"]["preprocessing"]["band"] = [1.0, 30.0]
    (card_dir / "card.json").write_text(json.dumps(card))
    line = one_error(capsys, records["ptbxl_100hz"], "--model", card_dir)
    assert "card.json: this student was made for another input than predict prepares: preprocessing" in line


def test_changed_weights_are_refused_naming_the_file(records, tmp_path, capsys):
    student = copy_shipped(tmp_path / "student")
    weights = bytearray((student / "model.safetensors").read_bytes())
    weights[-1] ^= 0xFF
    (student / "model.safetensors").write_bytes(bytes(weights))
    line = one_error(capsys, records["ptbxl_100hz"], "--model", student)
    assert "model.safetensors: SHA-256" in line and "does not match the model card" in line


# ----------------------------------------------------------------------------- the shipped student


def test_the_shipped_student_keeps_the_promises_of_its_card():
    assert DEFAULT_STUDENT in shipped_students()
    card = StudentCard.read(STUDENT_WEIGHTS_DIR / DEFAULT_STUDENT)
    card.verify()
    f = card.fields
    assert not f["smoke"] and f["data"]["source"] == "ptbxl" and f["method"] != "scratch"
    assert f["teacher"]["name"] == "ptbxl" and f["labelled"] == "all"
    assert f["sha256"] == sha256_file(card.directory / "model.safetensors")
    assert set(f["thresholds"]) == set(SUPERCLASSES) and f["experiment"]["command"].startswith("python -m")
    assert 0.5 < f["metrics"]["validation_macro_auc"]["value"] <= 1
    low, high = f["metrics"]["test_macro_auc"]["ci"]
    assert low <= f["metrics"]["test_macro_auc"]["value"] <= high
    assert f["command"].startswith("python -m evl_lite student ship")
    results = REPO / f["experiment"]["dir"]
    if (results / "results.json").is_file():  # chosen on validation, as the rule says
        method, seed, _ = choose_run(read_results(results), results)
        assert (method, seed) == (f["method"], f["seed"])


def test_the_package_data_ships_the_student():
    text = (REPO / "pyproject.toml").read_text()
    assert '"evl_lite.predict" = ["weights/*/*.json", "weights/*/*.safetensors", "weights/*/*.md"]' in text


def test_the_shipped_student_on_real_fold_10_gives_its_card_auc(ptbxl500, shipped):
    """Reading the raw PTB-XL files one by one reproduces the experiment's test macro-AUC."""
    from evl_lite.data.ptbxl import load_ptbxl
    from evl_lite.evaluation.metrics import macro_auc
    from evl_lite.predict.pipeline import predict_records
    from evl_lite.predict.records import RecordRef

    db = load_ptbxl(ptbxl500)
    ids = [i for i in db.split_ids("test") if db.database.at[i, "superclasses"]]
    refs = [RecordRef(db.record_base(int(i), 100), "WFDB") for i in ids]
    probs = np.stack([r.probabilities for r in predict_records(refs, shipped)])
    card = shipped.card["metrics"]["test_macro_auc"]
    assert macro_auc(db.superclass_targets(ids), probs)[0] == pytest.approx(card["recomputed"], abs=1e-6)


@pytest.fixture(scope="module")
def smoke_experiment(tmp_path_factory, one_thread) -> Path:
    from evl_lite.experiments.single_split import run_experiment

    out = tmp_path_factory.mktemp("experiment") / "out"
    run_experiment("synthetic", None, ["scratch", "kd"], 1, out, smoke=True, progress=False)
    return out


def test_the_command_remakes_a_student_that_loads_through_the_same_path(smoke_experiment, records, tmp_path,
                                                                        capsys):
    out = tmp_path / "student"
    assert main(["student", "ship", "--from", str(smoke_experiment), "--out", str(out)]) == 0
    shipped = json.loads(capsys.readouterr().out)
    assert shipped["method"] == "kd" and shipped["seed"] == 0  # scratch is never shipped
    _, card = load_student_card(out)
    assert card.fields["smoke"] and card.fields["sha256"] == sha256_file(out / "model.safetensors")
    assert card.fields["command"].startswith("python -m evl_lite student ship --from")
    code, from_card, _ = predict(capsys, records["ptbxl_100hz"], "--model", out)
    assert code == 0 and from_card[0]["model"]["name"] == "student"
    run = smoke_experiment / "runs" / "kd" / "seed0"
    code, from_run, _ = predict(capsys, records["ptbxl_100hz"], "--model", run)
    assert code == 0 and from_run[0]["probabilities"] == from_card[0]["probabilities"]
    assert from_run[0]["thresholds"] == from_card[0]["thresholds"]


def test_a_smoke_student_is_not_shipped_in_the_package(smoke_experiment):
    target = STUDENT_WEIGHTS_DIR / "smoke-test"
    with pytest.raises(ECGDataError, match="smoke-mode experiment"):
        ship_student(smoke_experiment, target)
    assert not target.exists() and not list(STUDENT_WEIGHTS_DIR.glob(".smoke-test*"))


def test_a_scratch_only_experiment_has_no_student_to_ship(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps({"data": "ptbxl", "runs": [
        {"method": "scratch", "seed": 0, "val_macro_auc": 0.9, "labelled": "all"}]}))
    with pytest.raises(ECGDataError, match="holds no distilled student"):
        ship_student(tmp_path, tmp_path / "out")


def test_the_choice_reads_validation_never_test():
    runs = pd.DataFrame({"method": ["kd", "kd", "evl", "evl", "scratch"], "seed": [0, 1, 0, 1, 0],
                         "val_macro_auc": [0.90, 0.92, 0.93, 0.88, 0.99],
                         "macro_auc": [0.99, 0.50, 0.50, 0.99, 0.99]})
    method, seed, selection = choose_run({"runs": runs.to_dict("records")}, Path("x"))
    assert (method, seed) == ("kd", 1)  # kd 0.91 > evl 0.905 on validation; test figures ignored
    assert selection["mean_validation_macro_auc"]["kd"] == pytest.approx(0.91)
