"""docs/results.md's tables are generated from the committed results and cannot drift from them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from evl_lite.experiments.results_page import BEGIN, END, replace_section, results_section, update_readme
from evl_lite.experiments.single_split import results_markdown

ROOT = Path(__file__).resolve().parents[1]
RESULTS_PAGE = ROOT / "docs" / "results.md"


def committed_result_dirs() -> list[Path]:
    """The experiment directories the results page's block names, in its order."""
    block = RESULTS_PAGE.read_text().split(BEGIN)[1].split(END)[0]
    return [ROOT / d for d in re.findall(r"^### `([^`]+)`$", block, flags=re.M)]


def test_readme_results_block_is_what_the_committed_results_generate():
    dirs = committed_result_dirs()
    assert dirs, "the results page's block names no experiment directory"
    text = RESULTS_PAGE.read_text()
    regenerated = replace_section(text, results_section([d.relative_to(ROOT) for d in dirs]))
    assert regenerated == text, (
        "docs/results.md differs from results/*.json: run `python -m evl_lite results docs/results.md ...`"
    )


def test_every_committed_experiment_has_enough_seeds_and_its_provenance():
    for directory in committed_result_dirs():
        results = json.loads((directory / "results.json").read_text())
        rotation = results.get("folds") == "rotate"  # 3 seeds on each of 10 rotations
        assert len(results["seeds"]) >= (3 if rotation else 5) or results["data"] == "synthetic", directory
        prov = results["provenance"]
        assert prov["command"].startswith("python -m evl_lite experiment") and prov["commit"] != "unknown"
        assert "+dirty" not in prov["commit"], f"{directory} was produced from uncommitted code"
        assert {"torch", "POT", "transformers"} <= set(prov["versions"])
        for method, row in results["summary"]["table"].items():
            auc = row["pooled_macro_auc" if rotation else "macro_auc"]
            assert len(auc["values"]) == len(results["seeds"]), method


def test_replace_section_keeps_the_rest_and_is_idempotent(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nbefore\n{BEGIN}\nold\n{END}\nafter\n")
    assert replace_section(readme.read_text(), "new") == f"# Title\n\nbefore\n{BEGIN}\nnew\n{END}\nafter\n"
    with pytest.raises(ValueError, match="one"):
        replace_section("no markers", "x")
    with pytest.raises(ValueError, match="one"):
        replace_section(f"{BEGIN}{END}{BEGIN}{END}", "x")


def test_update_readme_writes_the_markdown_of_each_experiment(tmp_path):
    out = tmp_path / "exp"
    out.mkdir()
    results = {
        "data": "synthetic",
        "n_train": 10,
        "n_val": 2,
        "n_test": 3,
        "seeds": [0, 1],
        "teacher": {"test_macro_auc": 0.7},
        "efficiency": {
            "teacher": {"params": 1000, "latency_ms": 2.0},
            "student": {"params": 10, "latency_ms": 0.5},
        },
        "summary": {
            "table": {
                "kd": {
                    k: {"mean": 0.8, "sd": 0.01}
                    for k in ("macro_auc", "hamming_accuracy", "sample_accuracy", "macro_f1")
                }
            },
            "comparisons": {},
        },
        "runs": [{}, {}],
        "runs_computed": 2,
        "wall_seconds": 60.0,
        "provenance": {"command": "python -m evl_lite experiment", "commit": "abc", "machine": "m"},
    }
    (out / "results.json").write_text(json.dumps(results))
    readme = tmp_path / "README.md"
    readme.write_text(f"x\n{BEGIN}\n{END}\n")
    assert update_readme(readme, [out]) is True
    assert results_markdown(results) in readme.read_text() and "| kd | 0.800 ± 0.010" in readme.read_text()
    assert update_readme(readme, [out]) is False
