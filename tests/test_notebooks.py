"""Every notebook: committed clean, parameters first, and executed by papermill in smoke mode.

The whole collection runs once per session through the command line (``python -m evl_lite
run --mode smoke``), and each notebook's recorded ``metrics.json`` is checked against what
that notebook must have computed, not only that it ran.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

from evl_lite.constants import SUPERCLASSES
from evl_lite.course.runner import list_notebooks
from evl_lite.foundation.hub import WEIGHTS_DIR

NOTEBOOKS = list_notebooks()
REQUIRED_PARAMETERS = {"SMOKE", "DATA_SOURCE", "DATA_DIR", "SEED", "OUTPUT_DIR"}


def test_the_course_has_its_notebooks():
    names = [p.stem for p in NOTEBOOKS]
    assert names[:3] == ["01_ecg_preprocessing", "02_teacher", "03_student_and_logit_kd"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path: Path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs or execution counts; strip them"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_first_code_cell_is_tagged_parameters(path: Path):
    """After the Colab set-up cell (tests/test_colab.py), the parameters come first."""
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    first = next(c for c in code if "colab-setup" not in c.metadata.get("tags", []))
    assert "parameters" in first.metadata.get("tags", []), f"{path.name}: first code cell lacks the tag"
    names = {line.split("=")[0].strip() for line in first.source.splitlines() if "=" in line}
    assert REQUIRED_PARAMETERS <= names, f"{path.name}: parameters cell lacks {REQUIRED_PARAMETERS - names}"


def _run(out: Path, data_root: Path, *extra: str) -> dict:
    env = {**os.environ, "EVL_LITE_DATA": str(data_root)}
    proc = subprocess.run(
        [sys.executable, "-m", "evl_lite", "run", "--mode", "smoke", "--out", str(out), *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
    )
    summary_file = out / "summary.json"
    assert summary_file.is_file(), f"no summary.json; stderr:\n{proc.stderr[-3000:]}"
    summary = json.loads(summary_file.read_text())
    failed = {k: v.get("error") for k, v in summary["notebooks"].items() if v["status"] != "ok"}
    assert proc.returncode == 0 and not failed, f"failed notebooks: {failed}\n{proc.stderr[-3000:]}"
    return summary


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("smoke")
    return _run(base / "runs", base / "data")


def metrics_of(summary: dict, stem: str) -> dict:
    entry = summary["notebooks"][f"{stem}.ipynb"]
    assert entry["metrics"] is not None, f"{stem} recorded no metrics.json"
    return entry["metrics"]


def test_smoke_run_writes_executed_notebooks_and_summary(smoke_run):
    out = Path(smoke_run["out_dir"])
    assert set(smoke_run["notebooks"]) == {p.name for p in NOTEBOOKS}
    for name, entry in smoke_run["notebooks"].items():
        executed = nbformat.read(out / name, as_version=4)
        assert any(c.get("outputs") for c in executed.cells if c.cell_type == "code"), (
            f"{name} has no outputs"
        )
        assert entry["seconds"] > 0


def check_01(m: dict, synthetic: bool) -> None:
    assert m["einthoven_max_abs_error_mv"] <= 0.003  # III = II - I holds on the data read
    assert m["baseline_power_removed_fraction"] > 0.9
    assert m["high_frequency_power_removed_fraction"] > 0.9
    assert m["powerline_power_removed_fraction"] > 0.8
    assert (m["fs_after_resampling"], m["samples_after"]) == (100, 1000)
    assert m["resampled_vs_stored_100hz_corr"] > 0.95
    assert m["n_beats_averaged"] >= 5
    std = m["standardisation"]
    assert max(abs(v) for v in std["train_mean_per_lead"]) < 1e-5
    assert max(abs(v - 1) for v in std["train_std_per_lead"]) < 1e-4
    assert m["signal_quality"]["mean_preprocessed"] > m["signal_quality"]["mean_raw"]
    assert m["explorer"]["default_ok"] is True and m["explorer"]["impossible_setting_ok"] is False
    if synthetic:  # R-peak detection against the generator's true heart rate
        assert m["heart_rate"]["mae_bpm"] < 3 and m["heart_rate"]["n_without_rate"] == 0


def test_01_preprocessing_numbers_on_synthetic(smoke_run):
    m = metrics_of(smoke_run, "01_ecg_preprocessing")
    check_01(m, synthetic=True)
    assert m["n_records"] == 80 and sum(m["superclass_counts"].values()) >= 80


def test_01_preprocessing_on_real_ptbxl_500(ptbxl500, tmp_path):
    summary = _run(
        tmp_path / "runs", tmp_path / "data", "--data", "ptbxl", "--path", str(ptbxl500), "--only", "01"
    )
    m = metrics_of(summary, "01_ecg_preprocessing")
    check_01(m, synthetic=False)
    assert m["n_records"] == 500
    assert m["superclass_counts"] == {"NORM": 297, "MI": 73, "STTC": 96, "CD": 78, "HYP": 40}


def test_02_teacher_records_a_trained_and_evaluated_teacher(smoke_run):
    m = metrics_of(smoke_run, "02_teacher")
    # smoke: folds 1-9 of the 150-record draw; the test split is the evaluation draw (150 in smoke)
    assert m["n_train"] + m["n_val"] < 150 == m["n_test"] and m["n_train"] > m["n_val"]
    assert m["teacher_params"] > 0 and Path(m["teacher_dir"], "model.safetensors").is_file()
    assert m["pretrain_epochs"] >= 1 and np.isfinite(m["pretrain_loss_last"])
    assert 0 <= m["val_macro_auc"] <= 1
    low, high = m["test_macro_auc_ci"]
    assert low <= m["test_macro_auc"] <= high
    entropy = np.asarray(m["attention"]["entropy"], dtype=float)
    assert entropy.size > 0 and ((entropy >= 0) & (entropy <= 1)).all()


def test_02_compares_the_shipped_foundation_teacher_with_the_short_run_and_the_student(smoke_run):
    m = metrics_of(smoke_run, "02_teacher")
    assert Path(m["foundation_dir"]) == WEIGHTS_DIR / "synthetic"
    rows = m["comparison"]
    short, shipped = rows["short run (above)"], rows["shipped foundation teacher"]
    scratch = rows["student from scratch"]
    assert short["test macro-AUC"] == pytest.approx(m["test_macro_auc"])
    # the shipped teacher saw far more records than this run; in smoke mode it is far better too
    assert shipped["labelled records"] > 10 * short["labelled records"]
    assert shipped["test macro-AUC"] > max(short["test macro-AUC"], scratch["test macro-AUC"]) + 0.1


def test_03_student_reuses_the_teacher_and_compares_kd_with_scratch(smoke_run):
    m02 = metrics_of(smoke_run, "02_teacher")
    m = metrics_of(smoke_run, "03_student_and_logit_kd")
    assert m["teacher_dir"] == m02["foundation_dir"]  # the shipped teacher, no teacher trained here
    assert m["teacher_test_macro_auc"] > m["scratch_test_macro_auc"]
    assert m["receptive_field"]["samples"] == 235 and m["receptive_field"]["stride"] == 8
    assert m["kd_params"] == m["scratch_params"] == m["student_params"]
    assert len(m["kd_window_starts"]) == 3
    for name in ("teacher", "scratch", "kd"):
        low, high = m[f"{name}_test_macro_auc_ci"]
        assert low <= m[f"{name}_test_macro_auc"] <= high
        assert m[f"{name}_latency_ms"] > 0
    assert m["kd_minus_scratch_test_auc"] == pytest.approx(
        m["kd_test_macro_auc"] - m["scratch_test_macro_auc"]
    )
    # where distillation pays: a few labels, the rest of the training split as the transfer set
    assert m["few_labels"] == min(200, m["n_train"] // 2)
    assert m["few_labels"] + m["transfer_records"] == m["n_train"]
    few = m["few_labels_test_macro_auc"]
    assert set(few) == {"scratch, few labels", "logit KD, few labels + transfer set", "scratch, every label",
                        "teacher"} and all(0 <= v <= 1 for v in few.values())
    assert few["scratch, every label"] == pytest.approx(m["scratch_test_macro_auc"])
    assert few["teacher"] == pytest.approx(m["teacher_test_macro_auc"])
    kd = m["kd_term_first_window"]  # the learner's binary_kl (exercise 03-a) on three students
    assert set(kd) == {"initial weights", "scratch", "logit KD"}
    assert all(np.isfinite(v) and v >= 0 for v in kd.values())


def test_07_trains_every_method_and_reads_the_comparison(smoke_run):
    m = metrics_of(smoke_run, "07_full_training")
    expected = ["scratch", "kd", "fitnet", "rkd", "sp", "ofa", "crd", "evl", "evl-no-cross_attention",
                "evl-no-ot", "evl-no-relation"]
    assert m["methods"] == expected and set(m["test_macro_auc"]) == set(expected)
    assert all(0 <= v <= 1 for v in m["test_macro_auc"].values())
    assert m["evl_loss_terms"] == ["bce", "cross_attention", "kd", "ot", "relation"]
    assert all(np.isfinite(v) for v in m["evl_loss_term_ratio_last_first"].values())
    auc = m["test_macro_auc"]
    assert m["evl_minus_best_baseline"] == pytest.approx(auc["evl"] - auc[m["best_baseline"]])
    for component, change in m["ablation_change_vs_evl"].items():
        assert change == pytest.approx(auc[f"evl-no-{component}"] - auc["evl"])
    assert m["methods_above_scratch"] == [k for k in auc if k != "scratch" and auc[k] > auc["scratch"]]
    best = m["best_baseline"]
    assert any(line.startswith(f"EVL minus the best baseline ({best}, chosen on validation): "
                               f"{m['evl_minus_best_baseline']:+.3f}") for line in m["reading"]), m["reading"]
    assert not any("beats" in line for line in m["reading"])  # a gap is read with its interval, not as a win
    assert m["best_baseline"] in ("kd", "fitnet", "rkd", "sp", "ofa", "crd")
    assert m["fitnet_minus_kd"] == pytest.approx(auc["fitnet"] - auc["kd"])
    side = "above" if m["fitnet_minus_kd"] > 0 else "below"
    assert any(line.startswith(f"FitNet's hints (KD + FitNet) {side} plain KD") for line in m["reading"])
    # label efficiency: scratch, kd and evl at the few-label budget, then at every label (the runs above)
    rows = m["label_efficiency"]
    n_few = min(200, m["n_train"] // 2)
    assert {(r["method"], r["n_labelled"]) for r in rows} == {
        (method, n) for method in ("scratch", "kd", "evl") for n in (n_few, m["n_train"])}
    every = {r["method"]: r["macro_auc"] for r in rows if r["n_labelled"] > n_few}
    assert every == pytest.approx({k: auc[k] for k in ("scratch", "kd", "evl")})
    assert all(r["n_transfer"] > 0 for r in rows if r["n_labelled"] == n_few)
    reading = m["label_efficiency_reading"]
    assert len(reading) == 2 and all(line.startswith(f"{n_few} labels") for line in reading)
    # the committed studies' reading, as shipped
    from evl_lite.experiments.headline import load_headline

    shipped = load_headline()["settings"]
    assert m["committed_settings_clearing_bar"] == sum(s["clears_bar"] for s in shipped)


def test_04_cross_attention_alignment_records_the_component(smoke_run):
    m02 = metrics_of(smoke_run, "02_teacher")
    m = metrics_of(smoke_run, "04_cross_attention_alignment")
    assert m["teacher_dir"] == m02["foundation_dir"]  # the shipped teacher
    assert m["n_teacher_tokens"] == 12 * m["n_patches_per_lead"] == 60  # 0.5 s patches of 2.5 s windows
    assert (m["n_student_tokens"], m["student_token_dim"], m["teacher_token_dim"]) == (32, 64, 128)
    assert m["attention_shape"][1:] == [m["n_heads"], m["n_student_tokens"], m["n_teacher_tokens"]]
    assert m["trained_attention_shape"] == m["attention_shape"]
    assert "must match the size" in m["naive_mse_error"]
    assert m["step_by_step_matches_package"] is True and m["step_by_step_max_abs_diff"] < 1e-5
    assert m["attention_row_sum_max_error"] < 1e-5 and m["toy_row_sum_max_error"] < 1e-5
    assert m["fitnet_hint_change_when_leads_averaged"] < 1e-5
    assert m["cross_attention_target_change_when_leads_averaged"] > 0.01
    assert 0 < m["teacher_between_lead_variance_share"] < 1
    assert 0 <= m["kd_val_macro_auc"] <= 1 and 0 <= m["cross_attention_kd_val_macro_auc"] <= 1
    assert m["cross_attention_minus_kd_val_auc"] == pytest.approx(
        m["cross_attention_kd_val_macro_auc"] - m["kd_val_macro_auc"]
    )
    assert {"train_bce", "train_kd", "train_cross_attention"} <= set(m["history_keys"])
    assert len(m["train_cross_attention"]) == m["student_epochs"]
    assert np.isfinite(m["train_cross_attention"]).all()
    assert 0 < m["untrained_attention_entropy"] <= 1 and 0 < m["trained_attention_entropy"] <= 1
    assert m["explorer"]["heads"] == m["n_heads"] + 1
    assert m["explorer"]["row_sum"] == pytest.approx(1, abs=1e-5)


def test_05_optimal_transport_records_the_plan_and_the_eps_limit(smoke_run):
    m = metrics_of(smoke_run, "05_optimal_transport")
    assert m["sinkhorn_step_by_step_matches_package"] is True
    assert m["n_teacher_tokens"] % 12 == 0 and m["n_student_tokens"] != m["n_teacher_tokens"]
    eps, gap = m["entropic_eps"], np.array(m["entropic_minus_exact"])
    assert len(eps) == len(gap) and eps == sorted(eps, reverse=True)
    assert (gap >= -1e-9).all() and (np.diff(gap) <= 1e-9).all() and gap[-1] < 1e-2 < gap[0]
    assert m["plan_marginal_error"] < 1e-3  # the component's Sinkhorn tolerance
    assert m["envelope_gradient_relative_error"] < 1e-4
    assert 0.0 <= m["kd_val_macro_auc"] <= 1.0 and 0.0 <= m["ot_kd_val_macro_auc"] <= 1.0
    assert len(m["ot_kd_history"]) == len(m["kd_history"]) == m["student_epochs"]
    assert all(0.0 <= r["train_ot"] <= 2.0 for r in m["ot_kd_history"])
    assert all("train_ot" not in r for r in m["kd_history"])


def test_08_evaluates_and_interprets_the_student(smoke_run):
    m = metrics_of(smoke_run, "08_evaluation_and_interpretation")
    for key in ("student_test_macro_auc", "teacher_test_macro_auc"):
        assert 0.0 <= m[key] <= 1.0
    assert set(m["ece_per_class"]) == {"NORM", "MI", "STTC", "CD", "HYP"}
    assert all(0.0 <= v <= 1.0 for v in m["ece_per_class"].values())
    occ = m["occlusion"]
    assert len(occ["student"]) == len(occ["teacher"]) == 12 and occ["class"] in SUPERCLASSES
    assert np.isfinite(occ["student"]).all() and np.isfinite(occ["teacher"]).all()
    assert "07" in m["student_origin"]  # 07 ran first in the same run, so its EVL student is evaluated


def test_09_deploys_the_student_and_reads_an_ecg_file(smoke_run):
    m = metrics_of(smoke_run, "09_deployment")
    m08 = metrics_of(smoke_run, "08_evaluation_and_interpretation")
    for key in ("float_test_macro_auc", "quantised_test_macro_auc", "static_int8_test_macro_auc",
                "onnx_test_macro_auc"):
        assert 0.0 <= m[key] <= 1.0
    assert m["onnx_max_abs_diff"] < 1e-4
    assert m["onnx_test_macro_auc"] == pytest.approx(m["float_test_macro_auc"], abs=1e-3)
    same_student = m08["student_test_macro_auc"]
    assert m["float_test_macro_auc"] == pytest.approx(same_student, abs=1e-6)
    assert m["quantised_int8_weights"] == 64 * 5
    assert m["quantised_int8_weights"] + m["quantised_float_weights"] == m["student_params"]
    assert m["quantised_latency_ms"] > 0 and m["float_latency_ms"] > 0
    assert m["param_ratio"] == pytest.approx(m["teacher_params"] / m["student_params"])
    assert m["latency_ratio_b1"] == pytest.approx(m["teacher_latency_ms"] / m["student_latency_ms"])
    runtimes = m["latency_b1_by_runtime"]
    for runtime in ("eager_pytorch", "onnxruntime"):
        assert runtimes[runtime]["teacher_over_student"] == pytest.approx(
            runtimes[runtime]["teacher"] / runtimes[runtime]["student"]
        )
    assert max(runtimes["onnx_max_abs_diff"].values()) < 1e-4
    assert "NOT A DIAGNOSIS" in m["summary_text"]
    assert "07" in m["student_origin"]
    reading = m["predict"]  # section 3: the shipped student reads one record, with its report
    assert reading["exit_status"] == 0 and reading["model"] == "ptbxl-student"
    assert set(reading["probabilities"]) == set(SUPERCLASSES) and "index.html" in reading["pages"]


def test_06_relation_matching_checks_its_properties_and_reports_the_mismatch(smoke_run):
    m = metrics_of(smoke_run, "06_relation_matching")
    assert m["step_by_step_matches_package"] is True
    assert m["zero_at_scaled_copy"] < 1e-10 and m["scale_invariance_error"] < 1e-5
    assert m["raw_distance_ratio"] > 0 and m["n_bins"] >= 2
    assert 0 <= m["kd_val_macro_auc"] <= 1 and 0 <= m["relation_kd_val_macro_auc"] <= 1
    assert len(m["train_relation"]) == m["student_epochs"] and np.isfinite(m["train_relation"]).all()
    mismatch = m["relation_mismatch"]
    assert set(mismatch) == {"initial", "kd", "kd_relation"} and all(v >= 0 for v in mismatch.values())


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_notebook_reads_as_a_lesson(path: Path):
    """No dictionary dumps, a setup cell of at most 15 lines, no research history in the prose."""
    from evl_lite.course.hygiene import lesson_problems

    assert lesson_problems(nbformat.read(path, as_version=4)) == []


def test_executed_notebooks_write_nothing_to_stderr_and_freeze_no_progress_bar(smoke_run):
    from evl_lite.course.hygiene import output_problems

    out = Path(smoke_run["out_dir"])
    problems = {name: output_problems(nbformat.read(out / name, as_version=4))
                for name in smoke_run["notebooks"]}
    assert not any(problems.values()), {k: v for k, v in problems.items() if v}
