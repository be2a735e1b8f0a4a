"""Getting the student onto a small device: int8 quantisation, ONNX export with a parity check, costs.

- :class:`LogitsGraph`: the student's inference path, ``x [B, 12, T] -> logits [B, C]`` (stem,
  residual blocks, global average pool, classifier), without the Python-side input checks and
  token layout of ``ECGStudentCNN.forward``. Graph capture (``torch.export`` for ONNX, FX for
  static quantisation) cannot follow a branch on tensor values such as "raise if x holds NaN";
  on a device those checks belong to the application that feeds the runtime.
- **Dynamic quantisation** (``torch.ao.quantization.quantize_dynamic``; integer inference after
  Jacob et al. 2018): the weights of ``nn.Linear`` (and RNN) layers are stored as int8 with one
  scale per tensor, ``w_q = round(w / s_w)``, ``s_w = max|w| / 127``, and activations are
  quantised on the fly, ``y = s_x s_w (x_q w_q)`` accumulated in int32. It has no dynamic
  kernel for convolutions: in a CNN like the student nearly every weight sits in a ``Conv1d``
  and stays float32; only the classifier becomes int8 (:func:`parameter_storage` counts it).
- **Static post-training quantisation** (FX graph mode, :func:`quantize_static_fx`): BatchNorm
  folded into the convolutions, ReLU fused, per-channel int8 weights, and the activation
  scales fixed beforehand from calibration windows (observers record their ranges). Then
  every convolution and the classifier run in int8 (fbgemm / x86 kernels). Whether that is
  faster depends on the hardware: at batch 1, small depthwise convolutions are bound by
  memory traffic and overhead, and the quantise / dequantise steps add work.
- **ONNX export** (``torch.onnx.export``, the ``torch.export``-based exporter) with a dynamic
  batch axis, run by onnxruntime on the CPU. Parity: ``max |logits_onnx - logits_torch|``
  over real windows, which should stay at float32 rounding (~1e-6).
- **Like-for-like latency** (:func:`runtime_latency_pair`): at batch 1, eager PyTorch spends
  most of the student's time in per-operator overhead (about 60 small operators, each tens of
  microseconds) while the teacher's few large matrix products amortise theirs, so an eager
  comparison understates what a deployed student gains. Both models' inference graphs
  (:class:`LogitsGraph`, :class:`TeacherLogitsGraph`) exported to ONNX and timed in the same
  onnxruntime session settings compare the architectures rather than the framework overhead.

``torch.ao.quantization`` is deprecated upstream in favour of ``torchao``; it is used here
because it ships with torch and teaches the same ideas. :func:`bench_deployment` runs every
step on a test split and returns one JSON-able dict (for the command line).
"""

from __future__ import annotations

import copy
import io
import json
import logging
import os
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from safetensors.torch import load_file
from torch import Tensor, nn

from evl_lite.evaluation.efficiency import count_parameters, cpu_latency_ms
from evl_lite.evaluation.metrics import macro_auc
from evl_lite.explorers import TEMPLATE
from evl_lite.models.output import check_state_shapes
from evl_lite.models.student import ECGStudentCNN, StudentConfig
from evl_lite.training.loop import window_starts

__all__ = [
    "LogitsGraph", "TeacherLogitsGraph", "runtime_latency_pair",
    "QuantizedGraph", "quantize_dynamic_linear", "quantize_static_fx", "parameter_storage",
    "windowed_probabilities", "export_onnx", "onnx_session", "onnx_logits", "onnx_parity", "onnx_latency_ms",
    "bench_deployment", "StudentSource", "locate_student", "load_student", "edge_figure",
]


class LogitsGraph(nn.Module):
    """The student's inference path as one traceable graph: x [B, 12, T] -> logits [B, C].

    Shares the student's modules (no copy): the same weights, and in eval mode the same logits
    as ``student(x).logits`` (the tests check it).
    """

    def __init__(self, student: ECGStudentCNN):
        super().__init__()
        self.stem = student.stem
        self.blocks = student.blocks
        self.head_dropout = student.head_dropout
        self.classifier = student.classifier

    def forward(self, x: Tensor) -> Tensor:
        h = self.blocks(self.stem(x))  # [B, d_s, N_s]
        return self.classifier(self.head_dropout(h.mean(dim=2)))  # pooled [B, d_s] -> [B, C]


class TeacherLogitsGraph(nn.Module):
    """The teacher's inference path as one traceable graph: x [B, 12, T] -> logits [B, C].

    Patch embedding, encoder, pooling and classifier of an ``ECGTransformer``,
    sharing its modules, without the input checks and token layout of its ``forward``.
    """

    def __init__(self, teacher: nn.Module):
        super().__init__()
        self.teacher = teacher

    def forward(self, x: Tensor) -> Tensor:
        hidden, _ = self.teacher._encode(x, mask=None, output_attentions=False)  # [B, 1 + N, d]
        return self.teacher.classifier(self.teacher.head_dropout(self.teacher.pool(hidden)))


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence the deprecation and observer warnings of torch.ao and the exporter's log lines."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)


# --------------------------------------------------------------------------- quantisation


def quantize_dynamic_linear(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose ``nn.Linear`` layers hold int8 weights (dynamic quantisation).

    Everything else (all convolutions of a CNN) is left in float32. The copy is in eval mode.
    """
    with _quiet():
        model = copy.deepcopy(model).eval()
        return torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)


def quantize_static_fx(graph: nn.Module, calibration: Tensor, batch_size: int = 64) -> nn.Module:
    """Static int8 post-training quantisation of a traceable ``graph`` (e.g. :class:`LogitsGraph`).

    FX graph mode with the default per-channel mapping of the active quantised engine
    (``torch.backends.quantized.engine``): BatchNorm folded, Conv + ReLU fused, observers
    calibrated on ``calibration`` windows [N, 12, T], then converted. Works on a copy; returns
    a :class:`QuantizedGraph`.
    """
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    model = copy.deepcopy(graph).eval()
    calibration = torch.as_tensor(calibration, dtype=torch.float32)
    with _quiet():
        mapping = get_default_qconfig_mapping(torch.backends.quantized.engine)
        prepared = prepare_fx(model, mapping, example_inputs=(calibration[:1],))
        with torch.inference_mode():
            for i in range(0, len(calibration), batch_size):  # observers record activation ranges
                prepared(calibration[i : i + batch_size])
        return QuantizedGraph(convert_fx(prepared))


class QuantizedGraph(nn.Module):
    """A converted int8 graph, run with PyTorch's deterministic-algorithms check paused.

    ``training.seed_everything`` turns the check on (warn only), and the quantised CPU kernels
    (``quantized_resize_cpu_``) have no certified deterministic variant, so every call would
    print a warning. Their integer arithmetic gives the same result call after call on one
    machine (the tests check it).
    """

    def __init__(self, graph: nn.Module):
        super().__init__()
        self.graph = graph

    def forward(self, x: Tensor) -> Tensor:
        enabled = torch.are_deterministic_algorithms_enabled()
        warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
        if enabled:
            torch.use_deterministic_algorithms(False)
        try:
            return self.graph(x)
        finally:
            if enabled:
                torch.use_deterministic_algorithms(True, warn_only=warn_only)


def parameter_storage(model: nn.Module) -> dict[str, int]:
    """Weights stored as int8 and as float, and the bytes of the serialised state dict.

    Quantised modules expose ``weight()`` / ``bias()`` methods instead of parameters; float
    parameters are counted with ``model.parameters()``.
    """
    int8 = 0
    floats = count_parameters(model)
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if callable(weight) and not isinstance(weight, Tensor):  # a quantised module
            w = weight()
            if w.is_quantized:
                int8 += w.numel()
            else:
                floats += w.numel()
            bias = module.bias() if callable(getattr(module, "bias", None)) else None
            if bias is not None:
                floats += bias.numel()
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return {"int8_weights": int8, "float_weights": floats, "state_dict_bytes": len(buffer.getvalue())}


@torch.inference_mode()
def windowed_probabilities(
    logits_fn: Callable[[Tensor], Any], x: np.ndarray | Tensor, crop: int | None = 250, n_windows: int = 7,
    batch_size: int = 64,
) -> np.ndarray:
    """Sigmoid probabilities [N, C], the maximum over sliding windows, for any ``x -> logits`` callable.

    The evaluation rule of ``training.predict``, for models that return a tensor (a quantised
    graph) or are not torch modules (an onnxruntime session, see :func:`onnx_logits`).
    """
    x = torch.as_tensor(x, dtype=torch.float32)
    starts = window_starts(x.shape[-1], crop, n_windows)
    width = x.shape[-1] if crop is None else min(crop, x.shape[-1])
    out = []
    for i in range(0, len(x), batch_size):
        chunk = x[i : i + batch_size]
        per_window = []
        for s in starts:
            logits = logits_fn(chunk[..., s : s + width])
            logits = logits.logits if hasattr(logits, "logits") else torch.as_tensor(logits)
            per_window.append(torch.sigmoid(logits.float()))
        out.append(torch.stack(per_window).amax(dim=0))
    return torch.cat(out).numpy()


# --------------------------------------------------------------------------- ONNX


def export_onnx(graph: nn.Module, example: Tensor, path: str | os.PathLike, opset: int | None = None) -> Path:
    """Export ``graph`` (x -> logits) to one ONNX file with a dynamic batch axis named ``batch``.

    Input ``x [batch, 12, T]``, output ``logits [batch, C]``; the weights are stored inside the
    file. ``torch.export`` specialises sizes 0 and 1, so the example is repeated to a batch of 2.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.as_tensor(example, dtype=torch.float32)
    if example.shape[0] < 2:
        example = example[:1].repeat(2, 1, 1)
    with _quiet():
        torch.onnx.export(
            graph.eval(), (example,), str(path), input_names=["x"], output_names=["logits"], dynamo=True,
            dynamic_shapes={"x": {0: torch.export.Dim("batch")}}, external_data=False, opset_version=opset,
            verbose=False,
        )
    return path


def onnx_session(path: str | os.PathLike, threads: int = 1):
    """An onnxruntime CPU session for ``path`` with ``threads`` intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def onnx_logits(session) -> Callable[[Tensor], Tensor]:
    """``x [B, 12, T] -> logits [B, C]`` through an onnxruntime session (float32 in and out)."""
    name = session.get_inputs()[0].name

    def run(x: Tensor) -> Tensor:
        array = np.ascontiguousarray(torch.as_tensor(x).detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(session.run(None, {name: array})[0])

    return run


@torch.inference_mode()
def onnx_parity(
    model: nn.Module, session, windows: np.ndarray | Tensor, batch_size: int = 64
) -> dict[str, Any]:
    """Largest and mean |logits_onnx - logits_torch| over ``windows`` [N, 12, T], run in batches."""
    windows = torch.as_tensor(windows, dtype=torch.float32)
    run = onnx_logits(session)
    flags = {m: m.training for m in model.modules()}
    model.eval()
    diffs = []
    try:
        for i in range(0, len(windows), batch_size):
            chunk = windows[i : i + batch_size]
            reference = model(chunk)
            reference = reference.logits if hasattr(reference, "logits") else reference
            diffs.append((run(chunk) - reference.float()).abs().double())  # [b, C]
    finally:
        for m, flag in flags.items():
            m.training = flag
    d = torch.cat(diffs)  # [N, C]
    sizes = sorted({len(windows[i : i + batch_size]) for i in range(0, len(windows), batch_size)})
    return {"max_abs_diff": float(d.max()), "mean_abs_diff": float(d.mean()), "n_windows": len(windows),
            "batch_sizes": sizes}


def onnx_latency_ms(
    session, example: Tensor | np.ndarray, warmup: int = 3, repeats: int = 20
) -> dict[str, float]:
    """Median and 90th-percentile wall-clock time (ms) of one ``session.run`` on ``example``."""
    name = session.get_inputs()[0].name
    array = np.ascontiguousarray(torch.as_tensor(example).numpy(), dtype=np.float32)
    for _ in range(warmup):
        session.run(None, {name: array})
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, {name: array})
        times.append((time.perf_counter() - start) * 1e3)
    return {"median": float(np.median(times)), "p90": float(np.percentile(times, 90))}


def runtime_latency_pair(
    teacher: nn.Module,
    student: ECGStudentCNN,
    length: int,
    out_dir: str | os.PathLike,
    warmup: int = 20,
    repeats: int = 200,
) -> dict[str, Any]:
    """Batch-1 latency (ms, one thread) of teacher and student in eager PyTorch and in onnxruntime.

    Each model's logits graph is exported to ``out_dir/{teacher,student}.onnx``; the parity of
    each export on the timing input is reported next to its latency. Returns per runtime the two
    medians and ``teacher_over_student``. The student's sub-millisecond onnxruntime time needs
    the many repeats: with 20 we saw its median nearly double from run to run.
    """
    example = torch.randn(1, student.config.n_leads, length, generator=torch.Generator().manual_seed(0))
    graphs = {"teacher": TeacherLogitsGraph(teacher).eval(), "student": LogitsGraph(student).eval()}
    report: dict[str, Any] = {"length": length, "eager_pytorch": {}, "onnxruntime": {}}
    report["onnx_max_abs_diff"] = {}
    for name, graph in graphs.items():
        report["eager_pytorch"][name] = cpu_latency_ms(graph, example, warmup, repeats, threads=1)["median"]
        session = onnx_session(export_onnx(graph, example, Path(out_dir) / f"{name}.onnx"), threads=1)
        report["onnxruntime"][name] = onnx_latency_ms(session, example, warmup, repeats)["median"]
        with torch.inference_mode():
            difference = onnx_logits(session)(example) - graph(example)
        report["onnx_max_abs_diff"][name] = float(difference.abs().max())
    for runtime in ("eager_pytorch", "onnxruntime"):
        times = report[runtime]
        times["teacher_over_student"] = times["teacher"] / times["student"]
    return report


# --------------------------------------------------------------------------- the student to deploy


@dataclass(frozen=True)
class StudentSource:
    """Where a trained student lives: ``weights`` (safetensors), its ``config`` file if any, the
    teacher it was distilled from (if recorded) and a sentence saying where it came from."""

    weights: Path
    config: Path | None
    teacher_dir: str | None
    origin: str


def _training_weights(directory: Path) -> Path | None:
    for candidate in (directory / "checkpoint", directory / "checkpoint.old"):
        if (candidate / "best_model.safetensors").is_file():
            return candidate / "best_model.safetensors"
    return None


def locate_student(
    student_dir: str | os.PathLike | None,
    output_dir: str | os.PathLike,
    seed: int,
    data_root: str | os.PathLike,
    smoke: bool,
    method: str = "evl",
) -> StudentSource | None:
    """The trained student a notebook evaluates, or None when there is none to load.

    ``student_dir`` (the notebook's ``STUDENT_DIR``): a ``save_pretrained`` directory or the
    ``out_dir`` of a ``train`` run (``checkpoint/best_model.safetensors``); given but missing is
    an error. Otherwise notebook 07's run next to ``output_dir``
    (``../07_full_training/experiment/runs/<method>/seed<seed>``), used only when it finished
    (``result.json``) on the same data (``data_root``) and scale (``smoke``).
    """
    if student_dir:
        path = Path(student_dir)
        if (path / "config.json").is_file() and (path / "model.safetensors").is_file():
            return StudentSource(path / "model.safetensors", path / "config.json", None,
                                 f"loaded from {path}")
        weights = _training_weights(path) or _training_weights(path / "training")
        if weights is None:
            raise FileNotFoundError(f"STUDENT_DIR {path} holds neither a saved student (config.json + "
                                    "model.safetensors) nor a training checkpoint")
        return StudentSource(weights, None, None, f"best checkpoint of the training run in {path}")
    experiment = Path(output_dir).parent / "07_full_training" / "experiment"
    run = experiment / "runs" / method / f"seed{seed}"
    results = experiment / "results.json"
    if not ((run / "result.json").is_file() and results.is_file()):
        return None
    record = json.loads(results.read_text())
    if record.get("path") != str(data_root) or bool(record.get("smoke")) != bool(smoke):
        return None
    weights = _training_weights(run / "training")
    if weights is None:
        return None
    teacher_dir = (record.get("teacher") or {}).get("dir")
    return StudentSource(weights, None, teacher_dir, f"notebook 07's {method} student (seed {seed}) in {run}")


def load_student(source: StudentSource, config: StudentConfig | None = None) -> ECGStudentCNN:
    """The student of ``source`` in eval mode; ``config`` builds it when the source has no config file."""
    if source.config is not None:
        return ECGStudentCNN.from_pretrained(source.config.parent)
    student = ECGStudentCNN(config or StudentConfig())
    state = load_file(source.weights)
    check_state_shapes({k: tuple(v.shape) for k, v in student.state_dict().items()},
                       {k: tuple(v.shape) for k, v in state.items()}, source.weights)
    student.load_state_dict(state)
    return student.eval()


# --------------------------------------------------------------------------- the whole benchmark


def bench_deployment(
    student: ECGStudentCNN,
    x_test: np.ndarray,
    y_test: np.ndarray,
    out_dir: str | os.PathLike,
    x_calibration: np.ndarray | None = None,
    crop: int = 250,
    n_windows: int = 7,
    threads: int = 1,
    warmup: int = 3,
    repeats: int = 20,
    n_parity: int = 256,
) -> dict[str, Any]:
    """Float, dynamic-int8, static-int8 and ONNX versions of ``student`` on a test split.

    For each: test macro-AUC (max over ``n_windows`` windows of ``crop`` samples), CPU latency of
    one window at batch 1 on ``threads`` threads, and stored weights. ``x_calibration``: records
    whose first windows calibrate static quantisation (pass training records; the default, the
    test records, lets the test split set the activation scales). The ONNX file goes to
    ``out_dir/student.onnx``; parity on up to ``n_parity`` test windows.
    """
    student = student.eval()
    out = Path(out_dir)
    graph = LogitsGraph(student).eval()
    starts = window_starts(x_test.shape[-1], crop, n_windows)
    windows = torch.as_tensor(np.concatenate([x_test[..., s : s + crop] for s in starts]))  # [N K, 12, crop]
    calibration_source = x_test if x_calibration is None else x_calibration
    calibration = torch.as_tensor(calibration_source[..., :crop], dtype=torch.float32)
    example = windows[:1]  # [1, 12, crop]
    timing = {"warmup": warmup, "repeats": repeats, "threads": threads}

    dynamic = quantize_dynamic_linear(graph)
    static = quantize_static_fx(graph, calibration)
    onnx_path = export_onnx(graph, windows[:2], out / "student.onnx")
    session = onnx_session(onnx_path, threads=threads)
    variants: dict[str, nn.Module] = {"float": graph, "dynamic_int8": dynamic, "static_int8": static}
    report: dict[str, Any] = {"crop": crop, "n_windows": n_windows, "threads": threads,
                              "quantized_engine": torch.backends.quantized.engine}
    for name, model in variants.items():
        probs = windowed_probabilities(model, x_test, crop, n_windows)
        report[name] = {
            "test_macro_auc": macro_auc(y_test, probs)[0],
            "latency_ms": cpu_latency_ms(model, example, **timing),
            **parameter_storage(model),
        }
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        onnx_probs = windowed_probabilities(onnx_logits(session), x_test, crop, n_windows)
    finally:
        torch.set_num_threads(old_threads)
    report["onnx"] = {
        "path": str(onnx_path),
        "file_bytes": onnx_path.stat().st_size,
        "test_macro_auc": macro_auc(y_test, onnx_probs)[0],
        "latency_ms": onnx_latency_ms(session, example, warmup, repeats),
        "parity": onnx_parity(graph, session, windows[:n_parity]),
    }
    return report


# --------------------------------------------------------------------------- figures


def edge_figure(rows: list[dict[str, Any]], title: str = "what each version costs and scores") -> go.Figure:
    """Bars of test macro-AUC, latency (ms, batch 1) and stored size (kB) per model version.

    ``rows``: dicts with ``name``, ``macro_auc``, ``latency_ms``, ``size_kb``. Traces: three bar traces.
    """
    names = [r["name"] for r in rows]
    fig = make_subplots(rows=1, cols=3, subplot_titles=("test macro-AUC", "CPU latency, batch 1 (ms)",
                                                        "stored weights (kB)"))
    for col, (key, colour) in enumerate((("macro_auc", "#1f4e9c"), ("latency_ms", "#d62728"),
                                         ("size_kb", "#2ca02c")), start=1):
        values = [r[key] for r in rows]
        fig.add_trace(go.Bar(x=names, y=values, marker_color=colour, showlegend=False,
                             text=[f"{v:.3g}" for v in values], textposition="outside"), row=1, col=col)
    fig.update_layout(title=title, template=TEMPLATE, height=420, width=1050)
    return fig
