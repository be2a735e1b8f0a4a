"""The synthetic draws and what each is for: the workshop's, its evaluation set, the foundation corpus.

Synthetic data are draws of :func:`evl_lite.data.synthetic.generate_dataset`, a record being the pair
(draw seed, ecg_id). The workshop uses the draws of seeds below :data:`WORKSHOP_SEED_LIMIT` (the
benchmark draw is seed 0; notebooks take ``SEED``); its large evaluation set is the draw of
:data:`EVALUATION_SEED`; the foundation teacher's corpus is the draw of :data:`CORPUS_SEED`. So the
corpus shares no record and no seed with anything a teacher or a student is evaluated on
(:mod:`evl_lite.foundation.corpus` checks it).
"""

from __future__ import annotations

from pathlib import Path

from evl_lite.data.sources import synthetic_dataset

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
