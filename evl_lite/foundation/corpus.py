"""Which records a foundation teacher may see, and which it must never see.

Synthetic data: the corpus is the draw of ``CORPUS_SEED``, disjoint from the workshop's draws and
its evaluation draw (:mod:`evl_lite.data.draws`, whose seeds are re-exported here for the cards).

Real PTB-XL: the teacher is pretrained on ``ptbxl-unlabelled`` alone (records outside
PTB-XL-500) and fine-tuned on training folds 1-8 of PTB-XL-500; folds 9 and 10 never.
:func:`check_not_trained_on` refuses to evaluate a teacher on records its card says it saw.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from evl_lite.data.synthetic import synthetic_draw
from evl_lite.errors import ECGDataError


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
