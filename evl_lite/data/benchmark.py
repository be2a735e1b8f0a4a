"""The benchmark as the models see it: splits of one data set, prepared one way for every model.

- :func:`load_benchmark_data`: the notebook parameters (``DATA_SOURCE``, ``DATA_DIR``,
  ``SMOKE``, ``SEED``) -> preprocessed train (folds 1-8), validation (9) and test splits.
- :func:`unlabelled_records` and :func:`directory_records`: records without labels, for
  pretraining and transfer sets, prepared as the benchmark's are.
- :func:`current_scale`: smoke, workshop or full, which sets the synthetic data's size (and the
  schedules of :mod:`evl_lite.training.recipes`).

Preprocessing for the models is one recipe for every record: band-pass 0.5-40 Hz at
100 Hz, then each lead of each record z-scored (``normalisation="per_record"``). It matches
how ``ptbxl-unlabelled`` was prepared (so pretraining and fine-tuning see the same kind of
signal), and on PTB-XL-500 it helped the reference CNNs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evl_lite.data.dataset import ECGSplit, prepare_splits
from evl_lite.data.draws import evaluation_dir
from evl_lite.data.preprocessing import PreprocessConfig
from evl_lite.data.ptbxl import PTBXL, load_ptbxl, load_signals, read_header
from evl_lite.data.sources import default_data_root, resolve_data_dir
from evl_lite.data.split_cache import cached_splits

SMOKE_RECORDS = 150  # synthetic records in smoke mode (seconds per notebook)
WORKSHOP_RECORDS = 2000  # synthetic records at the workshop scale (the default)
FULL_RECORDS = 5000  # synthetic records at the full scale
SCALE_VARIABLE = "EVL_LITE_SCALE"  # "workshop" (default) or "full": what SMOKE = False means


def current_scale(smoke: bool) -> str:
    """``"smoke"``, or the scale that ``EVL_LITE_SCALE`` chooses for ``SMOKE = False``.

    ``"workshop"`` (the default; minutes on a laptop) or ``"full"`` (longer schedules, more
    synthetic data; ``python -m evl_lite run --mode full`` sets it).
    """
    if smoke:
        return "smoke"
    scale = os.environ.get(SCALE_VARIABLE, "workshop") or "workshop"
    if scale not in ("workshop", "full"):
        raise ValueError(f"{SCALE_VARIABLE} must be 'workshop' or 'full', not {scale!r}")
    return scale


MODEL_NORMALISATION = "per_record"  # each lead of each record z-scored, after model_preprocessing()


def model_preprocessing() -> PreprocessConfig:
    """The models' preprocessing: band-pass 0.5-40 Hz at 100 Hz, no notch (see the module docstring)."""
    return PreprocessConfig(target_fs=100, notch_hz=None)


@dataclass
class BenchmarkData:
    root: Path
    splits: dict[str, ECGSplit]
    source: str

    @property
    def train(self) -> ECGSplit:
        return self.splits["train"]

    @property
    def val(self) -> ECGSplit:
        return self.splits["val"]

    @property
    def test(self) -> ECGSplit:
        return self.splits["test"]


def benchmark_root(
    source: str = "synthetic", data_dir: str | os.PathLike | None = None, smoke: bool = False, seed: int = 0
) -> Path:
    """The dataset directory of ``load_benchmark_data`` (synthetic data of the scale's size made once)."""
    sizes = {"smoke": SMOKE_RECORDS, "workshop": WORKSHOP_RECORDS, "full": FULL_RECORDS}
    return resolve_data_dir(source, data_dir, n_records=sizes[current_scale(smoke)], seed=seed)


def load_benchmark_data(
    source: str = "synthetic",
    data_dir: str | os.PathLike | None = None,
    smoke: bool = False,
    seed: int = 0,
    progress: bool = True,
    cache: bool = True,
) -> BenchmarkData:
    """Train (folds 1-8), validation (9) and test splits, preprocessed for the models.

    The test split is fold 10, except on synthetic data: there it is the large evaluation draw
    (2,000 records of its own seed, :func:`evaluation_split`), so a
    macro-AUC's 95% interval is about +-0.005 and methods can be told apart.
    With ``cache`` the preprocessed splits are kept in ``data/cache`` and reused while the
    records and the preprocessing code are unchanged (:mod:`evl_lite.data.split_cache`).
    """
    root = benchmark_root(source, data_dir, smoke, seed)
    config = model_preprocessing()
    if cache:
        cache_dir = default_data_root() / "cache"
        splits = cached_splits(root, config, MODEL_NORMALISATION, cache_dir, progress=progress)
    else:
        splits, _ = prepare_splits(root, config=config, normalisation=MODEL_NORMALISATION, progress=progress)
    if source == "synthetic":
        splits = {**splits, "test": evaluation_split(smoke, progress=progress)}
    return BenchmarkData(root=root, splits=splits, source=source)


def records_are_normalised(db: PTBXL) -> bool:
    """Whether the dataset's first record is stored in normalised units (``NU``), not in volts."""
    header = read_header(db.record_base(int(db.ecg_ids[0]), 100))
    return all(str(unit).strip().upper() == "NU" for unit in header.units)


def unlabelled_records(
    data: BenchmarkData, unlabelled_dir: str | os.PathLike | None = None, progress: bool = True
) -> np.ndarray:
    """Records x [N, 12, T] for masked-patch pretraining (labels never used).

    The training split, plus the records of ``unlabelled_dir`` when given: records in
    normalised units (``../shared/data/ptbxl-unlabelled``, already band-passed and z-scored per
    record) as they are; records in mV, with folds (another synthetic draw), every fold
    preprocessed as the benchmark's records are (:func:`model_preprocessing`, cached).
    """
    parts = [data.train.x]
    if unlabelled_dir:
        parts.append(directory_records(unlabelled_dir, progress=progress))
    return np.concatenate(parts).astype(np.float32)


def directory_records(path: str | os.PathLike, progress: bool = True) -> np.ndarray:
    """Every record of a PTB-XL-layout directory as x [N, 12, T], prepared as the models' records are.

    Records in normalised units (``NU``: already band-passed and z-scored per record, as
    ``../shared/data/ptbxl-unlabelled``) as they are; records in mV, every fold preprocessed as
    the benchmark's records are (:func:`model_preprocessing`, cached). Labels are not read.
    """
    db = load_ptbxl(path)
    if records_are_normalised(db):
        return load_signals(db, sampling_rate=100, allow_normalised=True, progress=progress)
    other = load_benchmark_data("ptbxl", path, progress=progress)
    return np.concatenate([split.x for split in other.splits.values()])


def evaluation_split(smoke: bool = False, progress: bool = True) -> ECGSplit:
    """Every record of the evaluation draw as one test split, preprocessed for the models."""
    data = load_benchmark_data("ptbxl", evaluation_dir(smoke, progress), progress=progress)
    parts = list(data.splits.values())
    return ECGSplit(
        name="evaluation",
        x=np.concatenate([s.x for s in parts]),
        y=np.concatenate([s.y for s in parts]),
        ecg_ids=np.concatenate([s.ecg_ids for s in parts]),
        fs=parts[0].fs,
    )
