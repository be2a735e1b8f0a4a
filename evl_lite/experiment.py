"""The experiment behind the results tables: every method, every seed, one teacher.

``python -m evl_lite experiment --data synthetic|ptbxl --path DIR --methods LIST --seeds K --out DIR``

1. the benchmark splits (train folds 1-8, validation 9, test 10; ``recipes.load_benchmark_data``),
2. the teacher, trained once (masked-patch pretraining + fine-tuning) or loaded (``--teacher``),
3. the teacher's outputs cached once for all students (``TeacherCache``),
4. for every method and seed a student (``recipes.distill_student``): all methods of one seed
   start from the same weights and see the same batches, so differences between methods within a
   seed are paired,
5. test metrics with thresholds tuned on validation; mean and sd over seeds; for EVL against the
   best baseline the per-seed paired differences and a bootstrap interval of their mean.

Each finished run is stored (``runs/<method>/seed<k>/result.json``, written atomically) and
loaded on a re-run, so an interrupted experiment resumes where it stopped. Under
``accelerate launch`` the students train data-parallel over the processes; only the main
process writes.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from evl_lite.atomic import write_json_atomic, write_text_atomic
from evl_lite.distillation.evl import DistillConfig
from evl_lite.efficiency import efficiency_report
from evl_lite.errors import ECGDataError
from evl_lite.evaluation import evaluate, over_seeds, tune_thresholds
from evl_lite.method_names import ABLATIONS, BASELINES, parse_methods
from evl_lite.recipes import (
    distill_student,
    get_teacher,
    load_benchmark_data,
    student_recipe,
    unlabelled_records,
)
from evl_lite.reproducibility import provenance, shell_command
from evl_lite.teacher_cache import TeacherCache
from evl_lite.training import predict, process_state, window_starts

METRICS = ("macro_auc", "hamming_accuracy", "sample_accuracy", "macro_f1")


def paired_bootstrap(
    diffs: np.ndarray, n_boot: int = 10000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of paired differences (resampling seeds)."""
    diffs = np.asarray(diffs, dtype=float)
    if len(diffs) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(0, len(diffs), size=(n_boot, len(diffs)))].mean(axis=1)
    return float(np.quantile(means, alpha / 2)), float(np.quantile(means, 1 - alpha / 2))


def _run_one(method, seed, data, cache, smoke, distill_config, run_dir: Path, state) -> dict:
    result_file = run_dir / "result.json"
    if result_file.is_file():
        stored = json.loads(result_file.read_text())
        made_from = stored.get("teacher_fingerprint")
        if method != "scratch" and made_from != cache.key:  # a scratch student never sees the teacher
            raise ECGDataError(
                result_file,
                f"this {method} student was distilled from another teacher (fingerprint {made_from}, "
                f"now {cache.key}); delete {run_dir} (or the whole runs directory) to re-run it",
            )
        return {**stored, "resumed": True}
    _, config = student_recipe(smoke, seed)
    config.progress = False
    start = time.perf_counter()
    student, trained, _ = distill_student(
        method, data, cache, config, distill_config=distill_config, out_dir=run_dir / "training", resume=True
    )
    seconds = time.perf_counter() - start
    window = {"crop": config.crop, "n_windows": config.eval_windows}
    thresholds = tune_thresholds(data.val.y, predict(student, data.val.x, **window))
    report = evaluate(data.test.y, predict(student, data.test.x, **window), thresholds, n_boot=0)
    result = {
        "method": method,
        "seed": seed,
        **{k: report[k] for k in METRICS},
        "per_class_auc": report["per_class_auc"],
        "val_macro_auc": trained.best_val_auc,
        "best_epoch": trained.best_epoch,
        "epochs_run": len(trained.history),
        "train_seconds": seconds,
        "final_train_losses": {k: v for k, v in trained.history[-1].items() if k.startswith("train_")},
        "teacher_fingerprint": cache.key,  # checked when the run is resumed
    }
    if state.is_main_process:
        write_json_atomic(result_file, result)
    state.wait_for_everyone()
    return result


def summarise(runs: list[dict], methods: list[str]) -> dict:
    """Mean and sd over seeds per method, and EVL (and its ablations) against the best baseline."""
    by_method = {m: sorted((r for r in runs if r["method"] == m), key=lambda r: r["seed"]) for m in methods}
    table = {}
    for m, rs in by_method.items():
        row = {"seeds": [r["seed"] for r in rs]}
        for key in (*METRICS, "val_macro_auc", "train_seconds"):
            row[key] = over_seeds([r[key] for r in rs])
        table[m] = row
    comparisons = {}
    baselines = [m for m in methods if m in BASELINES and m != "scratch"]
    if baselines:
        best = max(baselines, key=lambda m: table[m]["macro_auc"]["mean"])
        for m in (x for x in methods if x == "evl" or x in ABLATIONS):
            a = {r["seed"]: r for r in by_method[m]}
            b = {r["seed"]: r for r in by_method[best]}
            seeds = sorted(set(a) & set(b))
            comparison = {"against": best, "seeds": seeds}
            for key in ("macro_auc", "hamming_accuracy"):
                diffs = np.array([a[s][key] - b[s][key] for s in seeds])
                comparison[key] = {
                    "diffs": diffs.tolist(),
                    "mean": float(diffs.mean()) if len(diffs) else None,
                    "ci95": list(paired_bootstrap(diffs)),
                    "wins": int((diffs > 0).sum()),
                    "n": len(diffs),
                }
            comparisons[m] = comparison
    return {"table": table, "comparisons": comparisons}


def method_rows(results: dict) -> list[dict]:
    """One row per method: mean and sd over seeds of each test metric, and the validation AUC."""
    rows = []
    for method, row in results["summary"]["table"].items():
        entry = {"method": method, "seeds": len(row["seeds"])}
        for key in (*METRICS, "val_macro_auc"):
            entry[key], entry[f"{key}_sd"] = row[key]["mean"], row[key]["sd"]
        rows.append(entry)
    return rows


def ablation_rows(results: dict) -> list[dict]:
    """EVL and each ablation: mean test macro-AUC and its change from the full EVL."""
    table = results["summary"]["table"]
    if "evl" not in table:
        return []
    full = table["evl"]["macro_auc"]["mean"]
    rows = [{"method": "evl", "removed": "-", "macro_auc": full, "change_vs_evl": 0.0}]
    for method in (m for m in table if m in ABLATIONS):
        auc = table[method]["macro_auc"]["mean"]
        rows.append(
            {
                "method": method,
                "removed": method.removeprefix("evl-no-"),
                "macro_auc": auc,
                "change_vs_evl": auc - full,
            }
        )
    return rows


def results_markdown(results: dict) -> str:
    """The results table (and EVL's paired comparison) as Markdown."""
    summary, eff = results["summary"], results["efficiency"]
    teacher = results["teacher"]
    lines = [
        f"Data: {results['data']} ({results['n_train']} train / {results['n_val']} val / "
        f"{results['n_test']} test records), {len(results['seeds'])} seeds; teacher test macro-AUC "
        f"{teacher['test_macro_auc']:.3f} ({eff['teacher']['params']:,} parameters, "
        f"{eff['teacher']['latency_ms']:.2f} ms at batch 1).",
        "",
        "| method | test macro-AUC | label accuracy | exact-match accuracy | macro-F1 | params "
        "| CPU ms (b=1) |",
        "|---|---|---|---|---|---|---|",
    ]
    for m, row in summary["table"].items():
        cells = [
            f"{row[k]['mean']:.3f} ± {row[k]['sd']:.3f}"
            for k in ("macro_auc", "hamming_accuracy", "sample_accuracy", "macro_f1")
        ]
        lines.append(
            f"| {m} | "
            + " | ".join(cells)
            + f" | {eff['student']['params']:,} | {eff['student']['latency_ms']:.2f} |"
        )
    ablations = ablation_rows(results)
    if len(ablations) > 1:
        lines += ["", "| ablation | removed | test macro-AUC | change vs EVL |", "|---|---|---|---|"]
        lines += [
            f"| {r['method']} | {r['removed']} | {r['macro_auc']:.3f} | {r['change_vs_evl']:+.3f} |"
            for r in ablations
        ]
    for m, c in summary["comparisons"].items():
        auc = c["macro_auc"]
        lines += [
            "",
            f"{m} vs {c['against']} (best baseline by mean test macro-AUC), paired by seed: "
            f"macro-AUC difference {auc['mean']:+.4f}, 95% bootstrap CI [{auc['ci95'][0]:+.4f}, "
            f"{auc['ci95'][1]:+.4f}], better in {auc['wins']} of {auc['n']} seeds; per seed "
            + ", ".join(f"{d:+.4f}" for d in auc["diffs"])
            + ".",
        ]
    lines += [
        "",
        f"Command: `{shell_command(results['provenance'])}`; commit {results['provenance']['commit']}; "
        f"{results['provenance']['machine']}; {results['wall_seconds'] / 60:.1f} min wall time"
        + (
            f" ({results['runs_computed']} of {len(results['runs'])} student runs computed in that "
            "invocation, the rest loaded from an earlier one)."
            if results.get("runs_computed", len(results["runs"])) < len(results["runs"])
            else ", teacher and every student run included."
        ),
    ]
    return "\n".join(lines) + "\n"


def run_experiment(
    source: str,
    data_dir: str | None,
    methods: list[str],
    seeds: int,
    out_dir: str | os.PathLike,
    unlabelled_dir: str | None = None,
    smoke: bool = False,
    teacher_dir: str | None = None,
    distill_config: DistillConfig | None = None,
    progress: bool = True,
    first_seed: int = 0,
) -> dict:
    """Run (or resume) the experiment and write ``results.json`` and ``results.md`` into ``out_dir``."""
    start = time.perf_counter()
    state = process_state()
    record = provenance()  # before anything is written, so the commit is the code that ran
    out = Path(out_dir)
    methods = parse_methods(methods)
    if seeds < 1:
        raise ValueError(f"seeds must be at least 1; got {seeds}")
    with state.main_process_first():  # the main process generates synthetic data; the others then read it
        data = load_benchmark_data(source, data_dir, smoke=smoke, seed=0, progress=False)
    teacher_path = Path(teacher_dir) if teacher_dir else out / "teacher"
    x_unlabelled = unlabelled_records(data, unlabelled_dir, progress=False)
    teacher, info = get_teacher(teacher_path, data, smoke=smoke, seed=0, unlabelled=x_unlabelled)
    teacher.eval().requires_grad_(False)
    _, config = student_recipe(smoke)
    starts = window_starts(data.train.x.shape[-1], config.crop, config.eval_windows)
    with state.main_process_first():  # the main process computes and stores the cache; the others load it
        cache = TeacherCache.build(
            teacher,
            data.train.x,
            config.crop,
            starts,
            cache_dir=out / "teacher_cache",
            progress=progress and state.is_main_process,
        )
    window = {"crop": config.crop, "n_windows": config.eval_windows}
    teacher_report = evaluate(
        data.test.y,
        predict(teacher, data.test.x, **window),
        tune_thresholds(data.val.y, predict(teacher, data.val.x, **window)),
        n_boot=0,
    )
    runs = []
    seed_list = list(range(first_seed, first_seed + seeds))
    todo = [(m, s) for s in seed_list for m in methods]
    for i, (method, seed) in enumerate(todo):
        if progress and state.is_main_process:
            print(f"[{i + 1}/{len(todo)}] {method} seed {seed}", flush=True)
        runs.append(
            _run_one(
                method, seed, data, cache, smoke, distill_config, out / "runs" / method / f"seed{seed}", state
            )
        )
    from evl_lite.student import ECGStudentCNN

    repeats = 3 if smoke else 20
    eff = {}
    for name, model in (("teacher", teacher), ("student", ECGStudentCNN(student_recipe(smoke)[0]))):
        r = efficiency_report(
            model.eval(),
            length=config.crop,
            batch_sizes=(1,),
            threads=1,
            warmup=1 if smoke else 3,
            repeats=repeats,
        )
        eff[name] = {"params": r["params"], "flops": r["flops"], "latency_ms": r["latency_ms"]["1"]["median"]}
    results = {
        "data": source,
        "path": str(data.root),
        "unlabelled_dir": unlabelled_dir,
        "smoke": smoke,
        "methods": methods,
        "seeds": list(range(seeds)),
        "n_train": len(data.train),
        "n_val": len(data.val),
        "n_test": len(data.test),
        "teacher": {
            "dir": str(teacher_path),
            "val_macro_auc": info["best_val_macro_auc"],
            "test_macro_auc": teacher_report["macro_auc"],
            "test_hamming_accuracy": teacher_report["hamming_accuracy"],
        },
        "distill_config": (distill_config or DistillConfig()).to_dict(),
        "student_train_config": {k: v for k, v in vars(config).items() if k not in ("seed", "progress")},
        "efficiency": eff,
        "summary": summarise(runs, methods),
        "runs": [{k: v for k, v in r.items() if k != "resumed"} for r in runs],
        "processes": state.num_processes,
        "wall_seconds": time.perf_counter() - start,
        "runs_computed": sum(not r.get("resumed") for r in runs),  # the rest were loaded from an earlier run
        "provenance": {**record, "seeds": seed_list},
    }
    if state.is_main_process:
        write_json_atomic(out / "results.json", results)
        write_text_atomic(out / "results.md", results_markdown(results))
    state.wait_for_everyone()
    return results
