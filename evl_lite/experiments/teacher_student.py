"""Teacher vs scratch student over seeds: the measured figures behind notebooks 02 and 03.

For each seed: the teacher is pretrained (masked patches) and fine-tuned with the workshop
recipe (:func:`evl_lite.training.recipes.get_teacher`), the student is trained from scratch with the
same loop, and both are evaluated on the test split (fold 10) as the maximum over 7 sliding
2.5 s windows. Writes ``teacher_student.json`` (per seed and mean +- sd) into ``out_dir``;
a seed already finished is loaded, not recomputed, so an interrupted run resumes.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

from evl_lite.atomic import write_json_atomic
from evl_lite.data.benchmark import load_benchmark_data, unlabelled_records
from evl_lite.evaluation.metrics import macro_auc, over_seeds
from evl_lite.models.student import ECGStudentCNN, StudentConfig
from evl_lite.reproducibility import provenance
from evl_lite.training.loop import TrainConfig, predict, train
from evl_lite.training.recipes import get_teacher

STUDENT_RECIPE = TrainConfig(epochs=15, batch_size=32, lr=1e-2)


def run_teacher_student(
    source: str,
    data_dir: str | None,
    seeds: int,
    out_dir: str | os.PathLike,
    unlabelled_dir: str | None = None,
    smoke: bool = False,
) -> dict:
    """Train and test teacher and scratch student for ``seeds`` seeds; returns the summary."""
    out = Path(out_dir)
    record = provenance(seeds=list(range(seeds)))  # before anything is written: the code that runs
    data = load_benchmark_data(source, data_dir, smoke=smoke, seed=0, progress=False)
    x_unlabelled = unlabelled_records(data, unlabelled_dir, progress=False)
    per_seed = []
    for seed in range(seeds):
        seed_file = out / f"seed{seed}" / "result.json"
        if seed_file.is_file():
            per_seed.append(json.loads(seed_file.read_text()))
            continue
        start = time.perf_counter()
        teacher, info = get_teacher(
            out / f"seed{seed}" / "teacher", data, smoke=smoke, seed=seed, unlabelled=x_unlabelled
        )
        teacher_seconds = time.perf_counter() - start
        torch.manual_seed(seed)
        student = ECGStudentCNN(StudentConfig())
        config = TrainConfig(
            **{**STUDENT_RECIPE.__dict__, "seed": seed, "progress": False, **({"epochs": 2} if smoke else {})}
        )
        start = time.perf_counter()
        train(student, data.train, data.val, config)
        student_seconds = time.perf_counter() - start
        result = {
            "seed": seed,
            "teacher_test_macro_auc": macro_auc(data.test.y, predict(teacher, data.test.x))[0],
            "student_test_macro_auc": macro_auc(data.test.y, predict(student, data.test.x))[0],
            "teacher_val_macro_auc": info["best_val_macro_auc"],
            "teacher_seconds": teacher_seconds,
            "student_seconds": student_seconds,
        }
        write_json_atomic(seed_file, result)
        per_seed.append(result)

    def stats(key: str) -> dict:
        return over_seeds([r[key] for r in per_seed])

    summary = {
        "data": source,
        "path": str(data.root),
        "unlabelled_dir": unlabelled_dir,
        "seeds": seeds,
        "n_train": len(data.train),
        "n_val": len(data.val),
        "n_test": len(data.test),
        "n_unlabelled": int(len(x_unlabelled)),
        "teacher_test_macro_auc": stats("teacher_test_macro_auc"),
        "student_test_macro_auc": stats("student_test_macro_auc"),
        "per_seed": per_seed,
        "provenance": record,
    }
    write_json_atomic(out / "teacher_student.json", summary)
    return summary
