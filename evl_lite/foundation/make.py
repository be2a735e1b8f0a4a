"""``python -m evl_lite foundation train``: make a foundation teacher once, with its model card.

1. The corpus (:mod:`evl_lite.foundation.corpus`): synthetic, the 24,000-record draw of seed
   1000 (or ``--path``); real PTB-XL, ``--path`` (PTB-XL-500) with ``--unlabelled``.
2. Masked-patch pretraining (:func:`evl_lite.training.pretraining.pretrain`): on the corpus's training
   split (synthetic) or on the ``--unlabelled`` records alone (PTB-XL: the pretrained backbone
   has seen no PTB-XL-500 record, so it can serve every fold of a rotation).
3. Supervised fine-tuning with the one training loop on training folds 1-8, selection on fold 9.
4. Test metrics with 95% bootstrap intervals: synthetic, the large evaluation draw (seed 900,
   never seen); PTB-XL, fold 10.
5. ``OUT`` gets ``config.json``, ``model.safetensors`` and the model card (``card.json``,
   ``README.md``); ``OUT/training`` the resumable state. A killed run, started again with the
   same command, resumes: pretraining and fine-tuning checkpoint every epoch atomically.

``python -m evl_lite foundation ship OUT --name NAME`` copies a verified teacher into the package.
Runs under ``accelerate launch`` unchanged (only the main process writes).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from evl_lite.atomic import replace_directory
from evl_lite.data.benchmark import directory_records, evaluation_split, load_benchmark_data
from evl_lite.data.draws import (
    CORPUS_SEED,
    EVALUATION_SEED,
    WORKSHOP_SEED_LIMIT,
    corpus_dir,
)
from evl_lite.data.ptbxl import load_ptbxl
from evl_lite.data.synthetic import synthetic_draw
from evl_lite.errors import ECGDataError
from evl_lite.evaluation.metrics import bootstrap_ci, macro_auc
from evl_lite.foundation.corpus import corpus_record
from evl_lite.foundation.hub import (
    BACKBONE_FILE,
    CARD_JSON,
    CARD_MARKDOWN,
    CONFIG_FILE,
    WEIGHTS_DIR,
    WEIGHTS_FILE,
    ModelCard,
    sha256_file,
)
from evl_lite.foundation.recipe import foundation_recipe
from evl_lite.models.output import count_parameters
from evl_lite.models.student import ECGStudentCNN, StudentConfig
from evl_lite.models.teacher import ECGTransformer
from evl_lite.reproducibility import provenance, shell_command
from evl_lite.training.loop import predict, process_state, train
from evl_lite.training.pretraining import pretrain


def _corpus_root(source: str, path: str | os.PathLike | None, smoke: bool, progress: bool) -> Path:
    if source == "ptbxl":
        if not path:
            raise ECGDataError(None, "--data ptbxl needs --path, the PTB-XL directory to fine-tune on")
        return Path(path)
    root = Path(path) if path else corpus_dir(smoke, progress=progress)
    draw = synthetic_draw(root)
    if draw is not None and (draw["seed"] < WORKSHOP_SEED_LIMIT or draw["seed"] == EVALUATION_SEED):
        raise ECGDataError(
            root,
            f"is the synthetic draw of seed {draw['seed']}, which the workshop or its evaluation uses; a "
            "foundation teacher must be made from seeds they never use "
            f"(the default corpus is seed {CORPUS_SEED})",
        )
    return root


def _interval(model, split, crop, n_windows, what: str) -> dict:
    probs = predict(model, split.x, crop, n_windows)
    auc = macro_auc(split.y, probs)[0]
    low, high = bootstrap_ci(macro_auc, split.y, probs)
    return {"value": float(auc), "ci": [float(low), float(high)], "records": int(len(split)), "what": what}


def train_foundation(
    source: str,
    out: str | os.PathLike,
    path: str | os.PathLike | None = None,
    unlabelled: str | os.PathLike | None = None,
    init: str | os.PathLike | None = None,
    smoke: bool = False,
    seed: int = 0,
    progress: bool = True,
    command: str | None = None,
) -> ModelCard:
    """Make a foundation teacher in ``out`` (see the module docstring); returns its model card.

    ``init``: start from another teacher's weights (a shipped name or directory), for example
    the synthetic teacher before PTB-XL pretraining, to measure what that start gives.
    ``command``: the command line to record (default: this process's).
    """
    if source not in ("synthetic", "ptbxl"):
        raise ValueError(f"--data must be 'synthetic' or 'ptbxl', not {source!r}")
    if source == "ptbxl" and not unlabelled:
        raise ECGDataError(None, "--data ptbxl needs --unlabelled, the records to pretrain on "
                           "(ptbxl-unlabelled: no PTB-XL-500 record may be pretrained on)")
    start = time.perf_counter()
    record = provenance(seed=seed)  # before training: the commit is the code that ran
    record["command"] = command or record["command"]
    out = Path(out)
    work = out / "training"
    state = process_state()
    root = _corpus_root(source, path, smoke, progress)
    data = load_benchmark_data("ptbxl", root, progress=progress)
    recipe = foundation_recipe(source, smoke, seed)
    recipe.pretrain.progress = recipe.finetune.progress = progress and not smoke

    corpus = [{**corpus_record(root, source, data.train.ecg_ids), "role": "fine-tuning (folds 1-8)"}]
    if source == "synthetic":
        x_pretrain = data.train.x
        corpus[0]["role"] = "pretraining and fine-tuning (folds 1-8)"
    else:
        x_pretrain = np.empty((0, *data.train.x.shape[1:]), dtype=np.float32)
    if unlabelled:
        extra = directory_records(unlabelled, progress=progress)
        if extra.shape[1:] != data.train.x.shape[1:]:
            raise ECGDataError(unlabelled, f"records of shape {extra.shape[1:]}, the corpus's are "
                               f"{data.train.x.shape[1:]} (12 leads at 100 Hz, the same length)")
        x_pretrain = np.concatenate([x_pretrain, extra])
        ids = None if synthetic_draw(unlabelled) else load_ptbxl(unlabelled).ecg_ids
        corpus.append({**corpus_record(unlabelled, source, ids), "role": "pretraining",
                       "records": len(extra)})

    torch.manual_seed(seed)
    teacher = ECGTransformer(recipe.model)
    started_from = None
    if init:
        from evl_lite.foundation.hub import load_teacher

        start_from = load_teacher(init)
        teacher.load_state_dict(start_from.state_dict())
        corpus += [{**c, "role": f"before this teacher, as {start_from.card.name!r}: {c.get('role')}"}
                   for c in start_from.card.fields.get("corpus", [])]
        started_from = {"name": start_from.card.name, "sha256": start_from.card.fields.get("sha256"),
                        "seconds": start_from.card.fields.get("seconds")}

    stage_seconds = {}
    t = time.perf_counter()
    pre_history = pretrain(teacher, x_pretrain, recipe.pretrain, out_dir=work / "pretraining", resume=True)
    stage_seconds["pretraining"] = time.perf_counter() - t
    backbone = {k: v.detach().clone() for k, v in teacher.state_dict().items()}  # shipped beside the teacher
    t = time.perf_counter()
    for unused in (teacher.mask_token, *teacher.reconstruction_head.parameters()):  # pretraining's only:
        unused.requires_grad_(False)  # frozen, so data-parallel fine-tuning expects no gradient for them
    result = train(teacher, data.train, data.val, recipe.finetune, out_dir=work / "finetuning", resume=True)
    stage_seconds["finetuning"] = time.perf_counter() - t

    crop, windows = recipe.finetune.crop, recipe.finetune.eval_windows
    metrics = {"validation_macro_auc": _interval(teacher, data.val, crop, windows, f"fold 9 of {root.name}")}
    if source == "synthetic":
        metrics["corpus_test_macro_auc"] = _interval(
            teacher, data.test, crop, windows, f"fold 10 of {root.name}")
        evaluation = evaluation_split(smoke, progress=progress)
        metrics["test_macro_auc"] = _interval(
            teacher, evaluation, crop, windows, f"the synthetic evaluation draw, seed {EVALUATION_SEED}")
    else:
        metrics["test_macro_auc"] = _interval(teacher, data.test, crop, windows, f"fold 10 of {root.name}")

    n_teacher = count_parameters(teacher)
    n_student = count_parameters(ECGStudentCNN(StudentConfig()))
    fields = {
        "name": out.name,
        "summary": (
            f"A foundation teacher for the EVL-ECG Lite course: {recipe.model.n_layers}-block transformer "
            f"over a convolutional lead stem, "
            + (f"started from the {started_from['name']!r} teacher's weights, then " if started_from else "")
            + f"masked-patch pretrained on {len(x_pretrain):,} records and "
            f"fine-tuned on {len(data.train):,} labelled {source} records. Educational use only."
        ),
        "source": source,
        "smoke": smoke,
        "seed": seed,
        "init": started_from,  # the teacher whose weights it started from (its wall time is not in "seconds")
        "corpus": corpus,
        "pretraining_records": int(len(x_pretrain)),
        "finetuning_records": int(len(data.train)),
        "recipe": recipe.as_dict(),
        "config": teacher.config.to_dict(),
        "parameters": n_teacher,
        "student_parameters": n_student,
        "parameters_vs_student": n_teacher / n_student,
        "metrics": metrics,
        "best_epoch": result.best_epoch,
        "pretrain_history": pre_history,
        "finetune_history": result.history,
        "seconds": time.perf_counter() - start,
        "stage_seconds": stage_seconds,
        "command": shell_command(record),
        "provenance": record,
    }
    card = ModelCard(out, fields)
    if state.is_main_process:
        teacher.save_pretrained(out)
        fields["sha256"] = sha256_file(out / WEIGHTS_FILE)
        save_file(backbone, out / BACKBONE_FILE, metadata={"format": "pt"})
        fields["backbone"] = backbone_field(sha256_file(out / BACKBONE_FILE))
        card.write()
    state.wait_for_everyone()
    return card


def backbone_field(sha256: str) -> dict:
    """The card's ``backbone`` entry: the weights after pretraining (a rotation fine-tunes them per fold)."""
    return {"file": BACKBONE_FILE, "sha256": sha256,
            "what": "the weights after masked-patch pretraining, before supervised fine-tuning"}


def ship(teacher_dir: str | os.PathLike, name: str) -> Path:
    """Copy a verified teacher (weights, config, card) into the package as ``name``; returns its path."""
    card = ModelCard.read(teacher_dir)
    card.verify()
    if card.fields.get("smoke"):
        raise ECGDataError(Path(teacher_dir) / CARD_JSON,
                           "is a smoke-mode teacher; only real runs are shipped")
    target = WEIGHTS_DIR / name
    tmp = WEIGHTS_DIR / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for file in (CONFIG_FILE, WEIGHTS_FILE, CARD_JSON, CARD_MARKDOWN):
        shutil.copy2(card.directory / file, tmp / file)
    if backbone := card.fields.get("backbone"):
        shutil.copy2(card.directory / backbone["file"], tmp / backbone["file"])
    shipped = ModelCard.read(tmp)
    shipped.fields["name"] = name
    shipped.write()
    shipped.verify()
    replace_directory(tmp, target)
    return target
