"""The one training loop: it learns, it is deterministic, it resumes after a kill, it runs on 2 processes."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import accelerate_launch, requires_accelerate
from toy_ecg import FAST

from evl_lite.distillation import LogitKD
from evl_lite.distillation.teacher_cache import TeacherCache, fingerprint
from evl_lite.models.student import ECGStudentCNN, StudentConfig
from evl_lite.models.teacher import ECGTransformer, ECGTransformerConfig
from evl_lite.training.loop import (
    Distillation,
    TrainConfig,
    find_checkpoint,
    parameter_groups,
    predict,
    save_checkpoint,
    seed_everything,
    train,
    window_starts,
)

SCRIPT = Path(__file__).parent / "scripts" / "train_toy.py"


def tiny_teacher() -> ECGTransformer:
    torch.manual_seed(0)
    return ECGTransformer(ECGTransformerConfig(d_model=32, n_layers=1, n_heads=2, ffn=64)).eval()


def test_window_grid_covers_the_record():
    assert window_starts(1000, 250, 7) == [0, 125, 250, 375, 500, 625, 750]
    assert window_starts(250, 250, 7) == [0]


def test_loop_learns_and_same_seed_gives_same_metrics(toy, tmp_path):
    train_split, val_split = toy
    runs = []
    for i in range(2):
        torch.manual_seed(0)  # the same initial weights
        model = ECGStudentCNN(StudentConfig())
        runs.append(train(model, train_split, val_split, FAST, out_dir=tmp_path / f"run{i}"))
    assert runs[0].best_val_auc > 0.85, runs[0].history
    assert [h["val_macro_auc"] for h in runs[0].history] == [h["val_macro_auc"] for h in runs[1].history]
    assert [h["train_loss"] for h in runs[0].history] == [h["train_loss"] for h in runs[1].history]
    # per-epoch logs and an atomic checkpoint are on disk
    assert len(json.loads((tmp_path / "run0" / "history.json").read_text())) == 3
    assert (tmp_path / "run0" / "history.csv").read_text().startswith("epoch,")
    ckpt = tmp_path / "run0" / "checkpoint"
    assert {p.name for p in ckpt.iterdir()} >= {"model.safetensors", "best_model.safetensors", "state.json"}
    assert not list(tmp_path.glob("run0/checkpoint.*"))  # no temp or old directory left behind


def test_seeding_skips_the_nan_fill_and_that_changes_no_weight(toy):
    """Deterministic mode's NaN fill of new tensors is switched off: it costs time and changes nothing."""
    train_split, _ = toy
    x, y = torch.from_numpy(train_split.x[:16, :, :250]), torch.from_numpy(train_split.y[:16]).float()
    weights = []
    try:
        for fill in (True, False):
            seed_everything(0)
            assert torch.utils.deterministic.fill_uninitialized_memory is False
            torch.utils.deterministic.fill_uninitialized_memory = fill
            model = ECGTransformer(
                ECGTransformerConfig(
                    d_model=32,
                    n_layers=1,
                    n_heads=2,
                    ffn=64,
                    tokenizer="stem",
                    pooling="leads",
                    stem_blocks=1,
                    patch_len=50,
                )
            ).train()
            optimizer = torch.optim.AdamW(model.parameters(), 1e-3)
            for _ in range(3):
                loss = F.binary_cross_entropy_with_logits(model(x).logits, y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    finally:
        seed_everything(0)
    assert torch.equal(weights[0], weights[1])


def test_parameter_groups_scale_the_learning_rate_by_name_prefix():
    named = list(tiny_teacher().named_parameters())
    groups = parameter_groups(named, 1e-3, {"patch_embed": 10.0, "classifier": 0.5})
    assert [g["lr"] for g in groups] == pytest.approx([1e-3, 1e-2, 5e-4])
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for _, p in named) and len(set(ids)) == len(ids)
    assert {id(p) for n, p in named if n.startswith("classifier")} == {id(p) for p in groups[2]["params"]}
    assert len(parameter_groups(named, 1e-3, None)) == 1
    with pytest.raises(ValueError, match=r"\['clasifier'\] match no trainable parameter"):
        parameter_groups(named, 1e-3, {"clasifier": 2.0})


def test_a_zero_learning_rate_scale_freezes_those_parameters_in_training(toy):
    train_split, val_split = toy
    torch.manual_seed(0)
    model = ECGStudentCNN(StudentConfig())
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    config = TrainConfig(**{**FAST.__dict__, "epochs": 1, "lr_scale": {"classifier": 0.0}})
    train(model, train_split, val_split, config)
    after = dict(model.named_parameters())
    assert all(torch.equal(after[n], before[n]) for n in before if n.startswith("classifier"))
    assert not torch.equal(after["blocks.3.main.10.weight"], before["blocks.3.main.10.weight"])


def test_model_ends_with_its_best_validation_weights(toy):
    train_split, val_split = toy
    model = ECGStudentCNN(StudentConfig())
    result = train(model, train_split, val_split, FAST)
    from evl_lite.evaluation.metrics import macro_auc

    auc, _ = macro_auc(val_split.y, predict(model, val_split.x, crop=250, n_windows=7))
    assert auc == pytest.approx(result.best_val_auc, abs=1e-6)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_resume_after_a_kill_matches_an_uninterrupted_run(tmp_path, sig):
    """Killed (SIGKILL: no clean-up at all; SIGINT: Ctrl-C in a workshop) once an epoch is saved."""
    epochs = 4
    # one thread in every run: multi-threaded CPU reductions may sum in another order when the
    # machine is loaded, which makes runs differ in the last bits (seen once on a loaded 2-core box)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    full = tmp_path / "full"
    subprocess.run([sys.executable, str(SCRIPT), str(full), str(epochs)], check=True, timeout=600, env=env)
    reference = json.loads((full / "result-0.json").read_text())

    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(SCRIPT), str(killed), str(epochs)], env=env)
    state = killed / "checkpoint" / "state.json"
    seen: dict[int, float] = {}  # epoch -> when its checkpoint was first seen
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and 1 not in seen:
        try:  # the write renames the directory away for an instant: the file may vanish
            seen.setdefault(json.loads(state.read_text())["epoch"], time.time())
        except (FileNotFoundError, json.JSONDecodeError):
            pass
        time.sleep(0.01)
    assert 1 in seen, f"no checkpoint of epoch 1 appeared (seen: {sorted(seen)}, exit code {proc.poll()})"
    # A random point inside the next epoch (its training steps or its checkpoint write): the
    # delay is drawn from the length of the epoch just measured, and printed for a rerun.
    epoch_seconds = seen[1] - seen.get(0, seen[1] - 1.0)
    delay = random.Random().uniform(0.0, 0.9 * epoch_seconds)
    print(f"killing with {sig!r} {delay:.3f} s after epoch 1's checkpoint (epoch ~ {epoch_seconds:.3f} s)")
    time.sleep(delay)
    proc.send_signal(sig)
    proc.wait(timeout=120)
    assert not (killed / "result-0.json").exists(), "the run finished before it could be killed"
    saved = find_checkpoint(killed / "checkpoint")  # checkpoint.old if killed between the renames
    done_before = json.loads((saved / "state.json").read_text())["epoch"]
    assert done_before < epochs - 1

    subprocess.run(
        [sys.executable, str(SCRIPT), str(killed), str(epochs), "--resume"], check=True, timeout=600, env=env
    )
    resumed = json.loads((killed / "result-0.json").read_text())
    assert len(resumed["history"]) == epochs
    for a, b in zip(reference["history"], resumed["history"], strict=True):
        assert a["val_macro_auc"] == pytest.approx(b["val_macro_auc"], abs=1e-9)
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6)
    assert resumed["best"] == pytest.approx(reference["best"], abs=1e-9)


def _write_checkpoint(directory, epoch):
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.AdamW(model.parameters())
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1)
    save_checkpoint(
        directory, model, torch.nn.Module(), optimizer, scheduler, {"epoch": epoch}, model.state_dict()
    )


@pytest.mark.parametrize("left_by_the_kill", ["old beside checkpoint", "half-removed old", "only old"])
def test_checkpoint_write_recovers_from_every_interrupted_write(tmp_path, left_by_the_kill):
    """Each state a kill can leave a checkpoint write in: found on resume, and the next write works.

    (CI once failed here: a kill during the removal of ``checkpoint.old`` left it non-empty, and
    the next write could not rename ``checkpoint`` onto it.)
    """
    directory = tmp_path / "checkpoint"
    old = tmp_path / "checkpoint.old"
    _write_checkpoint(directory, 1)
    _write_checkpoint(directory, 2)  # a complete write leaves no .old
    assert not old.exists() and find_checkpoint(directory) == directory
    if left_by_the_kill == "old beside checkpoint":  # killed before the old one was removed
        shutil.copytree(directory, old)
    elif left_by_the_kill == "half-removed old":
        old.mkdir()
        shutil.copy(directory / "model.safetensors", old)
    else:  # killed between the two renames
        os.replace(directory, old)
    found = find_checkpoint(directory)
    assert found is not None and json.loads((found / "state.json").read_text())["epoch"] == 2

    _write_checkpoint(directory, 3)
    assert json.loads((directory / "state.json").read_text())["epoch"] == 3
    assert not old.exists() and not (tmp_path / "checkpoint.tmp").exists()


@requires_accelerate
def test_two_cpu_processes_gather_metrics_over_both(tmp_path):
    accelerate_launch([str(SCRIPT), str(tmp_path), "2"])
    results = [json.loads((tmp_path / f"result-{r}.json").read_text()) for r in (0, 1)]
    for res in results:
        # 40 validation records, split over two processes, and every one gathered back
        assert [h["val_n"] for h in res["history"]] == [40, 40]
    assert results[0]["history"] == results[1]["history"]  # both processes saw the same metrics
    assert results[0]["best"] > 0.5


def test_teacher_cache_serves_what_the_teacher_computes(toy, tmp_path):
    train_split, _ = toy
    teacher = tiny_teacher()
    starts = window_starts(train_split.x.shape[-1], 250, 3)
    cache = TeacherCache.build(teacher, train_split.x, 250, starts, cache_dir=tmp_path, progress=False)
    assert cache.tokens.dtype == torch.float16 and cache.tokens.shape[:2] == (96, len(starts))
    batch = {"index": torch.tensor([0, 5, 7]), "start": torch.tensor([starts[0], starts[2], starts[1]])}
    x = torch.stack(
        [
            torch.from_numpy(train_split.x[i, :, s : s + 250])
            for i, s in zip([0, 5, 7], batch["start"], strict=True)
        ]
    )
    with torch.inference_mode():
        live = teacher(x)
    cached = cache(x, batch)
    torch.testing.assert_close(cached.logits, live.logits, atol=2e-2, rtol=1e-2)
    torch.testing.assert_close(cached.tokens, live.tokens, atol=2e-2, rtol=1e-2)
    # same teacher and data: loaded from the file, not recomputed; other weights: another file
    again = TeacherCache.build(teacher, train_split.x, 250, starts, cache_dir=tmp_path, progress=False)
    assert again.path == cache.path and again.path.is_file()
    with torch.no_grad():
        next(teacher.parameters()).add_(0.01)
    changed = TeacherCache.build(teacher, train_split.x, 250, starts, cache_dir=tmp_path, progress=False)
    assert changed.path != cache.path


def test_a_copied_checkpoint_has_the_same_fingerprint_and_other_weights_another(toy, tmp_path):
    train_split, _ = toy
    starts = window_starts(train_split.x.shape[-1], 250, 3)
    teacher = tiny_teacher()
    teacher.save_pretrained(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    a, b = (ECGTransformer.from_pretrained(tmp_path / d) for d in ("a", "b"))
    assert a.config._name_or_path != b.config._name_or_path  # where each was loaded from
    key = fingerprint(teacher, train_split.x, 250, starts)
    assert fingerprint(a, train_split.x, 250, starts) == fingerprint(b, train_split.x, 250, starts) == key
    assert fingerprint(a, train_split.x[:-1], 250, starts) != key  # other records
    assert fingerprint(a, train_split.x, 250, starts[:2]) != key  # other windows
    with torch.no_grad():
        next(b.parameters()).add_(1e-3)
    assert fingerprint(b, train_split.x, 250, starts) != key
    cache = TeacherCache.build(a, train_split.x, 250, starts, progress=False)
    assert cache.key == key


def test_distillation_trains_with_the_cache(toy, tmp_path):
    train_split, val_split = toy
    teacher = tiny_teacher()
    config = TrainConfig(epochs=2, batch_size=16, lr=1e-2, crop=250, eval_windows=3, progress=False)
    starts = window_starts(train_split.x.shape[-1], 250, config.eval_windows)
    cache = TeacherCache.build(teacher, train_split.x, 250, starts, progress=False)
    objective = Distillation({"kd": LogitKD(temperature=2.0)}, weights={"kd": 0.5})
    result = train(
        ECGStudentCNN(StudentConfig()), train_split, val_split, config, objective=objective, teacher=cache
    )
    assert all(np.isfinite(h["train_kd"]) and h["train_kd"] >= 0 for h in result.history)
    assert all("train_bce" in h for h in result.history)


def test_objective_that_needs_a_teacher_refuses_to_run_without(toy):
    with pytest.raises(ValueError, match="needs a teacher"):
        train(ECGStudentCNN(StudentConfig()), *toy, FAST, objective=Distillation({"kd": LogitKD()}))
