"""The run command's machinery on tiny notebooks: failure report, resume, HTML exports and index."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from evl_lite.course.runner import finished_notebooks, run_collection


def write_notebook(path: Path, body: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    params = nbformat.v4.new_code_cell("SMOKE = False\nOUTPUT_DIR = ''")
    params.metadata["tags"] = ["parameters"]
    record = nbformat.v4.new_code_cell(
        "import json, pathlib\n"
        "pathlib.Path(OUTPUT_DIR).mkdir(parents=True, exist_ok=True)\n"
        "pathlib.Path(OUTPUT_DIR, 'metrics.json').write_text(json.dumps({'smoke': SMOKE}))"
    )
    nb.cells = [params, nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell(body), record]
    nbformat.write(nb, path)


@pytest.fixture
def course(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    write_notebook(
        folder / "01_first.ipynb",
        "import plotly.express as px\nfrom evl_lite.explorers.ecg_plots import setup_plotly\n"
        "setup_plotly()\npx.line(y=[1, 2])",
    )
    write_notebook(folder / "02_second.ipynb", "raise RuntimeError('deliberate failure')")
    write_notebook(folder / "03_third.ipynb", "y = 3")
    return folder


def test_a_failure_stops_the_run_naming_notebook_cell_and_error_then_resume_continues(
    course, tmp_path, capfd
):
    out = tmp_path / "run"
    summary = run_collection("smoke", out_dir=out, directory=course)
    assert "[IPKernelApp] WARNING" not in capfd.readouterr().err  # no kernel alarm in the terminal
    first, second = summary["notebooks"]["01_first.ipynb"], summary["notebooks"]["02_second.ipynb"]
    assert first["status"] == "ok" and first["metrics"] == {"smoke": True}
    assert second["status"] == "failed"
    assert second["error"]["name"] == "RuntimeError" and "deliberate failure" in second["error"]["message"]
    assert second["error"]["cell"] == 4  # execution count: parameters, injected parameters, x = 1, then this
    assert "03_third.ipynb" not in summary["notebooks"]  # stopped at the failure
    index = (out / "index.html").read_text()
    assert (
        "01_first.ipynb" in index and "deliberate failure" in index and 'href="html/01_first.html"' in index
    )
    assert "Plotly.newPlot" in (out / "html" / "01_first.html").read_text()  # the figure survives the export

    executed_first = (out / "01_first.ipynb").stat().st_mtime_ns
    write_notebook(course / "02_second.ipynb", "z = 2")  # the instructor fixes the notebook
    resumed = run_collection("smoke", out_dir=out, directory=course, resume=True)
    assert (out / "01_first.ipynb").stat().st_mtime_ns == executed_first  # kept, not re-run
    assert resumed["notebooks"]["01_first.ipynb"]["resumed"] is True
    assert [e["status"] for e in resumed["notebooks"].values()] == ["ok", "ok", "ok"]
    saved = json.loads((out / "summary.json").read_text())
    assert list(saved["notebooks"]) == ["01_first.ipynb", "02_second.ipynb", "03_third.ipynb"]
    assert saved["provenance"]["seed"] == 0 and saved["provenance"]["commit"]  # what produced these results
    assert saved["provenance"]["versions"]["torch"].startswith("2.13.0")


def test_resume_refuses_an_earlier_run_with_other_parameters(course, tmp_path):
    out = tmp_path / "run"
    run_collection("smoke", out_dir=out, directory=course, only=["01"])
    with pytest.raises(ValueError, match="earlier run used parameters"):
        finished_notebooks(out, {"SMOKE": False, "DATA_SOURCE": "synthetic", "DATA_DIR": "", "SEED": 0})


def test_notebooks_check_and_strip(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "01_x.ipynb"
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("1 + 1")
    cell.execution_count = 1
    cell.outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=1)]
    nb.cells = [nbformat.v4.new_markdown_cell("# x"), cell]
    nbformat.write(nb, path)
    check = [sys.executable, "-m", "evl_lite", "notebooks", "check", str(path)]
    dirty = subprocess.run(check, capture_output=True, text=True)
    assert dirty.returncode == 1 and f"{path}: cells [1]" in dirty.stdout
    strip = subprocess.run(
        [sys.executable, "-m", "evl_lite", "notebooks", "strip", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"stripped {path}" in strip.stdout
    clean = subprocess.run(check, capture_output=True, text=True)
    assert clean.returncode == 0 and clean.stdout == ""
    stripped = nbformat.read(path, as_version=4).cells[1]
    assert stripped.outputs == [] and stripped.execution_count is None and stripped.source == "1 + 1"


def test_modes_choose_the_recipe_scale(monkeypatch):
    from evl_lite.data.benchmark import current_scale
    from evl_lite.training.recipes import student_recipe, teacher_recipe

    monkeypatch.delenv("EVL_LITE_SCALE", raising=False)
    assert current_scale(True) == "smoke" and current_scale(False) == "workshop"
    workshop = (teacher_recipe(False)[2].epochs, student_recipe(False)[1].epochs)
    monkeypatch.setenv("EVL_LITE_SCALE", "full")
    assert current_scale(False) == "full" and current_scale(True) == "smoke"
    full = (teacher_recipe(False)[2].epochs, student_recipe(False)[1].epochs)
    assert full[0] > workshop[0] and full[1] > workshop[1]
    monkeypatch.setenv("EVL_LITE_SCALE", "huge")
    with pytest.raises(ValueError, match="EVL_LITE_SCALE"):
        current_scale(False)


def test_the_full_mode_runs_the_notebooks_with_the_full_scale(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    write_notebook(
        folder / "01_scale.ipynb",
        "from evl_lite.training.recipes import current_scale\n"
        "assert current_scale(SMOKE) == 'full', current_scale(SMOKE)",
    )
    summary = run_collection("full", out_dir=tmp_path / "run", directory=folder)
    assert summary["notebooks"]["01_scale.ipynb"]["status"] == "ok", summary["notebooks"]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["parameters"]["scale"] == "full"


def _lesson(*cells) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    parameters = nbformat.v4.new_code_cell("SMOKE = True")
    parameters.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# a lesson"), parameters, *cells]
    return nb


def test_lesson_checks_find_dictionary_dumps_long_setup_cells_and_history():
    from evl_lite.course.hygiene import lesson_problems

    setup = nbformat.v4.new_code_cell("\n".join(f"import module{i}" for i in range(16)))
    dump = nbformat.v4.new_code_cell("metrics = {'a': 1}\n{k: v for k, v in metrics.items()}")
    history = nbformat.v4.new_markdown_cell("The recipe of issue 21 (run 2026-11-30 in runs/teacher_a).")
    problems = lesson_problems(_lesson(setup, dump, history))
    assert any("cell 2: the setup cell has 16 lines" in p for p in problems)
    assert any("cell 3: ends by displaying a dictionary" in p for p in problems)
    assert any("cell 4: markdown names 'issue 21'" in p for p in problems)
    good = _lesson(nbformat.v4.new_code_cell("import numpy as np\nrecord = Record('out')"),
                   nbformat.v4.new_code_cell("record(a=1)\nrecord.done()"),
                   nbformat.v4.new_markdown_cell("## What's next\n\nNotebook 02 ($x_{t}$, #hashtag-free)."))
    assert lesson_problems(good) == []


def test_output_checks_find_stderr_and_frozen_progress_bars():
    from evl_lite.course.hygiene import output_problems

    cell = nbformat.v4.new_code_cell("work()")
    cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text="USDT: profiler_start\n"),
                    nbformat.v4.new_output("stream", name="stdout",
                                           text="Loading weights:   0%|          | 0/66\r")]
    quiet = nbformat.v4.new_code_cell("print('done')")
    quiet.outputs = [nbformat.v4.new_output("stream", name="stdout", text="done 50% of the way\n")]
    problems = output_problems(_lesson(cell, quiet))
    assert len(problems) == 2 and "stderr" in problems[0] and "progress bar" in problems[1]


def test_a_record_keeps_every_figure_on_disk_as_it_is_recorded(tmp_path, capsys):
    from evl_lite.course.record import Record

    record = Record(tmp_path / "out", smoke=True)
    record(auc=0.9, per_class=[0.8, 1.0])
    record["ece"] = 0.05
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved == {"smoke": True, "auc": 0.9, "per_class": [0.8, 1.0], "ece": 0.05}  # before done()
    record.done()
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["seconds"] >= 0
    assert capsys.readouterr().out.strip() == f"recorded 5 metrics in {tmp_path / 'out' / 'metrics.json'}"
