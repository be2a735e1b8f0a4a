"""The model behind ``predict``: a distilled student with its card, run by PyTorch or onnxruntime.

:func:`load_predictor` accepts, as ``--model``:

- a shipped student's name (default ``ptbxl-student``: distilled on real PTB-XL) or a directory with
  a student model card (``python -m evl_lite student ship``), its hash verified;
- a directory written by ``python -m evl_lite experiment`` (its student chosen as ``student ship``
  chooses, :mod:`evl_lite.predict.from_experiment`) or one of its runs (``runs/<method>/seed<k>``):
  the thresholds are tuned on that experiment's validation split on the spot;
- an ONNX file written by ``python -m evl_lite student export``: the student's inference graph
  (:class:`evl_lite.evaluation.deployment.LogitsGraph`) with its model card in the file's metadata
  (``evl_lite.card``), run by onnxruntime. Export checks parity with PyTorch:
  ``max |z_onnx - z_torch| < 1e-4`` over random windows, and records it in the card.

Anything else (a teacher, a student directory without a card, an ONNX file without a card, a card
made for another preprocessing or window) is an :class:`ECGDataError` naming the file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from evl_lite.atomic import replace_atomically
from evl_lite.constants import LEADS, SUPERCLASSES
from evl_lite.errors import ECGDataError
from evl_lite.foundation.hub import CARD_JSON
from evl_lite.predict.student_hub import (
    DEFAULT_STUDENT,
    check_input_spec,
    load_student_card,
    student_directory,
)

ONNX_CARD_KEY = "evl_lite.card"
PARITY_LIMIT = 1e-4  # |logit difference| allowed between the ONNX export and PyTorch


@dataclass
class Predictor:
    """A student ready to score windows ``[N, 12, crop]``: its card fields, runtime and origin.

    ``module`` maps windows to logits as an ``nn.Module`` (for occlusion maps, whatever the runtime).
    """

    card: dict
    runtime: str  # "pytorch" or "onnxruntime"
    origin: str
    logits: Callable[[np.ndarray], np.ndarray]
    module: nn.Module
    batch_size: int = 1024  # windows per model call

    @property
    def input_spec(self) -> dict:
        return self.card["input"]

    @property
    def thresholds(self) -> np.ndarray:
        return np.array([float(self.card["thresholds"][name]) for name in SUPERCLASSES])

    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        """Sigmoid probabilities [N, C] (float32) of windows [N, 12, crop], in batches."""
        out = [np.zeros((0, len(SUPERCLASSES)), dtype=np.float32)]
        for i in range(0, len(windows), self.batch_size):
            chunk = np.ascontiguousarray(windows[i : i + self.batch_size], dtype=np.float32)
            z = torch.from_numpy(np.asarray(self.logits(chunk), dtype=np.float32))
            out.append(torch.sigmoid(z).numpy())  # as training.predict computes it
        return np.concatenate(out)

    def describe(self) -> dict:
        """The ``model`` entry of every prediction."""
        f = self.card
        return {"name": f.get("name"), "method": f.get("method"), "seed": f.get("seed"),
                "teacher": f.get("teacher", {}).get("name"), "data": f.get("data", {}).get("dataset"),
                "runtime": self.runtime, "sha256": f.get("sha256"), "from": self.origin}


class _OnnxModule(nn.Module):
    """An onnxruntime session as an ``nn.Module`` (x -> logits), for occlusion maps."""

    def __init__(self, logits: Callable[[np.ndarray], np.ndarray]):
        super().__init__()
        self._logits = logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self._logits(x.detach().numpy().astype(np.float32)), np.float32))


def torch_predictor(student: nn.Module, card: dict, origin: str) -> Predictor:
    """A PyTorch predictor of a student (``ECGStudentCNN``), through its inference graph."""
    from evl_lite.evaluation.deployment import LogitsGraph

    graph = LogitsGraph(student).eval().requires_grad_(False)

    def logits(windows: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return graph(torch.from_numpy(windows)).numpy()

    return Predictor(card, "pytorch", origin, logits, graph)


def onnx_predictor(path: Path, threads: int | None = None) -> Predictor:
    """An onnxruntime predictor of an ONNX file exported by :func:`export_student`."""
    from evl_lite.evaluation.deployment import onnx_session

    if not path.is_file():
        raise ECGDataError(path, "does not exist")
    try:
        session = onnx_session(path, threads=threads or min(os.cpu_count() or 1, 4))
    except Exception as exc:  # onnxruntime raises its own exception types for unreadable files
        raise ECGDataError(path, f"cannot be loaded by onnxruntime ({type(exc).__name__}: {exc})") from None
    text = session.get_modelmeta().custom_metadata_map.get(ONNX_CARD_KEY)
    if text is None:
        raise ECGDataError(path, "carries no student model card: its thresholds are unknown; export the "
                                 "student with `python -m evl_lite student export`")
    card = json.loads(text)
    check_input_spec(card, path)
    shape = session.get_inputs()[0].shape  # ["batch", 12, crop]
    if len(shape) != 3 or shape[1:] != [len(LEADS), card["input"]["crop"]]:
        raise ECGDataError(path, f"takes input {shape}, but its card describes windows "
                                 f"[batch, {len(LEADS)}, {card['input']['crop']}]")
    name = session.get_inputs()[0].name

    def logits(windows: np.ndarray) -> np.ndarray:
        return session.run(None, {name: windows})[0]

    return Predictor(card, "onnxruntime", str(path), logits, _OnnxModule(logits))


def load_predictor(
    spec: str | os.PathLike | None = None,
    threads: int | None = None,
    data_path: str | os.PathLike | None = None,
) -> Predictor:
    """The predictor ``--model`` names (module docstring); the shipped PTB-XL student by default."""
    text = str(spec) if spec else DEFAULT_STUDENT
    if text.lower().endswith(".onnx"):
        return onnx_predictor(Path(text).expanduser(), threads)
    directory = student_directory(text)  # a shipped name, else a directory (an error otherwise)
    if (directory / CARD_JSON).is_file():
        student, card = load_student_card(directory)
        return torch_predictor(student, card.fields, text)
    config = directory / "config.json"
    if config.is_file():
        try:
            model_type = json.loads(config.read_text()).get("model_type")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            model_type = None
        other = model_type and model_type != "ecg_student_cnn"
        what = f"a {model_type!r} checkpoint" if other else "a student"
        raise ECGDataError(config, f"is {what} without a student model card (card.json): --model needs a "
                                   "distilled student with its thresholds; make one with "
                                   "`python -m evl_lite student ship`")
    from evl_lite.predict.from_experiment import student_from_experiment

    student, fields = student_from_experiment(directory, data_path)
    digest = fields["experiment"]["weights_sha256"]
    return torch_predictor(student, {**fields, "name": f"{fields['method']}-seed{fields['seed']}",
                                     "sha256": digest}, text)


def export_student(predictor: Predictor, out: str | os.PathLike, n_parity: int = 64) -> tuple[Path, float]:
    """Write the predictor's student as ONNX with its card in the metadata; returns (path, parity).

    Parity: the largest |logit difference| between onnxruntime and PyTorch on ``n_parity`` random
    windows; at or above ``PARITY_LIMIT`` the file is not written.
    """
    import onnx

    from evl_lite.evaluation.deployment import export_onnx, onnx_logits, onnx_session

    if predictor.runtime != "pytorch":
        raise ECGDataError(predictor.origin, "is already an ONNX export; export the PyTorch student")
    out = Path(out)
    crop = int(predictor.input_spec["crop"])
    windows = torch.randn(n_parity, len(LEADS), crop, generator=torch.Generator().manual_seed(0))
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        export_onnx(predictor.module, windows[:2], tmp)
        with torch.inference_mode():
            reference = predictor.module(windows)
        parity = float((onnx_logits(onnx_session(tmp))(windows) - reference).abs().max())
        if parity >= PARITY_LIMIT:
            raise ECGDataError(out, f"ONNX export differs from PyTorch by {parity:.2e} in a logit (limit "
                                    f"{PARITY_LIMIT:g}); not written")
        model = onnx.load(str(tmp))
        card = {**predictor.card, "onnx": {"exported_from": predictor.origin, "parity_max_abs_logit": parity,
                                           "parity_windows": n_parity}}
        onnx.helper.set_model_props(model, {ONNX_CARD_KEY: json.dumps(card)})
        onnx.save(model, str(tmp))
        replace_atomically(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out, parity


__all__ = ["Predictor", "export_student", "load_predictor", "onnx_predictor", "torch_predictor"]
