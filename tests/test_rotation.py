"""The 10-fold rotation (``experiment --folds rotate``): folds, pooling, resuming, bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from evl_lite.data.dataset import ECGSplit
from evl_lite.errors import ECGDataError
from evl_lite.experiments.rotation import (
    FOLDS,
    paired_pooled_bootstrap,
    rotation_data,
    rotation_folds,
    run_rotation,
)


def test_every_fold_is_tested_once_and_validates_the_rotation_before_it():
    tested = [rotation_folds(k)["test"][0] for k in FOLDS]
    assert sorted(tested) == list(FOLDS)
    for k in FOLDS:
        f = rotation_folds(k)
        assert f["val"] == [k % 10 + 1] and len(f["train"]) == 8
        assert not set(f["train"]) & set(f["test"] + f["val"])


def _records(n_per_fold: int = 6) -> tuple[ECGSplit, np.ndarray]:
    folds = np.repeat(np.arange(1, 11), n_per_fold)
    y = np.zeros((len(folds), 5), dtype=np.float32)
    y[np.arange(len(folds)), np.arange(len(folds)) % 4] = 1  # classes 0-3 everywhere
    y[np.isin(folds, [3, 4]), 4] = 1  # class 4 (HYP) only in folds 3 and 4
    split = ECGSplit("all", np.zeros((len(folds), 12, 10), np.float32), y, np.arange(len(folds)) + 1, 100)
    return split, folds


def test_a_rotation_whose_training_folds_lack_a_class_is_refused_by_name(tmp_path):
    records, folds = _records()
    data = rotation_data(records, folds, 1, tmp_path, "ptbxl")  # trains on 3-10: every class
    assert set(np.unique(folds[np.isin(records.ecg_ids, data.train.ecg_ids)])) == set(range(3, 11))
    with pytest.raises(ECGDataError, match="rotation 3: the training folds .* no record of class HYP"):
        rotation_data(records, folds, 3, tmp_path, "ptbxl")  # test 3, validation 4: no HYP left to train on


def test_the_pooled_bootstrap_is_centred_on_the_difference_and_zero_for_identical_methods():
    rng = np.random.default_rng(0)
    y = (rng.random((200, 5)) < 0.3).astype(float)
    good = np.stack([y + rng.normal(0, 0.6, y.shape) for _ in range(2)])  # [S, N, C]
    bad = np.stack([y + rng.normal(0, 1.2, y.shape) for _ in range(2)])
    low, high = paired_pooled_bootstrap(y, good, bad, n_boot=200)
    assert 0 < low < high
    assert paired_pooled_bootstrap(y, good, good, n_boot=50) == (0.0, 0.0)


@pytest.fixture(scope="module")
def smoke_rotation(tmp_path_factory, one_thread):
    out = tmp_path_factory.mktemp("rotation") / "run"
    results = run_rotation(
        "synthetic", None, ["scratch", "kd", "sp"], 1, out, smoke=True, progress=False, n_boot=30
    )
    return out, results


def test_a_smoke_rotation_pools_every_record_once_and_compares_on_validation(smoke_rotation):
    out, results = smoke_rotation
    summary = results["summary"]
    assert len(results["teachers"]) == 10 and results["teachers_computed"] == 10
    tested = [i for t in results["teachers"] for i in t["test_ecg_ids"]]
    assert len(tested) == len(set(tested)) == summary["n_records"]  # each record tested once
    assert len(results["runs"]) == 10 * 3 and results["runs_computed"] == 30
    for m in ("scratch", "kd", "sp"):
        assert 0 <= summary["table"][m]["pooled_macro_auc"]["mean"] <= 1
        assert set(summary["table"][m]["fold_macro_auc"]) == {str(k) for k in FOLDS}
    val = {m: summary["table"][m]["val_macro_auc"]["mean"] for m in ("kd", "sp")}
    best = max(val, key=val.get)
    assert {c["against"] for c in summary["comparisons"].values()} == {best}
    assert set(summary["comparisons"]) == {"scratch", "kd", "sp"} - {best}
    text = (out / "results.md").read_text()
    assert "best baseline (validation)" in text and "pooled test macro-AUC" in text
    assert json.loads((out / "results.json").read_text())["folds"] == "rotate"


def test_a_resumed_rotation_loads_its_runs_and_refuses_other_folds_or_teachers(smoke_rotation):
    out, first = smoke_rotation
    again = run_rotation(
        "synthetic", None, ["scratch", "kd", "sp"], 1, out, smoke=True, progress=False, n_boot=30
    )
    assert again["runs_computed"] == 0 and again["teachers_computed"] == 0
    assert (
        again["summary"]["table"]["kd"]["pooled_macro_auc"]
        == first["summary"]["table"]["kd"]["pooled_macro_auc"]
    )

    result_file = out / "rotation-2" / "runs" / "kd" / "seed0" / "result.json"
    stored = json.loads(result_file.read_text())
    result_file.write_text(json.dumps({**stored, "test_fold": 5}))
    with pytest.raises(ECGDataError, match="other folds") as error:
        run_rotation("synthetic", None, ["kd"], 1, out, smoke=True, progress=False)
    assert str(result_file) in str(error.value)
    result_file.write_text(json.dumps(stored))

    info_file = out / "rotation-1" / "teacher" / "teacher_info.json"
    info = json.loads(info_file.read_text())
    info_file.write_text(json.dumps({**info, "backbone": "another teacher's backbone"}))
    with pytest.raises(ECGDataError, match="another backbone or on other folds") as error:
        run_rotation("synthetic", None, ["kd"], 1, out, smoke=True, progress=False)
    assert "rotation-1" in str(error.value)
    info_file.write_text(json.dumps(info))


def test_rotate_on_data_without_ten_folds_is_refused(tmp_path, one_thread):
    from evl_lite.data.benchmark import benchmark_root

    root = tmp_path / "nine-folds"
    shutil.copytree(benchmark_root("synthetic", None, smoke=True), root)
    database = pd.read_csv(root / "ptbxl_database.csv")
    database.loc[database["strat_fold"] == 10, "strat_fold"] = 9
    database.to_csv(root / "ptbxl_database.csv", index=False)
    with pytest.raises(
        ECGDataError, match="ten strat_fold folds 1-10; this data set has \\[1, 2, 3, 4, 5, 6, 7, 8, 9\\]"
    ):
        run_rotation("ptbxl", root, ["kd"], 1, tmp_path / "out", smoke=True, progress=False)


def test_rotate_refuses_label_budgets_and_transfer_records(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "evl_lite",
            "experiment",
            "--folds",
            "rotate",
            "--smoke",
            "--labelled",
            "50",
            "--out",
            str(tmp_path / "x"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0 and "--folds rotate trains every method with every label" in proc.stderr


def test_the_fold_reading_pairs_each_method_with_the_best_baseline_fold_by_fold(smoke_rotation):
    from evl_lite.experiments.rotation import fold_comparisons, rotation_markdown

    _, results = smoke_rotation
    folds = fold_comparisons(results, n_boot=200)
    best = next(iter(results["summary"]["comparisons"].values()))["against"]
    auc = {(r["method"], r["test_fold"]): r["macro_auc"] for r in results["runs"]}  # one seed
    for m, row in folds.items():
        assert row["mean"] == pytest.approx(np.mean([auc[m, k] for k in FOLDS]))
        if m != best:
            assert row["diff"] == pytest.approx(np.mean([auc[m, k] - auc[best, k] for k in FOLDS]))
            assert row["ci95"][0] <= row["diff"] <= row["ci95"][1]
    assert "mean fold macro-AUC" in rotation_markdown(results)
