"""Finding the records a user names, and reading each one's 12 standard leads.

A path given to ``python -m evl_lite predict`` is one of

- a WFDB record, named with or without an extension (``E07500``, ``E07500.hea``, ``E07500.mat``,
  ``00001_lr.dat``): read by :func:`evl_lite.data.ptbxl.read_recording`, which matches lead names in
  any order and case, drops extra leads (PTB's Frank leads, with or without their ``.xyz`` file),
  honours byte offsets (CinC ``.mat``) and converts µV and V to mV;
- an EDF file (``.edf``): read with wfdb's EDF reader (``wfdb.io.convert.edf.read_edf``), its
  labels matched after an ``ECG`` prefix (``"ECG V1"`` is V1), then the same lead and unit rules;
- a directory: every ``.hea`` and ``.edf`` file below it (recursively, sorted). In a PTB-XL tree
  each ECG is stored twice, ``records100/.../<id>_lr`` and ``records500/.../<id>_hr``; the 500 Hz
  twin of a 100 Hz record found in the same tree is skipped (the models read 100 Hz).

Problems are :class:`~evl_lite.errors.ECGDataError` naming the file: a path that does not exist,
a directory without records, a file that is neither.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evl_lite.data.ptbxl import Recording, read_recording, scaled_leads, twelve_lead_layout
from evl_lite.errors import ECGDataError

WFDB_SUFFIXES = (".hea", ".dat", ".mat", ".xyz")
EDF_SUFFIX = ".edf"
_ECG_PREFIX = re.compile(r"^\s*ECG[\s_\-:]*", re.IGNORECASE)


@dataclass(frozen=True)
class RecordRef:
    """One record to read: ``path`` (a WFDB record without extension, or the ``.edf`` file) and its kind."""

    path: Path
    kind: str  # "WFDB" or "EDF"

    @property
    def shown(self) -> str:
        """How the record is named in outputs: the header (``.hea``) or the EDF file."""
        return str(self.path) if self.kind == "EDF" else str(self.path.with_name(self.path.name + ".hea"))


def resolve_path(path: str | os.PathLike) -> list[RecordRef]:
    """The records one command-line path names (a record, an EDF file or a directory)."""
    path = Path(path).expanduser()
    if path.is_dir():
        return records_below(path)
    if path.suffix.lower() == EDF_SUFFIX:
        if not path.is_file():
            raise ECGDataError(path, "does not exist")
        return [RecordRef(path, "EDF")]
    base = path.with_suffix("") if path.suffix.lower() in WFDB_SUFFIXES else path
    if base.with_name(base.name + ".hea").is_file():
        return [RecordRef(base, "WFDB")]
    if not path.exists():
        raise ECGDataError(path, "does not exist")
    if path.suffix.lower() in WFDB_SUFFIXES:
        raise ECGDataError(base.with_name(base.name + ".hea"),
                           f"header file is missing (the WFDB record of {path.name} needs it)")
    raise ECGDataError(path, "is neither a WFDB record (.hea + signal file), an EDF file nor a directory")


def records_below(directory: Path) -> list[RecordRef]:
    """Every WFDB record (``.hea``) and EDF file below ``directory``, sorted; 500 Hz PTB-XL twins dropped."""
    suffixes = (".hea", EDF_SUFFIX)
    found = sorted(p for p in directory.rglob("*") if p.suffix.lower() in suffixes and p.is_file())
    refs = [RecordRef(p, "EDF") if p.suffix.lower() == EDF_SUFFIX else RecordRef(p.with_suffix(""), "WFDB")
            for p in found]
    bases = {r.path for r in refs if r.kind == "WFDB"}
    refs = [r for r in refs if not (r.kind == "WFDB" and _ptbxl_twin(r.path) in bases)]
    if not refs:
        raise ECGDataError(directory, "holds no records (no .hea or .edf file below it)")
    return refs


def _ptbxl_twin(base: Path) -> Path | None:
    """``records500/SUB/<id>_hr`` -> ``records100/SUB/<id>_lr`` (the same ECG at 100 Hz); else None."""
    if not base.name.endswith("_hr") or base.parent.parent.name != "records500":
        return None
    return base.parent.parent.parent / "records100" / base.parent.name / (base.name[:-3] + "_lr")


def find_records(paths: Iterable[str | os.PathLike]) -> list[RecordRef | ECGDataError]:
    """The records of every path in order, without repeats; an error in place of a path naming none."""
    found: list[RecordRef | ECGDataError] = []
    seen: set[tuple[Path, str]] = set()
    for path in paths:
        try:
            for ref in resolve_path(path):
                key = (ref.path.resolve(), ref.kind)
                if key not in seen:
                    seen.add(key)
                    found.append(ref)
        except ECGDataError as exc:
            found.append(exc)
    return found


def edf_lead_name(label: str) -> str:
    """An EDF signal label as a lead name: ``"ECG V1"`` -> ``"V1"``, ``"ECG-aVR"`` -> ``"aVR"``."""
    return _ECG_PREFIX.sub("", label).strip() or label


def read_edf(path: Path, allow_normalised: bool = False) -> Recording:
    """The 12 standard leads of an EDF file, by the rules of :func:`evl_lite.data.ptbxl.read_recording`."""
    from wfdb.io.convert.edf import read_edf as wfdb_read_edf

    try:
        record = wfdb_read_edf(str(path))
    except Exception as exc:  # wfdb raises bare Exceptions for what it cannot read
        raise ECGDataError(path, f"cannot be read as EDF ({type(exc).__name__}: {exc})") from None
    names = [str(n) for n in record.sig_name]
    layout = twelve_lead_layout([edf_lead_name(n) for n in names], record.units, path, allow_normalised,
                                shown_names=names)
    signal = np.asarray(record.p_signal, dtype=np.float64)[:, layout.channels]  # [T, 12]
    return Recording(scaled_leads(signal, layout, lambda lead: path), float(record.fs), layout.normalised)


def read_ref(ref: RecordRef, allow_normalised: bool = False) -> Recording:
    """Read one record found by :func:`find_records`."""
    if ref.kind == "EDF":
        return read_edf(ref.path, allow_normalised)
    return read_recording(ref.path, allow_normalised)
