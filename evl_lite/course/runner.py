"""Execute the notebook collection with papermill (kernel ``python3``), as the tests and ``run`` do.

Each notebook gets the shared parameters (``SMOKE``, ``DATA_SOURCE``, ``DATA_DIR``, ``SEED``)
and its own ``OUTPUT_DIR = <out>/<notebook stem>``, where it records ``metrics.json``. The
executed copies are written to ``<out>/<notebook name>``, their HTML exports to
``<out>/html/`` (complete offline: :mod:`evl_lite.course.export`), a
``summary.json`` (per notebook: status, seconds, metrics) and an ``index.html`` linking
every export to ``<out>``. The collection stops at the first failure, naming the notebook,
the cell and the error; ``resume=True`` keeps the notebooks that finished and starts from
the first one that did not.
"""

from __future__ import annotations

import html
import json
import os
import time
from pathlib import Path
from typing import Any
from unittest import mock

from evl_lite.atomic import write_json_atomic, write_text_atomic
from evl_lite.course.export import export_html

MODES: dict[str, dict[str, Any]] = {
    "smoke": {"SMOKE": True},  # tiny data and epochs: seconds per notebook, for tests
    "workshop": {"SMOKE": False},  # the notebooks' own defaults: meaningful numbers in minutes
    "full": {"SMOKE": False},  # the same notebooks at the full scale (EVL_LITE_SCALE=full, see recipes)
}
SCALES = {"smoke": "smoke", "workshop": "workshop", "full": "full"}  # mode -> benchmark.current_scale


def notebook_dir() -> Path:
    """``notebooks/`` of the repository checkout this package runs from."""
    return Path(__file__).resolve().parents[2] / "notebooks"


def list_notebooks(directory: Path | None = None) -> list[Path]:
    """The course notebooks in order (``NN_name.ipynb``)."""
    directory = directory or notebook_dir()
    return sorted(p for p in directory.glob("[0-9][0-9]_*.ipynb"))


# Progress bars are for people watching; in an executed notebook they freeze into its saved outputs
# ("Loading weights: 0/66"). The kernel inherits these: tqdm's own switch and Hugging Face's.
QUIET_ENVIRONMENT = {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
# The kernel's own log: ipykernel warns at every start that a local kernel talks over TCP
# unencrypted (it listens on 127.0.0.1 only), a line an instructor would read as an alarm.
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]


def run_notebook(path: Path, out_dir: Path, parameters: dict[str, Any]) -> dict[str, Any]:
    """Execute one notebook; returns {"status", "seconds", "metrics", "output", "error"?}."""
    import papermill as pm

    out_dir = Path(out_dir)
    nb_out = out_dir / path.stem
    nb_out.mkdir(parents=True, exist_ok=True)
    params = {**parameters, "OUTPUT_DIR": str(nb_out.resolve())}
    executed = out_dir / path.name
    start = time.perf_counter()
    entry: dict[str, Any] = {"status": "ok", "output": str(executed)}
    try:
        with mock.patch.dict(os.environ, QUIET_ENVIRONMENT):  # restored afterwards
            pm.execute_notebook(
                str(path),
                str(executed),
                parameters=params,
                kernel_name="python3",
                cwd=str(path.parent),
                progress_bar=False,
                extra_arguments=KERNEL_ARGUMENTS,
            )
    except pm.PapermillExecutionError as exc:
        entry.update(
            status="failed", error={"cell": exc.exec_count, "name": exc.ename, "message": exc.evalue}
        )
    entry["seconds"] = round(time.perf_counter() - start, 2)
    metrics_file = nb_out / "metrics.json"
    entry["metrics"] = json.loads(metrics_file.read_text()) if metrics_file.is_file() else None
    return entry


def run_collection(
    mode: str = "smoke",
    data_source: str = "synthetic",
    data_dir: str | None = None,
    out_dir: str | os.PathLike = "runs/smoke",
    seed: int = 0,
    only: list[str] | None = None,
    resume: bool = False,
    directory: Path | None = None,
) -> dict[str, Any]:
    """Run every notebook in order (or resume); writes the exports, ``index.html`` and the summary."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, not {mode!r}")
    out = Path(out_dir)
    params = {**MODES[mode], "DATA_SOURCE": data_source, "DATA_DIR": data_dir or "", "SEED": seed}
    notebooks = [p for p in list_notebooks(directory) if not only or any(p.name.startswith(o) for o in only)]
    from evl_lite.reproducibility import provenance

    summary: dict[str, Any] = {
        "provenance": provenance(seed=seed),
        "mode": mode,
        "data_source": data_source,
        "data_dir": data_dir or "",
        "seed": seed,
        "out_dir": str(out),
        "notebooks": {},
    }
    done = finished_notebooks(out, {**params, "scale": SCALES[mode]}) if resume else {}
    # the kernels papermill starts inherit the environment: the recipes read the scale from it
    previous_scale = os.environ.get("EVL_LITE_SCALE")
    os.environ["EVL_LITE_SCALE"] = "workshop" if mode == "smoke" else SCALES[mode]
    try:
        return _run_notebooks(notebooks, out, params, mode, summary, done)
    finally:
        if previous_scale is None:
            os.environ.pop("EVL_LITE_SCALE", None)
        else:
            os.environ["EVL_LITE_SCALE"] = previous_scale


def _run_notebooks(notebooks, out, params, mode, summary, done) -> dict[str, Any]:
    from tqdm.auto import tqdm

    params_record = {**params, "scale": SCALES[mode]}
    start = time.perf_counter()
    bar = tqdm(notebooks, desc="notebooks", unit="nb")
    for path in bar:
        if path.name in done:
            summary["notebooks"][path.name] = {**done[path.name], "resumed": True}
            bar.write(f"{path.name}: finished in an earlier run, kept")
            continue
        bar.set_postfix_str(path.name)
        entry = run_notebook(path, out, params)
        entry["html"] = export_html(Path(entry["output"]), out / "html")
        summary["notebooks"][path.name] = entry
        summary["seconds"] = round(time.perf_counter() - start, 2)
        write_json_atomic(out / "summary.json", {**summary, "parameters": params_record})
        write_index(out, summary)
        bar.write(f"{path.name}: {entry['status']} in {entry['seconds']:.1f} s")
        if entry["status"] != "ok":
            err = entry["error"]
            bar.write(f"stopped: {path.name}, cell {err['cell']}: {err['name']}: {err['message']}")
            break
    summary["seconds"] = round(time.perf_counter() - start, 2)
    write_json_atomic(out / "summary.json", {**summary, "parameters": params_record})
    write_index(out, summary)
    return summary


def finished_notebooks(out: Path, parameters: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Entries of an earlier run in ``out`` that finished, if it ran with the same parameters.

    Only the leading run of ``ok`` notebooks counts: resuming starts at the first notebook
    that did not finish, and everything after it runs again (it may depend on it).
    """
    summary_file = out / "summary.json"
    if not summary_file.is_file():
        return {}
    previous = json.loads(summary_file.read_text())
    if previous.get("parameters") != parameters:
        raise ValueError(
            f"{summary_file}: the earlier run used parameters {previous.get('parameters')}, not "
            f"{parameters}; resume with the same mode, data and seed, or choose another --out"
        )
    done = {}
    for name, entry in previous.get("notebooks", {}).items():
        if entry.get("status") != "ok" or not Path(entry.get("output", "")).is_file():
            break
        done[name] = entry
    return done


def write_index(out: Path, summary: dict[str, Any]) -> Path:
    """``out/index.html``: one row per notebook with its status, time, and a link to its export."""
    rows = []
    for name, entry in summary["notebooks"].items():
        link = f"html/{Path(entry['html']).name}" if entry.get("html") else None
        title = f'<a href="{html.escape(link)}">{html.escape(name)}</a>' if link else html.escape(name)
        error = entry.get("error")
        detail = f"cell {error['cell']}: {error['name']}: {error['message']}" if error else ""
        rows.append(
            f"<tr><td>{title}</td><td class='{entry['status']}'>{entry['status']}</td>"
            f"<td>{entry['seconds']:.1f} s</td><td>{html.escape(detail)}</td></tr>"
        )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>EVL-ECG Lite run</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:4px 12px;text-align:left}"
        ".ok{color:#1a7f37}.failed{color:#cf222e}</style></head><body>"
        f"<h1>EVL-ECG Lite: {html.escape(summary['mode'])} run</h1>"
        f"<p>data: {html.escape(summary['data_source'])} {html.escape(summary.get('data_dir', ''))}; "
        f"total {summary.get('seconds', 0):.1f} s</p>"
        "<table><tr><th>notebook</th><th>status</th><th>time</th><th>error</th></tr>"
        + "".join(rows)
        + "</table></body></html>"
    )
    write_text_atomic(out / "index.html", page)
    return out / "index.html"
