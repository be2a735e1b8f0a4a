"""Model cost: parameter and FLOP counts checked by hand, latency and memory measurements, the report."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from evl_lite.evaluation.efficiency import (
    count_flops,
    count_parameters,
    cpu_latency_ms,
    efficiency_report,
    peak_memory_mb,
)

MIB = 2**20


def tiny_cnn() -> nn.Sequential:
    """Conv1d(12 -> 8, k=5, same padding), BatchNorm, ReLU, global pool, Linear(8 -> 5)."""
    return nn.Sequential(
        nn.Conv1d(12, 8, 5, padding=2),
        nn.BatchNorm1d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool1d(1),
        nn.Flatten(),
        nn.Linear(8, 5),
    )


class Scaled(nn.Module):
    """(x * 2) * 3: one temporary and one output, each the size of x; no parameters."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * 2) * 3


class WithOutput(nn.Module):
    """Returns an object with ``.logits``, as teacher and student do."""

    def __init__(self) -> None:
        super().__init__()
        self.net = tiny_cnn()

    def forward(self, x: torch.Tensor):
        return type("Out", (), {"logits": self.net(x)})()


def test_count_parameters_by_hand():
    layer = nn.Linear(10, 5)
    assert count_parameters(layer) == 55
    layer.bias.requires_grad_(False)
    assert count_parameters(layer, trainable_only=True) == 50
    # conv 12*8*5 + 8, batchnorm 8 + 8, linear 8*5 + 5
    assert count_parameters(tiny_cnn()) == 488 + 16 + 45


def test_flops_of_linear_and_conv_by_hand():
    assert count_flops(nn.Linear(10, 5), torch.randn(1, 10)) == 2 * 10 * 5
    assert count_flops(nn.Linear(10, 5), torch.randn(4, 10)) == 4 * 2 * 10 * 5
    # FLOPs = 2 * out_len * C_out * C_in * k
    assert count_flops(nn.Conv1d(12, 8, 5, padding=2), torch.randn(1, 12, 100)) == 2 * 100 * 8 * 12 * 5
    strided = nn.Conv1d(12, 8, 5, stride=2)  # out_len = (100 - 5) // 2 + 1 = 48
    assert count_flops(strided, torch.randn(1, 12, 100)) == 2 * 48 * 8 * 12 * 5
    assert count_flops(tiny_cnn(), torch.randn(1, 12, 100)) == 2 * 100 * 8 * 12 * 5 + 2 * 8 * 5


def test_flops_leave_model_state_alone():
    model = tiny_cnn().train()
    stats = model[1].running_mean.clone()
    count_flops(model, torch.randn(2, 12, 100) + 5)
    assert model.training
    assert torch.equal(model[1].running_mean, stats)  # ran in eval mode: no batch-norm update


def test_latency_is_positive_and_restores_flags_and_threads():
    model = tiny_cnn().train()
    model[1].eval()  # mixed flags must come back as they were
    threads = torch.get_num_threads()
    result = cpu_latency_ms(model, torch.randn(2, 12, 200), warmup=1, repeats=5, threads=1)
    assert set(result) == {"median", "p90"}
    assert all(math.isfinite(v) and v > 0 for v in result.values())
    assert result["p90"] >= result["median"]
    assert model.training and model[0].training and not model[1].training
    assert torch.get_num_threads() == threads


def test_latency_and_memory_refuse_non_cpu_models():
    with pytest.raises(ValueError, match="CPU"):
        cpu_latency_ms(nn.Linear(10, 5, device="meta"), torch.randn(1, 10))
    with pytest.raises(ValueError, match="repeats"):
        cpu_latency_ms(nn.Linear(10, 5), torch.randn(1, 10), repeats=0)


def test_peak_memory_counts_live_tensors():
    x = torch.randn(16, 12, 1000)  # 768,000 bytes
    # peak: the temporary x * 2 and the output, both alive while the output is computed
    # (plus a few bytes for the wrapped scalars 2 and 3)
    assert peak_memory_mb(Scaled(), x) == pytest.approx(2 * x.numel() * 4 / MIB, abs=1024 / MIB)
    model = tiny_cnn()
    small = peak_memory_mb(model, torch.randn(1, 12, 1000))
    big = peak_memory_mb(model, torch.randn(32, 12, 1000))
    assert big >= 32 * 8 * 1000 * 4 / MIB  # at least the conv activation [32, 8, 1000]
    assert big > 10 * small > 0


def test_efficiency_report_on_tiny_model():
    model = WithOutput().train()
    report = efficiency_report(model, length=200, batch_sizes=(1, 4), warmup=1, repeats=3)
    json.dumps(report)
    assert report["params"] == report["trainable_params"] == count_parameters(tiny_cnn())
    assert report["flops"] == 2 * 200 * 8 * 12 * 5 + 2 * 8 * 5
    # float32 parameters and batch-norm running mean/var, plus its int64 num_batches_tracked
    assert report["param_mb"] == pytest.approx(((549 + 8 + 8) * 4 + 8) / MIB)
    assert set(report["latency_ms"]) == set(report["peak_memory_mb"]) == {"1", "4"}
    assert all(v["median"] > 0 for v in report["latency_ms"].values())
    assert report["peak_memory_mb"]["4"] > report["peak_memory_mb"]["1"] > 0
    assert report["input"] == {"n_leads": 12, "length": 200}
    assert report["latency_repeats"] == 3
    assert model.training
