"""Vet a dataset in the PTB-XL layout before a workshop: every problem, one line each.

``python -m evl_lite data check PATH`` reads the two CSVs and every record they list (at
each rate they list) and reports, instead of stopping at the first one:

- the tables: a missing CSV or column, duplicated ``ecg_id``, ``scp_codes`` that do not
  parse, codes missing from ``scp_statements.csv``, a missing or out-of-range ``strat_fold``,
  an empty benchmark split;
- each record: everything :func:`evl_lite.data.ptbxl.read_record` refuses (missing or truncated
  files, header and data disagreeing, fewer than 12 leads, unknown units, NaN/inf samples,
  a path escaping the dataset);
- each lead that reads but would mislead a model: flat (peak-to-peak below 10 µV) or
  saturated (more than 5 % of the samples sit at the lead's extreme values, the signature of
  a clipped amplifier).

Records that ``read_record`` accepts with a documented fix (leads reordered or renamed,
15-lead layouts with or without PTB's ``.xyz`` file, a byte offset such as CinC's ``.mat``
``16+24``, microvolts, other sampling rates) are not problems.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from evl_lite.constants import LEADS, SPLIT_FOLDS
from evl_lite.data.ptbxl import (
    DATABASE_CSV,
    STATEMENTS_CSV,
    load_statements,
    parse_scp_codes,
    read_record,
    safe_join,
)
from evl_lite.errors import ECGDataError

FLAT_PEAK_TO_PEAK_MV = 0.01  # a lead moving less than 10 µV over the whole record carries no ECG
SATURATED_FRACTION = 0.05  # share of samples at the extreme values that marks clipping


@dataclass(frozen=True)
class Problem:
    path: Path
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


def lead_problems(x: np.ndarray) -> list[str]:
    """Flat and saturated leads of one record ``x [12, T]`` in mV, as messages."""
    problems = []
    for lead, signal in zip(LEADS, x, strict=True):
        low, high = float(signal.min()), float(signal.max())
        if high - low < FLAT_PEAK_TO_PEAK_MV:
            problems.append(f"lead {lead} is flat (peak-to-peak {1000 * (high - low):.1f} µV)")
            continue
        at_extremes = float(np.mean((signal <= low) | (signal >= high)))
        if at_extremes > SATURATED_FRACTION:
            problems.append(
                f"lead {lead} is saturated ({100 * at_extremes:.0f}% of samples at {low:.2f} or {high:.2f})"
            )
    return problems


def _table_problems(root: Path, needs_splits: bool) -> tuple[pd.DataFrame | None, list[Problem]]:
    csv = root / DATABASE_CSV
    problems: list[Problem] = []
    try:
        statements = load_statements(root)
    except ECGDataError as exc:
        problems.append(Problem(exc.path, exc.problem))
        statements = None
    if not csv.is_file():
        return None, [*problems, Problem(csv, "is missing")]
    try:
        database = pd.read_csv(csv)
    except Exception as exc:  # pandas raises many types for a broken CSV
        return None, [*problems, Problem(csv, f"cannot be read as CSV ({exc})")]
    missing = [c for c in ("ecg_id", "scp_codes") if c not in database.columns]
    if missing:
        return None, [*problems, Problem(csv, f"lacks the column(s) {missing}")]
    if "filename_lr" not in database.columns and "filename_hr" not in database.columns:
        problems.append(Problem(csv, "lacks both filename_lr and filename_hr: no record can be found"))
    for dup in sorted(set(database.loc[database["ecg_id"].duplicated(), "ecg_id"])):
        problems.append(Problem(csv, f"ecg_id {dup} appears more than once"))
    known = set(statements.index) if statements is not None else None
    for ecg_id, raw in zip(database["ecg_id"], database["scp_codes"], strict=True):
        try:
            codes = parse_scp_codes(raw, csv, ecg_id)
        except ECGDataError as exc:
            problems.append(Problem(csv, exc.problem))
            continue
        unknown = [c for c in codes if known is not None and c not in known]
        if unknown:
            problems.append(
                Problem(csv, f"ecg_id {ecg_id}: SCP code(s) {unknown} not found in {STATEMENTS_CSV}")
            )
    if not needs_splits:
        pass
    elif "strat_fold" not in database.columns:
        problems.append(Problem(csv, "lacks the column 'strat_fold': no benchmark split"))
    else:
        folds = pd.to_numeric(database["strat_fold"], errors="coerce")
        bad = database.loc[~folds.isin(range(1, 11)), "ecg_id"].tolist()
        if bad:
            problems.append(
                Problem(
                    csv,
                    f"strat_fold missing or not in 1-10 for ecg_id(s) {bad[:10]}"
                    + (f" and {len(bad) - 10} more" if len(bad) > 10 else ""),
                )
            )
        for split, split_folds in SPLIT_FOLDS.items():
            if not folds.isin(split_folds).any():
                problems.append(Problem(csv, f"the {split} split (strat_fold {list(split_folds)}) is empty"))
    return database, problems


def check_dataset(root: str | os.PathLike, progress: bool = True, unlabelled: bool = False) -> list[Problem]:
    """Every problem found in the dataset at ``root`` (an empty list: ready to use).

    ``unlabelled``: a pretraining set such as ``ptbxl-unlabelled``: records in normalised units
    (``NU``) are accepted and no benchmark split (``strat_fold``) is required.
    """
    root = Path(root)
    if not root.is_dir():
        return [Problem(root, "dataset directory does not exist")]
    database, problems = _table_problems(root, needs_splits=not unlabelled)
    if database is None:
        return problems
    csv = root / DATABASE_CSV
    columns = [c for c in ("filename_lr", "filename_hr") if c in database.columns]
    rows = list(database[["ecg_id", *columns]].itertuples(index=False))
    for row in tqdm(rows, desc="checking records", unit="rec", disable=not progress):
        for column in columns:
            relative = getattr(row, column)
            if not isinstance(relative, str) or not relative.strip():
                continue
            try:
                base = safe_join(root, relative, csv)
                x, _ = read_record(base, allow_normalised=unlabelled)
            except ECGDataError as exc:
                problems.append(Problem(exc.path or csv, exc.problem))
                continue
            problems += [Problem(base.with_name(base.name + ".dat"), p) for p in lead_problems(x)]
    return problems
