"""The experiment command: every method x seed, paired comparisons, resumable, reproducible, multi-process."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import STATEMENTS, accelerate_launch, ecg_like, requires_accelerate, write_record

from evl_lite.cli import main
from evl_lite.data.benchmark import load_benchmark_data
from evl_lite.data.label_budget import labelled_subset
from evl_lite.data.synthetic import generate_dataset
from evl_lite.errors import ECGDataError
from evl_lite.experiments.single_split import (
    paired_bootstrap,
    parse_methods,
    results_markdown,
    run_experiment,
    scratch_comparisons,
    summarise,
)
from evl_lite.explorers.ecg_plots import label_efficiency_figure
from evl_lite.training import recipes

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
    with pytest.raises(ValueError, match=r"unknown method\(s\) \['dkd'\]; choose from scratch, kd, .*, crd"):
        parse_methods("kd,dkd")
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


def test_summarise_picks_the_best_baseline_on_validation_never_on_test():
    runs = [
        {
            "method": m,
            "seed": s,
            "macro_auc": auc + 0.01 * s,
            "hamming_accuracy": 0.8,
            "sample_accuracy": 0.5,
            "macro_f1": 0.6,
            "val_macro_auc": val,
            "train_seconds": 1.0,
        }
        for m, auc, val in (("kd", 0.80, 0.71), ("rkd", 0.85, 0.70), ("evl", 0.84, 0.72))
        for s in range(3)
    ]
    summary = summarise(runs, ["kd", "rkd", "evl"])
    # rkd is best on test, kd on validation: the comparison is with kd
    assert summary["comparisons"]["evl"]["against"] == "kd"
    assert summary["comparisons"]["evl"]["macro_auc"]["diffs"] == pytest.approx([0.04] * 3)
    assert summary["comparisons"]["evl"]["macro_auc"]["wins"] == 3


@requires_accelerate
def test_two_processes_give_the_single_process_results_within_tolerance(smoke_experiment, tmp_path):
    """Same command under `accelerate launch` (2 CPU processes, data-parallel, same global batch)."""
    out, results = smoke_experiment
    command = ["-m", "evl_lite", "experiment", "--smoke", "--seeds", "2", "--methods", "scratch,kd",
               "--out", str(tmp_path / "out2"), "--quiet"]
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
    from evl_lite.experiments.benchmarks import bench_edge

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


# ----------------------------------------------------------------------------- label budgets

BUDGET_METHODS = ["scratch", "kd"]
TRANSFER_RECORDS = 40


@pytest.fixture(scope="module")
def budget_experiment(tmp_path_factory):
    """``experiment --smoke --labelled 20,all --transfer DIR``, 2 seeds; each student's split recorded."""
    base = tmp_path_factory.mktemp("budgets")
    transfer = generate_dataset(base / "transfer", TRANSFER_RECORDS, seed=5, progress=False)  # mV, new draw
    calls = []
    real_train = recipes.train

    def spy(model, train_split, val_split, config=None, objective=None, **kwargs):
        calls.append({"objective": type(objective).__name__, "seed": config.seed, "split": train_split})
        return real_train(model, train_split, val_split, config, objective, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EVL_LITE_DATA", str(base / "data"))
        patch.setattr(recipes, "train", spy)
        command = ["experiment", "--smoke", "--labelled", "all,20", "--transfer", str(transfer), "--seeds=2"]
        code = main([*command, "--methods", ",".join(BUDGET_METHODS), "--out", str(base / "out"), "--quiet"])
        assert code == 0
        data = load_benchmark_data(smoke=True, progress=False)
        students = [c for c in calls if c["objective"] != "NoneType"]  # not the teacher's fine-tuning
        yield base, json.loads((base / "out" / "results.json").read_text()), data, students


def test_each_budget_is_its_own_set_of_runs(budget_experiment):
    base, results, data, _ = budget_experiment
    out, n_train = base / "out", len(data.train)
    assert results["labelled"] == [20, "all"] and results["n_transfer_records"] == TRANSFER_RECORDS
    assert [(b["labelled"], b["n_labelled"], b["n_transfer"]) for b in results["budgets"]] == [
        (20, 20, n_train - 20 + TRANSFER_RECORDS),
        ("all", n_train, TRANSFER_RECORDS),
    ]
    assert results["summary"] == results["budgets"][1]["summary"]  # the largest budget: every label
    for method in BUDGET_METHODS:
        for seed in (0, 1):
            assert (out / "runs" / "labelled-20" / method / f"seed{seed}" / "result.json").is_file()
            assert (out / "runs" / method / f"seed{seed}" / "result.json").is_file()  # "all": today's layout
    assert not (out / "runs" / "all").exists()
    for budget in results["budgets"]:
        runs = [r for r in results["runs"] if r["labelled"] == budget["labelled"]]
        for method, row in budget["summary"]["table"].items():
            aucs = [r["macro_auc"] for r in sorted(runs, key=lambda r: r["seed"]) if r["method"] == method]
            assert row["seeds"] == [0, 1] and row["macro_auc"]["values"] == pytest.approx(aucs)
            assert row["macro_auc"]["sd"] == pytest.approx(np.std(aucs, ddof=1))
            intervals = [r["macro_auc_ci95"] for r in runs if r["method"] == method]
            if all(intervals):  # the test split of the smoke data may be too small for one
                assert row["macro_auc_ci95"] == pytest.approx(np.mean(intervals, axis=0).tolist())
                assert all(0 <= low <= high <= 1 for low, high in intervals)


def test_every_method_of_a_seed_gets_the_same_stratified_labelled_records(budget_experiment):
    base, _, data, _ = budget_experiment
    chosen = {}
    for seed in (0, 1):
        expected = data.train.ecg_ids[labelled_subset(data.train.y, 20, seed)].tolist()
        for method in BUDGET_METHODS:
            run = json.loads((base / "out" / "runs" / "labelled-20" / method / f"seed{seed}" / "result.json")
                             .read_text())
            assert run["labelled_ecg_ids"] == expected and run["n_labelled"] == 20
        positives = data.train.y[np.isin(data.train.ecg_ids, expected)].sum(axis=0)
        assert (positives >= 1).all(), positives  # every class keeps a positive
        chosen[seed] = expected
    assert chosen[0] != chosen[1]  # seeded by the student seed


def test_scratch_trains_on_its_labelled_records_and_distillation_on_every_record(budget_experiment):
    base, results, data, students = budget_experiment
    n_train = len(data.train)
    # in the order the experiment trains them: budgets (20, all) x seeds x methods (scratch, kd)
    assert [(c["seed"], c["objective"]) for c in students] == [
        (s, o) for _ in range(2) for s in (0, 1) for o in ("Supervised", "Distillation")
    ]
    for seed in (0, 1):
        ids = json.loads((base / "out" / "runs" / "labelled-20" / "scratch" / f"seed{seed}" / "result.json")
                         .read_text())["labelled_ecg_ids"]
        scratch, kd = students[2 * seed]["split"], students[2 * seed + 1]["split"]
        assert len(scratch) == 20 and scratch.labelled is None and scratch.ecg_ids.tolist() == ids
        np.testing.assert_array_equal(scratch.x, data.train.x[np.isin(data.train.ecg_ids, ids)])
        assert len(kd) == n_train + TRANSFER_RECORDS and int(kd.labelled.sum()) == 20
        assert kd.ecg_ids[kd.labelled].tolist() == ids and not kd.labelled[n_train:].any()
        np.testing.assert_array_equal(kd.x[:n_train], data.train.x)
    for every in (students[4]["split"], students[6]["split"]):  # budget "all": scratch as before budgets
        assert every is not None and len(every) == n_train and every.labelled is None
        np.testing.assert_array_equal(every.x, data.train.x)
    for kd in (students[5]["split"], students[7]["split"]):  # the distillation losses read the transfer set
        assert kd.labelled.tolist() == [True] * n_train + [False] * TRANSFER_RECORDS
    runs = {(r["labelled"], r["method"]): r["train_records"] for r in results["runs"]}
    assert runs[20, "scratch"] == 20 and runs["all", "kd"] == n_train + TRANSFER_RECORDS


def test_the_teacher_outputs_are_cached_for_labelled_and_transfer_records(budget_experiment):
    from safetensors.torch import load_file

    base, results, data, _ = budget_experiment
    (cache_file,) = (base / "out" / "teacher_cache").glob("teacher-outputs-*.safetensors")
    assert load_file(cache_file)["logits"].shape[0] == len(data.train) + TRANSFER_RECORDS
    kd = {r["teacher_fingerprint"] for r in results["runs"] if r["method"] == "kd"}
    assert kd == {cache_file.name.removeprefix("teacher-outputs-").removesuffix(".safetensors")}


def test_distilled_students_are_compared_with_scratch_seed_by_seed(budget_experiment):
    _, results, data, _ = budget_experiment
    auc = {(r["method"], r["labelled"], r["seed"]): r["macro_auc"] for r in results["runs"]}
    rows = scratch_comparisons(results)
    distilled = [m for m in BUDGET_METHODS if m != "scratch"]
    expected = [(m, 20, "scratch, same labels") for m in distilled] + [
        (m, 20, "scratch, every label") for m in distilled] + [
        (m, len(data.train), "scratch, same labels") for m in distilled]
    assert sorted((r["method"], r["n_labelled"], r["against"]) for r in rows) == sorted(expected)
    for r in rows:
        reference = r["labelled"] if r["against"] == "scratch, same labels" else "all"
        diffs = [auc[r["method"], r["labelled"], s] - auc["scratch", reference, s] for s in (0, 1)]
        assert r["seeds"] == [0, 1] and r["diffs"] == pytest.approx(diffs)
        assert r["mean"] == pytest.approx(np.mean(diffs)) and r["wins"] == sum(d > 0 for d in diffs)
        low, high = r["ci95"]
        assert min(diffs) - 1e-12 <= low <= high <= max(diffs) + 1e-12
    markdown = results_markdown(results)
    kd = next(r for r in rows if r["method"] == "kd" and r["against"] == "scratch, every label")
    assert f"| kd | 20 | scratch, every label | {kd['mean']:+.4f} |" in markdown


def test_label_efficiency_rows_figure_and_markdown(budget_experiment):
    base, results, data, _ = budget_experiment
    rows = results["label_efficiency"]
    assert [(r["method"], r["n_labelled"]) for r in rows] == [
        (m, n) for m in BUDGET_METHODS for n in (20, len(data.train))
    ]
    tables = {b["n_labelled"]: b["summary"]["table"] for b in results["budgets"]}
    for r in rows:
        assert r["macro_auc"] == tables[r["n_labelled"]][r["method"]]["macro_auc"]["mean"]
        assert r["macro_auc_sd"] == tables[r["n_labelled"]][r["method"]]["macro_auc"]["sd"]
        assert r["seeds"] == 2
    figure = label_efficiency_figure(results)
    lines = [t for t in figure.data if t.mode == "lines+markers"]
    assert [t.name for t in lines] == BUDGET_METHODS and figure.layout.xaxis.type == "log"
    assert list(lines[1].x) == [20, len(data.train)]
    assert list(lines[1].y) == pytest.approx([r["macro_auc"] for r in rows if r["method"] == "kd"])
    band = next(t for t in figure.data if t.name == "kd ± sd")  # mean + sd out, mean - sd back
    kd = [r for r in rows if r["method"] == "kd"]
    assert band.y[0] == pytest.approx(kd[0]["macro_auc"] + kd[0]["macro_auc_sd"])
    assert band.y[-1] == pytest.approx(kd[0]["macro_auc"] - kd[0]["macro_auc_sd"])
    teacher = [s for s in figure.layout.shapes if s.y0 == s.y1]
    assert teacher and teacher[0].y0 == pytest.approx(results["teacher"]["test_macro_auc"])
    html = (base / "out" / "label_efficiency.html").read_text()
    assert "plotly.js" in html and len(html) > 1_000_000  # the offline bundle: opens without a network
    assert results["figures"] == ["label_efficiency.html", "label_efficiency.png"]
    png = (base / "out" / "label_efficiency.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000  # a drawn figure, not an empty canvas
    markdown = (base / "out" / "results.md").read_text()
    assert f"**20 of {len(data.train)} training records labelled**" in markdown
    assert f"{TRANSFER_RECORDS} records of" in markdown and "95% CI (test records)" in markdown
    kd_cells = " | ".join(f"{r['macro_auc']:.3f} ± {r['macro_auc_sd']:.3f}" for r in kd)
    assert f"| kd | {kd_cells} |" in markdown


def test_budget_runs_resume_and_a_run_with_other_labelled_records_is_refused(budget_experiment, tmp_path,
                                                                              monkeypatch):
    base, results, _, _ = budget_experiment
    monkeypatch.setenv("EVL_LITE_DATA", str(base / "data"))
    copy = tmp_path / "out"
    shutil.copytree(base / "out", copy)
    command = dict(labelled="20,all", transfer_dir=base / "transfer", smoke=True, progress=False)
    again = run_experiment("synthetic", None, BUDGET_METHODS, 2, copy, **command)
    assert again["runs_computed"] == 0  # every run of both budgets loaded
    for before, after in zip(results["budgets"], again["budgets"], strict=True):
        assert after["summary"]["table"] == before["summary"]["table"]
    run = copy / "runs" / "labelled-20" / "kd" / "seed1" / "result.json"
    stored = json.loads(run.read_text())
    run.write_text(json.dumps({**stored, "labelled_ecg_ids": stored["labelled_ecg_ids"][::-1][:19] + [-5]}))
    with pytest.raises(ECGDataError, match=r"labelled-20/kd/seed1/result.json: .*labels of other records"):
        run_experiment("synthetic", None, BUDGET_METHODS, 2, copy, **command)


def test_a_default_experiment_is_the_budget_all(smoke_experiment):
    out, results = smoke_experiment
    assert results["labelled"] == ["all"] and results["n_transfer_records"] == 0
    (budget,) = results["budgets"]
    assert budget["n_labelled"] == results["n_train"] and budget["n_transfer"] == 0
    assert results["summary"] == budget["summary"] and "figures" not in results
    assert not (out / "label_efficiency.html").exists() and not (out / "runs" / "labelled-all").exists()
    for run in results["runs"]:
        assert run["train_records"] == results["n_train"] and "labelled_ecg_ids" not in run


def _experiment_error(capsys, *args) -> str:
    """Run the experiment command on the smoke data; it must end with status 2 and one line on stderr."""
    code = main(["experiment", "--smoke", "--methods", "scratch", "--seeds", "1", "--quiet", *args])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_bad_label_budgets_end_with_a_one_line_error(budget_experiment, capsys, tmp_path, monkeypatch):
    base, _, data, _ = budget_experiment
    monkeypatch.setenv("EVL_LITE_DATA", str(base / "data"))
    out = ["--out", str(tmp_path / "out")]
    n = len(data.train)
    err = _experiment_error(capsys, "--labelled", f"20,{n + 1}", *out)
    assert f"--labelled {n + 1} is more than the {n} records of the training split" in err
    err = _experiment_error(capsys, "--labelled", "1", *out)
    assert re.search(r"--labelled 1: 1 labelled records cannot hold a positive of every class: class "
                     r"(NORM|MI|STTC|CD|HYP) would have none", err), err
    assert not (tmp_path / "out" / "teacher").exists()  # refused before any training
    for bad in ("2.5", "twenty"):
        with pytest.raises(SystemExit) as exit_:
            main(["experiment", "--labelled", bad, *out])
        assert exit_.value.code == 2
        assert f"argument --labelled: a labelled budget is a whole number of records or 'all': '{bad}'" in (
            capsys.readouterr().err
        )


def test_bad_transfer_directories_end_with_a_one_line_error(budget_experiment, capsys, tmp_path, monkeypatch):
    base, _, _, _ = budget_experiment
    monkeypatch.setenv("EVL_LITE_DATA", str(base / "data"))
    out = ["--out", str(tmp_path / "out")]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert f"{empty}: holds no records" in _experiment_error(capsys, "--transfer", str(empty), *out)
    short = tmp_path / "short"  # 5 s records in mV: 500 samples at 100 Hz, not the benchmark's 1,000
    rows = []
    for fold in range(1, 11):
        write_record(short / "records100", f"{fold:05d}_lr", ecg_like(100, 5.0, seed=fold), 100)
        rows.append({"ecg_id": fold, "scp_codes": "{'NORM': 100.0}", "strat_fold": fold,
                     "filename_lr": f"records100/{fold:05d}_lr"})
    pd.DataFrame(rows).to_csv(short / "ptbxl_database.csv", index=False)
    STATEMENTS.to_csv(short / "scp_statements.csv")
    err = _experiment_error(capsys, "--transfer", str(short), *out)
    assert f"{short}: its records last 500 samples at 100 Hz and the benchmark's 1000" in err
