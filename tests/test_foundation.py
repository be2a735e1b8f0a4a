"""The foundation teacher: the command that makes it, its model card, and the shipped weights."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import accelerate_launch, requires_accelerate

from evl_lite.cli import main
from evl_lite.data.draws import CORPUS_SEED, EVALUATION_SEED, WORKSHOP_SEED_LIMIT
from evl_lite.data.synthetic import generate_dataset
from evl_lite.errors import ECGDataError
from evl_lite.foundation import load_teacher, shipped_teachers
from evl_lite.foundation.corpus import check_not_trained_on
from evl_lite.foundation.ensemble import compare_ensemble, ensemble_probabilities
from evl_lite.foundation.hub import WEIGHTS_DIR, ModelCard, sha256_file
from evl_lite.models.output import count_parameters
from evl_lite.models.student import ECGStudentCNN, StudentConfig
from evl_lite.models.teacher import ECGTransformer

MAX_WEIGHTS_BYTES = 15 * 1024 * 1024
MAX_SECONDS = 2 * 3600


@pytest.fixture(scope="module")
def smoke_teacher(tmp_path_factory, one_thread) -> Path:
    """A tiny foundation teacher made by the command, in smoke mode."""
    out = tmp_path_factory.mktemp("foundation") / "tiny"
    assert main(["foundation", "train", "--smoke", "--quiet", "--out", str(out)]) == 0
    return out


def test_the_command_makes_a_teacher_that_loads_through_the_hub_path(smoke_teacher):
    teacher = load_teacher(smoke_teacher)
    card = teacher.card.fields
    assert card["sha256"] == sha256_file(smoke_teacher / "model.safetensors")
    plain = ECGTransformer.from_pretrained(smoke_teacher).eval()
    x = torch.randn(2, 12, 250)
    torch.testing.assert_close(teacher(x).logits, plain(x).logits)
    assert not any(p.requires_grad for p in teacher.parameters()) and not teacher.training
    # the card says what the teacher saw, and that was none of the workshop's or evaluation's draws
    seeds = [c["seed"] for c in card["corpus"] if c["source"] == "synthetic"]
    assert seeds == [CORPUS_SEED]
    assert card["metrics"]["test_macro_auc"]["what"].endswith(f"seed {EVALUATION_SEED}")
    for name in ("validation_macro_auc", "test_macro_auc"):
        low, high = card["metrics"][name]["ci"]
        assert 0.0 <= low <= card["metrics"][name]["value"] <= high <= 1.0
    assert card["command"].startswith("python -m evl_lite foundation train --smoke")
    assert (smoke_teacher / "README.md").read_text().count(card["sha256"]) == 1


def test_a_killed_run_resumes_to_the_same_teacher(smoke_teacher, tmp_path, monkeypatch):
    import evl_lite.training.pretraining as pretraining

    real_save = pretraining.save_checkpoint

    def save_then_die(*args, **kwargs):
        real_save(*args, **kwargs)
        raise KeyboardInterrupt

    out = tmp_path / "again"
    monkeypatch.setattr(pretraining, "save_checkpoint", save_then_die)
    assert main(["foundation", "train", "--smoke", "--quiet", "--out", str(out)]) == 130  # Ctrl-C
    assert (out / "training" / "pretraining" / "checkpoint" / "state.json").is_file()
    assert not (out / "model.safetensors").exists()  # nothing half-written where a user would load it
    monkeypatch.setattr(pretraining, "save_checkpoint", real_save)
    assert main(["foundation", "train", "--smoke", "--quiet", "--out", str(out)]) == 0
    assert sha256_file(out / "model.safetensors") == sha256_file(smoke_teacher / "model.safetensors")


@requires_accelerate
def test_the_same_command_runs_under_accelerate_launch(smoke_teacher, tmp_path):
    """Two CPU processes (as on GPUs): one teacher, written once by the main process, loadable."""
    out = tmp_path / "launched"
    accelerate_launch(["-m", "evl_lite", "foundation", "train", "--smoke", "--quiet", "--out", str(out)],
                      timeout=900)
    teacher = load_teacher(out)
    assert teacher.card.fields["parameters"] == count_parameters(teacher)
    assert count_parameters(teacher) == count_parameters(load_teacher(smoke_teacher))  # the same recipe


def copy_teacher(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("training"))
    return target


def test_changed_weights_are_refused_naming_the_file(smoke_teacher, tmp_path):
    teacher = copy_teacher(smoke_teacher, tmp_path / "t")
    data = bytearray((teacher / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (teacher / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ECGDataError, match=r"model\.safetensors: SHA-256 .* does not match"):
        load_teacher(teacher)


def test_a_config_that_differs_from_the_card_is_refused(smoke_teacher, tmp_path):
    teacher = copy_teacher(smoke_teacher, tmp_path / "t")
    config = json.loads((teacher / "config.json").read_text())
    config["n_layers"] += 1
    (teacher / "config.json").write_text(json.dumps(config))
    with pytest.raises(ECGDataError, match=r"config\.json: does not match the model card: n_layers"):
        load_teacher(teacher)


@pytest.mark.parametrize("missing", ["card.json", "model.safetensors", "config.json"])
def test_a_missing_file_is_named(smoke_teacher, tmp_path, missing):
    teacher = copy_teacher(smoke_teacher, tmp_path / "t")
    (teacher / missing).unlink()
    with pytest.raises(ECGDataError, match=re.escape(missing) + ": missing"):
        load_teacher(teacher)


def test_unknown_names_list_the_shipped_ones():
    with pytest.raises(ECGDataError, match=r"no shipped teacher 'imagenet' \(shipped: "):
        load_teacher("imagenet")


def test_a_workshop_draw_cannot_be_a_foundation_corpus(tmp_path, capsys):
    root = generate_dataset(tmp_path / "draw", n_records=40, seed=0, progress=False)
    assert main(["foundation", "train", "--smoke", "--quiet", "--path", str(root), "--out",
                 str(tmp_path / "t")]) == 2
    assert "seed 0, which the workshop or its evaluation uses" in capsys.readouterr().err


def test_ptbxl_needs_its_unlabelled_records(tmp_path, capsys):
    assert main(["foundation", "train", "--data", "ptbxl", "--path", str(tmp_path), "--out",
                 str(tmp_path / "t")]) == 2
    assert "--unlabelled" in capsys.readouterr().err


def test_a_teacher_is_never_evaluated_on_what_it_saw(tmp_path):
    synthetic_card = {"name": "s", "corpus": [{"source": "synthetic", "name": "c", "seed": CORPUS_SEED}]}
    corpus = generate_dataset(tmp_path / "corpus", n_records=20, seed=CORPUS_SEED, progress=False)
    other = generate_dataset(tmp_path / "other", n_records=20, seed=EVALUATION_SEED, progress=False)
    with pytest.raises(ECGDataError, match="was trained on these records"):
        check_not_trained_on(synthetic_card, corpus, np.arange(1, 21), "test data")
    check_not_trained_on(synthetic_card, other, np.arange(1, 21), "test data")  # a draw it never saw
    ptbxl_card = {"name": "p", "corpus": [{"source": "ptbxl", "name": "ptbxl-500", "ecg_ids": [1, 2, 3]}]}
    with pytest.raises(ECGDataError, match="cannot be evaluated on them as fold 10"):
        check_not_trained_on(ptbxl_card, tmp_path, np.array([3, 4]), "fold 10")
    check_not_trained_on(ptbxl_card, tmp_path, np.array([4, 5]), "fold 10")


# ----------------------------------------------------------------------------- shipped weights


def test_the_synthetic_teacher_is_shipped():
    assert "synthetic" in shipped_teachers()


def test_the_package_loads_the_shipped_teachers_by_name():
    import evl_lite

    for name in ("synthetic", "ptbxl"):
        teacher = evl_lite.load_teacher(name)
        assert teacher.card.name == name and not teacher.training
        assert count_parameters(teacher) == teacher.card.fields["parameters"]


@pytest.mark.parametrize("name", shipped_teachers())
def test_a_shipped_teacher_keeps_the_promises_of_its_card(name):
    directory = WEIGHTS_DIR / name
    card = ModelCard.read(directory)
    card.verify()
    fields = card.fields
    assert not fields["smoke"]
    assert (directory / "model.safetensors").stat().st_size <= MAX_WEIGHTS_BYTES
    assert fields["parameters"] >= 30 * count_parameters(ECGStudentCNN(StudentConfig()))
    assert fields["seconds"] <= MAX_SECONDS
    for key in ("command", "corpus", "recipe", "provenance", "metrics"):
        assert fields[key], key
    assert {"validation_macro_auc", "test_macro_auc"} <= set(fields["metrics"])
    assert fields["provenance"]["commit"] != "unknown" and fields["provenance"]["machine"]
    for seen in fields["corpus"]:
        if seen["source"] == "synthetic":  # no draw the workshop or its evaluation uses
            assert seen["seed"] >= WORKSHOP_SEED_LIMIT and seen["seed"] != EVALUATION_SEED
    teacher = load_teacher(name)
    assert count_parameters(teacher) == fields["parameters"]


def test_the_wheel_carries_the_shipped_teachers(tmp_path):
    """``pip install`` (Colab) gets the weights: they are package data of the built wheel.

    The distilled student that ``predict`` uses ships the same way (``evl_lite/predict/weights``).
    """
    import subprocess
    import sys
    import zipfile

    root = Path(__file__).resolve().parents[1]
    source = tmp_path / "source"  # setuptools builds in the tree: a copy keeps the checkout clean
    shutil.copytree(root, source, ignore=shutil.ignore_patterns(
        ".venv", ".git", "data", "runs", "outputs", "results", "notebooks", "tests", "*.egg-info", "build"))
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path),
         str(source)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = tmp_path.glob("evl_lite-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in {"synthetic", *shipped_teachers()}:
        for file in ("model.safetensors", "config.json", "card.json", "README.md"):
            assert f"evl_lite/foundation/weights/{name}/{file}" in names
    for file in ("model.safetensors", "config.json", "card.json", "README.md"):
        assert f"evl_lite/predict/weights/ptbxl-student/{file}" in names


def test_the_teacher_page_shows_the_shipped_cards():
    """docs/foundation_teacher.md's table is what ``python -m evl_lite foundation cards`` prints."""
    from evl_lite.foundation.hub import cards_markdown

    page = (Path(__file__).resolve().parents[1] / "docs" / "foundation_teacher.md").read_text()
    assert cards_markdown() in page, "the teacher table is stale: paste `foundation cards`"


def test_an_ensemble_averages_its_members_probabilities():
    a = np.array([[0.2, 0.9], [0.6, 0.1]])
    b = np.array([[0.4, 0.5], [0.0, 0.3]])
    np.testing.assert_allclose(ensemble_probabilities([a, b]), [[0.3, 0.7], [0.3, 0.2]])
    with pytest.raises(ValueError, match="at least two different teachers"):
        compare_ensemble(["ptbxl", "ptbxl"], "ptbxl", "unused")


def test_the_ensemble_command_measures_members_and_their_mean(ptbxl500, tmp_path, capsys):
    out = tmp_path / "ensemble.json"
    assert main(["foundation", "ensemble", "ptbxl", "synthetic", "--path", str(ptbxl500), "--out", str(out),
                 "--quiet"]) == 0
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert list(rows) == ["ptbxl", "synthetic", "ensemble"] and result["n_test"] == 64
    card = ModelCard.read(WEIGHTS_DIR / "ptbxl").fields["metrics"]
    assert rows["ptbxl"]["val"]["macro_auc"] == pytest.approx(card["validation_macro_auc"]["value"])
    assert rows["ptbxl"]["test"]["macro_auc"] == pytest.approx(card["test_macro_auc"]["value"])
    for row in rows.values():
        for split in ("val", "test"):
            low, high = row[split]["ci95"]
            assert low <= row[split]["macro_auc"] <= high
    assert "| `ensemble` |" in capsys.readouterr().out
