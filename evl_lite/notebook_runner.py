"""Execute the notebook collection with papermill (kernel ``python3``), as the tests and ``run`` do.

Each notebook gets the shared parameters (``SMOKE``, ``DATA_SOURCE``, ``DATA_DIR``, ``SEED``)
and its own ``OUTPUT_DIR = <out>/<notebook stem>``, where it records ``metrics.json``. The
executed copies are written to ``<out>/<notebook name>`` and a ``summary.json`` (per
notebook: status, seconds, metrics) to ``<out>``; the collection stops at the first
failure, naming the notebook, the cell and the error.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from evl_lite.atomic import write_json_atomic

MODES: dict[str, dict[str, Any]] = {
    "smoke": {"SMOKE": True},  # tiny data and epochs: seconds per notebook, for tests
    "workshop": {"SMOKE": False},  # the notebooks' own defaults: meaningful numbers
}


def notebook_dir() -> Path:
    """``notebooks/`` of the repository checkout this package runs from."""
    return Path(__file__).resolve().parents[1] / "notebooks"


def list_notebooks(directory: Path | None = None) -> list[Path]:
    """The course notebooks in order (``NN_name.ipynb``)."""
    directory = directory or notebook_dir()
    return sorted(p for p in directory.glob("[0-9][0-9]_*.ipynb"))


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
        pm.execute_notebook(
            str(path),
            str(executed),
            parameters=params,
            kernel_name="python3",
            cwd=str(path.parent),
            progress_bar=False,
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
) -> dict[str, Any]:
    """Run every notebook in order; writes and returns the summary."""
    from tqdm.auto import tqdm

    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, not {mode!r}")
    out = Path(out_dir)
    params = {**MODES[mode], "DATA_SOURCE": data_source, "DATA_DIR": data_dir or "", "SEED": seed}
    notebooks = [p for p in list_notebooks() if not only or any(p.name.startswith(o) for o in only)]
    summary: dict[str, Any] = {"mode": mode, "data_source": data_source, "out_dir": str(out), "notebooks": {}}
    start = time.perf_counter()
    bar = tqdm(notebooks, desc="notebooks", unit="nb")
    for path in bar:
        bar.set_postfix_str(path.name)
        entry = run_notebook(path, out, params)
        summary["notebooks"][path.name] = entry
        summary["seconds"] = round(time.perf_counter() - start, 2)
        write_json_atomic(out / "summary.json", summary)
        bar.write(f"{path.name}: {entry['status']} in {entry['seconds']:.1f} s")
        if entry["status"] != "ok":
            err = entry["error"]
            bar.write(f"stopped: {path.name}, cell {err['cell']}: {err['name']}: {err['message']}")
            break
    summary["seconds"] = round(time.perf_counter() - start, 2)
    write_json_atomic(out / "summary.json", summary)
    return summary
