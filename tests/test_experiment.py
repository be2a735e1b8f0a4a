"""The experiment command: every method x seed, paired comparisons, resumable, reproducible, multi-process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import accelerate_launch, requires_accelerate

from evl_lite.errors import ECGDataError
from evl_lite.experiment import paired_bootstrap, parse_methods, run_experiment, summarise

METHODS = ["scratch", "kd", "evl", "evl-no-ot"]


@pytest.fixture(scope="module")
def smoke_experiment(tmp_path_factory):
    base = tmp_path_factory.mktemp("experiment")
    os.environ["EVL_LITE_DATA"] = str(base / "data")
    results = run_experiment("synthetic", None, METHODS, 2, base / "out", smoke=True, progress=False)
    return base / "out", results


def test_results_hold_every_method_and_seed_with_provenance(smoke_experiment):
    out, results = smoke_experiment
    saved = json.loads((out / "results.json").read_text())
    assert saved["summary"] == json.loads(json.dumps(results["summary"]))
    table = saved["summary"]["table"]
    assert list(table) == METHODS
    for method, row in table.items():
        assert row["seeds"] == [0, 1]
        for key in ("macro_auc", "hamming_accuracy", "sample_accuracy", "macro_f1"):
            values = row[key]["values"]
            assert len(values) == 2 and all(0 <= v <= 1 for v in values)
            assert row[key]["mean"] == pytest.approx(np.mean(values))
            assert row[key]["sd"] == pytest.approx(np.std(values, ddof=1))
        assert (out / "runs" / method / "seed1" / "result.json").is_file()
    prov = saved["provenance"]
    assert prov["seeds"] == [0, 1] and prov["commit"] and "CPUs" in prov["machine"]
    assert prov["versions"]["torch"].startswith("2.13.0") and "POT" in prov["versions"]
    assert saved["efficiency"]["teacher"]["params"] > 0 and saved["efficiency"]["student"]["latency_ms"] > 0
    markdown = (out / "results.md").read_text()
    assert all(f"| {m} |" in markdown for m in METHODS) and "paired by seed" in markdown


def test_evl_is_compared_with_the_best_baseline_seed_by_seed(smoke_experiment):
    _, results = smoke_experiment
    comparison = results["summary"]["comparisons"]["evl"]
    assert comparison["against"] == "kd"  # the only baseline besides scratch in this run
    by = {(r["method"], r["seed"]): r["macro_auc"] for r in results["runs"]}
    expected = [by["evl", s] - by["kd", s] for s in (0, 1)]
    assert comparison["macro_auc"]["diffs"] == pytest.approx(expected)
    assert comparison["macro_auc"]["wins"] == sum(d > 0 for d in expected)
    assert "evl-no-ot" in results["summary"]["comparisons"]


def test_an_interrupted_experiment_resumes_and_reproduces(smoke_experiment, tmp_path):
    out, results = smoke_experiment
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    lost = copy / "runs" / "evl" / "seed1"
    shutil.rmtree(lost)  # as if killed before this run finished
    (copy / "results.json").unlink()
    kept = (copy / "runs" / "kd" / "seed0" / "result.json").stat().st_mtime_ns
    again = run_experiment("synthetic", None, METHODS, 2, copy, smoke=True, progress=False)
    assert (copy / "runs" / "kd" / "seed0" / "result.json").stat().st_mtime_ns == kept  # loaded, not rerun
    redone = json.loads((lost / "result.json").read_text())
    original = next(r for r in results["runs"] if r["method"] == "evl" and r["seed"] == 1)
    for key in ("macro_auc", "hamming_accuracy", "val_macro_auc", "best_epoch"):  # same seed, same numbers
        assert redone[key] == original[key]
    for method, row in again["summary"]["table"].items():  # everything but the wall-clock times
        assert {k: v for k, v in row.items() if k != "train_seconds"} == {
            k: v for k, v in results["summary"]["table"][method].items() if k != "train_seconds"
        }


def test_a_run_distilled_from_another_teacher_is_not_resumed(smoke_experiment, tmp_path):
    out, _ = smoke_experiment
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    kd_file = copy / "runs" / "kd" / "seed0" / "result.json"
    made_from = json.loads(kd_file.read_text())["teacher_fingerprint"]
    assert made_from and len(made_from) == 16
    for method in ("scratch", "kd"):  # as if both were made with an older teacher
        run = copy / "runs" / method / "seed0" / "result.json"
        run.write_text(json.dumps({**json.loads(run.read_text()), "teacher_fingerprint": "0" * 16}))
    refused = rf"kd/seed0/result.json: .*another teacher .*0{{16}}, now {made_from}"
    with pytest.raises(ECGDataError, match=refused):
        run_experiment("synthetic", None, METHODS, 2, copy, smoke=True, progress=False)  # scratch resumed


def test_method_names_are_checked():
    assert parse_methods("kd, evl,kd") == ["kd", "evl"]
    with pytest.raises(ValueError, match="unknown method"):
        parse_methods("kd,crd")
    proc = subprocess.run(
        [sys.executable, "-m", "evl_lite", "experiment", "--methods", "kd,nope", "--out", "x"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "unknown method" in proc.stderr


def test_paired_bootstrap_interval_covers_the_mean_and_shrinks_with_agreement():
    diffs = np.array([0.01, 0.02, 0.015, 0.03, 0.025])
    low, high = paired_bootstrap(diffs)
    assert low <= diffs.mean() <= high and low > 0
    assert np.isnan(paired_bootstrap(np.array([0.1]))[0])
    tight = paired_bootstrap(np.full(5, 0.02))
    assert tight == pytest.approx((0.02, 0.02))


def test_summarise_picks_the_best_baseline_by_mean_auc():
    runs = [
        {
            "method": m,
            "seed": s,
            "macro_auc": auc + 0.01 * s,
            "hamming_accuracy": 0.8,
            "sample_accuracy": 0.5,
            "macro_f1": 0.6,
            "val_macro_auc": 0.7,
            "train_seconds": 1.0,
        }
        for m, auc in (("kd", 0.80), ("rkd", 0.85), ("evl", 0.84))
        for s in range(3)
    ]
    summary = summarise(runs, ["kd", "rkd", "evl"])
    assert summary["comparisons"]["evl"]["against"] == "rkd"
    assert summary["comparisons"]["evl"]["macro_auc"]["diffs"] == pytest.approx([-0.01] * 3)
    assert summary["comparisons"]["evl"]["macro_auc"]["wins"] == 0


@requires_accelerate
def test_two_processes_give_the_single_process_results_within_tolerance(smoke_experiment, tmp_path):
    """Same command under `accelerate launch` (2 CPU processes, data-parallel, same global batch)."""
    out, results = smoke_experiment
    command = ["-m", "evl_lite", "experiment", "--smoke", "--seeds", "2", "--methods", "scratch,kd",
               "--teacher", str(out / "teacher"), "--out", str(tmp_path / "out2"), "--quiet"]
    accelerate_launch(command, timeout=900)
    two = json.loads((tmp_path / "out2" / "results.json").read_text())
    assert two["processes"] == 2
    single = {(r["method"], r["seed"]): r for r in results["runs"]}
    for run in two["runs"]:
        reference = single[run["method"], run["seed"]]
        assert run["epochs_run"] == reference["epochs_run"]
        # every validation record was evaluated once, split over the two processes and gathered back
        history = json.loads(
            (
                tmp_path
                / "out2"
                / "runs"
                / run["method"]
                / f"seed{run['seed']}"
                / "training"
                / "history.json"
            ).read_text()
        )
        assert all(h["val_n"] == two["n_val"] for h in history)
        # Same global batch, steps and crops, but BatchNorm normalises each process's half batch, so the
        # runs are not bit-identical; on the smoke data (15 validation records, 2 epochs) the AUCs measured
        # 0.00-0.14 apart, so 0.2 catches a broken data-parallel run, not the expected drift.
        assert abs(run["val_macro_auc"] - reference["val_macro_auc"]) <= 0.2, (run, reference)
        assert abs(run["macro_auc"] - reference["macro_auc"]) <= 0.2, (run, reference)


def test_edge_benchmark_of_the_experiments_student(smoke_experiment):
    from evl_lite.benchmarks import bench_edge

    out, results = smoke_experiment
    edge = bench_edge(str(out), "evl", 0, repeats=2)
    assert edge["student"]["params"] == results["efficiency"]["student"]["params"]
    assert edge["params_teacher_over_student"] == pytest.approx(
        edge["teacher"]["params"] / edge["student"]["params"]
    )
    assert edge["onnx_max_abs_logit_diff"] < 1e-4
    runtimes = edge["latency_b1_by_runtime"]
    assert runtimes["length"] == edge["window_samples"]
    assert runtimes["onnxruntime"]["teacher_over_student"] == pytest.approx(
        runtimes["onnxruntime"]["teacher"] / runtimes["onnxruntime"]["student"]
    )
    assert max(runtimes["onnx_max_abs_diff"].values()) < 1e-4
    evl = next(r for r in results["runs"] if r["method"] == "evl" and r["seed"] == 0)
    # the float version of the stored best checkpoint reproduces the experiment's test AUC
    assert edge["student_versions"]["float"]["test_macro_auc"] == pytest.approx(evl["macro_auc"], abs=1e-6)
    assert edge["student_versions"]["dynamic_int8"]["int8_weights"] > 0
    with pytest.raises(FileNotFoundError, match="no trained"):
        bench_edge(str(out), "fitnet", 0)
