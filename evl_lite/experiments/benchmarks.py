"""Benchmarks behind ``python -m evl_lite bench ...``: each returns a JSON-able dict of figures.

Timings on shared machines are noisy: compare the ratios measured within one run.
"""

from __future__ import annotations

import tempfile
import time

import numpy as np
import torch

from evl_lite.data.dataset import ECGSplit
from evl_lite.distillation import LogitKD
from evl_lite.distillation.teacher_cache import TeacherCache
from evl_lite.evaluation.efficiency import efficiency_report
from evl_lite.models.output import count_parameters
from evl_lite.models.student import ECGStudentCNN, StudentConfig
from evl_lite.models.teacher import ECGTransformer
from evl_lite.training.loop import Distillation, Supervised, TrainConfig, train, window_starts


def bench_models(length: int = 1000, repeats: int = 20) -> dict:
    """Parameters, FLOPs, CPU latency (batch 1 and 32) and peak memory of the course's models.

    ``latency_b1_by_runtime``: batch 1, one thread, one 2.5 s window, both inference graphs in
    eager PyTorch and in onnxruntime (:func:`evl_lite.evaluation.deployment.runtime_latency_pair`).

    The teacher is the one the notebooks train (:func:`evl_lite.training.recipes.teacher_recipe`).
    """
    from evl_lite.training.recipes import teacher_recipe

    torch.manual_seed(0)
    teacher = ECGTransformer(teacher_recipe(smoke=False)[0]).eval()
    student = ECGStudentCNN(StudentConfig()).eval()
    reports = {
        name: efficiency_report(model, length=length, batch_sizes=(1, 32), repeats=repeats)
        for name, model in (("teacher", teacher), ("student", student))
    }
    from evl_lite.evaluation.deployment import runtime_latency_pair

    with tempfile.TemporaryDirectory() as onnx_dir:
        runtimes = runtime_latency_pair(teacher, student, 250, onnx_dir)
    t, s = reports["teacher"], reports["student"]
    ratios = {
        "params_teacher_over_student": t["params"] / s["params"],
        "flops_teacher_over_student": t["flops"] / s["flops"],
        **{
            f"latency_b{b}_teacher_over_student": t["latency_ms"][b]["median"] / s["latency_ms"][b]["median"]
            for b in t["latency_ms"]
        },
    }
    threads = torch.get_num_threads()
    return {**reports, "ratios": ratios, "threads": threads, "latency_b1_by_runtime": runtimes}


def _random_split(name: str, n: int, length: int, seed: int) -> ECGSplit:
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 5)) < 0.3).astype(np.float32)
    y[:2] = [[1, 0, 1, 0, 1], [0, 1, 0, 1, 0]]  # every class present
    x = rng.standard_normal((n, 12, length)).astype(np.float32)
    return ECGSplit(name=name, x=x, y=y, ecg_ids=np.arange(n), fs=100)


def bench_distillation_epoch(n_train: int = 512, length: int = 1000, repeats: int = 2) -> dict:
    """Seconds per training epoch of the plain student vs the student distilled through the cache.

    Target: distillation epoch <= 1.5 x plain epoch. The one-off cost of filling the teacher
    cache is reported separately. Validation runs on a tiny split so the epoch is mostly training.
    """
    train_split, val_split = _random_split("train", n_train, length, 0), _random_split("val", 16, length, 1)
    config = TrainConfig(epochs=1, batch_size=32, crop=250, progress=False)
    from evl_lite.training.recipes import teacher_recipe

    torch.manual_seed(0)
    teacher = ECGTransformer(teacher_recipe(smoke=False)[0]).eval()
    start = time.perf_counter()
    cache = TeacherCache.build(
        teacher, train_split.x, 250, window_starts(length, 250, config.eval_windows), progress=False
    )
    cache_seconds = time.perf_counter() - start

    def epoch(objective, teacher_fn) -> float:
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            train(
                ECGStudentCNN(StudentConfig()),
                train_split,
                val_split,
                config,
                objective=objective,
                teacher=teacher_fn,
            )
            best = min(best, time.perf_counter() - t0)
        return best

    plain = epoch(Supervised(), None)
    distilled = epoch(Distillation({"kd": LogitKD()}), cache)
    return {
        "train_records": n_train,
        "plain_epoch_s": plain,
        "distillation_epoch_s": distilled,
        "ratio": distilled / plain,
        "target_ratio": 1.5,
        "teacher_cache_fill_s": cache_seconds,
        "cache_mb": (cache.tokens.numel() + cache.logits.numel() + cache.pooled.numel()) * 2 / 2**20,
    }


def _median_ms(step, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def _interleaved_median_ms(steps: dict, repeats: int) -> dict[str, float]:
    """Median ms of each step, timed in turn each round: drift in the machine's load hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            times[name].append(_median_ms(step, 1, warmup=1))
    return {name: float(np.median(t)) for name, t in times.items()}


def bench_components(batch_size: int = 64, crop: int = 250, repeats: int = 20) -> dict:
    """Forward + backward time (median ms) of each EVL component on one batch with the real token counts.

    Tokens come from the workshop teacher and the student on a ``crop``-sample window. Targets:
    each component <= 50 ms for a batch of 64 on 2 cores, and the three together add <= 50%
    to the student's own forward + backward.
    """
    from torch.nn import functional as F

    from evl_lite.distillation.evl import EVL_COMPONENTS, method_losses
    from evl_lite.training.recipes import teacher_recipe

    torch.manual_seed(0)
    teacher = ECGTransformer(teacher_recipe(smoke=False)[0]).eval()
    student = ECGStudentCNN(StudentConfig()).train()
    x = torch.randn(batch_size, 12, crop)
    y = (torch.rand(batch_size, 5) < 0.3).float()
    with torch.no_grad():
        t_out = teacher(x)
        s_out = student(x)
    losses, _ = method_losses("evl", s_out.tokens.shape[2], t_out.tokens.shape[2])

    def student_step(with_components: bool) -> None:
        student.zero_grad(set_to_none=True)
        out = student(x)
        loss = F.binary_cross_entropy_with_logits(out.logits, y)
        if with_components:
            loss = loss + sum(losses[name](out, t_out, {})[0] for name in EVL_COMPONENTS)
        loss.backward()

    def component_step(name: str) -> None:
        out = type(s_out)(
            logits=s_out.logits.detach(),
            tokens=s_out.tokens.detach().requires_grad_(),
            pooled=s_out.pooled.detach().requires_grad_(),
            token_layout=s_out.token_layout,
        )
        losses[name](out, t_out, {})[0].backward()

    steps = {"plain": lambda: student_step(False), "with": lambda: student_step(True)}
    medians = _interleaved_median_ms(steps, repeats)
    plain, with_all = medians["plain"], medians["with"]
    component_ms = {name: _median_ms(lambda n=name: component_step(n), repeats) for name in EVL_COMPONENTS}
    return {
        "batch_size": batch_size,
        "student_tokens": list(s_out.tokens.shape[1:]),
        "teacher_tokens": list(t_out.tokens.shape[1:]),
        "torch_threads": torch.get_num_threads(),
        "component_fwd_bwd_ms": component_ms,
        "target_component_ms": 50.0,
        "student_fwd_bwd_ms": plain,
        "student_with_components_fwd_bwd_ms": with_all,
        "overhead_ratio": with_all / plain - 1,
        "target_overhead_ratio": 0.5,
    }


def bench_teacher_step(
    against: dict | None = None, batch_size: int = 32, crop: int = 250, repeats: int = 20
) -> dict:
    """Training step (forward, backward, AdamW) of the workshop teacher vs the same recipe with
    ``against`` overriding its config (default: no stem blocks), timed interleaved (median ms).

    The ratio says what a recipe change costs in notebook 02's fine-tuning, on one machine in one run.
    Steps run in the training loop's deterministic mode (``training.seed_everything``); the recipe
    is timed once more with that mode's NaN fill of new tensors, which the loop switches off
    (``nan_fill_ratio``: the step with the fill over the step without).
    """
    from torch.nn import functional as F

    from evl_lite.models.teacher import ECGTransformerConfig
    from evl_lite.training.loop import seed_everything
    from evl_lite.training.recipes import teacher_recipe

    seed_everything(0)

    against = {"stem_blocks": 0} if against is None else against
    recipe = teacher_recipe(smoke=False)[0]
    configs = {"recipe": recipe, "against": ECGTransformerConfig(**{**recipe.to_dict(), **against})}
    x = torch.randn(batch_size, 12, crop)
    y = (torch.rand(batch_size, 5) < 0.3).float()
    steps, parameters = {}, {}
    for name, config in configs.items():
        torch.manual_seed(0)
        model = ECGTransformer(config).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        parameters[name] = count_parameters(model)

        def step(model=model, optimizer=optimizer) -> None:
            optimizer.zero_grad(set_to_none=True)
            F.binary_cross_entropy_with_logits(model(x).logits, y).backward()
            optimizer.step()

        steps[name] = step

    def with_nan_fill(step=steps["recipe"]) -> None:
        torch.utils.deterministic.fill_uninitialized_memory = True
        try:
            step()
        finally:
            torch.utils.deterministic.fill_uninitialized_memory = False

    steps["recipe_nan_fill"] = with_nan_fill
    medians = _interleaved_median_ms(steps, repeats)
    recipe_ms, against_ms = medians["recipe"], medians["against"]
    return {
        "against": against,
        "batch_size": batch_size,
        "crop": crop,
        "torch_threads": torch.get_num_threads(),
        "recipe_parameters": parameters["recipe"],
        "against_parameters": parameters["against"],
        "recipe_step_ms": recipe_ms,
        "against_step_ms": against_ms,
        "ratio": recipe_ms / against_ms,
        "recipe_nan_fill_step_ms": medians["recipe_nan_fill"],
        "nan_fill_ratio": medians["recipe_nan_fill"] / recipe_ms,
    }


def bench_splits(source: str = "synthetic", data_dir: str | None = None, repeats: int = 3) -> dict:
    """Seconds to load the preprocessed splits of ``benchmark.load_benchmark_data`` by reading every
    record vs from the split cache (:mod:`evl_lite.data.split_cache`), timed interleaved (median).

    The cache lives in a temporary directory for the run; the first cached call writes it.
    """
    from evl_lite.data.benchmark import (
        MODEL_NORMALISATION,
        benchmark_root,
        current_scale,
        model_preprocessing,
    )
    from evl_lite.data.dataset import prepare_splits
    from evl_lite.data.split_cache import cached_splits

    root = benchmark_root(source, data_dir)  # synthetic data generated when missing
    config = model_preprocessing()
    with tempfile.TemporaryDirectory() as cache_dir:
        start = time.perf_counter()
        splits = cached_splits(root, config, MODEL_NORMALISATION, cache_dir, progress=False)  # writes it
        first = time.perf_counter() - start
        steps = {
            "read": lambda: prepare_splits(root, config=config, normalisation=MODEL_NORMALISATION,
                                           progress=False),
            "cached": lambda: cached_splits(root, config, MODEL_NORMALISATION, cache_dir, progress=False),
        }
        seconds: dict[str, list[float]] = {name: [] for name in steps}
        for _ in range(repeats):
            for name, step in steps.items():
                start = time.perf_counter()
                step()
                seconds[name].append(time.perf_counter() - start)
    read, cached = (float(np.median(v)) for v in seconds.values())
    return {
        "data": str(root),
        "scale": current_scale(False),
        "records": int(sum(len(s) for s in splits.values())),
        "repeats": repeats,
        "read_s": read,
        "first_cached_s": first,
        "cached_s": cached,
        "speedup": read / cached,
    }


def bench_edge(experiment_dir: str, method: str = "evl", seed: int = 0, repeats: int = 20) -> dict:
    """Teacher vs student at the edge, from a finished experiment (``python -m evl_lite experiment``).

    The experiment's teacher and its ``method`` student of ``seed``, on the experiment's data:
    parameters, FLOPs and CPU latency at batch 1 (one thread, one 2.5 s window) and their ratios
    (targets: >= 10x fewer parameters, >= 5x lower latency), then the student's float, int8
    and ONNX versions (:func:`evl_lite.evaluation.deployment.bench_deployment`): test macro-AUC, latency,
    size and ONNX parity. The ONNX files are written into the run's directory.
    ``latency_b1_by_runtime`` times both models' inference graphs in eager PyTorch and, exported
    to ONNX, in onnxruntime (:func:`evl_lite.evaluation.deployment.runtime_latency_pair`).
    """
    import json
    from pathlib import Path

    from evl_lite.data.benchmark import load_benchmark_data
    from evl_lite.evaluation.deployment import (
        StudentSource,
        bench_deployment,
        load_student,
        runtime_latency_pair,
    )
    from evl_lite.evaluation.deployment import _training_weights as training_weights

    root = Path(experiment_dir)
    results = json.loads((root / "results.json").read_text())
    run = root / "runs" / method / f"seed{seed}"
    weights = training_weights(run / "training")
    if weights is None:
        raise FileNotFoundError(f"{run}: no trained {method} student (run the experiment first)")
    data = load_benchmark_data(results["data"], results["path"], smoke=results["smoke"], progress=False)
    student = load_student(StudentSource(weights, None, None, str(run))).eval()
    teacher = ECGTransformer.from_pretrained(results["teacher"]["dir"]).eval()
    crop, n_windows = results["student_train_config"]["crop"], results["student_train_config"]["eval_windows"]
    cost = {
        name: efficiency_report(model, length=crop, batch_sizes=(1,), threads=1, repeats=repeats)
        for name, model in (("teacher", teacher), ("student", student))
    }
    edge = {
        name: {"params": r["params"], "flops": r["flops"], "latency_ms": r["latency_ms"]["1"]["median"]}
        for name, r in cost.items()
    }
    runtimes = runtime_latency_pair(teacher, student, crop, run)
    report = bench_deployment(
        student,
        data.test.x,
        data.test.y,
        run,
        x_calibration=data.train.x,
        crop=crop,
        n_windows=n_windows,
        repeats=repeats,
    )
    float_auc = report["float"]["test_macro_auc"]
    return {
        "experiment": str(root),
        "method": method,
        "seed": seed,
        "window_samples": crop,
        "teacher": edge["teacher"],
        "student": edge["student"],
        "params_teacher_over_student": edge["teacher"]["params"] / edge["student"]["params"],
        "latency_b1_teacher_over_student": edge["teacher"]["latency_ms"] / edge["student"]["latency_ms"],
        "targets": {"params_ratio": 10.0, "latency_ratio": 5.0},
        "latency_b1_by_runtime": runtimes,  # inference graphs: eager PyTorch and onnxruntime, like for like
        "student_versions": {
            k: {kk: vv for kk, vv in v.items() if kk != "parity"}
            for k, v in report.items()
            if isinstance(v, dict)
        },
        "dynamic_int8_auc_change": report["dynamic_int8"]["test_macro_auc"] - float_auc,
        "static_int8_auc_change": report["static_int8"]["test_macro_auc"] - float_auc,
        "onnx_max_abs_logit_diff": report["onnx"]["parity"]["max_abs_diff"],
    }


def bench_predict(data_dir: str | None = None, records: int = 500, threads: int = 2) -> dict:
    """Records per second of ``python -m evl_lite predict``, end to end, and each stage's share.

    Every record below ``data_dir`` (default ``../shared/data/ptbxl-500/records100``: 500 PTB-XL
    records of 10 s at 100 Hz), up to ``records``, is read (WFDB), prepared (band-pass, z-score,
    windows) and scored by the shipped student as ``predict`` does it
    (:func:`evl_lite.predict.pipeline.predict_records`), once with onnxruntime (the student
    exported to a temporary ONNX file; the export is not timed) and once with PyTorch, each on
    ``threads`` threads, after a warm-up on 16 records. The files are read once beforehand, so both
    runs find them in the page cache. Targets: >= 100 records/s with onnxruntime on 2 cores, and
    reading not the largest stage.
    """
    import os
    from pathlib import Path

    from evl_lite.predict.pipeline import StageTimes, predict_records
    from evl_lite.predict.predictor import export_student, load_predictor
    from evl_lite.predict.records import find_records

    shared = Path(__file__).resolve().parents[3] / "shared" / "data" / "ptbxl-500" / "records100"
    root = Path(data_dir) if data_dir else shared
    refs = find_records([root])[:records]
    if isinstance(refs[0], Exception):  # a directory without records, or none at all
        raise refs[0]
    for ref in refs:  # into the page cache: both runtimes read warm files
        for file in ref.path.parent.glob(ref.path.name + ".*"):
            file.read_bytes()
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    runs, probabilities = {}, {}
    try:
        pytorch = load_predictor()
        with tempfile.TemporaryDirectory() as tmp:
            path, parity = export_student(pytorch, Path(tmp) / "student.onnx")
            onnx = load_predictor(path, threads=threads)
            for name, model in (("onnxruntime", onnx), ("pytorch", pytorch)):
                predict_records(refs[:16], model)  # warm-up
                times = StageTimes()
                start = time.perf_counter()
                results = predict_records(refs, model, times=times)
                seconds = time.perf_counter() - start
                done = [r for r in results if not isinstance(r, Exception)]
                staged = sum(times.seconds.values())
                runs[name] = {
                    "records": len(done),
                    "refused": [str(r) for r in results if isinstance(r, Exception)],
                    "seconds": seconds,
                    "records_per_s": len(done) / seconds,
                    "stage_seconds": times.seconds,
                    "stage_share": {stage: t / staged for stage, t in times.seconds.items()},
                }
                probabilities[name] = np.stack([r.probabilities for r in done])
    finally:
        torch.set_num_threads(previous)
    onnx_run = runs["onnxruntime"]
    return {
        "path": str(root),
        "records": len(refs),
        "threads": threads,
        "cpus": os.cpu_count(),
        "model": pytorch.describe()["name"],
        "onnxruntime": onnx_run,
        "pytorch": runs["pytorch"],
        "onnx_parity_max_abs_logit": parity,
        "max_abs_probability_difference": float(
            np.abs(probabilities["onnxruntime"] - probabilities["pytorch"]).max()),
        "target_records_per_s": 100.0,
        "target_met": onnx_run["records_per_s"] >= 100.0,
        "largest_stage_onnxruntime": max(onnx_run["stage_seconds"], key=onnx_run["stage_seconds"].get),
    }

