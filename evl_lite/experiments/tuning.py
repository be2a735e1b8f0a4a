"""Tune a method on validation only: every configuration tried, its validation macro-AUC, the command.

``python -m evl_lite tune --data ptbxl --path DIR --method evl --grid JSON --seeds 2 --out DIR``
``[--transfer DIR]``

The grid is a JSON object of :class:`~evl_lite.distillation.evl.DistillConfig` fields, each with a
list of values (``'{"ot_weight": [0.5, 1, 2], "relation_weight": [1, 4]}'``; every combination is
one configuration), or a JSON list of configurations (``'[{}, {"ot_weight": 2}]'``). Each is
trained for every seed on the training split (with the same teacher, initial weights and batches
per seed as the experiment), and scored by the mean over seeds of its
best-epoch validation macro-AUC. **The test split is never read**: it is dropped from the data
before anything trains. Finished runs are kept (``runs/<configuration>/seed<k>/result.json``), so an
interrupted search resumes. ``tuning.json`` and ``tuning.md`` list every configuration, best first,
with the settings that differ from the defaults; the chosen one then runs once on test with
``python -m evl_lite experiment ... --distill JSON``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import time
from pathlib import Path

import numpy as np

from evl_lite.atomic import write_json_atomic, write_text_atomic
from evl_lite.data.benchmark import load_benchmark_data
from evl_lite.data.label_budget import budget_splits, transfer_records
from evl_lite.distillation.evl import DistillConfig, method_settings
from evl_lite.distillation.teacher_cache import TeacherCache
from evl_lite.evaluation.metrics import over_seeds
from evl_lite.reproducibility import provenance, shell_command
from evl_lite.training.loop import window_starts
from evl_lite.training.recipes import distill_student, resolve_teacher, student_recipe


def grid_configs(grid: dict[str, list] | list[dict]) -> list[DistillConfig]:
    """The configurations of a grid (the defaults elsewhere); bad settings are errors.

    A JSON object of setting -> list of values: every combination. A JSON list of objects: each
    object one configuration (``[{}, {"ot_weight": 2}]``: the defaults, then one change).
    """
    if isinstance(grid, list) and grid and all(isinstance(c, dict) for c in grid):
        return [DistillConfig.from_json(json.dumps(c)) for c in grid]
    if not isinstance(grid, dict) or not grid or not all(isinstance(v, list) and v for v in grid.values()):
        raise ValueError("the grid must be a JSON object of setting -> non-empty list of values, "
                         "or a list of objects, one per configuration")
    names = list(grid)
    return [
        DistillConfig.from_json(json.dumps(dict(zip(names, values, strict=True))))
        for values in itertools.product(*(grid[n] for n in names))
    ]


def config_label(config: DistillConfig) -> str:
    """The settings that differ from the defaults, ``"ot_weight=0.5 relation_weight=4"`` (or ``default``)."""
    default = DistillConfig().to_dict()
    changed = {k: v for k, v in config.to_dict().items() if v != default[k]}
    return " ".join(f"{k}={v}" for k, v in changed.items()) or "default"


def config_key(config: DistillConfig) -> str:
    """A short stable folder name for a configuration."""
    return hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode()).hexdigest()[:10]


def run_tuning(
    source: str,
    data_dir: str | os.PathLike | None,
    method: str,
    grid: dict[str, list],
    seeds: int,
    out_dir: str | os.PathLike,
    transfer_dir: str | os.PathLike | None = None,
    smoke: bool = False,
    progress: bool = True,
) -> dict:
    """Run (or resume) the search; writes ``tuning.json`` and ``tuning.md``; returns the summary."""
    start = time.perf_counter()
    record = provenance()
    out = Path(out_dir)
    configs = grid_configs(grid)
    data = load_benchmark_data(source, data_dir, smoke=smoke, seed=0, progress=False)
    # the shipped teacher, refused if its card says it saw these validation or test records (ids only)
    teacher, _, teacher_path = resolve_teacher(None, data, smoke=smoke, seed=0)
    data = dataclasses.replace(data, splits={k: data.splits[k] for k in ("train", "val")})  # no test split
    x_transfer = None
    if transfer_dir:
        x_transfer = transfer_records(transfer_dir, data.train.x.shape[-1], progress=False)
    _, config = student_recipe(smoke)
    starts = window_starts(data.train.x.shape[-1], config.crop, config.eval_windows)
    x_cache = data.train.x if x_transfer is None else np.concatenate([data.train.x, x_transfer])
    cache = TeacherCache.build(
        teacher, x_cache, config.crop, starts, cache_dir=out / "teacher_cache", progress=False
    )
    _, distillation = budget_splits(data.train, None, x_transfer)
    train_data = dataclasses.replace(data, splits={**data.splits, "train": distillation})
    rows = []
    for i, distill in enumerate(configs):
        runs = []
        for seed in range(seeds):
            run_dir = out / "runs" / config_key(distill) / f"seed{seed}"
            result_file = run_dir / "result.json"
            if result_file.is_file():
                runs.append(json.loads(result_file.read_text()))
                continue
            if progress:
                print(f"[{i + 1}/{len(configs)}] {config_label(distill)} seed {seed}", flush=True)
            _, schedule = student_recipe(smoke, seed)
            schedule.progress = False
            t = time.perf_counter()
            _, trained, _ = distill_student(
                method,
                train_data,
                cache,
                schedule,
                distill_config=distill,
                out_dir=run_dir / "training",
                resume=True,
            )
            result = {
                "seed": seed,
                "val_macro_auc": trained.best_val_auc,
                "best_epoch": trained.best_epoch,
                "seconds": time.perf_counter() - t,
                "teacher_fingerprint": cache.key,
                "settings": method_settings(method, distill),
            }
            write_json_atomic(result_file, result)
            runs.append(result)
        rows.append(
            {
                "configuration": config_label(distill),
                "settings": distill.to_dict(),
                "key": config_key(distill),
                "val_macro_auc": over_seeds([r["val_macro_auc"] for r in runs]),
                "seconds": float(sum(r["seconds"] for r in runs)),
            }
        )
    rows.sort(key=lambda r: -r["val_macro_auc"]["mean"])
    summary = {
        "data": source,
        "path": str(data.root),
        "method": method,
        "grid": grid,
        "seeds": seeds,
        "transfer_dir": None if transfer_dir is None else str(transfer_dir),
        "teacher": str(teacher_path),
        "n_train": len(distillation),
        "n_val": len(data.val),
        "configurations": rows,
        "chosen": rows[0]["configuration"],
        "chosen_settings": {
            k: v for k, v in rows[0]["settings"].items() if v != DistillConfig().to_dict()[k]
        },
        "wall_seconds": time.perf_counter() - start,
        "provenance": record,
    }
    write_json_atomic(out / "tuning.json", summary)
    write_text_atomic(out / "tuning.md", tuning_markdown(summary))
    return summary


def tuning_markdown(summary: dict) -> str:
    """Every configuration, best first: validation macro-AUC (mean ± sd over seeds), then the command."""
    lines = [
        f"Tuning `{summary['method']}` on {summary['data']} ({summary['n_train']} training records"
        + (f", transfer set `{summary['transfer_dir']}`" if summary["transfer_dir"] else "")
        + f"; {summary['n_val']} validation records; the test split is never read), "
        f"{summary['seeds']} seeds.",
        "",
        "| configuration (changed from the defaults) | validation macro-AUC | seeds |",
        "|---|---|---|",
    ]
    for row in summary["configurations"]:
        auc = row["val_macro_auc"]
        lines.append(
            f"| {row['configuration']} | {auc['mean']:.4f} ± {auc['sd']:.4f} | {len(auc['values'])} |"
        )
    chosen = json.dumps(summary["chosen_settings"])
    lines += [
        "",
        f"Chosen on validation: `{summary['chosen']}` (`--distill '{chosen}'`).",
        "",
        f"Command: `{shell_command(summary['provenance'])}`; commit {summary['provenance']['commit']}; "
        f"{summary['wall_seconds'] / 60:.1f} min.",
    ]
    return "\n".join(lines) + "\n"
