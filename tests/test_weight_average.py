"""The moving average of the weights: its formula, its swap, and training that selects on it and resumes."""

from __future__ import annotations

import dataclasses
import shutil

import pytest
import torch
from toy_ecg import FAST

from evl_lite.evaluation.metrics import macro_auc
from evl_lite.models.student import ECGStudentCNN, StudentConfig
from evl_lite.training.loop import Supervised, find_checkpoint, predict, train
from evl_lite.training.weight_average import WeightAverage


def test_average_follows_its_formula_and_swaps_back():
    model = torch.nn.BatchNorm1d(2)  # a float weight and an integer buffer (num_batches_tracked)
    average = WeightAverage(model, decay=0.9)
    expected = model.weight.detach().clone()
    for n, value in enumerate([1.0, 2.0, 3.0, 4.0], start=1):
        with torch.no_grad():
            model.weight.fill_(value)
        model.num_batches_tracked.fill_(10 * n)
        average.update()
        d = min(0.9, (1 + n) / (10 + n))  # the warm-up: 0.18, 0.25, ... then 0.9
        expected = d * expected + (1 - d) * value
    torch.testing.assert_close(average.state["weight"], expected)
    assert int(average.state["num_batches_tracked"]) == 40 and average.updates == 4
    with pytest.raises(RuntimeError, match="inside"), average.swapped_in():
        torch.testing.assert_close(model.weight.detach(), expected)
        raise RuntimeError("inside")
    assert torch.equal(model.weight.detach(), torch.full((2,), 4.0))  # the trained weights are back


def test_decay_out_of_range_is_refused_by_name():
    with pytest.raises(ValueError, match="ema_decay must be between 0 and 1"):
        WeightAverage(torch.nn.Linear(2, 1), decay=1.0)


def test_training_selects_on_the_averaged_weights(toy):
    train_split, val_split = toy
    runs = {}
    for decay in (None, 0.9):
        torch.manual_seed(0)
        model = ECGStudentCNN(StudentConfig())
        config = dataclasses.replace(FAST, ema_decay=decay)
        runs[decay] = (model, train(model, train_split, val_split, config))
    model, result = runs[0.9]
    # the model ends with the averaged weights of its best epoch, which scored best_val_auc
    auc, _ = macro_auc(val_split.y, predict(model, val_split.x, crop=250, n_windows=7))
    assert auc == pytest.approx(result.best_val_auc, abs=1e-6)
    plain = [h["val_macro_auc"] for h in runs[None][1].history]
    assert [h["val_macro_auc"] for h in result.history] != plain  # validation read other weights
    assert [h["train_loss"] for h in result.history] == [h["train_loss"] for h in runs[None][1].history]


class _InterruptedAt(Supervised):
    """The supervised loss, until its ``stop``-th step: then a KeyboardInterrupt (Ctrl-C)."""

    def __init__(self, stop: int):
        super().__init__()
        self.stop, self.steps = stop, 0

    def forward(self, output, batch, teacher_output=None):
        self.steps += 1
        if self.steps == self.stop:
            raise KeyboardInterrupt
        return super().forward(output, batch, teacher_output)


def test_a_resumed_run_keeps_its_average(toy, tmp_path):
    train_split, val_split = toy
    config = dataclasses.replace(FAST, ema_decay=0.9)
    torch.manual_seed(0)
    reference = train(ECGStudentCNN(StudentConfig()), train_split, val_split, config)
    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):  # 6 steps an epoch: stopped inside the third epoch
        train(ECGStudentCNN(StudentConfig()), train_split, val_split, config, objective=_InterruptedAt(15),
              out_dir=tmp_path)
    saved = find_checkpoint(tmp_path / "checkpoint")
    assert (saved / "averaged_model.safetensors").is_file()
    # resumed with another choice of weights to select on: refused, naming the checkpoint
    with pytest.raises(ValueError, match=r"checkpoint.*written with ema_decay and this run has ema_decay=No"):
        train(ECGStudentCNN(StudentConfig()), train_split, val_split, FAST, out_dir=tmp_path, resume=True)
    plain = tmp_path / "plain"
    shutil.copytree(saved, plain / "checkpoint")
    (plain / "checkpoint" / "averaged_model.safetensors").unlink()  # as a run without ema_decay writes it
    with pytest.raises(ValueError, match=r"written without ema_decay and this run has ema_decay=0.9"):
        train(ECGStudentCNN(StudentConfig()), train_split, val_split, config, out_dir=plain, resume=True)
    torch.manual_seed(1)  # other initial weights: everything must come from the checkpoint
    resumed = train(ECGStudentCNN(StudentConfig()), train_split, val_split, config, out_dir=tmp_path,
                    resume=True)
    assert [h["val_macro_auc"] for h in resumed.history] == pytest.approx(
        [h["val_macro_auc"] for h in reference.history], abs=1e-9
    )
    assert resumed.best_val_auc == pytest.approx(reference.best_val_auc, abs=1e-9)
