"""The shipped headline (notebook 07's reading of the committed studies) is what results/ regenerates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evl_lite.errors import ECGDataError
from evl_lite.experiments.headline import (
    HEADLINE_FILE,
    PAGE_MARKERS,
    headline,
    headline_block,
    headline_lines,
    load_headline,
    settings_of,
    update_page,
    write_headline,
)

ROOT = Path(__file__).resolve().parents[1]


def test_the_packaged_headline_is_what_its_committed_sources_regenerate(monkeypatch):
    shipped = load_headline()
    sources = shipped["command"].removeprefix("python -m evl_lite headline ").split()
    assert sources, "the packaged headline names no study"
    monkeypatch.chdir(ROOT)
    assert headline(sources) == shipped, "headline.json differs: rerun the command it records"
    assert {s["setting"].split(",")[0] for s in shipped["settings"]} >= {"synthetic", "ptbxl-500"}
    page = (ROOT / "docs" / "results.md").read_text()
    begin, end = PAGE_MARKERS
    assert page.split(begin)[1].split(end)[0].strip() == headline_block(shipped), "rerun it with --page"


def _single_split(evl_gain: float, ci_low: float, budgets=(200, "all")) -> dict:
    def summary(labelled):
        aucs = {"scratch": 0.90, "kd": 0.95, "rkd": 0.94, "evl": 0.95 + evl_gain, "evl-no-ot": 0.95}
        table = {m: {"macro_auc": {"mean": a}} for m, a in aucs.items()}
        comparisons = {
            m: {"against": "kd", "macro_auc": {"mean": aucs[m] - 0.95, "ci95": [ci_low, 0.03]}}
            for m in ("evl", "evl-no-ot")
        }
        return {
            "labelled": labelled,
            "n_transfer": 1400,
            "summary": {"table": table, "comparisons": comparisons},
        }

    return {
        "data": "synthetic",
        "path": "data/synthetic/n2000-seed0",
        "seeds": [0, 1, 2, 3, 4],
        "n_train": 1600,
        "n_test": 2000,
        "teacher": {"test_macro_auc": 0.97},
        "distill_config": {},
        "budgets": [summary(b) for b in budgets],
    }


def test_the_bar_needs_a_gain_of_0_01_with_an_interval_above_zero():
    cleared = settings_of(_single_split(0.012, 0.002), "x", "200")
    assert [s["clears_bar"] for s in cleared] == [True]
    assert cleared[0]["best_baseline"] == "kd" and cleared[0]["baselines"] == ["kd", "rkd"]
    assert cleared[0]["component_gain"] == {"ot": pytest.approx(0.012)}
    assert "200 labels + 1,400 transfer records" in cleared[0]["setting"]
    assert not settings_of(_single_split(0.012, -0.001), "x", "200")[0]["clears_bar"]  # interval crosses 0
    assert not settings_of(_single_split(0.008, 0.002), "x", "200")[0]["clears_bar"]  # below the margin
    assert len(settings_of(_single_split(0.0, 0.0), "x")) == 2  # every budget when none is asked


def test_a_rotation_is_read_pooled():
    rotation = {
        "data": "ptbxl",
        "path": "../shared/data/ptbxl-500",
        "folds": "rotate",
        "seeds": [0, 1, 2],
        "distill_config": {"ot_reg": 0.1},
        "summary": {
            "n_records": 488,
            "teacher": {"pooled_macro_auc": 0.86},
            "table": {m: {"pooled_macro_auc": {"mean": a}} for m, a in {"kd": 0.85, "evl": 0.84}.items()},
            "comparisons": {"evl": {"against": "kd", "mean": -0.01, "ci95": [-0.02, 0.0], "folds_better": 3}},
        },
    }
    [s] = settings_of(rotation, "r")
    assert s["setting"].startswith("ptbxl-500, distillation settings ot_reg=0.1, 10-fold rotation")
    assert not s["clears_bar"] and s["teacher_macro_auc"] == 0.86
    assert "does not clear" in headline_lines({"bar": 0.01, "settings": [s]})[0]


def test_missing_results_or_budget_are_errors_naming_them(tmp_path):
    with pytest.raises(ECGDataError, match=r"nowhere/results.json: is missing"):
        headline([str(tmp_path / "nowhere")])
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "results.json").write_text(json.dumps(_single_split(0.0, 0.0)))
    with pytest.raises(ECGDataError, match=r"exp@50: no label budget '50' \(it holds 200, all\)"):
        headline([f"{tmp_path / 'exp'}@50"])
    written = write_headline([f"{tmp_path / 'exp'}@all"], tmp_path / "h.json")
    assert load_headline(tmp_path / "h.json") == written and HEADLINE_FILE.name == "headline.json"
    page = tmp_path / "results.md"
    page.write_text("# Results\n\n" + "\n".join(PAGE_MARKERS) + "\nafter\n")
    assert update_page(page, written) and not update_page(page, written)  # written once, then unchanged
    assert headline_block(written) in page.read_text() and page.read_text().endswith("after\n")
