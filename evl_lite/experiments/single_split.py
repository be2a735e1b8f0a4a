"""The experiment behind the results tables: every method, every seed, one teacher.

``python -m evl_lite experiment --data synthetic|ptbxl --path DIR --methods LIST --seeds K --out DIR``
``[--labelled 50,100,all] [--transfer DIR]``

1. the benchmark splits (train folds 1-8, validation 9, test 10; ``benchmark.load_benchmark_data``),
2. the teacher, trained once (masked-patch pretraining + fine-tuning) or loaded (``--teacher``),
3. the teacher's outputs cached once for all students (``TeacherCache``),
4. for every method and seed a student (``recipes.distill_student``): all methods of one seed
   start from the same weights and see the same batches, so differences between methods within a
   seed are paired,
5. test metrics with thresholds tuned on validation, and a 95% bootstrap interval of each run's
   test macro-AUC over the test records; mean and sd over seeds; for EVL against the best
   baseline the per-seed paired differences and a bootstrap interval of their mean.

Label budgets (``--labelled N``, :mod:`evl_lite.data.label_budget`): the student has the labels of
N training records (stratified, chosen by the student seed, the same for every method of a
seed); the rest of the training split and the ``--transfer`` records form the transfer set,
which only the distillation losses read (the teacher's outputs are cached for all of them).
The scratch student trains on its N records alone. Each budget is its own set of runs, and
``label_efficiency`` sets test macro-AUC against N (``label_efficiency.html``, and ``.png``
where kaleido is installed). ``all`` (the default) is the experiment without a budget.

Each finished run is stored (``runs/<method>/seed<k>/result.json`` for ``all``,
``runs/labelled-<N>/<method>/seed<k>/result.json`` for a budget; written atomically) and
loaded on a re-run, so an interrupted experiment resumes where it stopped. Under
``accelerate launch`` the students train data-parallel over the processes; only the main
process writes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from evl_lite.atomic import write_json_atomic, write_text_atomic
from evl_lite.data.benchmark import BenchmarkData, load_benchmark_data
from evl_lite.data.label_budget import (
    ALL,
    budget_label,
    budget_splits,
    labelled_subset,
    matched_epochs,
    parse_budgets,
    transfer_records,
)
from evl_lite.distillation.evl import DistillConfig, method_settings
from evl_lite.distillation.names import ABLATIONS, BASELINES, parse_methods
from evl_lite.distillation.teacher_cache import TeacherCache
from evl_lite.errors import ECGDataError
from evl_lite.evaluation.efficiency import efficiency_report
from evl_lite.evaluation.metrics import bootstrap_ci, evaluate, macro_auc, over_seeds, tune_thresholds
from evl_lite.reproducibility import provenance, shell_command
from evl_lite.training.loop import predict, process_state, window_starts
from evl_lite.training.recipes import distill_student, resolve_teacher, student_recipe

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


def _auc_interval(y: np.ndarray, scores: np.ndarray) -> list[float] | None:
    """95% percentile bootstrap of the test macro-AUC over the test records (1,000 resamples).

    How far the test records alone move a figure; None when the split is too small for one
    (smoke runs), rather than a lost run.
    """
    try:
        return list(bootstrap_ci(macro_auc, y, scores))
    except ValueError:
        return None


def run_directory(out: Path, budget: int | str, method: str, seed: int) -> Path:
    """``runs/<method>/seed<k>`` for the budget ``all`` (as before budgets), else ``runs/labelled-<N>/..``."""
    runs = out / "runs" if budget == ALL else out / "runs" / budget_label(budget)
    return runs / method / f"seed{seed}"


def run_student(method, seed, data, cache, smoke, distill_config, run_dir: Path, state, budget=None,
             n_steps_like: int | None = None, keep_scores: bool = False) -> dict:
    """Train and evaluate one student, or load its stored result; ``budget``: its label budget's record.

    ``n_steps_like``: train for as many steps as on that many records (:func:`matched_epochs`).
    ``keep_scores``: also store the test probabilities and record ids (a rotation pools them).
    A stored run is refused when its teacher, its labelled records or its folds differ.
    """
    budget = budget or {}
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
        if stored.get("labelled_ecg_ids") != budget.get("labelled_ecg_ids"):
            raise ECGDataError(
                result_file,
                f"this {method} student had the labels of other records than its budget selects now; "
                f"delete {run_dir} to re-run it",
            )
        settings = method_settings(method, distill_config)  # a run stored before they were kept: as now
        if stored.get("distill_settings", settings) != settings:
            raise ECGDataError(
                result_file,
                f"this {method} student was distilled with other settings ({stored['distill_settings']}, "
                f"now {settings}); delete {run_dir} or choose another --out to compare both",
            )
        changed = [k for k in ("test_fold", "val_fold") if k in budget and stored.get(k) != budget[k]]
        if keep_scores and stored.get("test_ecg_ids") != data.test.ecg_ids.tolist():
            changed.append("test records")
        if changed:
            raise ECGDataError(
                result_file,
                f"this {method} student was trained and tested on other folds ({', '.join(changed)} differ); "
                f"delete {run_dir} to re-run it",
            )
        return {**budget, **stored, "resumed": True}  # a run stored before budgets: budget "all"
    _, config = student_recipe(smoke, seed)
    config.progress = False
    if n_steps_like is not None:
        config.epochs = matched_epochs(config.epochs, len(data.train), n_steps_like)
    start = time.perf_counter()
    student, trained, _ = distill_student(
        method, data, cache, config, distill_config=distill_config, out_dir=run_dir / "training", resume=True
    )
    seconds = time.perf_counter() - start
    window = {"crop": config.crop, "n_windows": config.eval_windows}
    thresholds = tune_thresholds(data.val.y, predict(student, data.val.x, **window))
    test_scores = predict(student, data.test.x, **window)  # [N_test, C]
    report = evaluate(data.test.y, test_scores, thresholds, n_boot=0)
    auc_ci = _auc_interval(data.test.y, test_scores)
    result = {
        "method": method,
        "seed": seed,
        **{k: report[k] for k in METRICS},
        "macro_auc_ci95": auc_ci,  # 1,000 resamples of the test records
        "per_class_auc": report["per_class_auc"],
        "val_macro_auc": trained.best_val_auc,
        "best_epoch": trained.best_epoch,
        "epochs": config.epochs,
        "epochs_run": len(trained.history),
        "train_seconds": seconds,
        "final_train_losses": {k: v for k, v in trained.history[-1].items() if k.startswith("train_")},
        "teacher_fingerprint": cache.key,  # checked when the run is resumed
        "distill_settings": method_settings(method, distill_config),  # so is this
        "train_records": len(data.train),  # labelled and transfer records the student trained on
        **budget,
    }
    if keep_scores:
        result |= {"test_ecg_ids": data.test.ecg_ids.tolist(), "test_scores": test_scores.tolist()}
    if state.is_main_process:
        write_json_atomic(result_file, result)
    state.wait_for_everyone()
    return result


def summarise(runs: list[dict], methods: list[str]) -> dict:
    """Mean and sd over seeds per method, and EVL (and its ablations) against the best baseline.

    ``macro_auc_ci95``: the mean over seeds of each run's 95% bootstrap interval of the test
    macro-AUC over the test records (None when a run has none).
    """
    by_method = {m: sorted((r for r in runs if r["method"] == m), key=lambda r: r["seed"]) for m in methods}
    table = {}
    for m, rs in by_method.items():
        row = {"seeds": [r["seed"] for r in rs]}
        for key in (*METRICS, "val_macro_auc", "train_seconds"):
            row[key] = over_seeds([r[key] for r in rs])
        intervals = [r.get("macro_auc_ci95") for r in rs]
        row["macro_auc_ci95"] = (
            np.mean(intervals, axis=0).tolist() if rs and all(ci is not None for ci in intervals) else None
        )
        table[m] = row
    comparisons = {}
    baselines = [m for m in methods if m in BASELINES and m != "scratch"]
    if baselines:
        best = max(baselines, key=lambda m: table[m]["val_macro_auc"]["mean"])  # chosen on validation
        for m in (x for x in methods if x == "evl" or x in ABLATIONS):
            a = {r["seed"]: r for r in by_method[m]}
            b = {r["seed"]: r for r in by_method[best]}
            seeds = sorted(set(a) & set(b))
            comparison = {"against": best, "chosen_on": "validation", "seeds": seeds}
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


def label_efficiency_rows(results: dict) -> list[dict]:
    """Test macro-AUC against the labelled records: one row per method and budget, mean and sd over seeds."""
    budgets = sorted(results.get("budgets", []), key=lambda b: b["n_labelled"])
    methods = dict.fromkeys(m for b in budgets for m in b["summary"]["table"])
    rows = []
    for method in methods:
        for b in (b for b in budgets if method in b["summary"]["table"]):
            auc = b["summary"]["table"][method]["macro_auc"]
            rows.append(
                {
                    "method": method,
                    "labelled": b["labelled"],
                    "n_labelled": b["n_labelled"],
                    "n_transfer": b["n_transfer"],
                    "macro_auc": auc["mean"],
                    "macro_auc_sd": auc["sd"],
                    "seeds": len(auc["values"]),
                }
            )
    return rows


def ablation_rows(results: dict) -> list[dict]:
    """EVL and each ablation: mean test macro-AUC and its change from the full EVL."""
    return _ablation_rows(results["summary"]["table"])


def _ablation_rows(table: dict) -> list[dict]:
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
    eff = results["efficiency"]
    teacher = results["teacher"]
    lines = [
        f"Data: {results['data']} ({results['n_train']} train / {results['n_val']} val / "
        f"{results['n_test']} test records), {len(results['seeds'])} seeds; teacher test macro-AUC "
        f"{teacher['test_macro_auc']:.3f} ({eff['teacher']['params']:,} parameters, "
        f"{eff['teacher']['latency_ms']:.2f} ms at batch 1).",
    ]
    if "budgets" not in results:  # written before label budgets: one table, as then
        lines += _summary_lines(results["summary"], eff)
    for budget in results.get("budgets", []):
        lines += ["", _budget_heading(budget, results)]
        lines += _summary_lines(budget["summary"], eff, intervals=True)
    if len(results.get("budgets", [])) > 1:
        lines += _label_efficiency_lines(results)
    if results.get("budgets"):
        lines += _scratch_comparison_lines(results)
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


def _budget_heading(budget: dict, results: dict) -> str:
    """One line: how many records the budget's students had labels for, and what else distillation saw."""
    n, n_train = budget["n_labelled"], results["n_train"]
    head = f"**All {n} training records labelled**" if budget["labelled"] == ALL else (
        f"**{n} of {n_train} training records labelled**"
    )
    if not budget["n_transfer"]:
        return head + "."
    parts = [f"{n_train - n} more of the training split"] if n < n_train else []
    if results.get("n_transfer_records"):
        parts.append(f"{results['n_transfer_records']} records of `{results['transfer_dir']}`")
    return (
        f"{head}; the distillation losses also see {' and '.join(parts)} without labels "
        "(the scratch student does not)."
    )


def scratch_comparisons(results: dict) -> list[dict]:
    """Each distilled method against the scratch student, paired by seed, at every label budget.

    Two references per budget: the scratch student with the same labels (what distillation adds)
    and, for a few-label budget, the scratch student with every label (how much of the gap the
    teacher closes). Difference d_s = AUC(method, s) - AUC(scratch, s); the interval is a
    bootstrap over seeds (:func:`paired_bootstrap`).
    """
    runs = results.get("runs", [])
    auc = {(r["method"], r.get("labelled", ALL), r["seed"]): r["macro_auc"] for r in runs}
    budgets = sorted(results.get("budgets", []), key=lambda b: b["n_labelled"])
    rows = []
    for b in budgets:
        references = [(b["labelled"], "scratch, same labels")]
        if b["labelled"] != ALL and any(x["labelled"] == ALL for x in budgets):
            references.append((ALL, "scratch, every label"))
        for method in dict.fromkeys(r["method"] for r in runs if r.get("labelled", ALL) == b["labelled"]):
            if method == "scratch":
                continue
            for ref_budget, against in references:
                seeds = sorted(s for (m, lab, s) in auc if m == method and lab == b["labelled"]
                               and ("scratch", ref_budget, s) in auc)
                if not seeds:
                    continue
                diffs = np.array([auc[method, b["labelled"], s] - auc["scratch", ref_budget, s]
                                  for s in seeds])  # [S]
                rows.append({"method": method, "labelled": b["labelled"], "n_labelled": b["n_labelled"],
                             "against": against, "seeds": seeds, "diffs": diffs.tolist(),
                             "mean": float(diffs.mean()), "ci95": list(paired_bootstrap(diffs)),
                             "wins": int((diffs > 0).sum())})
    return rows


def _scratch_comparison_lines(results: dict) -> list[str]:
    rows = scratch_comparisons(results)
    if not rows:
        return []
    lines = ["", "Against the scratch student, paired by seed (test macro-AUC difference, 95% bootstrap CI "
             "over seeds):", "", "| method | labelled | against | difference | 95% CI | better in |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        low, high = r["ci95"]
        ci = "-" if np.isnan(low) else f"{low:+.4f} to {high:+.4f}"
        lines.append(f"| {r['method']} | {r['n_labelled']} | {r['against']} | {r['mean']:+.4f} | {ci} "
                     f"| {r['wins']} of {len(r['seeds'])} seeds |")
    return lines


def _label_efficiency_lines(results: dict) -> list[str]:
    """Methods x budgets: mean ± sd over seeds of the test macro-AUC."""
    budgets = sorted(results["budgets"], key=lambda b: b["n_labelled"])
    rows = label_efficiency_rows(results)
    lines = [
        "",
        "Label efficiency: test macro-AUC (mean ± sd over seeds) against the labelled training records.",
        "",
        "| method | " + " | ".join(
            f"{b['n_labelled']} (all)" if b["labelled"] == ALL else str(b["n_labelled"]) for b in budgets
        ) + " |",
        "|---|" + "---|" * len(budgets),
    ]
    for method in dict.fromkeys(r["method"] for r in rows):
        cell = {r["n_labelled"]: f"{r['macro_auc']:.3f} ± {r['macro_auc_sd']:.3f}" for r in rows
                if r["method"] == method}
        lines.append(f"| {method} | " + " | ".join(cell.get(b["n_labelled"], "-") for b in budgets) + " |")
    return lines


def _summary_lines(summary: dict, eff: dict, intervals: bool = False) -> list[str]:
    """The methods table, the ablations and EVL's paired comparisons of one summary (Markdown lines).

    ``intervals``: a column with each method's test macro-AUC interval over the test records.
    """
    interval_head = " 95% CI (test records) |" if intervals else ""
    lines = [
        "",
        f"| method | test macro-AUC |{interval_head} label accuracy | exact-match accuracy | macro-F1 "
        "| params | CPU ms (b=1) |",
        "|---|---|" + ("---|" if intervals else "") + "---|---|---|---|---|",
    ]
    for m, row in summary["table"].items():
        cells = [
            f"{row[k]['mean']:.3f} ± {row[k]['sd']:.3f}"
            for k in ("macro_auc", "hamming_accuracy", "sample_accuracy", "macro_f1")
        ]
        if intervals:
            ci = row.get("macro_auc_ci95")
            cells.insert(1, f"{ci[0]:.3f}-{ci[1]:.3f}" if ci else "-")
        lines.append(
            f"| {m} | "
            + " | ".join(cells)
            + f" | {eff['student']['params']:,} | {eff['student']['latency_ms']:.2f} |"
        )
    ablations = _ablation_rows(summary["table"])
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
            # records made before the choice moved to validation say how theirs was made
            f"{m} vs {c['against']} (best baseline by mean {c.get('chosen_on', 'test')} macro-AUC), "
            "paired by seed: "
            f"macro-AUC difference {auc['mean']:+.4f}, 95% bootstrap CI [{auc['ci95'][0]:+.4f}, "
            f"{auc['ci95'][1]:+.4f}], better in {auc['wins']} of {auc['n']} seeds; per seed "
            + ", ".join(f"{d:+.4f}" for d in auc["diffs"])
            + ".",
        ]
    return lines


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
    labelled: str | Sequence[int | str] = ALL,
    transfer_dir: str | os.PathLike | None = None,
) -> dict:
    """Run (or resume) the experiment and write ``results.json`` and ``results.md`` into ``out_dir``.

    ``labelled``: label budgets (``"50,200,all"``, :func:`evl_lite.data.label_budget.parse_budgets`);
    ``transfer_dir``: unlabelled records the distillation losses also read. Bad budgets or
    transfer records are an :class:`ECGDataError` before anything trains. ``results["summary"]``
    is the largest budget's (``all`` when asked for); ``results["budgets"]`` holds each budget's.
    """
    start = time.perf_counter()
    state = process_state()
    record = provenance()  # before anything is written, so the commit is the code that ran
    out = Path(out_dir)
    methods = parse_methods(methods)
    budgets = parse_budgets(labelled)
    if seeds < 1:
        raise ValueError(f"seeds must be at least 1; got {seeds}")
    with state.main_process_first():  # the main process generates synthetic data; the others then read it
        data = load_benchmark_data(source, data_dir, smoke=smoke, seed=0, progress=False)
    seed_list = list(range(first_seed, first_seed + seeds))
    subsets = labelled_subsets(data, budgets, seed_list)  # bad budgets fail here, before any training
    x_transfer = None
    if transfer_dir:
        with state.main_process_first():  # records in mV: the main process preprocesses and caches them
            x_transfer = transfer_records(transfer_dir, data.train.x.shape[-1], progress=False)  # [M, 12, T]
    # the shipped foundation teacher by default; a workshop teacher's directory is loaded or made
    teacher, info, teacher_path = resolve_teacher(teacher_dir, data, smoke=smoke, seed=0,
                                                  unlabelled_dir=unlabelled_dir)
    _, config = student_recipe(smoke)
    starts = window_starts(data.train.x.shape[-1], config.crop, config.eval_windows)
    with state.main_process_first():  # the main process computes and stores the cache; the others load it
        cache = TeacherCache.build(  # over every record a distillation loss reads: training split + transfer
            teacher,
            data.train.x if x_transfer is None else np.concatenate([data.train.x, x_transfer]),
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
    teacher_auc_ci = _auc_interval(data.test.y, predict(teacher, data.test.x, **window))
    runs = []
    todo = [(b, s, m) for b in budgets for s in seed_list for m in methods]
    splits_of: dict = {}  # the (budget, seed) being run -> its two training splits, made once
    for i, (budget, seed, method) in enumerate(todo):
        if progress and state.is_main_process:
            at = "" if budget == ALL else f", {budget} labelled"
            print(f"[{i + 1}/{len(todo)}] {method} seed {seed}{at}", flush=True)
        if (budget, seed) not in splits_of:
            splits_of = {(budget, seed): budget_splits(data.train, subsets[budget, seed], x_transfer)}
        supervised, distillation = splits_of[budget, seed]
        train_split = supervised if method == "scratch" else distillation  # scratch: its labelled ones only
        run_data = dataclasses.replace(data, splits={**data.splits, "train": train_split})
        labels = {"labelled": budget, "n_labelled": len(supervised)}
        if budget != ALL:
            labels["labelled_ecg_ids"] = supervised.ecg_ids.tolist()  # checked when the run is resumed
        runs.append(
            run_student(
                method,
                seed,
                run_data,
                cache,
                smoke,
                distill_config,
                run_directory(out, budget, method, seed),
                state,
                labels,
                n_steps_like=len(distillation),  # scratch on fewer records: as many steps as the others
            )
        )
    from evl_lite.models.student import ECGStudentCNN

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
    n_transfer_records = 0 if x_transfer is None else len(x_transfer)
    budget_rows = []
    for budget in budgets:
        n_labelled = len(data.train) if budget == ALL else budget
        budget_rows.append(
            {
                "labelled": budget,
                "n_labelled": n_labelled,
                "n_transfer": len(data.train) - n_labelled + n_transfer_records,  # read by distillation only
                "summary": summarise([r for r in runs if r["labelled"] == budget], methods),
            }
        )
    results = {
        "data": source,
        "path": str(data.root),
        "unlabelled_dir": unlabelled_dir,
        "labelled": budgets,
        "transfer_dir": None if transfer_dir is None else str(transfer_dir),
        "n_transfer_records": n_transfer_records,
        "smoke": smoke,
        "methods": methods,
        "seeds": list(range(seeds)),
        "n_train": len(data.train),
        "n_val": len(data.val),
        "n_test": len(data.test),
        "teacher": {
            "dir": str(teacher_path),
            "name": info.get("name", teacher_path.name),
            "val_macro_auc": info["best_val_macro_auc"],
            "test_macro_auc": teacher_report["macro_auc"],
            "test_macro_auc_ci95": teacher_auc_ci,
            "test_hamming_accuracy": teacher_report["hamming_accuracy"],
        },
        "distill_config": (distill_config or DistillConfig()).to_dict(),
        "student_train_config": {k: v for k, v in vars(config).items() if k not in ("seed", "progress")},
        "efficiency": eff,
        "summary": budget_rows[-1]["summary"],  # the largest budget's: every record labelled, when asked for
        "budgets": budget_rows,
        "runs": [{k: v for k, v in r.items() if k != "resumed"} for r in runs],
        "processes": state.num_processes,
        "wall_seconds": time.perf_counter() - start,
        "runs_computed": sum(not r.get("resumed") for r in runs),  # the rest were loaded from an earlier run
        "provenance": {**record, "seeds": seed_list},
    }
    results["label_efficiency"] = label_efficiency_rows(results)
    if state.is_main_process:
        if len(budgets) > 1:
            results["figures"] = write_label_efficiency(results, out)
        write_json_atomic(out / "results.json", results)
        write_text_atomic(out / "results.md", results_markdown(results))
    state.wait_for_everyone()
    return results


def labelled_subsets(
    data: BenchmarkData, budgets: Sequence[int | str], seeds: Sequence[int]
) -> dict[tuple[int | str, int], np.ndarray | None]:
    """The labelled training records [n] of each (budget, seed) (None: all), or an error naming a problem."""
    train = data.train
    subsets: dict[tuple[int | str, int], np.ndarray | None] = {}
    for budget in budgets:
        if budget != ALL and budget > len(train):
            raise ECGDataError(
                data.root, f"--labelled {budget} is more than the {len(train)} records of the training split"
            )
        for seed in seeds:
            try:
                subsets[budget, seed] = (
                    None if budget == ALL else labelled_subset(train.y, budget, seed, train.classes)
                )
            except ValueError as exc:  # too few records for a positive of every class
                raise ECGDataError(data.root, f"--labelled {budget}: {exc}") from None
    return subsets


def write_label_efficiency(results: dict, out: Path) -> list[str]:
    """``label_efficiency.html`` (plotly.js embedded: opens offline) and ``label_efficiency.png``."""
    from evl_lite.explorers.ecg_plots import label_efficiency_figure, label_efficiency_png

    figure = label_efficiency_figure(results)
    write_text_atomic(out / "label_efficiency.html", figure.to_html(include_plotlyjs=True, full_html=True))
    label_efficiency_png(results["label_efficiency"], out / "label_efficiency.png",
                         results.get("teacher", {}).get("test_macro_auc"),
                         title=f"label efficiency on {results['data']} data ({len(results['seeds'])} seeds)")
    written = ["label_efficiency.html", "label_efficiency.png"]
    return written
