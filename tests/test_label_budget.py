"""Label budgets: stratified labelled subsets, the supervised loss on labelled rows only, transfer records."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import STATEMENTS, ecg_like, write_record
from torch.nn import functional as F

from evl_lite.data.dataset import ECGDataset, ECGSplit
from evl_lite.data.label_budget import budget_splits, labelled_subset, parse_budgets, transfer_records
from evl_lite.distillation.logit_kd import LogitKD
from evl_lite.errors import ECGDataError
from evl_lite.models.output import ModelOutput
from evl_lite.models.student import ECGStudentCNN, StudentConfig
from evl_lite.training.loop import Distillation, Supervised, labelled_bce


def skewed_labels(n: int = 352, seed: int = 0) -> np.ndarray:
    """y [n, 5] with PTB-XL-like class frequencies (HYP rare), every record in some class."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 5)) < np.array([0.4, 0.1, 0.25, 0.2, 0.03])).astype(np.int64)
    y[y.sum(axis=1) == 0, 0] = 1
    return y


# ----------------------------------------------------------------------------- the subset


@pytest.mark.parametrize("n", [5, 20, 50, 200])
def test_every_class_keeps_positives_and_about_its_share(n):
    y = skewed_labels()
    idx = labelled_subset(y, n, seed=0)
    assert len(idx) == n == len(np.unique(idx)) and (np.diff(idx) > 0).all()
    got = y[idx].sum(axis=0)
    assert (got >= 1).all(), got  # HYP has 8 positives in 352: a random 5 would mostly miss it
    expected = y.sum(axis=0) * n / len(y)
    assert np.abs(got - expected).max() <= max(3.0, 0.1 * n), (got, expected)


def test_stratification_beats_chance_for_the_rarest_class():
    """A random 20 of the 352 records misses all 8 HYP positives in 63% of draws; the subset never does."""
    y = skewed_labels()
    assert y[:, 4].sum() == 8
    assert math.comb(352 - 8, 20) / math.comb(352, 20) == pytest.approx(0.63, abs=0.01)
    for seed in range(20):
        assert y[labelled_subset(y, 20, seed), 4].sum() >= 1


def test_the_subset_depends_only_on_labels_budget_and_seed():
    y = skewed_labels()
    first = labelled_subset(y, 50, seed=3)
    np.testing.assert_array_equal(first, labelled_subset(y.copy(), 50, seed=3))
    assert not np.array_equal(first, labelled_subset(y, 50, seed=4))
    np.testing.assert_array_equal(labelled_subset(y, len(y), seed=1), np.arange(len(y)))  # every record


def test_a_budget_too_small_for_every_class_names_the_class():
    # NORM only in records of its own; MI, STTC, CD and HYP always together: two records cover all
    y = np.zeros((30, 5), dtype=np.int64)
    y[:20, 0] = 1
    y[20:, 1:] = 1
    with pytest.raises(ValueError, match=r"class NORM would have none \(at least 2 needed\)"):
        labelled_subset(y, 1, seed=0)
    assert set(y[labelled_subset(y, 2, seed=0)].argmax(axis=1)) == {0, 1}
    with pytest.raises(ValueError, match="31 labelled records asked for, but there are 30"):
        labelled_subset(y, 31, seed=0)
    y[:, 4] = 0
    with pytest.raises(ValueError, match="class HYP has no positive"):
        labelled_subset(y, 10, seed=0)


def test_budgets_are_parsed_and_bad_ones_named():
    assert parse_budgets("800, 50,all,100,50") == [50, 100, 800, "all"]
    assert parse_budgets(["all"]) == ["all"] and parse_budgets("ALL") == ["all"]
    for bad, message in (("2.5", "'2.5'"), ("fifty", "'fifty'"), ("0", "at least 1 record"), ("", "'")):
        with pytest.raises(ValueError, match=message):
            parse_budgets(bad)


# ----------------------------------------------------------------------------- the splits


def toy_train(n: int = 12, length: int = 300) -> ECGSplit:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 12, length)).astype(np.float32)
    return ECGSplit("train", x, skewed_labels(n, seed=1).astype(np.float32), np.arange(100, 100 + n), 100)


def test_budget_splits_give_scratch_its_records_and_distillation_every_record():
    train = toy_train()
    x_transfer = np.ones((3, 12, 300), dtype=np.float32)
    idx = np.array([1, 4, 7])
    supervised, distillation = budget_splits(train, idx, x_transfer)
    np.testing.assert_array_equal(supervised.x, train.x[idx])
    np.testing.assert_array_equal(supervised.ecg_ids, [101, 104, 107])
    assert supervised.labelled is None and len(distillation) == 15
    np.testing.assert_array_equal(distillation.x[:12], train.x)
    np.testing.assert_array_equal(distillation.x[12:], x_transfer)
    np.testing.assert_array_equal(np.flatnonzero(distillation.labelled), idx)  # transfer rows unlabelled
    assert (distillation.y[12:] == 0).all() and (distillation.ecg_ids[12:] == -1).all()
    alone, without = budget_splits(train, idx, None)
    assert len(without) == 12 and without.labelled.sum() == 3 and len(alone) == 3
    assert budget_splits(train, None, None) == (train, train)  # every record labelled: the split itself
    _, every = budget_splits(train, None, x_transfer)
    assert every.labelled.tolist() == [True] * 12 + [False] * 3


def test_dataset_items_say_whether_their_labels_may_be_read():
    train = toy_train()
    _, distillation = budget_splits(train, np.array([0, 5]), None)
    items = [ECGDataset(distillation)[i]["labelled"] for i in range(len(distillation))]
    assert [bool(v) for v in items] == [i in (0, 5) for i in range(12)]
    assert all(bool(ECGDataset(train)[i]["labelled"]) for i in range(12))
    with pytest.raises(ValueError, match="mask"):
        ECGSplit("train", train.x, train.y, train.ecg_ids, 100, labelled=np.ones(3, dtype=bool))


# ----------------------------------------------------------------------------- the supervised loss


def test_bce_reads_only_the_labelled_rows():
    torch.manual_seed(0)
    logits = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    y = (torch.rand(4, 5) > 0.5).double()
    batch = {"y": y, "labelled": torch.tensor([True, False, True, False])}
    loss = labelled_bce(logits, batch)
    subset = F.binary_cross_entropy_with_logits(logits[[0, 2]], y[[0, 2]].float())
    assert float(loss.detach()) == pytest.approx(float(subset.detach()), rel=1e-6)
    loss.backward()
    assert (logits.grad[[1, 3]] == 0).all() and (logits.grad[[0, 2]].abs() > 0).all()
    with torch.no_grad():  # numerically: moving an unlabelled row, or its targets, changes nothing
        moved = logits.clone()
        moved[1] += 3.0
        assert float(labelled_bce(moved, batch)) == float(loss)
        flipped = torch.where(torch.arange(4)[:, None] == 3, 1 - y, y)  # row 3's targets flipped
        assert float(labelled_bce(logits, {**batch, "y": flipped})) == float(loss)
        step = torch.zeros_like(logits)
        step[0, 2] = 1e-3  # a labelled row moves it by its gradient (the loss is in float32)
        change = float(labelled_bce(logits + step, batch) - loss)
        assert change == pytest.approx(1e-3 * float(logits.grad[0, 2]), rel=1e-2)
    every = {"y": y, "labelled": torch.ones(4, dtype=torch.bool)}  # as before label budgets, to the bit
    assert torch.equal(labelled_bce(logits, every), F.binary_cross_entropy_with_logits(logits, y.float()))
    assert torch.equal(labelled_bce(logits, {"y": y}), F.binary_cross_entropy_with_logits(logits, y.float()))


def test_a_batch_without_labels_contributes_exactly_zero_and_keeps_the_graph():
    logits = torch.randn(3, 5, requires_grad=True)
    loss = labelled_bce(logits, {"y": torch.ones(3, 5), "labelled": torch.zeros(3, dtype=torch.bool)})
    assert float(loss.detach()) == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros(3, 5))


def test_the_students_gradient_through_bce_is_zero_for_an_unlabelled_record():
    """Through the whole student (eval mode: BatchNorm does not mix records): BCE does not reach an
    unlabelled record; the distillation term does."""
    torch.manual_seed(0)
    student = ECGStudentCNN(StudentConfig()).double().eval()
    x = torch.randn(4, 12, 250, dtype=torch.float64, requires_grad=True)
    batch = {"x": x, "y": torch.tensor([[1, 0, 0, 0, 0], [0, 1, 0, 0, 0]] * 2), "index": torch.arange(4),
             "labelled": torch.tensor([True, False, True, False])}
    loss, logs = Supervised()(student(x), batch)
    (grad,) = torch.autograd.grad(loss, x)
    assert (grad[[1, 3]] == 0).all() and (grad[[0, 2]].abs().sum(dim=(1, 2)) > 0).all()
    with torch.no_grad():  # numerically: a different unlabelled record, the same loss
        other = x.detach().clone()
        other[1] = torch.randn(12, 250, dtype=torch.float64)
        assert float(Supervised()(student(other), batch)[0]) == pytest.approx(logs["bce"], abs=1e-12)

    teacher = ModelOutput(logits=torch.randn(4, 5, dtype=torch.float64), tokens=torch.zeros(4, 1, 1),
                          pooled=torch.zeros(4, 1), token_layout=None)
    objective = Distillation({"kd": LogitKD()}, supervised_weight=1.0)
    loss, logs = objective(student(x), batch, teacher)
    (grad,) = torch.autograd.grad(loss, x)
    assert (grad[[1, 3]].abs().sum(dim=(1, 2)) > 0).all()  # the distillation term reads every record
    assert logs["bce"] == pytest.approx(float(Supervised()(student(x), batch)[0].detach()))


# ----------------------------------------------------------------------------- transfer records


def normalised_layout(root: Path, fs: int, seconds: float, n: int = 3) -> Path:
    """``n`` records in normalised units (like ptbxl-unlabelled) listed as 100 Hz files, stored at ``fs``."""
    rows = []
    for i in range(1, n + 1):
        signal = ecg_like(fs, seconds, seed=i)
        signal = (signal - signal.mean(axis=0)) / signal.std(axis=0)  # z-scored per lead
        write_record(root / "records100", f"{i:05d}_lr", signal, fs, units=["NU"] * 12)
        rows.append({"ecg_id": i, "scp_codes": "{}", "filename_lr": f"records100/{i:05d}_lr"})
    pd.DataFrame(rows).to_csv(root / "ptbxl_database.csv", index=False)
    STATEMENTS.to_csv(root / "scp_statements.csv")
    return root


def test_transfer_records_at_another_rate_are_resampled_to_100_hz(tmp_path):
    layout = normalised_layout(tmp_path / "nu250", fs=250, seconds=10)
    x = transfer_records(layout, length=1000, progress=False)  # [3, 12, 1000]
    assert x.shape == (3, 12, 1000) and x.dtype == np.float32
    assert np.abs(x.std(axis=-1) - 1).max() < 0.05  # normalised units are used as they are


def test_transfer_records_of_another_duration_are_refused_by_name(tmp_path):
    short = normalised_layout(tmp_path / "short", fs=100, seconds=5)
    refused = r"short: its records last 500 samples at 100 Hz and the benchmark's 1000"
    with pytest.raises(ECGDataError, match=refused):
        transfer_records(short, length=1000, progress=False)


def test_a_transfer_directory_without_records_is_named(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ECGDataError, match=r"empty: holds no records"):
        transfer_records(empty, length=1000)
    header_only = normalised_layout(tmp_path / "header_only", fs=100, seconds=10)
    pd.DataFrame(columns=["ecg_id", "scp_codes", "filename_lr"]).to_csv(header_only / "ptbxl_database.csv",
                                                                        index=False)
    with pytest.raises(ECGDataError, match=r"header_only: holds no records"):
        transfer_records(header_only, length=1000)
    with pytest.raises(ECGDataError, match=r"missing: transfer directory does not exist"):
        transfer_records(tmp_path / "missing", length=1000)

