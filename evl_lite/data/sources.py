"""Where a notebook's data comes from: real PTB-XL at a path, or the synthetic default.

The synthetic default is generated once per (records, seed) into ``data/synthetic/`` of
the repository (or of the working directory outside a checkout) and reused. Generation
writes into a temporary sibling directory that is renamed into place when complete, so an
interrupted generation never leaves a half-written dataset behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from evl_lite.data.ptbxl import DATABASE_CSV, STATEMENTS_CSV
from evl_lite.errors import ECGDataError

SOURCES = ("synthetic", "ptbxl")


def default_data_root() -> Path:
    """``data/`` of the repository checkout when the package runs from one, else ``./data``."""
    env = os.environ.get("EVL_LITE_DATA")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[2]
    if (repo / "pyproject.toml").is_file() and (repo / "notebooks").is_dir():
        return repo / "data"
    return Path.cwd() / "data"


def synthetic_dataset(
    n_records: int, seed: int = 0, target: str | os.PathLike | None = None, progress: bool = True
) -> Path:
    """Path of the synthetic dataset with ``n_records`` and ``seed``, generated if missing.

    ``target`` defaults to ``data/synthetic/n{records}-seed{seed}``.
    """
    from evl_lite.data.synthetic import generate_dataset

    if target is None:
        target = default_data_root() / "synthetic" / f"n{n_records}-seed{seed}"
    target = Path(target).expanduser()
    if (target / DATABASE_CSV).is_file() and (target / STATEMENTS_CSV).is_file():
        return target
    if target.exists() and any(target.iterdir()):
        raise ECGDataError(
            target, "exists but holds no dataset in the PTB-XL layout; choose an empty directory"
        )
    base = target.parent
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=base))
    try:
        generate_dataset(tmp, n_records=n_records, seed=seed, progress=progress)
        if (target / DATABASE_CSV).is_file():  # a concurrent run finished first: keep its copy
            shutil.rmtree(tmp)
        else:
            if target.exists():
                target.rmdir()
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def resolve_data_dir(
    source: str, data_dir: str | os.PathLike | None, n_records: int = 2000, seed: int = 0
) -> Path:
    """The notebook parameters ``DATA_SOURCE``/``DATA_DIR`` -> a directory in the PTB-XL layout.

    ``"ptbxl"`` needs ``data_dir``; ``"synthetic"`` generates ``n_records`` records into
    ``data_dir`` (or the cached default location) unless a dataset is already there.
    """
    if source not in SOURCES:
        raise ValueError(f"DATA_SOURCE must be one of {SOURCES}, not {source!r}")
    if source == "ptbxl":
        if not data_dir:
            raise ECGDataError(
                None,
                "DATA_SOURCE='ptbxl' needs DATA_DIR, the PTB-XL directory "
                "(see data/README.md to download it)",
            )
        path = Path(data_dir).expanduser()
        if not (path / DATABASE_CSV).is_file():
            raise ECGDataError(path, f"is not a PTB-XL directory ({DATABASE_CSV} is missing)")
        return path
    return synthetic_dataset(n_records, seed, target=data_dir or None)
