"""The distilled student of a finished experiment, chosen on validation only, with its model card.

``python -m evl_lite student ship --from EXPERIMENT --out DIR`` (and ``predict --model EXPERIMENT``,
or ``--model EXPERIMENT/runs/<method>/seed<k>`` for one run) reads ``results.json`` of a directory
written by ``python -m evl_lite experiment`` and:

1. **method**: among the distilled methods (every method but ``scratch``) trained with every label
   (budget ``all``), the one with the highest mean validation macro-AUC over seeds;
2. **seed**: that method's run with the highest validation macro-AUC (ties: the lower seed);
3. **weights**: the run's best validation epoch, ``training/checkpoint/best_model.safetensors``;
4. **thresholds**: per class the cut that maximises F1 on the validation split
   (:func:`evl_lite.evaluation.metrics.tune_thresholds`), on the probabilities the experiment evaluates
   (``training.predict``: the maximum over the sliding windows);
5. **card**: the data, method, teacher, seed, the experiment's command and commit, the validation
   macro-AUC (recomputed here and checked against the run's), the fold-10 test macro-AUC and its
   95% interval as the experiment reported them, the thresholds.

The test split chooses nothing: it is only reported.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from evl_lite.constants import SUPERCLASSES
from evl_lite.errors import ECGDataError
from evl_lite.evaluation.metrics import macro_auc, tune_thresholds
from evl_lite.models.student import ECGStudentCNN
from evl_lite.predict.student_hub import model_input_spec

RESULTS_JSON = "results.json"
REFERENCE_SECONDS = 10.0  # the records the models were validated on: PTB-XL's 10 s
VALIDATION_TOLERANCE = 1e-3  # recomputed vs recorded validation macro-AUC: more means other data


def read_results(directory: Path) -> dict:
    """``results.json`` of an experiment directory, or an error naming it."""
    path = directory / RESULTS_JSON
    if not path.is_file():
        raise ECGDataError(path, "missing: not a directory written by `python -m evl_lite experiment`")
    try:
        results = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ECGDataError(path, f"is not valid JSON ({exc})") from None
    if not isinstance(results, dict) or not isinstance(results.get("runs"), list) or "data" not in results:
        raise ECGDataError(path, "is not an experiment's results (it needs 'data' and 'runs')")
    return results


def choose_run(results: dict, source: Path) -> tuple[str, int, dict]:
    """(method, seed, how they were chosen) by the rule of the module docstring; validation only."""
    runs = [r for r in results["runs"] if r.get("labelled", "all") == "all" and r.get("method") != "scratch"]
    if not runs:
        raise ECGDataError(source / RESULTS_JSON, "holds no distilled student trained with every label "
                                                  "(methods other than scratch, budget 'all')")
    by_method: dict[str, list[dict]] = {}
    for r in runs:
        by_method.setdefault(r["method"], []).append(r)
    means = {m: float(np.mean([r["val_macro_auc"] for r in rs])) for m, rs in by_method.items()}
    method = max(means, key=lambda m: (means[m], -list(means).index(m)))  # ties: the first listed
    seeds = {int(r["seed"]): float(r["val_macro_auc"]) for r in by_method[method]}
    seed = min(seeds, key=lambda s: (-seeds[s], s))
    selection = {
        "rule": "method: highest mean validation macro-AUC over seeds among the distilled methods "
                "(budget all); seed: that method's highest validation macro-AUC; test never used",
        "mean_validation_macro_auc": means,
        "validation_macro_auc_per_seed": {str(s): v for s, v in sorted(seeds.items())},
    }
    return method, seed, selection


def locate(path: str | os.PathLike) -> tuple[Path, str | None, int | None, int | str]:
    """(experiment directory, method, seed, budget) of an experiment directory or one of its runs.

    A run is ``runs/<method>/seed<k>`` (budget ``all``) or ``runs/labelled-<N>/<method>/seed<k>``;
    its ``training`` or ``training/checkpoint`` directory names it too. Method and seed are None
    for the experiment directory itself (:func:`choose_run` chooses them).
    """
    path = Path(path).expanduser().resolve()
    if (path / RESULTS_JSON).is_file():
        return path, None, None, "all"
    parts = list(path.parts)
    while parts and not parts[-1].startswith("seed"):
        if parts[-1] not in ("training", "checkpoint", "checkpoint.old"):
            break
        parts.pop()
    if not parts or not parts[-1].startswith("seed") or not parts[-1][4:].isdigit():
        raise ECGDataError(path, "is not an experiment directory (results.json) nor one of its runs "
                                 "(runs/<method>/seed<k>)")
    run = Path(*parts)
    method, seed = run.parent.name, int(run.name[4:])
    above = run.parent.parent
    budget: int | str = "all"
    if above.name.startswith("labelled-"):
        budget, above = int(above.name.split("-", 1)[1]), above.parent
    if above.name != "runs" or not (above.parent / RESULTS_JSON).is_file():
        raise ECGDataError(run, f"is not a run of an experiment: no {RESULTS_JSON} above runs/")
    return above.parent, method, seed, budget


def _data_path(results: dict, experiment: Path, data_path: str | os.PathLike | None) -> str | None:
    """The experiment's dataset directory: ``data_path`` if given, else its recorded one, found."""
    if data_path:
        return str(data_path)
    if results["data"] == "synthetic":
        return None  # the synthetic draw of the recipe, made again if missing
    recorded = Path(results["path"])
    candidates = [recorded] if recorded.is_absolute() else [
        Path.cwd() / recorded, Path(__file__).resolve().parents[2] / recorded, experiment / recorded]
    for candidate in candidates:
        if (candidate / "ptbxl_database.csv").is_file():
            return str(candidate)
    raise ECGDataError(experiment / RESULTS_JSON,
                       f"its data {results['path']!r} is not found here; give the dataset directory (--path)")


def student_from_experiment(
    path: str | os.PathLike, data_path: str | os.PathLike | None = None, progress: bool = False
) -> tuple[ECGStudentCNN, dict]:
    """The chosen (or named) run's student in eval mode and its card fields (without ``sha256``)."""
    from evl_lite.data.benchmark import load_benchmark_data
    from evl_lite.evaluation.deployment import StudentSource, _training_weights, load_student
    from evl_lite.experiments.single_split import run_directory
    from evl_lite.foundation.hub import sha256_file
    from evl_lite.reproducibility import shell_command
    from evl_lite.training.loop import predict
    from evl_lite.training.recipes import student_recipe

    experiment, method, seed, budget = locate(path)
    results = read_results(experiment)
    if method is None:
        method, seed, selection = choose_run(results, experiment)
    else:
        selection = {"rule": f"named run {method}, seed {seed} (budget {budget})"}
    record = next((r for r in results["runs"] if r.get("method") == method and int(r.get("seed", -1)) == seed
                   and r.get("labelled", "all") == budget), None)
    run = run_directory(experiment, budget, method, seed)
    if record is None:
        raise ECGDataError(experiment / RESULTS_JSON, f"lists no run {method}, seed {seed}, budget {budget}")
    weights = _training_weights(run / "training")
    if weights is None:
        raise ECGDataError(run / "training" / "checkpoint",
                           "holds no best_model.safetensors (training checkpoints are not committed: "
                           "run the experiment here, or use a shipped student)")
    smoke = bool(results.get("smoke"))
    student_config, _ = student_recipe(smoke)
    student = load_student(StudentSource(weights, None, None, str(run)), student_config)  # shapes checked
    student.requires_grad_(False)
    config = results.get("student_train_config", {})
    crop, windows = int(config.get("crop", 250)), int(config.get("eval_windows", 7))

    data = load_benchmark_data(results["data"], _data_path(results, experiment, data_path), smoke=smoke,
                               progress=progress)
    val_probs = predict(student, data.val.x, crop, windows)  # [N_val, C]
    thresholds = tune_thresholds(data.val.y, val_probs)
    val_auc = macro_auc(data.val.y, val_probs)[0]
    if abs(val_auc - float(record["val_macro_auc"])) > VALIDATION_TOLERANCE:
        raise ECGDataError(weights, f"gives validation macro-AUC {val_auc:.4f} on {data.root}, but its "
                                    f"run recorded {record['val_macro_auc']:.4f}: another dataset or model")
    test_auc = macro_auc(data.test.y, predict(student, data.test.x, crop, windows))[0]
    fs = data.val.fs
    spec = {**model_input_spec(), "crop": crop, "eval_windows": windows,
            "reference_length": int(round(REFERENCE_SECONDS * fs))}
    if spec["fs"] != fs:
        raise ECGDataError(experiment / RESULTS_JSON,
                           f"its records are at {fs} Hz, predict prepares {spec['fs']} Hz")
    teacher = results.get("teacher", {})
    provenance = results.get("provenance", {})
    source = results["data"]
    n_transfer = int(results.get("n_transfer_records") or 0)
    data_fields = {
        "source": source,
        "dataset": Path(str(results.get("path"))).name if source != "synthetic" else "synthetic draw, seed 0",
        "labelled": f"{record.get('n_labelled', results.get('n_train'))} training records (folds 1-8)",
        "transfer": (f"{n_transfer} unlabelled records of {Path(str(results['transfer_dir'])).name}"
                     if n_transfer else "the training records only"),
        "validation": f"fold 9 ({len(data.val)} records)",
        "test": (f"fold 10 ({len(data.test)} records)" if source != "synthetic"
                 else f"the synthetic evaluation draw ({len(data.test)} records)"),
    }
    synthetic_test = "the synthetic evaluation draw"
    test_what = synthetic_test if source == "synthetic" else f"fold 10 of {data_fields['dataset']}"
    from evl_lite.models.output import count_parameters

    parameters = count_parameters(student)
    fields = {
        "summary": (
            f"The EVL-ECG Lite student for {'real' if source == 'ptbxl' else source} ECGs: a "
            f"{parameters:,}-parameter CNN distilled with {method} from the `{teacher.get('name', '?')}` "
            f"foundation teacher on {data_fields['dataset']} ({data_fields['labelled']}; transfer set: "
            f"{data_fields['transfer']}), seed {seed}."
        ),
        "kind": "student",
        "smoke": smoke,
        "data": data_fields,
        "method": method,
        "seed": seed,
        "labelled": budget,
        "selection": selection,
        "teacher": {"name": teacher.get("name"), "fingerprint": record.get("teacher_fingerprint"),
                    "validation_macro_auc": teacher.get("val_macro_auc"),
                    "test_macro_auc": teacher.get("test_macro_auc"),
                    "test_macro_auc_ci95": teacher.get("test_macro_auc_ci95"),
                    **_shipped_teacher_sha(teacher.get("name"))},
        "config": json.loads(json.dumps(dataclasses.asdict(student.config))),
        "parameters": parameters,
        "input": spec,
        "thresholds": {name: float(t) for name, t in zip(SUPERCLASSES, thresholds, strict=True)},
        "metrics": {
            "validation_macro_auc": {"value": float(val_auc), "records": len(data.val),
                                     "what": f"fold 9 of {data_fields['dataset']}, recomputed",
                                     "recorded": float(record["val_macro_auc"])},
            "test_macro_auc": {"value": float(record["macro_auc"]), "ci": record.get("macro_auc_ci95"),
                               "records": len(data.test), "what": test_what,
                               "recomputed": float(test_auc)},
        },
        "experiment": {"dir": _shown(experiment), "run": str(run.relative_to(experiment)),
                       "weights": _shown(weights), "weights_sha256": sha256_file(weights),
                       "command": shell_command(provenance) if "command" in provenance else None,
                       "commit": provenance.get("commit"), "machine": provenance.get("machine")},
    }
    return student.eval(), fields


def _shown(path: Path) -> str:
    """``path`` relative to the repository checkout when inside it (cards travel), else absolute."""
    repo = Path(__file__).resolve().parents[2]
    return str(path.relative_to(repo)) if path.is_relative_to(repo) else str(path)


def _shipped_teacher_sha(name: str | None) -> dict:
    """The SHA-256 of the shipped teacher of that name, as its card gives it (nothing if there is none)."""
    from evl_lite.foundation.hub import CARD_JSON, WEIGHTS_DIR, ModelCard

    if not name or not (WEIGHTS_DIR / name / CARD_JSON).is_file():
        return {}
    return {"sha256": ModelCard.read(WEIGHTS_DIR / name).fields["sha256"]}


def ship_student(
    source: str | os.PathLike, out: str | os.PathLike, data_path: str | os.PathLike | None = None,
    command: str | None = None,
) -> Path:
    """Write the student of an experiment (or one of its runs) with its card into ``out``; returns ``out``.

    A smoke-mode student may be written anywhere but into the package's shipped students.
    """
    from evl_lite.predict.student_hub import STUDENT_WEIGHTS_DIR, write_student
    from evl_lite.reproducibility import provenance

    out = Path(out)
    experiment = locate(source)[0]
    if read_results(experiment).get("smoke") and out.resolve().parent == STUDENT_WEIGHTS_DIR.resolve():
        raise ECGDataError(experiment, "is a smoke-mode experiment; only real runs are shipped in the "
                                       "package")
    student, fields = student_from_experiment(source, data_path)
    record = provenance()
    fields["command"] = command or record["command"]
    fields["provenance"] = record
    return write_student(student, fields, out)
