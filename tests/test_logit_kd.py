"""Multi-label logit KD: the binary KL formula, zero at agreement, gradients to the student only."""

from __future__ import annotations

import math

import pytest
import torch

from evl_lite.distillation import LogitKD
from evl_lite.models.output import ModelOutput, TokenLayout

LAYOUT = TokenLayout.lead_patches(12, 250, 25, 100.0)


def out(logits: torch.Tensor) -> ModelOutput:
    b = logits.shape[0]
    return ModelOutput(logits=logits, tokens=torch.zeros(b, len(LAYOUT), 4), pooled=torch.zeros(b, 4),
                       token_layout=LAYOUT)


def test_value_matches_the_hand_formula():
    s, t, tau = torch.tensor([[0.3, -1.0]]), torch.tensor([[2.0, 0.5]]), 2.0
    loss, extras = LogitKD(temperature=tau)(out(s), out(t), {})
    expected = 0.0
    for zs, zt in zip(s.flatten().tolist(), t.flatten().tolist(), strict=True):
        p, q = 1 / (1 + math.exp(-zt / tau)), 1 / (1 + math.exp(-zs / tau))
        expected += p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))
    assert float(loss) == pytest.approx(tau**2 * expected / 2, rel=1e-5)
    assert extras["teacher_probs"].shape == (1, 2)


def test_zero_when_student_agrees_and_positive_otherwise():
    logits = torch.randn(8, 5)
    assert float(LogitKD()(out(logits.clone()), out(logits), {})[0]) == pytest.approx(0.0, abs=1e-6)
    assert float(LogitKD()(out(logits + 1.0), out(logits), {})[0]) > 1e-3


def test_gradient_reaches_the_student_never_the_teacher():
    s = torch.randn(4, 5, requires_grad=True)
    t = torch.randn(4, 5, requires_grad=True)
    loss, _ = LogitKD()(out(s), out(t), {})
    loss.backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


def test_extreme_logits_stay_finite():
    s = torch.tensor([[80.0, -80.0]])
    t = torch.tensor([[-80.0, 80.0]])
    loss, _ = LogitKD(temperature=1.0)(out(s), out(t), {})
    assert torch.isfinite(loss)


def test_temperature_must_be_positive():
    with pytest.raises(ValueError):
        LogitKD(temperature=0)
