"""`python -m evl_lite teacher-student`: per-seed results, mean and sd, and resuming finished seeds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from toy_ecg import toy_split

from evl_lite.data.benchmark import (
    MODEL_NORMALISATION,
    SMOKE_RECORDS,
    BenchmarkData,
    load_benchmark_data,
    model_preprocessing,
    records_are_normalised,
    unlabelled_records,
)
from evl_lite.data.ptbxl import load_ptbxl
from evl_lite.data.sources import synthetic_dataset
from evl_lite.data.split_cache import cached_splits
from evl_lite.errors import ECGDataError
from evl_lite.training.recipes import get_teacher, recipe_differences


def test_teacher_student_smoke_over_two_seeds(tmp_path):
    env = {**os.environ, "EVL_LITE_DATA": str(tmp_path / "data")}
    cmd = [
        sys.executable,
        "-m",
        "evl_lite",
        "teacher-student",
        "--smoke",
        "--seeds",
        "2",
        "--out",
        str(tmp_path / "out"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    printed = json.loads(proc.stdout)
    summary = json.loads((tmp_path / "out" / "teacher_student.json").read_text())
    assert [r["seed"] for r in summary["per_seed"]] == [0, 1]
    for who in ("teacher", "student"):
        values = [r[f"{who}_test_macro_auc"] for r in summary["per_seed"]]
        assert all(0 <= v <= 1 for v in values)
        assert summary[f"{who}_test_macro_auc"]["mean"] == sum(values) / 2
        assert printed[f"{who}_test_macro_auc"] == summary[f"{who}_test_macro_auc"]
    prov = summary["provenance"]
    assert prov["commit"] and prov["command"] and prov["seeds"] == list(range(len(prov["seeds"])))
    assert prov["versions"]["torch"].startswith("2.13.0")
    # a finished seed is loaded, not retrained: the second call returns the same per-seed numbers
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert again.returncode == 0
    assert (
        json.loads((tmp_path / "out" / "teacher_student.json").read_text())["per_seed"] == summary["per_seed"]
    )


def test_a_teacher_made_on_other_data_is_refused(tmp_path):
    data = BenchmarkData(
        root=tmp_path / "a",
        splits={"train": toy_split("train", 32, 0), "val": toy_split("val", 16, 1)},
        source="synthetic",
    )
    teacher, info = get_teacher(tmp_path / "teacher", data, smoke=True)
    assert info["data_root"] == str(tmp_path / "a")
    again, _ = get_teacher(tmp_path / "teacher", data, smoke=True)  # same data: loaded
    assert all((p == q).all() for p, q in zip(teacher.parameters(), again.parameters(), strict=True))
    other = BenchmarkData(root=tmp_path / "b", splits=data.splits, source="synthetic")
    with pytest.raises(ECGDataError, match="trained on .*a .*not on .*b"):
        get_teacher(tmp_path / "teacher", other, smoke=True)


def test_a_teacher_made_with_another_recipe_is_refused_naming_what_differs(tmp_path):
    data = BenchmarkData(
        root=tmp_path / "a",
        splits={"train": toy_split("train", 32, 0), "val": toy_split("val", 16, 1)},
        source="synthetic",
    )
    path = tmp_path / "teacher"
    get_teacher(path, data, smoke=True)
    info_file, config_file = path / "teacher_info.json", path / "config.json"
    info, config = json.loads(info_file.read_text()), json.loads(config_file.read_text())
    assert info["recipe"]["finetune"]["epochs"] == 2 and "seed" not in info["recipe"]["finetune"]
    assert recipe_differences(path, info, smoke=True) == []
    # a checkpoint from before `recipe` was recorded still loads when its architecture matches
    info_file.write_text(json.dumps({k: v for k, v in info.items() if k != "recipe"}))
    get_teacher(path, data, smoke=True)
    info_file.write_text(json.dumps({**info, "recipe": {**info["recipe"], "finetune": {
        **info["recipe"]["finetune"], "epochs": 9}}}))
    with pytest.raises(ECGDataError, match=r"teacher: .*another recipe.*finetune epochs 9, recipe 2"):
        get_teacher(path, data, smoke=True)
    info_file.write_text(json.dumps(info))
    config_file.write_text(json.dumps({k: v for k, v in config.items() if k != "stem_blocks"}))  # default 0
    with pytest.raises(ECGDataError, match=r"another recipe.*stem_blocks 0, recipe 1"):
        get_teacher(path, data, smoke=True)


@pytest.mark.parametrize(
    "record",
    [
        "teacher_student_synthetic",
        "teacher_student_synthetic_rerun",
        "teacher_student_synthetic_full",
        "teacher_student_synthetic_unlabelled5000",
        "teacher_student_ptbxl500",
    ],
)
def test_readme_quotes_the_committed_teacher_student_records(record):
    root = Path(__file__).resolve().parents[1]
    summary = json.loads((root / "results" / record / "teacher_student.json").read_text())
    readme = (root / "docs" / "results.md").read_text()
    for model in ("teacher", "student"):
        stats = summary[f"{model}_test_macro_auc"]
        quoted = f"{stats['mean']:.3f} ± {stats['sd']:.3f} (" + ", ".join(f"{v:.3f}" for v in stats["values"])
        assert quoted in readme, f"docs/results.md does not quote {record}'s {model}: {quoted}"


def test_unlabelled_records_in_mv_are_preprocessed_like_the_benchmark(
    tmp_path, monkeypatch, ptbxl_unlabelled
):
    monkeypatch.setenv("EVL_LITE_DATA", str(tmp_path / "data"))
    data = load_benchmark_data(smoke=True, progress=False)
    other = synthetic_dataset(SMOKE_RECORDS, seed=1, target=tmp_path / "other_draw")  # in mV, with folds
    assert not records_are_normalised(load_ptbxl(other))
    assert records_are_normalised(load_ptbxl(ptbxl_unlabelled))
    x = unlabelled_records(data, other, progress=False)
    splits = cached_splits(other, model_preprocessing(), MODEL_NORMALISATION, tmp_path / "data" / "cache",
                           progress=False)
    extra = np.concatenate([s.x for s in splits.values()])
    assert len(extra) > 0.9 * SMOKE_RECORDS  # every fold, not only the training one
    np.testing.assert_array_equal(x, np.concatenate([data.train.x, extra]))
    np.testing.assert_allclose(extra.std(-1), 1.0, atol=1e-3)  # each lead z-scored, as the benchmark's


def test_an_unlabelled_directory_with_a_missing_header_is_named(tmp_path):
    other = synthetic_dataset(SMOKE_RECORDS, seed=1, target=tmp_path / "draw", progress=False)
    db = load_ptbxl(other)
    header = db.record_base(int(db.ecg_ids[0]), 100).with_suffix(".hea")
    header.unlink()
    with pytest.raises(ECGDataError, match=r"\.hea: header file is missing"):
        records_are_normalised(db)
