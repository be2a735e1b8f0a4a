"""Multi-label classification metrics of the PTB-XL benchmark, with bootstrap confidence intervals.

PTB-XL superclass diagnosis is multi-label: every record has a 0/1 label per superclass,
``y [N, C]``, and a model gives a score per superclass, ``scores [N, C]`` (a probability
after the sigmoid, or a logit: AUC does not care, the default 0.5 threshold does).

- **Macro-AUC** (Strodthoff et al. 2021, the benchmark's headline metric): the mean over
  classes of the ROC AUC. Each class's AUC is computed in its Mann-Whitney form (Hanley &
  McNeil 1982), the probability that a random positive outscores a random negative, ties
  counting one half:

      AUC_c = (sum of the ranks of the positives - P (P + 1) / 2) / (P * Q)

  with average ranks over all N scores, P positives and Q = N - P negatives. This equals
  ``sklearn.metrics.roc_auc_score`` (the tests check it) and is vectorised so a bootstrap of
  1,000 resamples takes well under a second. A class is *usable* only when the split holds
  both positives and negatives of it; otherwise its AUC is undefined, reported as ``None``
  and left out of the macro mean. Small PTB-XL test folds (7 HYP, 8 MI positives in fold 10
  of PTB-XL-500) make this matter inside bootstrap resamples.
- **F1** per class at a threshold, ``F1 = 2 TP / (2 TP + FP + FN)``; a record is predicted
  positive when ``score >= threshold``. A class without positives in the split has no
  defined recall: ``None``, left out of the macro mean (as for AUC).
- **Thresholds** tuned on the validation split, one per class, to maximise that class's F1.
- **Sample accuracy**: exact match, the share of records whose whole predicted label set
  equals the true one. **Hamming accuracy**: the share of correct (record, class) decisions.
- **Percentile bootstrap** confidence intervals (Efron & Tibshirani 1993): records are
  resampled with replacement, the metric recomputed, and the ``alpha / 2`` and
  ``1 - alpha / 2`` quantiles reported.
- **Over seeds** (:func:`over_seeds`): mean and sample standard deviation (``ddof=1``) of one
  metric over training seeds, as every multi-seed record reports it.

Inputs are numpy arrays; outputs are plain floats, lists and dicts, ready for ``json.dump``.
Bad input (shape mismatch, labels other than 0/1, NaN or infinite scores) raises
``ECGDataError`` (a ``ValueError``) that names the problem.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata

from evl_lite.constants import SUPERCLASSES
from evl_lite.errors import ECGDataError


class UndefinedMetricError(ValueError):
    """The metric is undefined on this split: no class has the positives (and negatives) it needs."""


def _check_inputs(y_true: Any, scores: Any, n_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert: ``y [N, C]`` 0/1 as bool, ``scores [N, C]`` finite float64."""
    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 2 or s.ndim != 2:
        raise ECGDataError(None, f"y_true and scores must be 2-D [N, C]; got shapes {y.shape} and {s.shape}")
    if y.shape != s.shape:
        raise ECGDataError(None, f"y_true and scores must have the same shape; got {y.shape} and {s.shape}")
    if y.shape[0] == 0:
        raise ECGDataError(None, "y_true and scores hold no samples (N = 0)")
    if n_classes is not None and y.shape[1] != n_classes:
        raise ECGDataError(None, f"expected {n_classes} classes (columns); got {y.shape[1]}")
    if not np.isin(y, (0, 1)).all():
        raise ECGDataError(None, f"y_true must hold only 0/1 labels; found {np.unique(y)[:10].tolist()}")
    n_nan = int(np.isnan(s).sum())
    if n_nan:
        raise ECGDataError(None, f"scores contain {n_nan} NaN value(s)")
    n_inf = int(np.isinf(s).sum())
    if n_inf:
        raise ECGDataError(None, f"scores contain {n_inf} infinite value(s)")
    return y.astype(bool), s


def _check_thresholds(thresholds: Any, n_classes: int) -> np.ndarray:
    t = np.asarray(thresholds, dtype=np.float64)
    if t.shape != (n_classes,):
        raise ECGDataError(None, f"thresholds must be [C] = [{n_classes}]; got shape {t.shape}")
    if not np.isfinite(t).all():
        raise ECGDataError(None, f"thresholds must be finite; got {t.tolist()}")
    return t


def _class_names(classes: Sequence[str], n_classes: int) -> list[str]:
    if len(classes) != n_classes:
        raise ECGDataError(None, f"{len(classes)} class names {list(classes)} for {n_classes} score columns")
    return list(classes)


def macro_auc(
    y_true: np.ndarray, scores: np.ndarray, classes: Sequence[str] = SUPERCLASSES
) -> tuple[float, dict[str, float | None]]:
    """Macro ROC AUC over the classes usable in this split, and the AUC of every class.

    ``y_true [N, C]`` 0/1, ``scores [N, C]``. A class without both positives and negatives
    gets ``None`` and is excluded from the macro mean. Raises ``UndefinedMetricError`` when
    no class is usable.
    """
    y, s = _check_inputs(y_true, scores)
    names = _class_names(classes, y.shape[1])
    n_pos = y.sum(axis=0)  # [C]
    n_neg = y.shape[0] - n_pos  # [C]
    ranks = rankdata(s, axis=0)  # [N, C], ties get their average rank
    rank_sum = (ranks * y).sum(axis=0)  # [C]
    usable = (n_pos > 0) & (n_neg > 0)  # [C]
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)  # [C], NaN where unusable
    if not usable.any():
        raise UndefinedMetricError(
            f"macro-AUC is undefined: no class among {names} has both positives and negatives "
            f"in these {y.shape[0]} samples (positives per class: {n_pos.tolist()})"
        )
    per_class = {name: (float(a) if ok else None) for name, a, ok in zip(names, auc, usable, strict=True)}
    return float(auc[usable].mean()), per_class


def tune_thresholds(y_val: np.ndarray, scores_val: np.ndarray) -> np.ndarray:
    """Per-class threshold maximising F1 on the validation split: ``[C]`` float64.

    Search grid: every cut between two consecutive distinct validation scores of the class
    (the midpoint; just below the lowest score for "all positive"). F1 only changes at
    those cuts, so the search is exhaustive: no threshold reaches a higher validation F1,
    including 0.5. Ties in F1 go to the highest threshold. Classes without positives in the
    validation split get 0.5.
    """
    y, s = _check_inputs(y_val, scores_val)
    n = y.shape[0]
    thresholds = np.full(y.shape[1], 0.5)
    for c in range(y.shape[1]):
        n_pos = int(y[:, c].sum())
        if n_pos == 0:
            continue
        order = np.argsort(-s[:, c], kind="stable")
        s_desc, y_desc = s[order, c], y[order, c]  # [N] scores high to low, their labels
        tp = np.cumsum(y_desc)  # [N] true positives when the top k = 1..N are predicted positive
        f1 = 2 * tp / (np.arange(1, n + 1) + n_pos)  # 2 TP / (2 TP + FP + FN) = 2 TP / (k + P)
        cut = np.append(s_desc[:-1] > s_desc[1:], True)  # [N] top-k separable from the rest
        k = int(np.flatnonzero(cut)[np.argmax(f1[cut])])  # index of the last predicted positive
        if k == n - 1:
            thresholds[c] = np.nextafter(s_desc[-1], -np.inf)
        else:
            mid = (s_desc[k] + s_desc[k + 1]) / 2
            thresholds[c] = mid if mid > s_desc[k + 1] else s_desc[k]  # guard float rounding
    return thresholds


def f1_scores(
    y_true: np.ndarray, scores: np.ndarray, thresholds: np.ndarray, classes: Sequence[str] = SUPERCLASSES
) -> tuple[float, dict[str, float | None]]:
    """Macro F1 and per-class F1 with ``predicted = scores >= thresholds`` (thresholds ``[C]``).

    Classes without positives in the split get ``None`` and are excluded from the macro
    mean; ``UndefinedMetricError`` when no class has positives.
    """
    y, s = _check_inputs(y_true, scores)
    names = _class_names(classes, y.shape[1])
    pred = s >= _check_thresholds(thresholds, y.shape[1])  # [N, C]
    tp = (pred & y).sum(axis=0)  # [C]
    fp = (pred & ~y).sum(axis=0)
    fn = (~pred & y).sum(axis=0)
    usable = y.sum(axis=0) > 0  # [C]
    if not usable.any():
        raise UndefinedMetricError(f"macro-F1 is undefined: no class among {names} has positives")
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = 2 * tp / (2 * tp + fp + fn)  # [C], NaN where the class has no positives and none predicted
    per_class = {name: (float(v) if ok else None) for name, v, ok in zip(names, f1, usable, strict=True)}
    return float(f1[usable].mean()), per_class


def sample_accuracy(y_true: np.ndarray, scores: np.ndarray, thresholds: np.ndarray) -> float:
    """Exact-match accuracy: share of samples whose whole predicted label set equals the true one."""
    y, s = _check_inputs(y_true, scores)
    pred = s >= _check_thresholds(thresholds, y.shape[1])  # [N, C]
    return float((pred == y).all(axis=1).mean())


def hamming_accuracy(y_true: np.ndarray, scores: np.ndarray, thresholds: np.ndarray) -> float:
    """Share of correct (sample, class) decisions: 1 - Hamming loss."""
    y, s = _check_inputs(y_true, scores)
    pred = s >= _check_thresholds(thresholds, y.shape[1])  # [N, C]
    return float((pred == y).mean())


def bootstrap_ci(
    metric_fn: Callable[[np.ndarray, np.ndarray], Any],
    y_true: np.ndarray,
    scores: np.ndarray,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap ``(low, high)`` interval of ``metric_fn(y, scores)`` over samples.

    ``metric_fn`` returns a float or a tuple whose first item is the float (so ``macro_auc``
    and ``f1_scores`` work as they are). Resamples are drawn with ``numpy.random.default_rng(seed)``:
    the same seed gives the same interval. Undefined metrics are handled in two ways:
    ``macro_auc`` / ``f1_scores`` already drop classes without positives in a resample (the
    macro is over the classes present in it), and a resample where the metric is undefined
    altogether (``UndefinedMetricError``, or a NaN) is skipped. If more than half the
    resamples are skipped, a ``ValueError`` says so instead of reporting a meaningless interval.
    """
    y, s = _check_inputs(y_true, scores)
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1; got {n_boot}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1); got {alpha}")
    rng = np.random.default_rng(seed)
    n = y.shape[0]
    values = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, size=n)  # [N] sample indices, with replacement
        try:
            out = metric_fn(y[idx], s[idx])
        except UndefinedMetricError:
            continue
        value = float(out[0] if isinstance(out, tuple) else out)
        if np.isfinite(value):
            values.append(value)
    if len(values) < n_boot / 2:
        raise ValueError(
            f"bootstrap: the metric was undefined in {n_boot - len(values)} of {n_boot} resamples "
            f"of {n} samples; the split is too small or too unbalanced for an interval"
        )
    low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def over_seeds(values: Sequence[float]) -> dict:
    """``{"mean", "sd", "values"}`` of one metric over seeds; ``sd`` with ``ddof=1`` (0 for one seed)."""
    v = np.asarray(values, dtype=float)
    return {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "values": v.tolist()}


def evaluate(
    y_true: np.ndarray,
    scores: np.ndarray,
    thresholds: np.ndarray | None = None,
    classes: Sequence[str] = SUPERCLASSES,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, Any]:
    """Every metric of one split in one JSON-able dict.

    ``thresholds [C]`` should come from ``tune_thresholds`` on the validation split; ``None``
    uses 0.5 for every class (meant for probabilities). ``n_boot = 0`` skips the confidence
    intervals (reported as ``None``).
    """
    y, s = _check_inputs(y_true, scores)
    names = _class_names(classes, y.shape[1])
    source = "given" if thresholds is not None else "default 0.5"
    thr = _check_thresholds(np.full(len(names), 0.5) if thresholds is None else thresholds, len(names))
    auc, per_class_auc = macro_auc(y, s, names)
    f1, per_class_f1 = f1_scores(y, s, thr, names)
    report: dict[str, Any] = {
        "n_samples": int(y.shape[0]),
        "classes": names,
        "positives": {name: int(p) for name, p in zip(names, y.sum(axis=0), strict=True)},
        "macro_auc": auc,
        "macro_auc_ci": None,
        "auc_classes": [name for name in names if per_class_auc[name] is not None],
        "per_class_auc": per_class_auc,
        "macro_f1": f1,
        "macro_f1_ci": None,
        "per_class_f1": per_class_f1,
        "sample_accuracy": sample_accuracy(y, s, thr),
        "hamming_accuracy": hamming_accuracy(y, s, thr),
        "thresholds": {name: float(t) for name, t in zip(names, thr, strict=True)},
        "threshold_source": source,
        "bootstrap": {"n_boot": n_boot, "alpha": alpha, "seed": seed},
    }
    if n_boot > 0:
        report["macro_auc_ci"] = list(
            bootstrap_ci(lambda yy, ss: macro_auc(yy, ss, names), y, s, n_boot, alpha, seed)
        )
        report["macro_f1_ci"] = list(
            bootstrap_ci(lambda yy, ss: f1_scores(yy, ss, thr, names), y, s, n_boot, alpha, seed)
        )
    return report
