"""Label budgets: which training records keep their labels, and the transfer set the others join.

Where distillation pays (``../shared/GUIDE.md``): the student has the labels of only ``n``
training records. The supervised loss reads those; the distillation losses read them and the
*transfer set* alike, i.e. the rest of the training split plus any unlabelled records
(``--transfer DIR``), which the teacher labels.

- :func:`parse_budgets`: ``--labelled 50,100,all`` -> ``[50, 100, "all"]``.
- :func:`labelled_subset`: the ``n`` labelled records, stratified. First every class gets a
  positive (a greedy set cover: rarest class first, the positive that covers most classes
  still without one), then iterative stratification (Sechidis, Tsoumakas & Vlahavas 2011,
  "On the stratification of multi-label data", ECML PKDD) places the other records so each
  class keeps about its share ``n / N`` of positives. Depends only on ``(y, n, seed)``.
- :func:`budget_splits`: the scratch student's split (the ``n`` records) and the distilled
  students' split (every training record and the transfer records, with a ``labelled`` mask).
- :func:`transfer_records`: the records of ``--transfer DIR`` (their labels are never used).
- :func:`matched_epochs`: the scratch student's epochs on its ``n`` records, for as many steps as
  the distilled students make on the transfer set.

Only NumPy at import: the command line parses ``--labelled`` without loading torch.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from evl_lite.constants import SUPERCLASSES
from evl_lite.errors import ECGDataError

if TYPE_CHECKING:
    from evl_lite.data.dataset import ECGSplit

ALL = "all"  # the budget "every training record labelled" (today's experiment)


def parse_budgets(text: str | Sequence[int | str]) -> list[int | str]:
    """``"200,50,all"`` or a list -> budgets without repeats, ascending, ``"all"`` last.

    A budget is a whole number of records (at least 1) or ``"all"``; anything else is a
    ``ValueError`` naming it.
    """
    items = text.split(",") if isinstance(text, str) else list(text)
    budgets: set[int | str] = set()
    for item in items:
        word = str(item).strip().lower()
        if word == ALL:
            budgets.add(ALL)
            continue
        try:
            n = int(word)
        except ValueError:
            raise ValueError(f"a labelled budget is a whole number of records or 'all': {item!r}") from None
        if n < 1:
            raise ValueError(f"a labelled budget is at least 1 record, not {n}")
        budgets.add(n)
    if not budgets:
        raise ValueError("no labelled budget given (e.g. 50,100,all)")
    return sorted(budgets, key=lambda b: (b == ALL, b if b != ALL else 0))


MAX_EPOCH_FACTOR = 8  # matched_epochs() gives a small labelled set at most 8x the epochs


def matched_epochs(epochs: int, n_records: int, n_reference: int, cap: int = MAX_EPOCH_FACTOR) -> int:
    """Epochs on ``n_records`` that make as many optimisation steps as ``epochs`` on ``n_reference``.

    ``round(epochs * n_reference / n_records)``, at least ``epochs`` and at most ``cap * epochs``: a
    scratch student with 200 labels gets the steps of a distilled student on its 1,600-record
    transfer set, so a gap between them is not one of training length.
    """
    factor = min(max(n_reference / max(n_records, 1), 1.0), float(cap))
    return int(round(epochs * factor))


def budget_label(budget: int | str) -> str:
    """``"all"`` or ``"labelled-<n>"``: how results and run directories name a budget."""
    return ALL if budget == ALL else f"labelled-{budget}"


def _class_cover(y: np.ndarray, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Greedy set cover of the classes: ``(record, class it was picked for)``, rarest class first."""
    covered = np.zeros(y.shape[1], dtype=bool)  # [C]
    picks = []
    for c in np.argsort(y.sum(axis=0), kind="stable"):
        if covered[c]:
            continue
        candidates = np.flatnonzero(y[:, c])  # no record is picked twice: a picked one covers c already
        gain = (y[candidates] & ~covered).sum(axis=1)  # classes each candidate would newly cover
        record = int(rng.choice(candidates[gain == gain.max()]))
        picks.append((record, int(c)))
        covered |= y[record]
    return picks


def labelled_subset(
    y: np.ndarray, n: int, seed: int, classes: Sequence[str] = SUPERCLASSES
) -> np.ndarray:
    """Indices [n] (ascending) of the records whose labels a student with ``n`` labels gets.

    y [N, C] multi-hot. Every class keeps at least one positive and about ``n / N`` of its
    positives (see the module docstring). ``ValueError`` when ``n`` is not in ``1..N``, when a
    class has no positive at all, or when ``n`` records cannot hold a positive of every class
    (the message names the class left without one).
    """
    y = np.asarray(y) > 0  # [N, C]
    total, n_classes = y.shape
    names = list(classes) if len(classes) == n_classes else [str(c) for c in range(n_classes)]
    if not 1 <= n <= total:
        raise ValueError(f"{n} labelled records asked for, but there are {total} records")
    counts = y.sum(axis=0)  # [C] positives per class
    if (counts == 0).any():
        raise ValueError(f"class {names[int(np.argmin(counts))]} has no positive among the {total} records")
    rng = np.random.default_rng(seed)
    cover = _class_cover(y, rng)
    if len(cover) > n:
        raise ValueError(
            f"{n} labelled records cannot hold a positive of every class: class {names[cover[n][1]]} would "
            f"have none (at least {len(cover)} needed)"
        )
    chosen = np.zeros(total, dtype=bool)
    chosen[[record for record, _ in cover]] = True

    # Iterative stratification over two subsets, labelled (0) and the rest (1), with capacities
    capacity = np.array([n - len(cover), total - n])  # [2] records each subset still takes
    desire = np.stack([counts * n / total - y[chosen].sum(axis=0), counts * (total - n) / total])  # [2, C]
    open_ = ~chosen  # [N] records not placed yet
    while open_.any():
        left = (y & open_[:, None]).sum(axis=0)  # [C] positives not placed yet
        if not left.any():  # records without any class: shared by the remaining capacities
            rest = rng.permutation(np.flatnonzero(open_))
            chosen[rest[: capacity[0]]] = True
            break
        c = int(np.argmin(np.where(left > 0, left, np.iinfo(left.dtype).max)))  # the rarest class left
        for record in rng.permutation(np.flatnonzero(open_ & y[:, c])):
            # the subset that most wants class c, then the one with most room, then at random
            keys = [(capacity[s] > 0, desire[s, c], capacity[s], rng.random()) for s in (0, 1)]
            s = 0 if keys[0] > keys[1] else 1
            chosen[record] = s == 0
            capacity[s] -= 1
            desire[s] -= y[record]
            open_[record] = False
    return np.flatnonzero(chosen)


def budget_splits(
    train: ECGSplit, labelled: np.ndarray | None, x_transfer: np.ndarray | None = None
) -> tuple[ECGSplit, ECGSplit]:
    """``(supervised, distillation)`` training splits for one budget.

    ``labelled``: indices into ``train`` (None: every record). ``supervised`` holds only the
    labelled records (the scratch student). ``distillation`` holds every training record and
    then the transfer records x_transfer [M, 12, T] (targets 0, ecg_id -1), with the mask
    ``labelled`` [N + M] marking whose labels the supervised loss reads; its record ``i`` is
    row ``i`` of a teacher cache built over ``concatenate([train.x, x_transfer])``. With every
    record labelled and no transfer records both are ``train`` itself.
    """
    if labelled is None and x_transfer is None:
        return train, train
    mask = np.ones(len(train), dtype=bool) if labelled is None else np.isin(np.arange(len(train)), labelled)
    supervised = train if labelled is None else dataclasses.replace(
        train, x=train.x[labelled], y=train.y[labelled], ecg_ids=train.ecg_ids[labelled], labelled=None
    )
    if x_transfer is None:
        return supervised, dataclasses.replace(train, labelled=mask)
    m = len(x_transfer)
    distillation = dataclasses.replace(
        train,
        x=np.concatenate([train.x, x_transfer]).astype(np.float32),  # [N + M, 12, T]
        y=np.concatenate([train.y, np.zeros((m, train.y.shape[1]), dtype=train.y.dtype)]),  # [N + M, C]
        ecg_ids=np.concatenate([train.ecg_ids, np.full(m, -1, dtype=train.ecg_ids.dtype)]),
        labelled=np.concatenate([mask, np.zeros(m, dtype=bool)]),
    )
    return supervised, distillation


def transfer_records(directory: str | os.PathLike, length: int, progress: bool = True) -> np.ndarray:
    """x [M, 12, length]: the records of a PTB-XL-layout directory, prepared as the benchmark's.

    Records in normalised units (``NU``) as they are, records in mV preprocessed like the
    benchmark's (:func:`evl_lite.data.benchmark.directory_records`); a record at another rate is
    resampled to 100 Hz on the way. A directory without records, or records of another
    duration than the benchmark's ``length`` samples, is an :class:`ECGDataError` naming it.
    """
    from evl_lite.data.benchmark import directory_records
    from evl_lite.data.ptbxl import DATABASE_CSV, load_ptbxl

    path = Path(directory)
    if not path.is_dir():
        raise ECGDataError(path, "transfer directory does not exist")
    if not (path / DATABASE_CSV).is_file() or load_ptbxl(path).database.empty:
        raise ECGDataError(
            path, f"holds no records: a transfer set is a directory in the PTB-XL layout ({DATABASE_CSV})"
        )
    x = directory_records(path, progress=progress)  # [M, 12, T']
    if x.shape[-1] != length:
        raise ECGDataError(
            path,
            f"its records last {x.shape[-1]} samples at 100 Hz and the benchmark's {length}: "
            "a transfer set needs records of the benchmark's duration",
        )
    return x.astype(np.float32)
