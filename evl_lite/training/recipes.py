"""Ready-made teacher and student recipes that the notebooks and the command line share.

- :func:`resolve_teacher`: the teacher a notebook or the experiment distils from: by default
  the shipped foundation teacher (:mod:`evl_lite.foundation`), else a named or given one.
- :func:`get_teacher`: a workshop teacher (notebook 02's short run of the recipe): load the
  checkpoint if it exists, otherwise pretrain and fine-tune one and save it. A checkpoint made on
  other data, at another scale or with another recipe (:func:`recipe_differences`) is refused
  with an error naming what differs.
- :func:`student_recipe` and :func:`distill_student`: the student, its schedule, and one
  student trained with any distillation method.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import torch

from evl_lite.atomic import write_json_atomic
from evl_lite.data.benchmark import BenchmarkData, current_scale, unlabelled_records
from evl_lite.distillation.evl import DistillConfig, method_losses
from evl_lite.distillation.teacher_cache import TeacherCache, shared_cache_dir
from evl_lite.errors import ECGDataError
from evl_lite.evaluation.metrics import macro_auc
from evl_lite.models.student import ECGStudentCNN, StudentConfig
from evl_lite.models.teacher import ECGTransformer, ECGTransformerConfig
from evl_lite.training.loop import (
    Distillation,
    Supervised,
    TrainConfig,
    TrainResult,
    process_state,
    train,
    window_starts,
)
from evl_lite.training.pretraining import PretrainConfig, pretrain

# ----------------------------------------------------------------------------- teacher


def teacher_recipe(smoke: bool) -> tuple[ECGTransformerConfig, PretrainConfig, TrainConfig]:
    """Teacher size and schedules: tiny in smoke mode, a real (still CPU-sized) run otherwise."""
    # A strided convolutional stem along each lead and per-lead pooling: on the workshop data
    # they lifted test macro-AUC from 0.855 (linear patches, CLS) to 0.933; one residual block
    # after each strided layer of the stem, to 0.946 (docs/teacher_search.md, teacher variants)
    architecture = {"tokenizer": "stem", "pooling": "leads", "stem_blocks": 1}
    if smoke:
        return (
            ECGTransformerConfig(d_model=32, n_layers=1, n_heads=2, ffn=64, **architecture),
            PretrainConfig(epochs=1, batch_size=64, progress=False),
            TrainConfig(epochs=2, batch_size=32, lr=1e-3, eval_windows=3, progress=False),
        )
    # 0.5 s patches (60 tokens per 2.5 s window) halve the cost of the 0.25 s default on a CPU.
    # Two encoder blocks without dropout: a training step about 1.6x cheaper than four blocks with
    # dropout 0.1; over three seeds test macro-AUC 0.005 lower on the synthetic data and 0.022
    # higher on PTB-XL-500 (docs/teacher_search.md, "Two encoder blocks without dropout")
    # The workshop run is notebook 02's short demonstration of the recipe (2 + 10 epochs): the
    # teacher the course distils from is the shipped foundation teacher (evl_lite.foundation).
    full = current_scale(smoke) == "full"
    return (
        ECGTransformerConfig(patch_len=50, n_layers=2, dropout=0.0, **architecture),
        PretrainConfig(epochs=10 if full else 2, batch_size=64),
        TrainConfig(epochs=40 if full else 10, batch_size=32, lr=1e-3),
    )


def _schedules(pre_config: PretrainConfig, fine_config: TrainConfig) -> dict[str, dict]:
    """The two schedules of a teacher recipe as JSON, without what does not change the weights."""
    drop = {"seed", "progress"}
    return {
        name: {k: v for k, v in dataclasses.asdict(c).items() if k not in drop}
        for name, c in (("pretrain", pre_config), ("finetune", fine_config))
    }


def recipe_differences(checkpoint_dir: str | os.PathLike, info: dict, smoke: bool) -> list[str]:
    """How the teacher saved in ``checkpoint_dir`` differs from :func:`teacher_recipe` (empty: it matches).

    Compares every ``ECGTransformerConfig`` field of its ``config.json`` (a field the file lacks
    takes its default, as ``from_pretrained`` would) and, when ``teacher_info.json`` recorded
    them, the pretraining and fine-tuning schedules. Each item reads "field saved, recipe".
    """
    model_config, pre_config, fine_config = teacher_recipe(smoke)
    saved = ECGTransformerConfig.from_pretrained(checkpoint_dir)
    fields = [f for f in ECGTransformerConfig.__annotations__ if f != "model_type"]
    changed = [
        f"{f} {getattr(saved, f)!r}, recipe {getattr(model_config, f)!r}"
        for f in fields
        if getattr(saved, f) != getattr(model_config, f)
    ]
    if "recipe" in info:
        want = _schedules(pre_config, fine_config)
        for stage, schedule in want.items():
            made = info["recipe"].get(stage, {})
            changed += [
                f"{stage} {k} {made.get(k)!r}, recipe {v!r}" for k, v in schedule.items() if made.get(k) != v
            ]
    return changed


def get_teacher(
    checkpoint_dir: str | os.PathLike,
    data: BenchmarkData,
    smoke: bool = False,
    seed: int = 0,
    unlabelled: np.ndarray | None = None,
) -> tuple[ECGTransformer, dict]:
    """Load the teacher from ``checkpoint_dir``, or pretrain + fine-tune one there.

    The second value is the record of how it was made (``teacher_info.json`` next to the
    weights: pretraining and fine-tuning histories and schedules, validation macro-AUC). An
    existing checkpoint must match ``data``, the scale and :func:`teacher_recipe`, or an
    :class:`ECGDataError` names the directory and the difference.
    """
    path = Path(checkpoint_dir)
    info_file = path / "teacher_info.json"
    if (path / "config.json").is_file() and info_file.is_file():
        info = json.loads(info_file.read_text())
        made_on = info.get("data_root")
        scale = current_scale(smoke)
        made_at = info.get("scale", "smoke" if info.get("smoke") else "workshop")
        if made_on != str(data.root) or made_at != scale:
            raise ECGDataError(
                path,
                f"this teacher was trained on {made_on} at the {made_at} scale, "
                f"not on {data.root} at the {scale} scale; delete it or choose another directory",
            )
        if changed := recipe_differences(path, info, smoke):
            raise ECGDataError(
                path,
                f"this teacher was made with another recipe than teacher_recipe() ({'; '.join(changed)}); "
                "delete it or choose another directory",
            )
        return ECGTransformer.from_pretrained(path), info
    model_config, pre_config, fine_config = teacher_recipe(smoke)
    pre_config.seed = fine_config.seed = seed
    torch.manual_seed(seed)
    teacher = ECGTransformer(model_config)
    x_unlabelled = unlabelled if unlabelled is not None else data.train.x
    pre_history = pretrain(teacher, x_unlabelled, pre_config, out_dir=path / "pretraining")
    result = train(teacher, data.train, data.val, fine_config, out_dir=path / "finetuning")
    state = process_state()  # under `accelerate launch` every process trains; only the main one writes
    if state.is_main_process:
        teacher.save_pretrained(path)
    info = {
        "pretrain_history": pre_history,
        "finetune_history": result.history,
        "best_val_macro_auc": result.best_val_auc,
        "best_epoch": result.best_epoch,
        "unlabelled_records": int(len(x_unlabelled)),
        "seed": seed,
        "smoke": smoke,
        "scale": current_scale(smoke),
        "data_root": str(data.root),
        "recipe": _schedules(pre_config, fine_config),
    }
    if state.is_main_process:
        write_json_atomic(info_file, info)
    state.wait_for_everyone()
    return teacher.eval(), info


def shipped_teacher_name(source: str) -> str:
    """The shipped foundation teacher for a data source: ``synthetic`` data, or real ``ptbxl``."""
    return "synthetic" if source == "synthetic" else "ptbxl"


def resolve_teacher(
    teacher: str | os.PathLike | None,
    data: BenchmarkData,
    smoke: bool = False,
    seed: int = 0,
    unlabelled_dir: str | os.PathLike | None = None,
) -> tuple[ECGTransformer, dict, Path]:
    """The frozen teacher to distil from: ``(model, info, directory)``.

    ``teacher`` (a notebook's ``TEACHER``, the experiment's ``--teacher``): empty for the shipped
    foundation teacher of ``data``'s source (:func:`evl_lite.foundation.load_teacher`, hash
    verified); a shipped name or a directory with a model card (``foundation train``); or a
    workshop teacher's directory (``teacher_info.json``, as notebook 02 makes), loaded or made by
    :func:`get_teacher` (pretrained on the training split and ``unlabelled_dir``). A carded teacher
    is refused on data its card says it was trained on.
    ``info["best_val_macro_auc"]`` is the teacher's validation macro-AUC on ``data``.
    """
    from evl_lite.data.draws import evaluation_dir
    from evl_lite.foundation.corpus import check_not_trained_on
    from evl_lite.foundation.hub import CARD_JSON, load_teacher
    from evl_lite.training.loop import predict

    spec = str(teacher) if teacher else shipped_teacher_name(data.source)
    path = Path(spec).expanduser()
    is_path = path.is_dir() or "/" in spec or os.sep in spec  # else a shipped name
    if is_path and not (path / CARD_JSON).is_file():  # a workshop teacher: loaded, or made there
        x_unlabelled = unlabelled_records(data, unlabelled_dir, progress=False) if unlabelled_dir else None
        model, info = get_teacher(path, data, smoke=smoke, seed=seed, unlabelled=x_unlabelled)
        return model.eval().requires_grad_(False), info, path
    model = load_teacher(spec)
    card = model.card
    test_root = evaluation_dir(smoke, progress=False) if data.source == "synthetic" else data.root
    for name, root, split in (("validation data", data.root, data.val), ("test data", test_root, data.test)):
        check_not_trained_on(card.fields, root, split.ecg_ids, name)
    _, _, schedule = teacher_recipe(smoke)
    val_auc = macro_auc(data.val.y, predict(model, data.val.x, schedule.crop, schedule.eval_windows))[0]
    info = {"name": card.name, "card": card.fields, "best_val_macro_auc": float(val_auc),
            "seen_records": card.fields["pretraining_records"] + card.fields["finetuning_records"]}
    return model, info, card.directory


# ----------------------------------------------------------------------------- students


def student_recipe(smoke: bool, seed: int = 0) -> tuple[StudentConfig, TrainConfig]:
    """The student and its schedule: the teacher's batch, windows and evaluation; learning rate 1e-2."""
    _, _, teacher_train = teacher_recipe(smoke)
    config = TrainConfig(
        epochs={"smoke": 2, "workshop": 15, "full": 30}[current_scale(smoke)],
        batch_size=teacher_train.batch_size,
        lr=1e-2,
        crop=teacher_train.crop,
        eval_windows=teacher_train.eval_windows,
        seed=seed,
        progress=not smoke,
    )
    return StudentConfig(), config


def distill_student(
    method: str,
    data: BenchmarkData,
    teacher: TeacherCache | ECGTransformer | None,
    config: TrainConfig,
    student_config: StudentConfig | None = None,
    initial_state: dict | None = None,
    distill_config: DistillConfig | None = None,
    out_dir: str | os.PathLike | None = None,
    resume: bool = False,
) -> tuple[ECGStudentCNN, TrainResult, Distillation | Supervised]:
    """Train one student with ``method`` (see ``distillation.evl.METHODS``; ``scratch``: labels only).

    Returns the student, its training result and the objective, whose losses hold the trained
    projectors (and so the attention of the cross-attention component, for example).
    ``initial_state`` lets several methods start from the same weights.
    """
    student_config = student_config or StudentConfig()
    torch.manual_seed(config.seed)
    student = ECGStudentCNN(student_config)
    if initial_state is not None:
        student.load_state_dict(initial_state)
    if method == "scratch":
        objective: Distillation | Supervised = Supervised()
        teacher = None
    else:
        if teacher is None:
            raise ValueError(f"method {method!r} needs a teacher (a TeacherCache or the model)")
        d_teacher = teacher.tokens.shape[-1] if isinstance(teacher, TeacherCache) else teacher.config.d_model
        losses, weights = method_losses(method, student_config.stage_channels[-1], d_teacher, distill_config,
                                        student_config.stage_channels)
        objective = Distillation(losses, weights)
    result = train(student, data.train, data.val, config, objective=objective, teacher=teacher,
                   out_dir=out_dir, resume=resume)
    return student, result, objective


def lesson_student(
    data: BenchmarkData,
    student_dir: str | os.PathLike | None,
    output_dir: str | os.PathLike,
    teacher: str | os.PathLike | None = None,
    smoke: bool = False,
    seed: int = 0,
    method: str = "evl",
) -> tuple[ECGStudentCNN, ECGTransformer, dict]:
    """The trained student a lesson evaluates (notebooks 08, 09) and the teacher it was distilled from.

    The student: ``student_dir`` when given; else notebook 07's ``method`` run on this data
    (:func:`evl_lite.evaluation.deployment.locate_student`); else one distilled here with the
    recipe and saved in ``output_dir/student``. The teacher:
    ``teacher`` when given, else the one the student was distilled from, else the shipped one.
    Returns ``(student, teacher, {"origin": ..., "teacher_dir": ...})``, both models in eval mode.
    """
    from evl_lite.evaluation.deployment import load_student, locate_student

    out = Path(output_dir)
    student_config, train_config = student_recipe(smoke, seed)
    source = locate_student(student_dir, out, seed, data.root, smoke, method)
    teacher_dir = teacher
    if not teacher_dir and source is not None and source.teacher_dir and Path(source.teacher_dir).is_dir():
        teacher_dir = source.teacher_dir  # the teacher this student was distilled from
    model, _, teacher_path = resolve_teacher(teacher_dir, data, smoke=smoke, seed=seed)
    if source is not None:
        return load_student(source, student_config).eval(), model, {"origin": source.origin,
                                                                    "teacher_dir": str(teacher_path)}
    print(f"no trained {method} student found (notebook 07 has not run on this data): distilling one here")
    crop, n_windows = train_config.crop, train_config.eval_windows
    starts = window_starts(data.train.x.shape[-1], crop, n_windows)
    cache = TeacherCache.build(model, data.train.x, crop, starts, cache_dir=shared_cache_dir(),
                               progress=not smoke)
    student, trained, _ = distill_student(method, data, cache, train_config, student_config,
                                          out_dir=out / f"{method}_student")
    student.save_pretrained(out / "student")
    origin = (f"distilled here with the {method} recipe (best of {len(trained.history)} epochs), "
              f"saved to {out / 'student'}")
    return student.eval(), model, {"origin": origin, "teacher_dir": str(teacher_path)}
