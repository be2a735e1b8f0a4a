"""From a record on disk to the student's decision: read, prepare, window, score, decide.

**Prepare** (:func:`prepare`): a record becomes what the student was trained and validated on
(:func:`evl_lite.data.benchmark.model_preprocessing`, then each lead z-scored per record): resampled to
100 Hz by the data layer's polyphase resampler (as :func:`evl_lite.data.ptbxl.load_signals` does for a
record stored at another rate), band-passed 0.5-40 Hz (zero phase), z-scored per lead. A record in
normalised units (NU, already filtered and standardised) is not filtered again, only resampled and
z-scored (z-scoring a z-scored record changes nothing). Refused, naming the file: a record
shorter than one window (2.5 s), a lead that is flat (every sample equal: lead off, or not recorded).

**Windows** (:func:`window_grid`): the models were validated on 10 s records as the maximum of the
sigmoid outputs over 7 windows of 2.5 s (``training.predict``), a stride of 1.25 s. A record of
any length gets windows at that stride (at least as dense), evenly spread from start to end with
:func:`evl_lite.training.loop.window_starts`; a 10 s record gets exactly the validation's 7 windows.
Per class, the probability is the maximum over the windows, ``p_c = max_k sigmoid(z_kc)``, and
the window that attains it is the one that *drove* the decision ``p_c >= t_c`` (thresholds ``t``
tuned on validation).

:func:`predict_records` runs the whole chain over many records, batching every window of up to
``batch_records`` records into one model call, and times each stage (:class:`StageTimes`).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from evl_lite.constants import LEADS, SUPERCLASSES
from evl_lite.data.preprocessing import PreprocessConfig, preprocess, resample, standardise_record
from evl_lite.data.ptbxl import Recording
from evl_lite.errors import ECGDataError
from evl_lite.predict.records import RecordRef, read_ref
from evl_lite.training.loop import window_starts

NOTE = "educational use only, not a diagnosis"


@dataclass
class StageTimes:
    """Seconds spent per stage (``read``, ``preprocess``, ``predict``), summed over calls of :meth:`stage`."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


@dataclass(frozen=True)
class Prepared:
    """A record ready for the model: ``x`` [12, T] float32 at ``fs`` (z-scored per lead) and ``signal``
    [12, T], the same before z-scoring (mV, band-passed; NU for a normalised record) for the ECG paper."""

    x: np.ndarray
    signal: np.ndarray
    fs: int


def prepare(recording: Recording, source: Path | str, spec: dict) -> Prepared:
    """Bring a record to the model's input (module docstring); ``spec`` is the card's ``input``."""
    x, fs_in = recording.x, recording.fs
    fs = int(spec["fs"])
    seconds = x.shape[1] / fs_in
    need = spec["crop"] / fs
    if seconds < need:
        raise ECGDataError(source, f"lasts {seconds:.2f} s ({x.shape[1]} samples at {fs_in:g} Hz); the model "
                                   f"reads windows of {need:g} s, so a record needs at least {need:g} s")
    flat = np.ptp(x, axis=1) == 0  # [12]
    if flat.any():
        leads = [LEADS[i] for i in np.flatnonzero(flat)]
        value = float(x[flat][0, 0])
        raise ECGDataError(source, f"lead(s) {leads} are flat (every sample {value:g}): lead off or not "
                                   "recorded; the model needs all 12 leads")
    try:
        if fs_in != fs:
            x = resample(x, fs_in, fs).astype(np.float32)
        if not recording.normalised:
            x, _ = preprocess(x, fs, preprocess_config(spec))
    except ValueError as exc:  # a sampling rate the polyphase resampler cannot reduce, say
        raise ECGDataError(source, str(exc)) from None
    x = x.astype(np.float32, copy=False)
    return Prepared(standardise_record(x), x, fs)


def preprocess_config(spec: dict) -> PreprocessConfig:
    """The card's ``input.preprocessing`` (JSON) as a :class:`PreprocessConfig`."""
    settings = dict(spec["preprocessing"])
    if settings.get("band") is not None:
        settings["band"] = tuple(settings["band"])
    return PreprocessConfig(**settings)


def window_grid(length: int, crop: int, eval_windows: int, reference_length: int) -> list[int]:
    """Window starts for a record of ``length`` samples: the validation's stride, at least (docstring)."""
    if length <= crop or eval_windows < 2:
        return window_starts(length, crop, eval_windows)
    stride = (reference_length - crop) / (eval_windows - 1)
    return window_starts(length, crop, math.ceil((length - crop) / stride - 1e-9) + 1)


@dataclass
class Prediction:
    """The student's reading of one record.

    ``starts`` [K] window starts (samples at ``fs``), ``window_probabilities`` [K, C], and
    ``probabilities`` [C] their maximum over windows; ``prepared`` is kept for reports.
    """

    ref: RecordRef
    fs_in: float
    n_samples_in: int
    normalised: bool
    fs: int
    crop: int
    starts: np.ndarray
    window_probabilities: np.ndarray
    thresholds: np.ndarray
    prepared: Prepared | None = None

    @property
    def probabilities(self) -> np.ndarray:
        return self.window_probabilities.max(axis=0)  # [C]

    @property
    def decision(self) -> list[str]:
        p = self.probabilities
        return [name for c, name in enumerate(SUPERCLASSES) if p[c] >= self.thresholds[c]]

    def driver(self, c: int) -> int:
        """Index of the window whose probability of class ``c`` is the record's (the first of ties)."""
        return int(np.argmax(self.window_probabilities[:, c]))

    def window_seconds(self, k: int) -> tuple[float, float]:
        start = int(self.starts[k])
        return start / self.fs, (start + self.crop) / self.fs

    def to_json(self, model: dict) -> dict:
        """The record's JSON object (``predict --format json``)."""
        p = self.probabilities
        evidence = {}
        for c, name in enumerate(SUPERCLASSES):
            k = self.driver(c)
            start, end = self.window_seconds(k)
            evidence[name] = {"window_s": [round(start, 3), round(end, 3)], "window": k,
                              "probability": float(self.window_probabilities[k, c])}
        return {
            "record": self.ref.shown,
            "format": self.ref.kind,
            "sampling_rate_hz": self.fs_in,
            "seconds": round(self.n_samples_in / self.fs_in, 3),
            "units": "NU (normalised: not filtered again)" if self.normalised else "mV",
            "probabilities": {name: float(p[c]) for c, name in enumerate(SUPERCLASSES)},
            "decision": self.decision,
            "thresholds": {name: float(self.thresholds[c]) for c, name in enumerate(SUPERCLASSES)},
            "windows": len(self.starts),
            "evidence": evidence,
            "model": model,
            "note": NOTE,
        }


def predict_records(
    refs: Sequence[RecordRef],
    predictor,
    allow_normalised: bool = False,
    keep_inputs: bool = False,
    batch_records: int = 64,
    times: StageTimes | None = None,
    progress: bool = False,
) -> list[Prediction | ECGDataError]:
    """One :class:`Prediction` per record, or the :class:`ECGDataError` that stopped it, in input order.

    ``predictor``: a :class:`evl_lite.predict.predictor.Predictor`. ``keep_inputs`` keeps each
    prepared record (for reports). ``times`` collects the seconds of reading, preparing and scoring.
    """
    times = times or StageTimes()
    spec = predictor.input_spec
    crop = int(spec["crop"])
    thresholds = np.asarray(predictor.thresholds, dtype=np.float64)
    out: list[Prediction | ECGDataError | None] = [None] * len(refs)
    pending: list[tuple[int, Recording, Prepared, list[int]]] = []

    def flush() -> None:
        if not pending:
            return
        with times.stage("predict"):
            windows = np.stack([p.x[:, s : s + crop] for _, _, p, starts in pending for s in starts])
            probabilities = predictor.probabilities(windows)  # [sum K, C]
        at = 0
        for i, recording, prepared, starts in pending:
            k = len(starts)
            out[i] = Prediction(refs[i], recording.fs, recording.x.shape[1], recording.normalised,
                                prepared.fs, crop, np.asarray(starts), probabilities[at : at + k],
                                thresholds, prepared if keep_inputs else None)
            at += k
        pending.clear()

    for i, ref in enumerate(tqdm(refs, desc="predicting", unit="record", disable=not progress, leave=False)):
        try:
            with times.stage("read"):
                recording = read_ref(ref, allow_normalised)
            with times.stage("preprocess"):
                prepared = prepare(recording, ref.shown, spec)
                starts = window_grid(prepared.x.shape[1], crop, int(spec["eval_windows"]),
                                     int(spec["reference_length"]))
        except ECGDataError as exc:
            out[i] = exc
            continue
        pending.append((i, recording, prepared, starts))
        if len(pending) >= batch_records:
            flush()
    flush()
    return out  # type: ignore[return-value]
