"""Which records a foundation teacher may see, and which it must never see.

Synthetic data are draws of :func:`evl_lite.data.synthetic.generate_dataset`, a record being the pair
(draw seed, ecg_id). The workshop uses the draws of seeds below :data:`WORKSHOP_SEED_LIMIT` (the
benchmark draw is seed 0; notebooks take ``SEED``); its large evaluation set is the draw of
:data:`EVALUATION_SEED`; the foundation corpus is the draw of :data:`CORPUS_SEED`. So the corpus
shares no record and no seed with anything a teacher or a student is evaluated on.

Real PTB-XL: the teacher is pretrained on ``ptbxl-unlabelled`` alone (records outside
PTB-XL-500) and fine-tuned on training folds 1-8 of PTB-XL-500; folds 9 and 10 never.
:func:`check_not_trained_on` refuses to evaluate a teacher on records its card says it saw.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from evl_lite.data.dataset import ECGSplit
from evl_lite.data.sources import synthetic_dataset
from evl_lite.data.synthetic import synthetic_draw
from evl_lite.errors import ECGDataError

WORKSHOP_SEED_LIMIT = 100  # the course's own synthetic draws use seeds 0-99
EVALUATION_SEED = 900  # the large synthetic test set
EVALUATION_RECORDS = 2000  # a macro-AUC 95% interval of about +-0.005
CORPUS_SEED = 1000  # the foundation teacher's corpus
CORPUS_RECORDS = 24000
SMOKE_CORPUS_RECORDS = 300
SMOKE_EVALUATION_RECORDS = 150


def corpus_dir(smoke: bool = False, progress: bool = True) -> Path:
    """The synthetic foundation corpus (generated once into ``data/synthetic``)."""
    n = SMOKE_CORPUS_RECORDS if smoke else CORPUS_RECORDS
    return synthetic_dataset(n, CORPUS_SEED, progress=progress)


def evaluation_dir(smoke: bool = False, progress: bool = True) -> Path:
    """The large synthetic evaluation draw (its own seed; every fold of it is test data)."""
    n = SMOKE_EVALUATION_RECORDS if smoke else EVALUATION_RECORDS
    return synthetic_dataset(n, EVALUATION_SEED, progress=progress)


def evaluation_split(smoke: bool = False, progress: bool = True) -> ECGSplit:
    """Every record of the evaluation draw as one test split, preprocessed for the models."""
    from evl_lite.data.benchmark import load_benchmark_data

    data = load_benchmark_data("ptbxl", evaluation_dir(smoke, progress), progress=progress)
    parts = list(data.splits.values())
    return ECGSplit(
        name="evaluation",
        x=np.concatenate([s.x for s in parts]),
        y=np.concatenate([s.y for s in parts]),
        ecg_ids=np.concatenate([s.ecg_ids for s in parts]),
        fs=parts[0].fs,
    )


def corpus_record(root: str | os.PathLike, source: str, ecg_ids: np.ndarray | None = None) -> dict:
    """What a model card records of a dataset a teacher saw: the synthetic draw, or PTB-XL ecg_ids."""
    draw = synthetic_draw(root)
    if draw is not None:
        return {"source": "synthetic", "name": Path(root).name, **draw}
    record = {"source": source, "name": Path(root).name}
    if ecg_ids is not None:
        record["ecg_ids"] = sorted(int(i) for i in ecg_ids)
    return record


def check_not_trained_on(card: dict, root: str | os.PathLike, ecg_ids: np.ndarray, what: str) -> None:
    """Refuse (``ECGDataError``) to evaluate the carded teacher on records it was trained on.

    ``card["corpus"]`` lists the datasets it saw (:func:`corpus_record`); ``root`` and
    ``ecg_ids`` are the records it is about to be evaluated on, ``what`` names them.
    """
    draw = synthetic_draw(root)
    for seen in card.get("corpus", []):
        if draw is not None and seen.get("source") == "synthetic":
            clash = seen.get("seed") == draw["seed"]
        elif draw is None and seen.get("source") != "synthetic" and "ecg_ids" in seen:
            clash = bool(set(seen["ecg_ids"]) & {int(i) for i in ecg_ids})
        else:
            clash = False
        if clash:
            raise ECGDataError(
                root,
                f"the teacher {card.get('name', '?')!r} was trained on these records ({seen.get('name')}); "
                f"it cannot be evaluated on them as {what}: use data it never saw",
            )
