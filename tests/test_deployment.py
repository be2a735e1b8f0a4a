"""Deployment: the logits graph, int8 quantisation, ONNX export and parity, finding the student, the bench."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from evl_lite.errors import ECGDataError
from evl_lite.evaluation.deployment import (
    LogitsGraph,
    TeacherLogitsGraph,
    bench_deployment,
    export_onnx,
    load_student,
    locate_student,
    onnx_latency_ms,
    onnx_logits,
    onnx_parity,
    onnx_session,
    parameter_storage,
    quantize_dynamic_linear,
    quantize_static_fx,
    runtime_latency_pair,
    windowed_probabilities,
)
from evl_lite.evaluation.efficiency import count_parameters
from evl_lite.models.student import ECGStudentCNN, StudentConfig
from evl_lite.models.teacher import ECGTransformer, ECGTransformerConfig
from evl_lite.training.loop import predict

SMALL = StudentConfig(stem_channels=8, stage_channels=(8, 16), stage_strides=(1, 2), stage_dilations=(1, 1))


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny models, one thread


def small_student(seed: int = 0) -> ECGStudentCNN:
    """A random small student whose BatchNorm statistics are not the identity (as after training)."""
    torch.manual_seed(seed)
    student = ECGStudentCNN(SMALL)
    with torch.no_grad():
        for m in student.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    return student.eval()


def ecgs(n: int, t: int = 250, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 12, t, generator=torch.Generator().manual_seed(seed))  # [n, 12, T]


def test_logits_graph_is_the_students_inference_path():
    student = small_student()
    x = ecgs(4)
    with torch.no_grad():
        torch.testing.assert_close(LogitsGraph(student)(x), student(x).logits, rtol=0, atol=0)
    assert count_parameters(LogitsGraph(student)) == count_parameters(student)  # shared, not copied


def test_onnx_export_runs_in_onnxruntime_with_parity(tmp_path):
    student = small_student()
    graph = LogitsGraph(student)
    path = export_onnx(graph, ecgs(1), tmp_path / "student.onnx")  # a batch of 1 is widened to 2
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [12, 250]
    session = onnx_session(path)
    run = onnx_logits(session)
    for batch in (1, 3, 17):  # the batch axis is dynamic
        x = ecgs(batch, seed=batch)
        out = run(x)
        assert out.shape == (batch, 5)
        with torch.no_grad():
            assert (out - student(x).logits).abs().max() < 1e-4
    parity = onnx_parity(student, session, ecgs(40, seed=7), batch_size=16)
    assert parity["max_abs_diff"] < 1e-4 and parity["n_windows"] == 40 and parity["batch_sizes"] == [8, 16]
    timing = onnx_latency_ms(session, ecgs(1), warmup=1, repeats=3)
    assert 0 < timing["median"] <= timing["p90"]


def test_onnx_parity_detects_a_different_model(tmp_path):
    path = export_onnx(LogitsGraph(small_student(0)), ecgs(2), tmp_path / "a.onnx")
    parity = onnx_parity(small_student(1), onnx_session(path), ecgs(8))
    assert parity["max_abs_diff"] > 1e-3


def test_dynamic_quantisation_covers_only_the_linear_layer():
    student = small_student()
    quantised = quantize_dynamic_linear(student)
    x = ecgs(6)
    with torch.no_grad():
        logits = quantised(x).logits
        reference = student(x).logits
    assert logits.shape == (6, 5) and torch.isfinite(logits).all()
    assert (logits - reference).abs().max() < 0.05  # int8 weights of one small layer: close, not equal
    storage = parameter_storage(quantised)
    float_storage = parameter_storage(student)
    assert storage["int8_weights"] == student.classifier.weight.numel() == 16 * 5
    assert storage["int8_weights"] + storage["float_weights"] == count_parameters(student)
    assert float_storage == {**float_storage, "int8_weights": 0, "float_weights": count_parameters(student)}
    # 80 int8 weights save less than the packed format's overhead: the size is reported, not smaller
    assert storage["state_dict_bytes"] > 0
    assert float_storage["state_dict_bytes"] > 4 * count_parameters(student)
    assert isinstance(quantised.stem[0], nn.Conv1d)  # convolutions stay float32
    assert isinstance(student.classifier, nn.Linear)  # the original is not modified
    # the quantised student still returns a ModelOutput, so the evaluation code runs unchanged
    probs = predict(quantised, ecgs(5, t=500).numpy(), crop=250, n_windows=3)
    assert probs.shape == (5, 5) and np.isfinite(probs).all()


def test_static_quantisation_puts_every_conv_and_linear_weight_in_int8():
    student = small_student()
    graph = LogitsGraph(student)
    quantised = quantize_static_fx(graph, ecgs(32, seed=3))
    x = ecgs(6)
    with torch.no_grad():
        logits = quantised(x)
        reference = graph(x)
    assert logits.shape == (6, 5) and torch.isfinite(logits).all()
    assert (logits - reference).abs().max() < 0.25 * reference.abs().max() + 0.05
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)  # as training.seed_everything leaves it
    try:
        with torch.no_grad():
            torch.testing.assert_close(quantised(x), logits, rtol=0, atol=0)  # the same integers every call
        assert torch.are_deterministic_algorithms_enabled()  # the check is restored after the call
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
    n_weights = sum(m.weight.numel() for m in student.modules() if isinstance(m, nn.Conv1d | nn.Linear))
    storage = parameter_storage(quantised)
    assert storage["int8_weights"] == n_weights
    assert storage["state_dict_bytes"] < parameter_storage(graph)["state_dict_bytes"]


def test_windowed_probabilities_match_predict():
    student = small_student()
    x = ecgs(7, t=600).numpy()
    expected = predict(student, x, crop=250, n_windows=4)
    for model in (student, LogitsGraph(student)):  # ModelOutput or a tensor of logits
        probs = windowed_probabilities(model, x, crop=250, n_windows=4)
        np.testing.assert_allclose(probs, expected, atol=1e-7)


def fake_notebook_07(root, data_root, smoke=True, finished=True):
    """The layout notebook 07 leaves behind, with one EVL student's best weights."""
    run = root / "07_full_training" / "experiment" / "runs" / "evl" / "seed0"
    (run / "training" / "checkpoint").mkdir(parents=True)
    student = small_student(2)
    save_file({k: v.contiguous() for k, v in student.state_dict().items()},
              run / "training" / "checkpoint" / "best_model.safetensors")
    if finished:
        (run / "result.json").write_text("{}")
    (root / "07_full_training" / "experiment" / "results.json").write_text(
        json.dumps({"path": str(data_root), "smoke": smoke, "teacher": {"dir": "/somewhere/teacher"}}))
    return student


def test_locate_student_finds_notebook_07s_evl_run_on_the_same_data(tmp_path):
    student = fake_notebook_07(tmp_path, "/data/a")
    out = tmp_path / "08_evaluation_and_interpretation"
    source = locate_student("", out, seed=0, data_root="/data/a", smoke=True)
    assert source is not None and source.teacher_dir == "/somewhere/teacher" and "07" in source.origin
    loaded = load_student(source, SMALL)
    x = ecgs(2)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).logits, student(x).logits)
    assert not loaded.training
    assert locate_student("", out, seed=0, data_root="/data/b", smoke=True) is None  # other data
    assert locate_student("", out, seed=0, data_root="/data/a", smoke=False) is None  # other scale
    assert locate_student("", out, seed=1, data_root="/data/a", smoke=True) is None  # other seed
    with pytest.raises(ECGDataError, match="do not match"):
        load_student(source, StudentConfig())  # weights of another size are refused


def test_locate_student_ignores_an_unfinished_run_and_reads_explicit_directories(tmp_path):
    fake_notebook_07(tmp_path, "/data/a", finished=False)
    assert locate_student("", tmp_path / "08", seed=0, data_root="/data/a", smoke=True) is None
    saved = small_student(3)
    saved.save_pretrained(tmp_path / "mine")
    source = locate_student(str(tmp_path / "mine"), tmp_path / "08", 0, "/data/a", True)
    assert source is not None and source.config is not None
    x = ecgs(2)
    with torch.no_grad():
        torch.testing.assert_close(load_student(source)(x).logits, saved(x).logits)
    run_dir = tmp_path / "07_full_training" / "experiment" / "runs" / "evl" / "seed0"
    explicit = locate_student(str(run_dir), tmp_path / "08", 0, "/x", False)  # data checks are the user's
    assert explicit.weights.name == "best_model.safetensors" and explicit.config is None
    with pytest.raises(FileNotFoundError, match="STUDENT_DIR"):
        locate_student(str(tmp_path / "nothing"), tmp_path / "08", 0, "/data/a", True)


def test_bench_deployment_reports_every_version(tmp_path):
    student = small_student()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((24, 12, 500)).astype(np.float32)
    y = np.zeros((24, 5), dtype=np.float32)
    y[::2, 0] = y[1::3, 1] = y[::4, 2] = y[1::2, 3] = y[::5, 4] = 1
    report = bench_deployment(student, x, y, tmp_path, x_calibration=x[:8], n_windows=3, warmup=1, repeats=2)
    assert set(report) >= {"float", "dynamic_int8", "static_int8", "onnx"}
    assert report["onnx"]["parity"]["max_abs_diff"] < 1e-4
    assert report["onnx"]["test_macro_auc"] == pytest.approx(report["float"]["test_macro_auc"], abs=1e-6)
    assert report["dynamic_int8"]["int8_weights"] == 80 and report["float"]["int8_weights"] == 0
    for name in ("float", "dynamic_int8", "static_int8"):
        assert 0 <= report[name]["test_macro_auc"] <= 1 and report[name]["latency_ms"]["median"] > 0
    assert (tmp_path / "student.onnx").is_file()
    json.dumps(report)  # JSON-able for the command line


@pytest.mark.parametrize("pooling", ["cls", "mean", "leads"])
def test_teacher_logits_graph_is_the_teachers_inference_path(pooling):
    torch.manual_seed(0)
    teacher = ECGTransformer(ECGTransformerConfig(d_model=32, n_layers=1, n_heads=2, ffn=64, pooling=pooling))
    x = ecgs(3)
    with torch.inference_mode():
        expected = teacher.eval()(x).logits
        assert torch.equal(TeacherLogitsGraph(teacher).eval()(x), expected)
        teacher.train()  # dropout on: the graph follows the teacher's mode, as its forward does
        assert not torch.equal(TeacherLogitsGraph(teacher)(x), expected)


def test_runtime_latency_pair_times_both_exported_graphs(tmp_path):
    torch.manual_seed(0)
    teacher = ECGTransformer(ECGTransformerConfig(d_model=32, n_layers=1, n_heads=2, ffn=64)).eval()
    report = runtime_latency_pair(teacher, small_student(), 250, tmp_path, warmup=1, repeats=3)
    assert (tmp_path / "teacher.onnx").is_file() and (tmp_path / "student.onnx").is_file()
    for runtime in ("eager_pytorch", "onnxruntime"):
        times = report[runtime]
        assert times["teacher"] > 0 and times["student"] > 0
        assert times["teacher_over_student"] == pytest.approx(times["teacher"] / times["student"])
    assert report["onnx_max_abs_diff"]["teacher"] < 1e-4 and report["onnx_max_abs_diff"]["student"] < 1e-4
