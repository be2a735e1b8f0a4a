"""Tuning on validation only (``tune``), and running the chosen settings (``experiment --distill``)."""

from __future__ import annotations

import json

import pytest

from evl_lite.distillation.evl import DistillConfig, method_settings
from evl_lite.errors import ECGDataError
from evl_lite.experiments.tuning import config_label, grid_configs, run_tuning


def test_the_grid_is_every_combination_and_bad_settings_are_named():
    configs = grid_configs({"ot_weight": [0.5, 1.0], "relation_weight": [1.0, 4.0, 8.0]})
    assert len(configs) == 6 and {c.ot_weight for c in configs} == {0.5, 1.0}
    assert config_label(configs[0]) == "ot_weight=0.5" and config_label(DistillConfig()) == "default"
    with pytest.raises(ValueError, match="unknown distillation setting.*'ot_wieght'.*choose from"):
        grid_configs({"ot_wieght": [1]})
    with pytest.raises(ValueError, match="non-empty list"):
        grid_configs({"ot_weight": []})
    one_at_a_time = grid_configs([{}, {"ot_weight": 2.0}, {"kd_weight": 2.0}])
    assert [config_label(c) for c in one_at_a_time] == ["default", "ot_weight=2.0", "kd_weight=2.0"]
    with pytest.raises(ValueError, match="JSON object"):
        DistillConfig.from_json("[1, 2]")


def test_a_method_is_checked_only_against_the_settings_its_losses_read():
    changed = DistillConfig(ot_weight=0.5)
    assert method_settings("kd", changed) == method_settings("kd")  # KD reads no OT setting
    assert method_settings("evl", changed) != method_settings("evl")
    assert method_settings("scratch", changed) == {}


def test_tuning_never_reads_the_test_split_and_ranks_on_validation(tmp_path, monkeypatch, one_thread):
    import evl_lite.experiments.tuning as tuning

    seen = []
    real = tuning.distill_student

    def spy(method, data, *args, **kwargs):
        seen.append(set(data.splits))
        return real(method, data, *args, **kwargs)

    monkeypatch.setattr(tuning, "distill_student", spy)
    out = tmp_path / "tune"
    summary = run_tuning(
        "synthetic", None, "evl", {"ot_weight": [0.5, 1.0]}, 1, out, smoke=True, progress=False
    )
    assert seen == [{"train", "val"}] * 2  # no test split reached any student
    aucs = [r["val_macro_auc"]["mean"] for r in summary["configurations"]]
    assert (
        aucs == sorted(aucs, reverse=True)
        and summary["chosen"] == summary["configurations"][0]["configuration"]
    )
    assert "test" not in json.dumps(summary["configurations"])
    text = (out / "tuning.md").read_text()
    assert "the test split is never read" in text and "--distill" in text
    again = run_tuning(
        "synthetic", None, "evl", {"ot_weight": [0.5, 1.0]}, 1, out, smoke=True, progress=False
    )
    assert len(seen) == 2 and again["configurations"] == summary["configurations"]  # resumed, nothing trained


def test_an_experiment_refuses_a_stored_run_distilled_with_other_settings(tmp_path, monkeypatch, one_thread):
    from evl_lite.experiments.single_split import run_experiment

    monkeypatch.setenv("EVL_LITE_DATA", str(tmp_path / "data"))
    out = tmp_path / "experiment"
    run_experiment("synthetic", None, ["kd", "evl"], 1, out, smoke=True, progress=False)
    again = run_experiment(
        "synthetic",
        None,
        ["kd"],
        1,
        out,
        smoke=True,
        progress=False,
        distill_config=DistillConfig(ot_weight=0.5),
    )
    assert again["runs_computed"] == 0  # KD reads no OT setting: its run is reused
    with pytest.raises(ECGDataError, match="distilled with other settings"):
        run_experiment(
            "synthetic",
            None,
            ["evl"],
            1,
            out,
            smoke=True,
            progress=False,
            distill_config=DistillConfig(ot_weight=0.5),
        )
