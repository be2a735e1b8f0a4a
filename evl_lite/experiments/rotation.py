"""The benchmark's 10-fold rotation: every method on every fold, scored out of fold and pooled.

``python -m evl_lite experiment --data ptbxl --path DIR --folds rotate --methods LIST --seeds 3 --out DIR``

One test fold holds 64 records of PTB-XL-500: methods 0.01 apart cannot be told apart on it.
The rotation uses every record as a test record once. Rotation k (1..10): test fold k,
validation fold k mod 10 + 1, training the other eight. For each rotation:

1. a teacher: the shipped ``ptbxl`` foundation teacher's pretrained backbone
   (:func:`evl_lite.foundation.hub.load_backbone`: masked-patch pretrained on records outside
   PTB-XL-500) fine-tuned with the foundation recipe on that rotation's training folds only,
   selected on its validation fold (``rotation-k/teacher``, resumable);
2. its outputs cached over the training folds; every method and seed trained as on the single
   split (:func:`evl_lite.experiments.single_split.run_student`: the methods of a seed paired),
   thresholds tuned on the validation fold, probabilities kept for the test fold.

Pooled out-of-fold: each record's probabilities come from the rotation that tested it, so per
method and seed one prediction per record, [500, 5], and one macro-AUC over all records. The
best baseline is the one with the highest mean validation macro-AUC (never test). Paired
differences against it: d = mean_s [AUC(m, s) - AUC(best, s)] over the pooled records, with a
95% bootstrap interval that resamples records and seeds together (:func:`paired_pooled_bootstrap`).
A resumed run whose folds or teacher differ is refused, naming the run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np

from evl_lite.atomic import write_json_atomic, write_text_atomic
from evl_lite.data.benchmark import MODEL_NORMALISATION, BenchmarkData, benchmark_root, model_preprocessing
from evl_lite.data.dataset import ECGSplit
from evl_lite.data.ptbxl import load_ptbxl
from evl_lite.data.sources import default_data_root
from evl_lite.data.split_cache import cached_splits
from evl_lite.distillation.evl import DistillConfig
from evl_lite.distillation.names import BASELINES, parse_methods
from evl_lite.distillation.teacher_cache import TeacherCache
from evl_lite.errors import ECGDataError
from evl_lite.evaluation.metrics import macro_auc, over_seeds
from evl_lite.experiments.single_split import run_student
from evl_lite.reproducibility import provenance, shell_command
from evl_lite.training.loop import predict, process_state, train, window_starts
from evl_lite.training.recipes import student_recipe

FOLDS = tuple(range(1, 11))


def rotation_folds(k: int) -> dict[str, list[int]]:
    """Rotation k: ``{"test": [k], "val": [k mod 10 + 1], "train": the other eight}``."""
    val = k % 10 + 1
    return {"test": [k], "val": [val], "train": [f for f in FOLDS if f not in (k, val)]}


def all_records(
    source: str, data_dir: str | os.PathLike | None, smoke: bool = False
) -> tuple[ECGSplit, np.ndarray, Path]:
    """Every labelled record of the data set, prepared for the models, and its fold [N]."""
    root = benchmark_root(source, data_dir, smoke)
    database = load_ptbxl(root).database
    present = sorted({int(f) for f in database["strat_fold"].dropna()})
    if present != list(FOLDS):
        raise ECGDataError(
            root / "ptbxl_database.csv",
            f"--folds rotate needs the ten strat_fold folds 1-10; this data set has {present}",
        )
    splits = cached_splits(
        root, model_preprocessing(), MODEL_NORMALISATION, default_data_root() / "cache", progress=False
    )
    parts = [splits[name] for name in ("train", "val", "test")]
    ids = np.concatenate([p.ecg_ids for p in parts])
    folds = database.loc[ids, "strat_fold"].to_numpy()
    merged = ECGSplit(
        name="all",
        x=np.concatenate([p.x for p in parts]),
        y=np.concatenate([p.y for p in parts]),
        ecg_ids=ids,
        fs=parts[0].fs,
        classes=parts[0].classes,
    )
    return merged, folds.astype(int), root


def rotation_data(records: ECGSplit, folds: np.ndarray, k: int, root: Path, source: str) -> BenchmarkData:
    """The train/val/test splits of rotation k; a split without a positive of some class is an error."""
    splits = {}
    for name, chosen in rotation_folds(k).items():
        rows = np.flatnonzero(np.isin(folds, chosen))
        split = dataclasses.replace(
            records, name=name, x=records.x[rows], y=records.y[rows], ecg_ids=records.ecg_ids[rows]
        )
        missing = [c for c, n in zip(split.classes, split.y.sum(axis=0), strict=True) if n == 0]
        if missing and name == "train":
            raise ECGDataError(
                root,
                f"rotation {k}: the training folds {chosen} hold no record of class "
                f"{', '.join(missing)}; a student cannot learn it",
            )
        splits[name] = split
    return BenchmarkData(root=root, splits=splits, source=source)


def rotation_teacher(backbone: str | None, data: BenchmarkData, out: Path, smoke: bool, seed: int = 0):
    """Fine-tune the pretrained backbone on the rotation's training folds (or load it); ``(teacher, info)``.

    ``backbone``: a shipped teacher's name or directory whose card keeps its pretrained backbone
    (default ``ptbxl``); in smoke mode a fresh smoke-size transformer (no pretraining).
    """
    from evl_lite.foundation.hub import load_backbone
    from evl_lite.foundation.recipe import foundation_recipe
    from evl_lite.models.teacher import ECGTransformer

    recipe = foundation_recipe("ptbxl", smoke, seed)
    recipe.finetune.progress = False
    info_file = out / "teacher_info.json"
    made_from = "smoke-size transformer, random weights" if smoke and backbone is None else None
    if made_from is None:
        model = load_backbone(backbone or "ptbxl")
        made_from = f"{model.card.name} backbone {model.card.fields['backbone']['sha256'][:12]}"
    else:
        import torch

        torch.manual_seed(seed)
        model = ECGTransformer(recipe.model)
    want = {
        "backbone": made_from,
        "train_ecg_ids": data.train.ecg_ids.tolist(),
        "val_ecg_ids": data.val.ecg_ids.tolist(),
    }
    if info_file.is_file():
        info = json.loads(info_file.read_text())
        if {k: info.get(k) for k in want} != want:
            raise ECGDataError(
                out,
                "this rotation's teacher was fine-tuned from another backbone or on other "
                "folds than this run asks for; delete the directory to re-make it",
            )
        return ECGTransformer.from_pretrained(out).eval().requires_grad_(False), info
    for unused in (model.mask_token, *model.reconstruction_head.parameters()):
        unused.requires_grad_(False)  # pretraining's only
    start = time.perf_counter()
    result = train(model, data.train, data.val, recipe.finetune, out_dir=out / "finetuning", resume=True)
    info = {
        **want,
        "best_val_macro_auc": result.best_val_auc,
        "best_epoch": result.best_epoch,
        "seconds": time.perf_counter() - start,
        "recipe": recipe.as_dict()["finetune"],
    }
    model.save_pretrained(out)
    write_json_atomic(info_file, info)
    return model.eval().requires_grad_(False), info


def pooled_auc(runs: list[dict], y_of: dict[int, np.ndarray]) -> tuple[float, np.ndarray, np.ndarray]:
    """Macro-AUC of the out-of-fold probabilities of one method and seed; also (y, scores) [N, C]."""
    ids = np.concatenate([r["test_ecg_ids"] for r in runs])
    scores = np.concatenate([np.asarray(r["test_scores"], dtype=float) for r in runs])
    order = np.argsort(ids)
    y = np.stack([y_of[int(i)] for i in ids[order]])
    return macro_auc(y, scores[order])[0], y, scores[order]


def paired_pooled_bootstrap(
    y: np.ndarray, a: np.ndarray, b: np.ndarray, n_boot: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """95% interval of mean_s [AUC(a_s) - AUC(b_s)], resampling records and seeds.

    y [N, C]; a, b [S, N, C]: the pooled probabilities of two methods, seed by seed (paired).
    """
    rng = np.random.default_rng(seed)
    n_seeds, n = a.shape[:2]
    diffs = []
    for _ in range(n_boot):
        rows = rng.integers(0, n, n)
        seeds = rng.integers(0, n_seeds, n_seeds)
        if (y[rows].sum(axis=0) == 0).any() or (y[rows].sum(axis=0) == n).any():
            continue  # a class without positives or negatives in this resample
        diffs.append(
            np.mean([macro_auc(y[rows], a[s, rows])[0] - macro_auc(y[rows], b[s, rows])[0] for s in seeds])
        )
    return float(np.quantile(diffs, 0.025)), float(np.quantile(diffs, 0.975))


def summarise_rotation(
    runs: list[dict],
    methods: list[str],
    y_of: dict[int, np.ndarray],
    teachers: list[dict],
    n_boot: int = 1000,
) -> dict:
    """Per method: pooled macro-AUC over seeds, per-fold and validation AUC; the comparisons."""
    table, pooled = {}, {}
    for m in methods:
        mine = [r for r in runs if r["method"] == m]
        seeds = sorted({r["seed"] for r in mine})
        per_seed = []
        for s in seeds:
            auc, y, scores = pooled_auc(
                sorted((r for r in mine if r["seed"] == s), key=lambda r: r["test_fold"]), y_of
            )
            per_seed.append(auc)
            pooled[m, s] = scores
        table[m] = {
            "seeds": seeds,
            "pooled_macro_auc": over_seeds(per_seed),
            "fold_macro_auc": {
                str(k): float(np.mean([r["macro_auc"] for r in mine if r["test_fold"] == k]))
                for k in FOLDS
                if any(r["test_fold"] == k for r in mine)
            },
            "val_macro_auc": over_seeds([r["val_macro_auc"] for r in mine]),
            "train_seconds": float(sum(r["train_seconds"] for r in mine)),
        }
    y = np.stack([y_of[i] for i in sorted(y_of)])
    teacher_ids = np.concatenate([t["test_ecg_ids"] for t in teachers])
    teacher_scores = np.concatenate([np.asarray(t["test_scores"]) for t in teachers])[np.argsort(teacher_ids)]
    teacher = {
        "pooled_macro_auc": macro_auc(y, teacher_scores)[0],
        "fold_macro_auc": {str(t["test_fold"]): t["test_macro_auc"] for t in teachers},
        "val_macro_auc": float(np.mean([t["best_val_macro_auc"] for t in teachers])),
    }
    baselines = [m for m in methods if m in BASELINES and m != "scratch"]
    comparisons = {}
    if baselines:
        best = max(baselines, key=lambda m: table[m]["val_macro_auc"]["mean"])  # chosen on validation
        for m in (x for x in methods if x != best):
            seeds = sorted(set(table[m]["seeds"]) & set(table[best]["seeds"]))
            a = np.stack([pooled[m, s] for s in seeds])
            b = np.stack([pooled[best, s] for s in seeds])
            diffs = [macro_auc(y, a[i])[0] - macro_auc(y, b[i])[0] for i in range(len(seeds))]
            comparisons[m] = {
                "against": best,
                "chosen_on": "validation",
                "seeds": seeds,
                "diffs": diffs,
                "mean": float(np.mean(diffs)),
                "ci95": list(paired_pooled_bootstrap(y, a, b, n_boot)),
                "folds_better": int(
                    sum(
                        table[m]["fold_macro_auc"][k] > table[best]["fold_macro_auc"][k]
                        for k in table[m]["fold_macro_auc"]
                    )
                ),
            }
    return {"table": table, "teacher": teacher, "comparisons": comparisons, "n_records": len(y)}


def fold_comparisons(results: dict, n_boot: int = 5000, seed: int = 0) -> dict[str, dict]:
    """Each method's mean test macro-AUC over its (fold, seed) runs, and its gap to the best baseline.

    d = mean over folds k and seeds s of [AUC_k(m, s) - AUC_k(best, s)], each fold scored on its
    own (no common scale across rotations, unlike the pooled AUC); a 95% bootstrap interval
    resampling folds and seeds. Computed from ``results["runs"]``, so a results page can
    regenerate it from ``results.json``.
    """
    auc = {(r["method"], r["test_fold"], r["seed"]): r["macro_auc"] for r in results["runs"]}
    best = next((c["against"] for c in results["summary"]["comparisons"].values()), None)
    rng = np.random.default_rng(seed)
    out = {}
    for m in results["summary"]["table"]:
        folds = sorted({k for (x, k, _) in auc if x == m})
        seeds = sorted({s for (x, _, s) in auc if x == m})
        grid = np.array([[auc[m, k, s] for s in seeds] for k in folds])  # [K, S]
        row = {"mean": float(grid.mean())}
        if best is not None and m != best and all((best, k, s) in auc for k in folds for s in seeds):
            d = grid - np.array([[auc[best, k, s] for s in seeds] for k in folds])  # [K, S]
            ks = rng.integers(0, len(folds), (n_boot, len(folds)))
            ss = rng.integers(0, len(seeds), (n_boot, len(seeds)))
            boots = np.array([d[np.ix_(k, s)].mean() for k, s in zip(ks, ss, strict=True)])
            row |= {
                "against": best,
                "diff": float(d.mean()),
                "ci95": [float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))],
            }
        out[m] = row
    return out


def rotation_markdown(results: dict) -> str:
    """The pooled table, per-fold AUCs and the comparisons against the best baseline, as Markdown."""
    s = results["summary"]
    t = s["teacher"]
    lines = [
        f"Data: {results['data']} ({s['n_records']} records), 10-fold rotation (test fold k, validation "
        f"fold k+1, training the other eight), {len(results['seeds'])} seeds per rotation; a teacher per "
        f"rotation fine-tuned from `{results['backbone']}` on its training folds: pooled out-of-fold "
        f"macro-AUC {t['pooled_macro_auc']:.3f}, mean validation {t['val_macro_auc']:.3f}.",
        "",
        "| method | pooled test macro-AUC | vs best baseline | 95% CI (records and seeds) | folds better "
        "| mean validation macro-AUC |",
        "|---|---|---|---|---|---|",
    ]
    best = next((c["against"] for c in s["comparisons"].values()), None)
    for m, row in s["table"].items():
        auc = row["pooled_macro_auc"]
        c = s["comparisons"].get(m)
        versus = "best baseline (validation)" if m == best else (f"{c['mean']:+.4f}" if c else "-")
        ci = f"{c['ci95'][0]:+.4f} to {c['ci95'][1]:+.4f}" if c else "-"
        better = f"{c['folds_better']} of {len(row['fold_macro_auc'])}" if c else "-"
        lines.append(
            f"| {m} | {auc['mean']:.3f} ± {auc['sd']:.3f} | {versus} | {ci} | {better} "
            f"| {row['val_macro_auc']['mean']:.3f} |"
        )
    folds = fold_comparisons(results)
    lines += [
        "",
        "The same runs read fold by fold (each fold's test macro-AUC on its own; mean over the 10 folds "
        "and the seeds, paired by fold and seed; 95% CI resampling folds and seeds):",
        "",
        "| method | mean fold macro-AUC | vs best baseline | 95% CI (folds and seeds) |",
        "|---|---|---|---|",
    ]
    for m, row in folds.items():
        versus = (
            "best baseline (validation)" if m == best else (f"{row['diff']:+.4f}" if "diff" in row else "-")
        )
        ci = f"{row['ci95'][0]:+.4f} to {row['ci95'][1]:+.4f}" if "ci95" in row else "-"
        lines.append(f"| {m} | {row['mean']:.3f} | {versus} | {ci} |")
    lines += [
        "",
        "Test macro-AUC per fold (mean over seeds):",
        "",
        "| method | " + " | ".join(str(k) for k in FOLDS) + " |",
        "|---|" + "---|" * len(FOLDS),
    ]
    for name, folds in [("teacher", t["fold_macro_auc"])] + [
        (m, r["fold_macro_auc"]) for m, r in s["table"].items()
    ]:
        lines.append(
            f"| {name} | "
            + " | ".join(f"{folds[str(k)]:.3f}" if str(k) in folds else "-" for k in FOLDS)
            + " |"
        )
    lines += [
        "",
        f"Command: `{shell_command(results['provenance'])}`; commit {results['provenance']['commit']}; "
        f"{results['provenance']['machine']}; {results['wall_seconds'] / 60:.1f} min wall time "
        f"({results['runs_computed']} of {len(results['runs'])} student runs and "
        f"{results['teachers_computed']} of 10 teachers computed in that invocation).",
    ]
    return "\n".join(lines) + "\n"


def run_rotation(
    source: str,
    data_dir: str | os.PathLike | None,
    methods: list[str],
    seeds: int,
    out_dir: str | os.PathLike,
    smoke: bool = False,
    backbone: str | None = None,
    distill_config: DistillConfig | None = None,
    progress: bool = True,
    n_boot: int = 1000,
) -> dict:
    """Run (or resume) the rotation; writes ``results.json`` and ``results.md`` into ``out_dir``."""
    start = time.perf_counter()
    state = process_state()
    record = provenance()
    out = Path(out_dir)
    methods = parse_methods(methods)
    if seeds < 1:
        raise ValueError(f"seeds must be at least 1; got {seeds}")
    records, folds, root = all_records(source, data_dir, smoke)
    y_of = {int(i): y for i, y in zip(records.ecg_ids, records.y, strict=True)}
    rotations = [rotation_data(records, folds, k, root, source) for k in FOLDS]  # bad folds fail here
    _, config = student_recipe(smoke)
    starts = window_starts(records.x.shape[-1], config.crop, config.eval_windows)
    window = {"crop": config.crop, "n_windows": config.eval_windows}
    runs, teachers, teachers_computed = [], [], 0
    for k, data in zip(FOLDS, rotations, strict=True):
        rot_dir = out / f"rotation-{k}"
        had_teacher = (rot_dir / "teacher" / "teacher_info.json").is_file()
        teacher, info = rotation_teacher(backbone, data, rot_dir / "teacher", smoke)
        teachers_computed += not had_teacher
        test_scores = predict(teacher, data.test.x, **window)
        teachers.append(
            {
                "test_fold": k,
                "best_val_macro_auc": info["best_val_macro_auc"],
                "test_macro_auc": macro_auc(data.test.y, test_scores)[0],
                "test_ecg_ids": data.test.ecg_ids.tolist(),
                "test_scores": test_scores.tolist(),
                "seconds": info.get("seconds"),
            }
        )
        cache = TeacherCache.build(
            teacher, data.train.x, config.crop, starts, cache_dir=out / "teacher_cache", progress=False
        )
        for seed in range(seeds):
            for method in methods:
                if progress and state.is_main_process:
                    print(f"[rotation {k}] {method} seed {seed}", flush=True)
                run = run_student(
                    method,
                    seed,
                    data,
                    cache,
                    smoke,
                    distill_config,
                    rot_dir / "runs" / method / f"seed{seed}",
                    state,
                    {"test_fold": k, "val_fold": rotation_folds(k)["val"][0]},
                    keep_scores=True,
                )
                runs.append(run)
    summary = summarise_rotation(runs, methods, y_of, teachers, n_boot=n_boot)
    results = {
        "data": source,
        "path": str(root),
        "folds": "rotate",
        "smoke": smoke,
        "methods": methods,
        "seeds": list(range(seeds)),
        "backbone": backbone or ("a smoke-size transformer" if smoke else "ptbxl"),
        "teachers": [{k: v for k, v in t.items() if k != "test_scores"} for t in teachers],
        "distill_config": (distill_config or DistillConfig()).to_dict(),
        "student_train_config": {k: v for k, v in vars(config).items() if k not in ("seed", "progress")},
        "summary": summary,
        "runs": [
            {k: v for k, v in r.items() if k not in ("resumed", "test_scores", "test_ecg_ids")} for r in runs
        ],
        "wall_seconds": time.perf_counter() - start,
        "runs_computed": sum(not r.get("resumed") for r in runs),
        "teachers_computed": teachers_computed,
        "provenance": {**record, "seeds": list(range(seeds))},
    }
    if state.is_main_process:
        write_json_atomic(out / "results.json", results)
        write_text_atomic(out / "results.md", rotation_markdown(results))
    state.wait_for_everyone()
    return results
