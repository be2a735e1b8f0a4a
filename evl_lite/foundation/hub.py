"""Shipped teachers, loaded like models from a hub: a model card, a verified hash, ``from_pretrained``.

A teacher directory holds ``config.json`` and ``model.safetensors`` (``save_pretrained``), plus
``card.json`` (the model card: corpus and seeds, recipe, command, commit, wall time, machine,
validation and test metrics, and the SHA-256 of the weights) and ``README.md`` (the same card in
words). :func:`load_teacher` accepts a shipped name (``"synthetic"``, ``"ptbxl"``: directories
of ``evl_lite/foundation/weights``, installed with the package) or a directory written by
``python -m evl_lite foundation train``. Before loading it checks that the weights' SHA-256 and
``config.json`` match the card; any mismatch or missing file is an :class:`ECGDataError` naming
the file.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from evl_lite.atomic import write_json_atomic, write_text_atomic
from evl_lite.errors import ECGDataError
from evl_lite.models.teacher import ECGTransformer, ECGTransformerConfig

WEIGHTS_DIR = Path(__file__).parent / "weights"
CARD_JSON = "card.json"
CARD_MARKDOWN = "README.md"
WEIGHTS_FILE = "model.safetensors"
BACKBONE_FILE = "backbone.safetensors"  # the weights after pretraining, before fine-tuning
CONFIG_FILE = "config.json"


def shipped_teachers() -> list[str]:
    """Names of the teachers shipped inside the package."""
    return shipped_names(WEIGHTS_DIR)


def shipped_names(weights_dir: Path) -> list[str]:
    """Names of the carded model directories in ``weights_dir`` (teachers here, students in predict)."""
    if not weights_dir.is_dir():
        return []
    return sorted(p.name for p in weights_dir.iterdir() if (p / CARD_JSON).is_file())


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _config_fields(config: dict) -> dict:
    """The fields of a teacher config that define the model (not the library's bookkeeping)."""
    defaults = ECGTransformerConfig().to_dict()
    keep = set(ECGTransformerConfig.__annotations__) - {"model_type"}
    return {k: config.get(k, defaults.get(k)) for k in sorted(keep)}


@dataclass
class ModelCard:
    """A teacher's model card: ``fields`` as stored in ``card.json`` of ``directory``.

    Subclasses (the distilled student's card, :mod:`evl_lite.predict.student_hub`) set ``kind`` and
    the config fields that define their model (:meth:`config_fields`), and share the verification.
    """

    directory: Path
    fields: dict = field(default_factory=dict)
    kind: ClassVar[str] = "teacher"

    @property
    def name(self) -> str:
        return self.fields.get("name", self.directory.name)

    @classmethod
    def read(cls, directory: str | os.PathLike) -> ModelCard:
        directory = Path(directory)
        path = directory / CARD_JSON
        if not path.is_file():
            raise ECGDataError(path, f"missing: a {cls.kind} directory needs its model card (card.json)")
        try:
            fields = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ECGDataError(path, f"is not a valid model card ({exc})") from None
        if not isinstance(fields, dict) or "sha256" not in fields or "config" not in fields:
            raise ECGDataError(path, "is not a model card: it needs at least 'sha256' and 'config'")
        return cls(directory, fields)

    def write(self) -> None:
        """Write ``card.json`` and its words, ``README.md``, atomically."""
        write_json_atomic(self.directory / CARD_JSON, self.fields)
        write_text_atomic(self.directory / CARD_MARKDOWN, self.markdown())

    def verify(self) -> None:
        """Check that the weights' SHA-256 and ``config.json`` are the ones the card names."""
        weights = self.directory / WEIGHTS_FILE
        config_path = self.directory / CONFIG_FILE
        for path in (weights, config_path):
            if not path.is_file():
                raise ECGDataError(path, f"missing: the model card {self.directory / CARD_JSON} names it")
        digest = sha256_file(weights)
        if digest != self.fields["sha256"]:
            raise ECGDataError(
                weights,
                f"SHA-256 {digest[:12]}... does not match the model card's {self.fields['sha256'][:12]}...: "
                f"the weights were changed or damaged; reinstall the package or remake the {self.kind}",
            )
        try:
            saved = self.config_fields(json.loads(config_path.read_text()))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ECGDataError(config_path, f"is not valid JSON ({exc})") from None
        carded = self.config_fields(self.fields["config"])
        if changed := [f"{k} {saved[k]!r} (card {carded[k]!r})" for k in saved if saved[k] != carded[k]]:
            raise ECGDataError(config_path, f"does not match the model card: {'; '.join(changed)}")

    def config_fields(self, config: dict) -> dict:
        """The fields of a config (``config.json`` or the card's) that define the model (:meth:`verify`)."""
        return _config_fields(config)

    def markdown(self) -> str:
        """The card in words (the ``README.md`` shipped beside the weights)."""
        f = self.fields
        metrics = f.get("metrics", {})
        ratio = f.get("parameters_vs_student", 0)
        lines = [
            f"# Foundation teacher `{self.name}`",
            "",
            f.get("summary", ""),
            "",
            "| | |",
            "|---|---|",
            f"| parameters | {f.get('parameters', 0):,} ({ratio:.1f}x the student's) |",
            f"| pretraining records | {f.get('pretraining_records', '?'):,} |",
            f"| fine-tuning records | {f.get('finetuning_records', '?'):,} |",
            *(f"| {name} | {metric_text(value)} |" for name, value in metrics.items()),
            f"| wall time | {_wall_time_text(f, '.1f')} |",
            f"| machine | {f.get('provenance', {}).get('machine', '?')} |",
            f"| commit | {f.get('provenance', {}).get('commit', '?')} |",
            f"| SHA-256 of model.safetensors | `{f.get('sha256', '?')}` |",
            "",
            "Made with:",
            "",
            "```",
            f.get("command", "?"),
            "```",
            "",
            "Corpus:",
            "",
            *(f"- {_corpus_text(c)}" for c in f.get("corpus", [])),
            "",
            "Recipe (`card.json` holds it in full):",
            "",
            "```json",
            json.dumps(f.get("recipe", {}), indent=1),
            "```",
            "",
        ]
        return "\n".join(lines)


def metric_text(value) -> str:
    """A card metric ``{"value", "ci", "records", "what"}`` in words (teacher and student cards)."""
    if isinstance(value, dict) and "value" in value:
        ci = value.get("ci")
        interval = f" (95% CI {ci[0]:.3f}-{ci[1]:.3f})" if ci else ""
        records = value.get("records", "?")
        return f"{value['value']:.3f}{interval} on {records} records ({value.get('what', '')})"
    return str(value)


def _wall_time_text(f: dict, spec: str) -> str:
    """This teacher's wall time, plus that of the teacher it started from (card field ``init``)."""
    text = f"{f.get('seconds', 0) / 60:{spec}} min"
    if init := f.get("init"):
        text += f" after `{init['name']}`'s {(init.get('seconds') or 0) / 60:{spec}} min"
    return text


def _corpus_text(c: dict) -> str:
    if c.get("source") == "synthetic":
        draw = f"synthetic draw `{c.get('name')}`, seed {c.get('seed')}"
        return f"{c.get('role', '')}: {draw}, {c.get('records')} records"
    ids = c.get("ecg_ids")
    count = f", {len(ids)} records" if ids is not None else ""
    return f"{c.get('role', '')}: {c.get('source')} `{c.get('name')}`{count}"


def cards_markdown(names: list[str] | None = None) -> str:
    """A Markdown table of the shipped teachers' cards (``python -m evl_lite foundation cards``)."""
    lines = [
        "| teacher | parameters | records: pretraining / labelled | validation macro-AUC | "
        "test macro-AUC (95% CI) | test set | wall time |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in names or shipped_teachers():
        f = ModelCard.read(WEIGHTS_DIR / name).fields
        val, test = f["metrics"]["validation_macro_auc"], f["metrics"]["test_macro_auc"]
        lines.append(
            f"| `{name}` | {f['parameters']:,} ({f['parameters_vs_student']:.1f}x the student's) | "
            f"{f['pretraining_records']:,} / {f['finetuning_records']:,} | {val['value']:.3f} | "
            f"{test['value']:.3f} ({test['ci'][0]:.3f}-{test['ci'][1]:.3f}) | {test['records']:,} records, "
            f"{test['what']} | {_wall_time_text(f, '.0f')} |"
        )
    return "\n".join(lines)


def teacher_directory(name_or_dir: str | os.PathLike) -> Path:
    """A shipped name -> its directory in the package; anything else is taken as a directory."""
    return shipped_directory(name_or_dir, WEIGHTS_DIR, "teacher", "`python -m evl_lite foundation train`")


def shipped_directory(name_or_dir: str | os.PathLike, weights_dir: Path, kind: str, made_by: str) -> Path:
    """A name shipped in ``weights_dir`` -> its directory; anything else is taken as a directory.

    An unknown name lists the shipped ones; a path that is no directory is an error too (both
    name the path). ``kind`` ("teacher", "student") and ``made_by`` (the command) word the errors.
    """
    text = str(name_or_dir)
    if os.sep not in text and "/" not in text and not Path(text).is_dir():
        if (weights_dir / text / CARD_JSON).is_file():
            return weights_dir / text
        raise ECGDataError(
            weights_dir / text,
            f"no shipped {kind} {text!r} (shipped: {', '.join(shipped_names(weights_dir)) or 'none'}); "
            f"give a name or a directory made by {made_by}",
        )
    path = Path(text).expanduser()
    if not path.is_dir():
        raise ECGDataError(path, f"is not a directory: a {kind} is a directory with card.json and weights")
    return path


def load_teacher(name_or_dir: str | os.PathLike = "synthetic") -> ECGTransformer:
    """The frozen foundation teacher, its hash and config verified against its card.

    The card is ``teacher.card`` (a :class:`ModelCard`). Gradients are off and the model is in
    evaluation mode: a teacher is only ever read.
    """
    card = ModelCard.read(teacher_directory(name_or_dir))
    card.verify()
    teacher = ECGTransformer.from_pretrained(card.directory)
    teacher.card = card
    return teacher.eval().requires_grad_(False)


def load_backbone(name_or_dir: str | os.PathLike = "ptbxl") -> ECGTransformer:
    """A teacher's pretrained backbone, to fine-tune: the weights after masked-patch pretraining.

    The card's ``backbone`` field names the file and its SHA-256 (``foundation train`` keeps it);
    the config is the teacher's. The model is returned trainable, in training mode. A missing
    field or file, or a hash mismatch, is an :class:`ECGDataError` naming the file.
    """
    card = ModelCard.read(teacher_directory(name_or_dir))
    card.verify()
    entry = card.fields.get("backbone")
    if not entry:
        raise ECGDataError(card.directory / CARD_JSON, "names no pretrained backbone (field 'backbone'): "
                           "remake the teacher with `python -m evl_lite foundation train`, which keeps it")
    path = card.directory / entry["file"]
    if not path.is_file():
        raise ECGDataError(path, f"missing: the model card {card.directory / CARD_JSON} names it")
    if (digest := sha256_file(path)) != entry["sha256"]:
        raise ECGDataError(path, f"SHA-256 {digest[:12]}... does not match the model card's "
                           f"{entry['sha256'][:12]}...: the backbone was changed or damaged")
    from safetensors.torch import load_file

    model = ECGTransformer.from_pretrained(card.directory)
    model.load_state_dict(load_file(path))
    model.card = card
    return model.train().requires_grad_(True)
