"""Classification metrics: hand-computed values, sklearn agreement, thresholds, bootstrap, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from evl_lite.constants import SUPERCLASSES
from evl_lite.errors import ECGDataError
from evl_lite.evaluation.metrics import (
    UndefinedMetricError,
    bootstrap_ci,
    evaluate,
    f1_scores,
    hamming_accuracy,
    macro_auc,
    sample_accuracy,
    tune_thresholds,
)


def noisy_scores(n: int, seed: int, n_classes: int = 5, signal: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """Multi-hot labels [n, C] and sigmoid scores that depend on them (AUC around 0.85)."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, n_classes)) < 0.3).astype(int)
    logits = signal * (2 * y - 1) + rng.standard_normal((n, n_classes)) * 1.5
    return y, 1 / (1 + np.exp(-logits))


# Hand example: class A has AUC 3/4 (one of four positive-negative pairs misordered), class B
# 3.5/4 (one tied pair counts 1/2), class C has no positives.
Y_HAND = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
S_HAND = np.array([[0.9, 0.5, 0.3], [0.8, 0.5, 0.1], [0.4, 0.7, 0.2], [0.1, 0.2, 0.9]])


def test_macro_auc_matches_hand_values_and_excludes_absent_class():
    macro, per_class = macro_auc(Y_HAND, S_HAND, classes=("A", "B", "C"))
    assert per_class["A"] == pytest.approx(0.75)
    assert per_class["B"] == pytest.approx(0.875)
    assert per_class["C"] is None
    assert macro == pytest.approx((0.75 + 0.875) / 2)
    assert per_class["A"] == pytest.approx(roc_auc_score(Y_HAND[:, 0], S_HAND[:, 0]))
    assert per_class["B"] == pytest.approx(roc_auc_score(Y_HAND[:, 1], S_HAND[:, 1]))


def test_macro_auc_equals_sklearn_on_random_data_with_ties():
    y, s = noisy_scores(300, seed=1)
    s = np.round(s, 1)  # many ties
    macro, per_class = macro_auc(y, s)
    expected = [roc_auc_score(y[:, c], s[:, c]) for c in range(5)]
    assert [per_class[name] for name in SUPERCLASSES] == pytest.approx(expected)
    assert macro == pytest.approx(roc_auc_score(y, s, average="macro"))


def test_macro_auc_class_with_only_positives_is_excluded_and_all_absent_raises():
    y = np.array([[1, 1], [1, 0], [1, 1]])
    s = np.array([[0.2, 0.9], [0.5, 0.1], [0.7, 0.8]])
    macro, per_class = macro_auc(y, s, classes=("all_pos", "ok"))
    assert per_class == {"all_pos": None, "ok": 1.0}
    assert macro == 1.0
    with pytest.raises(UndefinedMetricError, match="no class"):
        macro_auc(np.zeros((4, 5), int), np.random.default_rng(0).random((4, 5)))


def test_perfect_and_reversed_scores():
    y, _ = noisy_scores(100, seed=2)
    assert macro_auc(y, y * 0.8 + 0.1)[0] == 1.0
    assert macro_auc(y, 1 - y)[0] == 0.0


def test_f1_scores_match_sklearn_and_skip_classes_without_positives():
    y, s = noisy_scores(200, seed=3)
    y[:, 4] = 0
    thr = np.array([0.3, 0.4, 0.5, 0.6, 0.5])
    macro, per_class = f1_scores(y, s, thr)
    pred = (s >= thr).astype(int)
    expected = f1_score(y[:, :4], pred[:, :4], average=None)
    assert [per_class[name] for name in SUPERCLASSES[:4]] == pytest.approx(expected)
    assert per_class["HYP"] is None
    assert macro == pytest.approx(expected.mean())


def test_tuned_thresholds_beat_half_on_validation():
    y, s = noisy_scores(400, seed=4, signal=0.8)
    s = s * 0.6  # scores skewed low: 0.5 is a poor threshold
    thr = tune_thresholds(y, s)
    assert thr.shape == (5,)
    tuned = f1_scores(y, s, thr)[1]
    at_half = f1_scores(y, s, np.full(5, 0.5))[1]
    for name in SUPERCLASSES:
        assert tuned[name] >= at_half[name]
    assert f1_scores(y, s, thr)[0] > f1_scores(y, s, np.full(5, 0.5))[0] + 0.1
    # Exhaustive: no threshold on a fine grid does better than the tuned one.
    grid = np.linspace(0, 1, 1001)
    pred = s[None, :, :] >= grid[:, None, None]  # [G, N, C]
    tp = (pred & (y == 1)).sum(axis=1)  # [G, C]
    grid_best = (2 * tp / (pred.sum(axis=1) + y.sum(axis=0))).max(axis=0)  # [C]
    assert (np.array([tuned[name] for name in SUPERCLASSES]) >= grid_best - 1e-12).all()


def test_tuned_threshold_recovers_known_cut_on_separable_data():
    rng = np.random.default_rng(5)
    s = rng.random((500, 2))
    y = np.stack([s[:, 0] > 0.3, s[:, 1] > 0.7], axis=1).astype(int)
    thr = tune_thresholds(y, s)
    assert thr == pytest.approx([0.3, 0.7], abs=0.01)
    assert f1_scores(y, s, thr, classes=("a", "b"))[0] == 1.0
    # Lowest negative below / highest positive above the threshold: it lies strictly in the gap.
    assert s[y[:, 0] == 0, 0].max() < thr[0] <= s[y[:, 0] == 1, 0].min()


def test_tune_thresholds_edge_cases():
    y = np.array([[0, 1], [0, 1], [0, 1]])
    s = np.array([[0.9, 0.2], [0.1, 0.3], [0.4, 0.2]])
    thr = tune_thresholds(y, s)
    assert thr[0] == 0.5  # no positives: default
    assert thr[1] <= 0.2  # all positive: everything must be predicted positive
    assert f1_scores(y, s, thr, classes=("a", "b"))[1]["b"] == 1.0


def test_sample_and_hamming_accuracy_on_hand_example():
    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    s = np.array([[0.9, 0.2], [0.6, 0.7], [0.8, 0.4], [0.1, 0.3]])
    # predictions at 0.5: [1,0] [1,1] [1,0] [0,0] -> rows 0 and 3 match exactly; 6 of 8 decisions right
    assert sample_accuracy(y, s, np.array([0.5, 0.5])) == 0.5
    assert hamming_accuracy(y, s, np.array([0.5, 0.5])) == 0.75
    assert sample_accuracy(y, s, np.array([0.7, 0.35])) == 1.0


def test_bootstrap_ci_contains_estimate_narrows_and_is_deterministic():
    y_small, s_small = noisy_scores(60, seed=6)
    y_big, s_big = noisy_scores(1200, seed=6)
    low, high = bootstrap_ci(macro_auc, y_small, s_small, n_boot=300, seed=0)
    assert low < macro_auc(y_small, s_small)[0] < high
    low_big, high_big = bootstrap_ci(macro_auc, y_big, s_big, n_boot=300, seed=0)
    assert low_big < macro_auc(y_big, s_big)[0] < high_big
    assert high_big - low_big < (high - low) / 2
    assert bootstrap_ci(macro_auc, y_small, s_small, n_boot=300, seed=0) == (low, high)
    assert bootstrap_ci(macro_auc, y_small, s_small, n_boot=300, seed=1) != (low, high)


def test_bootstrap_skips_resamples_without_positives_and_refuses_hopeless_splits():
    # One positive in 40 samples: about 36% of resamples miss it; they are skipped, not NaN.
    y = np.zeros((40, 1), int)
    y[0] = 1
    s = np.linspace(0, 1, 40)[:, None]
    low, high = bootstrap_ci(lambda a, b: macro_auc(a, b, classes=("a",)), y, s, n_boot=200)
    assert np.isfinite([low, high]).all() and low <= high
    with pytest.raises(ValueError, match="undefined in 200 of 200"):
        bootstrap_ci(lambda a, b: macro_auc(a, b, classes=("a",)), y[:1], s[:1], n_boot=200)


def test_evaluate_bundles_everything_and_is_json_able():
    y, s = noisy_scores(150, seed=7)
    y[:, 4] = 0
    thr = tune_thresholds(*noisy_scores(150, seed=8))
    report = evaluate(y, s, thresholds=thr, n_boot=200, seed=0)
    json.dumps(report)
    assert report["n_samples"] == 150
    assert report["positives"]["HYP"] == 0
    assert report["positives"]["NORM"] == int(y[:, 0].sum())
    assert report["per_class_auc"]["HYP"] is None
    assert report["auc_classes"] == ["NORM", "MI", "STTC", "CD"]
    assert report["macro_auc"] == pytest.approx(roc_auc_score(y[:, :4], s[:, :4], average="macro"))
    low, high = report["macro_auc_ci"]
    assert low < report["macro_auc"] < high
    assert report["macro_f1_ci"][0] < report["macro_f1"] < report["macro_f1_ci"][1]
    assert report["thresholds"] == dict(zip(SUPERCLASSES, thr.tolist(), strict=True))
    assert report["threshold_source"] == "given"
    assert report["sample_accuracy"] == sample_accuracy(y, s, thr)
    default = evaluate(y, s, n_boot=0)
    assert default["thresholds"] == dict.fromkeys(SUPERCLASSES, 0.5)
    assert default["macro_auc_ci"] is None


@pytest.mark.parametrize(
    ("bad", "message"),
    [(np.nan, "1 NaN value"), (np.inf, "1 infinite value"), (-np.inf, "1 infinite value")],
)
def test_non_finite_scores_raise(bad, message):
    y, s = noisy_scores(20, seed=9)
    s[3, 2] = bad
    for call in (lambda: evaluate(y, s, n_boot=10), lambda: macro_auc(y, s), lambda: tune_thresholds(y, s)):
        with pytest.raises(ECGDataError, match=message):
            call()


def test_bad_shapes_and_labels_raise():
    y, s = noisy_scores(20, seed=10)
    with pytest.raises(ECGDataError, match="same shape"):
        macro_auc(y, s[:, :4])
    with pytest.raises(ECGDataError, match="0/1"):
        macro_auc(y * 2, s)
    with pytest.raises(ECGDataError, match="class names"):
        macro_auc(y, s, classes=("A", "B"))
    with pytest.raises(ECGDataError, match="thresholds"):
        f1_scores(y, s, np.array([0.5, 0.5]))
