"""PyTorch view of a PTB-XL-layout dataset: preprocessed benchmark splits, a Dataset, DataLoaders.

``prepare_splits`` reads every record of the requested splits once, preprocesses it
(:func:`evl_lite.data.preprocessing.preprocess`: notch, band-pass, resampling) and normalises it,
by default per lead with statistics fitted on the training split only (the PTB-XL
benchmark's "global scaling"); ``normalisation="per_record"`` z-scores each lead of each
record instead. ``ECGDataset`` serves ``{"x": [12, T], "y": [5], "index": int, "labelled": bool}``
items, optionally as random fixed-length crops for training; ``labelled`` says whether the
supervised loss may read the record's ``y`` (a label budget, :mod:`evl_lite.data.label_budget`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from evl_lite.constants import SUPERCLASSES
from evl_lite.data.preprocessing import PreprocessConfig, Standardiser, preprocess, standardise_record
from evl_lite.data.ptbxl import PTBXL, load_ptbxl, load_signals
from evl_lite.errors import ECGDataError

NORMALISATIONS = ("train_stats", "per_record", "none")


@dataclass
class ECGSplit:
    """One split in memory: x [N, 12, T] float32 (preprocessed), y [N, 5] multi-hot, ids [N].

    ``labelled`` [N] bool: the records whose ``y`` the supervised loss reads (None: all of them).
    """

    name: str
    x: np.ndarray
    y: np.ndarray
    ecg_ids: np.ndarray
    fs: int
    classes: tuple[str, ...] = field(default=SUPERCLASSES)
    labelled: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.labelled is not None and np.shape(self.labelled) != (len(self.ecg_ids),):
            raise ValueError(f"labelled must be a mask [{len(self.ecg_ids)}], not {np.shape(self.labelled)}")

    def __len__(self) -> int:
        return len(self.ecg_ids)


def _stored_rate(db: PTBXL, target_fs: int) -> int:
    """Read 100 Hz files for targets up to 100 Hz, 500 Hz files above (when they exist)."""
    rates = db.available_rates()
    if not rates:
        raise ECGDataError(db.root / "ptbxl_database.csv", "lists no complete set of record files")
    higher = [r for r in rates if r >= target_fs]
    return min(higher) if higher else max(rates)


def prepare_splits(
    root: str | os.PathLike | PTBXL,
    splits: Sequence[str] = ("train", "val", "test"),
    config: PreprocessConfig | None = None,
    normalisation: str = "train_stats",
    drop_unlabelled: bool = True,
    allow_normalised: bool = False,
    progress: bool = True,
) -> tuple[dict[str, ECGSplit], Standardiser | None]:
    """Load, preprocess and normalise benchmark splits.

    ``drop_unlabelled`` removes records without any diagnostic superclass, as the PTB-XL
    benchmark does for the superclass task. Returns the splits and the fitted Standardiser
    (None unless ``normalisation == "train_stats"``, which needs "train" among ``splits``).
    """
    if normalisation not in NORMALISATIONS:
        raise ValueError(f"normalisation must be one of {NORMALISATIONS}, not {normalisation!r}")
    if normalisation == "train_stats" and "train" not in splits:
        raise ValueError("normalisation='train_stats' fits on the training split: include 'train' in splits")
    config = config or PreprocessConfig()
    db = root if isinstance(root, PTBXL) else load_ptbxl(root)
    rate = _stored_rate(db, config.target_fs)
    out: dict[str, ECGSplit] = {}
    for name in splits:
        ids = db.split_ids(name)
        y = db.superclass_targets(ids)
        if drop_unlabelled:
            keep = y.sum(axis=1) > 0
            ids, y = ids[keep], y[keep]
        if len(ids) == 0:
            raise ECGDataError(db.root / "ptbxl_database.csv", f"split {name!r} holds no labelled records")
        raw = load_signals(db, ids, sampling_rate=rate, allow_normalised=allow_normalised, progress=progress)
        x = np.stack([preprocess(record, rate, config)[0] for record in raw]).astype(np.float32)
        out[name] = ECGSplit(name=name, x=x, y=y, ecg_ids=ids, fs=config.target_fs)

    standardiser = None
    if normalisation == "train_stats":
        standardiser = Standardiser().fit(out["train"].x)
        for split in out.values():
            split.x = standardiser.transform(split.x).astype(np.float32)
    elif normalisation == "per_record":
        for split in out.values():
            split.x = np.stack([standardise_record(r) for r in split.x]).astype(np.float32)
    return out, standardiser


class ECGDataset(Dataset):
    """Items ``{"x": [12, T'], "y": [5], "index": i, "start": s, "labelled": bool}``; T' = ``crop``.

    ``crop``: length of a window in samples (None: the whole record). ``random_crop``: draw
    the window start at random (training augmentation): uniformly, or among ``window_starts``
    when given (a fixed grid lets a teacher-output cache hold every window); otherwise the
    centred window. The random start of record i in epoch e depends only on ``(seed, e, i)``
    (call :meth:`set_epoch`), not on the order in which items are read, so one process or
    several (data-parallel) crop every record the same way.
    """

    def __init__(
        self,
        split: ECGSplit,
        crop: int | None = None,
        random_crop: bool = False,
        window_starts: Sequence[int] | None = None,
        seed: int = 0,
    ):
        if crop is not None and not 0 < crop <= split.x.shape[-1]:
            raise ValueError(f"crop must be in 1..{split.x.shape[-1]} samples, not {crop}")
        self.split = split
        self.crop = crop
        self.random_crop = random_crop
        self.window_starts = list(window_starts) if window_starts is not None else None
        self._x = torch.from_numpy(split.x)
        self._y = torch.from_numpy(split.y)
        labelled = np.ones(len(split), dtype=bool) if split.labelled is None else split.labelled
        self._labelled = torch.from_numpy(np.asarray(labelled, dtype=bool))  # [N]
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Draw this epoch's random crops (see the class docstring)."""
        self.epoch = epoch

    def _generator(self, i: int) -> torch.Generator:
        return torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) * 1_000_033 + i)

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor | int]:
        x = self._x[i]  # [12, T]
        start = 0
        if self.crop is not None and self.crop < x.shape[-1]:
            span = x.shape[-1] - self.crop
            if not self.random_crop:
                start = span // 2
            elif self.window_starts:
                pick = torch.randint(len(self.window_starts), (), generator=self._generator(i))
                start = self.window_starts[int(pick)]
            else:
                start = int(torch.randint(span + 1, (), generator=self._generator(i)))
            x = x[:, start : start + self.crop]
        return {"x": x, "y": self._y[i], "index": i, "start": start, "labelled": self._labelled[i]}


def make_loader(
    dataset: Dataset, batch_size: int = 32, shuffle: bool = False, seed: int = 0, num_workers: int = 0
) -> DataLoader:
    """A DataLoader whose shuffling (and random crops) depend only on ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        num_workers=num_workers,
        drop_last=False,
    )
