"""Preprocessed benchmark splits cached on disk, so each notebook does not re-read every record.

Reading and band-passing 2,000 WFDB records takes tens of seconds on a 2-core laptop, and
every notebook starts with it. :func:`cached_splits` stores the result of
:func:`evl_lite.data.dataset.prepare_splits` once (float32, exactly what it returned) in
``<data root>/cache/splits-<key>.npz`` and loads it afterwards.

The key (:func:`splits_key`) is a SHA-256 over everything the arrays depend on: the source of
the modules that read, preprocess and label records, the versions of NumPy, SciPy and wfdb,
the preprocessing options, both CSV files of the dataset, and the bytes of every record file
that is read (hashing bytes is fast; parsing WFDB headers is what is slow). An edited, replaced
or truncated record therefore misses the cache and is read again (and its error reported as
usual). A cache file that cannot be read is reported and rebuilt; it is written atomically,
so an interrupted run never leaves half a file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import scipy
import wfdb

from evl_lite import constants as constants_module
from evl_lite.atomic import replace_atomically
from evl_lite.data import dataset as dataset_module
from evl_lite.data import preprocessing as preprocessing_module
from evl_lite.data import ptbxl as data_module
from evl_lite.data.dataset import ECGSplit, _stored_rate, prepare_splits
from evl_lite.data.preprocessing import PreprocessConfig
from evl_lite.data.ptbxl import DATABASE_CSV, PTBXL, STATEMENTS_CSV, load_ptbxl

SPLITS = ("train", "val", "test")
CACHED_NORMALISATIONS = ("per_record", "none")  # "train_stats" also returns a fitted Standardiser


def splits_key(db: PTBXL, config: PreprocessConfig, normalisation: str) -> str | None:
    """First 16 hex digits of the SHA-256 described above; None when a record file is missing
    (no cache then: reading reports the missing file)."""
    h = hashlib.sha256()
    for module in (constants_module, data_module, dataset_module, preprocessing_module):
        h.update(Path(module.__file__).read_bytes())
    h.update(f"numpy {np.__version__} scipy {scipy.__version__} wfdb {wfdb.__version__}".encode())
    h.update(json.dumps({"config": dataclasses.asdict(config), "normalisation": normalisation},
                        sort_keys=True, default=str).encode())
    for name in (DATABASE_CSV, STATEMENTS_CSV):
        h.update((db.root / name).read_bytes())
    rate = _stored_rate(db, config.target_fs)
    for split in SPLITS:
        for ecg_id in db.split_ids(split):
            base = db.record_base(int(ecg_id), rate)
            for suffix in (".hea", ".dat"):
                try:
                    content = base.with_name(base.name + suffix).read_bytes()
                except OSError:
                    return None
                h.update(f"{base.name}{suffix}:{len(content)};".encode())
                h.update(content)
    return h.hexdigest()[:16]


def _load(path: Path, fs: int) -> dict[str, ECGSplit]:
    with np.load(path) as table:
        return {
            name: ECGSplit(name=name, x=table[f"{name}_x"], y=table[f"{name}_y"],
                           ecg_ids=table[f"{name}_ids"], fs=fs)
            for name in SPLITS
        }


def _save(path: Path, splits: dict[str, ECGSplit]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    arrays = {}
    for name, split in splits.items():
        arrays.update({f"{name}_x": split.x, f"{name}_y": split.y, f"{name}_ids": split.ecg_ids})
    with open(tmp, "wb") as handle:
        np.savez(handle, **arrays)
    replace_atomically(tmp, path)


def cached_splits(
    root: str | os.PathLike,
    config: PreprocessConfig,
    normalisation: str,
    cache_dir: str | os.PathLike,
    progress: bool = True,
) -> dict[str, ECGSplit]:
    """``prepare_splits(root, config=config, normalisation=normalisation)``'s train/val/test splits,
    from ``cache_dir`` when an identical earlier call stored them there."""
    if normalisation not in CACHED_NORMALISATIONS:
        raise ValueError(f"cached normalisation must be in {CACHED_NORMALISATIONS}, not {normalisation!r}")
    db = load_ptbxl(root)
    key = splits_key(db, config, normalisation)
    path = Path(cache_dir) / f"splits-{key}.npz"
    if key is not None and path.is_file():
        try:
            return _load(path, config.target_fs)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            print(f"{path}: cannot be read ({type(exc).__name__}: {exc}); reading the records again")
    splits, _ = prepare_splits(db, SPLITS, config=config, normalisation=normalisation, progress=progress)
    if key is not None:
        try:
            _save(path, splits)
        except OSError as exc:  # a read-only place costs speed, not the run
            print(f"{path}: the preprocessed splits cannot be cached ({exc})")
    return splits
