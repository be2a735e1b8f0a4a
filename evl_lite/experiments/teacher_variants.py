"""Teacher variants: fine-tune one teacher per configuration and compare their macro-AUC.

The search behind issue 3 ("a teacher better than its student"). A variant is a name and a
JSON object that overrides the workshop recipe::

    {"model": {...ECGTransformerConfig fields...}, "train": {...TrainConfig fields...},
     "pretrain_epochs": 0, "pretrain": {...PretrainConfig fields...}, "embed_std": 0.5,
     "reset_tokenizer": true}

``pretrain`` overrides the recipe's pretraining (used only when ``pretrain_epochs`` > 0).
``embed_std`` re-draws the lead and time embeddings with that standard deviation;
``reset_tokenizer`` gives the patch embedding PyTorch's default (Kaiming-uniform)
initialisation instead of BERT's N(0, 0.02). Each result (validation and test macro-AUC, a
95% percentile bootstrap interval of the test figure over the test records, the validation
curve, seconds) is appended to ``variants.json`` in ``out``, which is
rewritten atomically, so an interrupted search keeps every finished variant.
``python -m evl_lite teacher-variants --out DIR NAME=JSON ...`` runs them in order.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evl_lite.atomic import write_json_atomic
from evl_lite.constants import SUPERCLASSES
from evl_lite.data.benchmark import BenchmarkData
from evl_lite.evaluation.metrics import bootstrap_ci, macro_auc
from evl_lite.models.output import count_parameters
from evl_lite.models.teacher import ECGTransformer, ECGTransformerConfig
from evl_lite.reproducibility import provenance, shell_command
from evl_lite.training.loop import predict, train
from evl_lite.training.pretraining import pretrain
from evl_lite.training.recipes import teacher_recipe

SPEC_KEYS = {"model", "train", "pretrain_epochs", "pretrain", "embed_std", "reset_tokenizer"}


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """``"NAME={json}"`` -> (name, spec); the spec's keys are checked."""
    name, sep, body = text.partition("=")
    if not sep or not name:
        raise ValueError(f"a variant is NAME=JSON, got {text!r}")
    try:
        spec = json.loads(body) if body.strip() else {}
    except json.JSONDecodeError as exc:
        raise ValueError(f"variant {name}: {body!r} is not valid JSON ({exc})") from None
    if not isinstance(spec, dict) or set(spec) - SPEC_KEYS:
        raise ValueError(f"variant {name}: keys must be among {sorted(SPEC_KEYS)}, got {body!r}")
    return name, spec


def build_variant(spec: dict[str, Any], smoke: bool, seed: int = 0) -> ECGTransformer:
    """The recipe's teacher with the variant's model overrides and initialisation changes."""
    model_config, _, _ = teacher_recipe(smoke)
    torch.manual_seed(seed)
    model = ECGTransformer(ECGTransformerConfig(**{**model_config.to_dict(), **spec.get("model", {})}))
    with torch.no_grad():
        if "embed_std" in spec:
            model.lead_embed.weight.normal_(0.0, float(spec["embed_std"]))
            model.time_embed.weight.normal_(0.0, float(spec["embed_std"]))
        if spec.get("reset_tokenizer"):
            for module in model.patch_embed.modules():
                if isinstance(module, torch.nn.Linear | torch.nn.Conv1d):
                    module.reset_parameters()
    return model


def run_variant(
    name: str,
    spec: dict[str, Any],
    data: BenchmarkData,
    smoke: bool,
    seed: int = 0,
    unlabelled: np.ndarray | None = None,
) -> dict:
    """Pretrain (``pretrain_epochs``, default 0) and fine-tune one variant; its scores.

    Pretraining reads ``unlabelled`` (``benchmark.unlabelled_records``), else the training split.
    """
    _, pre_config, fine_config = teacher_recipe(smoke)
    train_overrides = {**spec.get("train", {}), "seed": seed, "progress": False}
    fine_config = dataclasses.replace(fine_config, **train_overrides)  # an unknown field is a TypeError
    pretraining_x = data.train.x if unlabelled is None else unlabelled
    start = time.perf_counter()
    model = build_variant(spec, smoke, seed)
    if spec.get("pretrain_epochs"):  # the recipe's pretraining, for this many epochs
        overrides = {**spec.get("pretrain", {}), "epochs": spec["pretrain_epochs"], "seed": seed,
                     "progress": False}
        pre_config = dataclasses.replace(pre_config, **overrides)  # an unknown field is a TypeError
        pretrain(model, pretraining_x, pre_config)
    result = train(model, data.train, data.val, fine_config)
    window = {"crop": fine_config.crop, "n_windows": fine_config.eval_windows}
    test_scores = predict(model, data.test.x, **window)
    test_auc, test_per_class = macro_auc(data.test.y, test_scores)
    try:  # how far the test records alone move the figure: a percentile bootstrap over them
        test_ci = list(bootstrap_ci(macro_auc, data.test.y, test_scores))
    except ValueError:  # a split too small for an interval (smoke runs): none, rather than a lost run
        test_ci = None
    return {
        "name": name,
        "spec": spec,
        "val_macro_auc": result.best_val_auc,
        "best_epoch": result.best_epoch,
        "test_macro_auc": test_auc,
        "test_per_class_auc": test_per_class,
        "test_macro_auc_ci95": test_ci,  # 1,000 resamples of the test records
        "val_curve": [round(h["val_macro_auc"], 4) for h in result.history],
        "seconds": time.perf_counter() - start,
        "parameters": count_parameters(model),
        "seed": seed,
        "path": str(data.root),  # the dataset directory, as in teacher-student and experiment records
        "pretraining_records": len(pretraining_x) if spec.get("pretrain_epochs") else 0,
    }


def run_variants(
    variants: list[tuple[str, dict]],
    data: BenchmarkData,
    out: str | os.PathLike,
    smoke: bool,
    seed: int = 0,
    unlabelled: np.ndarray | None = None,
) -> dict:
    """Run each variant not already in ``out/variants.json``; returns the whole file's content."""
    path = Path(out) / "variants.json"
    invocation = provenance()
    record = json.loads(path.read_text()) if path.is_file() else {"provenance": invocation, "runs": []}
    done = {r["name"] for r in record["runs"]}
    made_by = {"command": shell_command(invocation), "commit": invocation["commit"]}  # per run: files grow
    for name, spec in variants:
        if name in done:
            continue
        record["runs"].append({**run_variant(name, spec, data, smoke, seed, unlabelled), **made_by})
        write_json_atomic(path, record)
    return record


def variants_markdown(record: dict) -> str:
    """A Markdown table of every run in a ``variants.json`` record, in the order they ran."""
    lines = [
        "| variant | spec | test macro-AUC | val macro-AUC (best epoch) | test AUC per class "
        f"({' / '.join(SUPERCLASSES)}) | seconds | commit |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in record["runs"]:
        per_class = run.get("test_per_class_auc")  # absent in runs made before it was recorded
        auc = [per_class.get(c) for c in SUPERCLASSES] if per_class else []
        cells = " / ".join("-" if v is None else f"{v:.3f}" for v in auc) or "not recorded"
        spec = json.dumps(run["spec"], separators=(", ", ": ")) if run["spec"] else "(the recipe)"
        lines.append(
            f"| {run['name']} | `{spec}` | {run['test_macro_auc']:.3f} | {run['val_macro_auc']:.3f} "
            f"({run['best_epoch'] + 1}) | {cells} | {run['seconds']:.0f} | {run.get('commit', '-')} |"
        )
    return "\n".join(lines)
