"""The shipped distilled student: a model card, a verified hash, and the directory it lives in.

A student directory holds ``config.json`` and ``model.safetensors`` (``ECGStudentCNN.save_pretrained``),
``card.json`` (the model card: data, distillation method, teacher, seed, the experiment's command and
commit, validation and fold-10 test macro-AUC, the decision thresholds tuned on validation, how
``predict`` prepares a record for it, and the SHA-256 of the weights) and ``README.md`` (the card in
words). Shipped students live in ``evl_lite/predict/weights/<name>/`` and install with the package;
``python -m evl_lite student ship`` makes one (:mod:`evl_lite.predict.from_experiment`).

Verification is the foundation teachers' (:class:`evl_lite.foundation.hub.ModelCard`): the weights'
SHA-256 and ``config.json`` must match the card, or an :class:`ECGDataError` names the file. A
student card also records the preprocessing its thresholds were tuned with; a card whose
preprocessing differs from the package's is refused, naming ``card.json``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import ClassVar

from evl_lite.atomic import replace_directory
from evl_lite.constants import SUPERCLASSES
from evl_lite.errors import ECGDataError
from evl_lite.foundation.hub import (
    CARD_JSON,
    WEIGHTS_FILE,
    ModelCard,
    metric_text,
    sha256_file,
    shipped_directory,
    shipped_names,
)
from evl_lite.models.student import ECGStudentCNN, StudentConfig

STUDENT_WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_STUDENT = "ptbxl-student"
MADE_BY = "`python -m evl_lite student ship`"


def shipped_students() -> list[str]:
    """Names of the students shipped inside the package."""
    return shipped_names(STUDENT_WEIGHTS_DIR)


def model_input_spec() -> dict:
    """How ``predict`` prepares a record for the student: the models' preprocessing (``data.benchmark``)."""
    from evl_lite.data.benchmark import MODEL_NORMALISATION, model_preprocessing

    config = model_preprocessing()
    return {"fs": config.target_fs, "preprocessing": json.loads(json.dumps(dataclasses.asdict(config))),
            "normalisation": MODEL_NORMALISATION}


def check_input_spec(fields: dict, source: Path) -> None:
    """Refuse card ``fields`` made for another input than ``predict`` prepares (error naming ``source``)."""
    want = model_input_spec()
    have = fields.get("input") if isinstance(fields.get("input"), dict) else {}
    changed = [f"{k} {have.get(k)!r} (package: {v!r})" for k, v in want.items() if have.get(k) != v]
    for key in ("crop", "eval_windows", "reference_length"):
        if not isinstance(have.get(key), int) or have[key] < 1:
            changed.append(f"{key} {have.get(key)!r} (a positive number of samples is needed)")
    if not isinstance(fields.get("thresholds"), dict) or set(fields["thresholds"]) != set(SUPERCLASSES):
        changed.append(f"thresholds {fields.get('thresholds')!r} (one per class of {list(SUPERCLASSES)})")
    if changed:
        raise ECGDataError(source, f"this student was made for another input than predict prepares: "
                                   f"{'; '.join(changed)}")


class StudentCard(ModelCard):
    """A student's model card: ``fields`` as stored in ``card.json`` of ``directory``."""

    kind: ClassVar[str] = "student"

    def config_fields(self, config: dict) -> dict:
        """The fields of a student config that define the model."""
        defaults = dataclasses.asdict(StudentConfig())
        return {f: _as_list(config.get(f, defaults[f])) for f in sorted(defaults)}

    @property
    def thresholds(self) -> list[float]:
        """Decision thresholds [C] in ``SUPERCLASSES`` order."""
        return [float(self.fields["thresholds"][name]) for name in SUPERCLASSES]

    def check_input_spec(self) -> None:
        """Refuse a card whose thresholds were tuned on records prepared otherwise than ``predict`` does."""
        check_input_spec(self.fields, self.directory / CARD_JSON)

    def markdown(self) -> str:
        f = self.fields
        metrics = f.get("metrics", {})
        teacher = f.get("teacher", {})
        lines = [
            f"# Distilled student `{self.name}`",
            "",
            f.get("summary", ""),
            "",
            "Educational use only, not a diagnosis.",
            "",
            "| | |",
            "|---|---|",
            f"| distillation method | {f.get('method')} (chosen by mean validation macro-AUC over seeds) |",
            f"| seed | {f.get('seed')} (chosen by validation macro-AUC) |",
            f"| teacher | `{teacher.get('name')}` |",
            f"| parameters | {f.get('parameters', 0):,} |",
            *(f"| {name} | {metric_text(value)} |" for name, value in metrics.items()),
            "| thresholds (tuned for F1 on validation) | "
            + ", ".join(f"{k} {v:.3f}" for k, v in f.get("thresholds", {}).items()) + " |",
            f"| experiment commit | {f.get('experiment', {}).get('commit', '?')} |",
            f"| shipped at commit | {f.get('provenance', {}).get('commit', '?')} |",
            f"| SHA-256 of model.safetensors | `{f.get('sha256', '?')}` |",
            "",
            "The experiment that trained it:",
            "",
            "```",
            f.get("experiment", {}).get("command", "?"),
            "```",
            "",
            "Shipped with:",
            "",
            "```",
            f.get("command", "?"),
            "```",
            "",
            "Data: " + "; ".join(f"{k}: {v}" for k, v in f.get("data", {}).items()),
            "",
        ]
        return "\n".join(lines)


def _as_list(value):
    return list(value) if isinstance(value, tuple | list) else value


def student_directory(name_or_dir: str | os.PathLike) -> Path:
    """A shipped student's name -> its directory in the package; anything else is taken as a directory."""
    return shipped_directory(name_or_dir, STUDENT_WEIGHTS_DIR, "student", MADE_BY)


def load_student_card(name_or_dir: str | os.PathLike = DEFAULT_STUDENT) -> tuple[ECGStudentCNN, StudentCard]:
    """The student of a card directory, hash and config verified, in evaluation mode; and its card."""
    card = StudentCard.read(student_directory(name_or_dir))
    if card.fields.get("kind") != "student":
        raise ECGDataError(card.directory / CARD_JSON,
                           f"is the model card of a {card.fields.get('kind', 'teacher')}, not of a distilled "
                           f"student: --model needs a student ({MADE_BY})")
    card.verify()
    card.check_input_spec()
    student = ECGStudentCNN.from_pretrained(card.directory)
    return student.eval().requires_grad_(False), card


def write_student(student: ECGStudentCNN, fields: dict, out: str | os.PathLike) -> Path:
    """Write a student directory (weights, config, card) atomically; ``fields`` gets its ``sha256``.

    The directory appears complete or not at all: written aside, verified, then renamed into place.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        student.save_pretrained(tmp)
        card = StudentCard(tmp, {**fields, "name": out.name, "sha256": sha256_file(tmp / WEIGHTS_FILE)})
        card.write()
        card.verify()
        card.check_input_spec()
        replace_directory(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
