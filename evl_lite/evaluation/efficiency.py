"""What a model costs to run: parameters, FLOPs, CPU latency and peak activation memory.

EVL-ECG's point is a student that keeps the teacher's accuracy at a fraction of its cost,
so teacher and student are compared on the same four figures:

- **Parameters**: ``sum(p.numel())`` over ``model.parameters()``.
- **FLOPs** of one forward pass, counted by ``torch.utils.flop_counter.FlopCounterMode``.
  It counts the matrix products and convolutions (``mm``, ``addmm``, ``bmm``, convolution,
  scaled dot-product attention) as ``FLOPs = 2 x MACs``: one multiply and one add per
  multiply-accumulate, e.g. ``2 * in * out`` for a linear layer on one sample. Bias
  additions, activations, normalisation and pooling are not counted (they are a small
  share for CNNs and transformers alike).
- **CPU latency**: wall-clock time of ``model(x)`` under ``torch.inference_mode`` in eval
  mode, after warm-up runs; the median and the 90th percentile over repeats, in ms.
- **Peak activation memory**: the largest amount of CPU tensor memory live at any moment
  of one forward pass *on top of* what was allocated before it (parameters, the input).
  It is read from the PyTorch profiler's allocator events (``profile_memory=True``): every
  tensor allocation and free, in order, summed. It covers activations, workspaces and the
  output; it is not process RSS (no Python objects, no allocator caching, no library code).

Every function calls ``model(x)`` with ``x [B, n_leads, T]`` and ignores what it returns (a
tensor or a ``ModelOutput``), and leaves the model's train/eval flags as it found them.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from evl_lite.models.output import count_parameters

__all__ = ["count_parameters", "count_flops", "cpu_latency_ms", "peak_memory_mb", "efficiency_report"]

MIB = 2**20


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Put every submodule in eval mode, then restore each one's own training flag."""
    flags = {module: module.training for module in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for module, flag in flags.items():
            module.training = flag


def _check_cpu(model: nn.Module, example_input: Tensor) -> None:
    devices = {p.device.type for p in itertools.chain(model.parameters(), model.buffers())}
    devices.add(example_input.device.type)
    if devices != {"cpu"}:
        raise ValueError(f"CPU measurements need the model and the input on the CPU; found {sorted(devices)}")


def count_flops(model: nn.Module, example_input: Tensor) -> int:
    """FLOPs (2 x MACs) of one forward pass on ``example_input`` [B, n_leads, T].

    The count is for the whole batch; pass a batch of 1 for the cost per record.
    """
    counter = FlopCounterMode(display=False)
    with _eval_mode(model), torch.inference_mode(), counter:
        model(example_input)
    return int(counter.get_total_flops())


def cpu_latency_ms(
    model: nn.Module, example_input: Tensor, warmup: int = 3, repeats: int = 20, threads: int | None = None
) -> dict[str, float]:
    """Median and 90th-percentile wall-clock time (ms) of ``model(example_input)`` on the CPU.

    ``threads`` sets ``torch.set_num_threads`` for the measurement and restores it afterwards.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0; got repeats={repeats}, warmup={warmup}")
    _check_cpu(model, example_input)
    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        with _eval_mode(model), torch.inference_mode():
            for _ in range(warmup):
                model(example_input)
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                model(example_input)
                times.append((time.perf_counter() - start) * 1e3)
    finally:
        torch.set_num_threads(old_threads)
    return {"median": float(np.median(times)), "p90": float(np.percentile(times, 90))}


@contextmanager
def _native_stderr_silenced():
    """Hide what the profiler's C++ layer writes to file descriptor 2 (its ``USDT ... profiler_start``
    and ``profiler_stop`` lines, which would read as errors in a notebook); Python errors still raise."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def peak_memory_mb(model: nn.Module, example_input: Tensor) -> float:
    """Peak CPU tensor memory (MiB) allocated by one forward pass above what was live before it.

    Replays the profiler's allocation (+bytes) and free (-bytes) events in time order and
    returns the highest running total (the output counts: it is live when it is made).
    """
    _check_cpu(model, example_input)
    with _eval_mode(model), torch.inference_mode(), _native_stderr_silenced():
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            model(example_input)
    # Raw allocator events: "[memory]" entries whose nbytes() is + on allocation, - on free.
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events = [e for e in events if e.device_type() == torch.autograd.DeviceType.CPU]
    deltas = [e.nbytes() for e in sorted(events, key=lambda e: e.start_ns())]
    return max([0, *itertools.accumulate(deltas)]) / MIB


def efficiency_report(
    model: nn.Module,
    n_leads: int = 12,
    length: int = 1000,
    batch_sizes: Sequence[int] = (1, 32),
    threads: int | None = None,
    warmup: int = 3,
    repeats: int = 20,
) -> dict[str, Any]:
    """Parameters, FLOPs per record, CPU latency and peak activation memory per batch size.

    The input is Gaussian noise ``[B, n_leads, length]`` (cost does not depend on the values);
    ``length = 1000`` is 10 s at 100 Hz. ``threads``, ``warmup`` and ``repeats`` go to
    ``cpu_latency_ms`` (lower ``repeats`` for a quick smoke run). Batch-size keys are strings
    so the dict is JSON-able.
    """
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    generator = torch.Generator().manual_seed(0)

    def example(batch: int) -> Tensor:
        return torch.randn(batch, n_leads, length, generator=generator).to(dtype)  # [B, n_leads, T]

    tensors = itertools.chain(model.parameters(), model.buffers())
    param_bytes = sum(t.numel() * t.element_size() for t in tensors)
    report: dict[str, Any] = {
        "params": count_parameters(model),
        "trainable_params": count_parameters(model, trainable_only=True),
        "param_mb": param_bytes / MIB,
        "flops": count_flops(model, example(1)),
        "input": {"n_leads": n_leads, "length": length},
        "threads": threads if threads is not None else torch.get_num_threads(),
        "latency_repeats": repeats,
        "latency_ms": {},
        "peak_memory_mb": {},
    }
    for batch in batch_sizes:
        x = example(batch)
        report["latency_ms"][str(batch)] = cpu_latency_ms(model, x, warmup, repeats, threads)
        report["peak_memory_mb"][str(batch)] = peak_memory_mb(model, x)
    return report
