"""One data layer for real PTB-XL and the synthetic generator's output.

Reads the PTB-XL layout (Wagner et al. 2020, Scientific Data 7:154):
``ptbxl_database.csv`` + ``scp_statements.csv`` + WFDB records under
``records100/`` (100 Hz) or ``records500/`` (500 Hz). Labels are aggregated as
in the PTB-XL benchmark (Strodthoff et al. 2021, helme/ecg_ptbxl_benchmarking):
every SCP code of a record whose statement has ``diagnostic == 1`` contributes
its ``diagnostic_class`` (superclass) and ``diagnostic_subclass``, whatever its
likelihood. The benchmark split is strat_fold 1-8 train, 9 validation, 10 test.

Every problem with the files raises :class:`~evl_lite.errors.ECGDataError`
naming the file and the problem.
"""

from __future__ import annotations

import ast
import math
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import wfdb
from tqdm.auto import tqdm

from evl_lite.constants import LEADS, SPLIT_FOLDS, SUPERCLASSES
from evl_lite.errors import ECGDataError

DATABASE_CSV = "ptbxl_database.csv"
STATEMENTS_CSV = "scp_statements.csv"

# Lead names seen in the wild -> the canonical PTB-XL name (compared upper-case, spaces removed).
LEAD_ALIASES: dict[str, str] = {
    **{lead: lead for lead in LEADS},
    "LEADI": "I",
    "LEADII": "II",
    "LEADIII": "III",
    "MLII": "II",
}

# Bytes per sample of the WFDB formats PTB-XL-like data uses, to catch truncated .dat files.
_BYTES_PER_SAMPLE = {"8": 1.0, "16": 2.0, "24": 3.0, "32": 4.0, "61": 2.0, "80": 1.0, "160": 2.0, "212": 1.5}

# A signal line's format field: format[xsamples_per_frame][:skew][+byte_offset].
_FORMAT_FIELD = re.compile(r"(?P<fmt>\d+)(?:x(?P<spf>\d+))?(?::(?P<skew>\d+))?(?:\+(?P<offset>\d+))?")

# Physical units accepted, with the factor that converts them to millivolts.
_UNIT_TO_MV = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "v": 1e3}


@dataclass
class PTBXL:
    """A dataset in the PTB-XL layout: metadata, statements and the label sets of every record.

    ``database`` is indexed by ``ecg_id``; ``statements`` by SCP code. Label columns added by
    :func:`load_ptbxl`: ``scp`` (dict code -> likelihood), ``superclasses``, ``subclasses``,
    ``statements_all`` (lists of names).
    """

    root: Path
    database: pd.DataFrame
    statements: pd.DataFrame

    @property
    def ecg_ids(self) -> np.ndarray:
        return self.database.index.to_numpy()

    def split_ids(self, split: str) -> np.ndarray:
        """ecg_ids of a benchmark split ("train" folds 1-8, "val" 9, "test" 10, or "all")."""
        if split == "all":
            return self.ecg_ids
        if split not in SPLIT_FOLDS:
            raise ValueError(f"unknown split {split!r}; expected one of {[*SPLIT_FOLDS, 'all']}")
        folds = self.database["strat_fold"]
        return self.database.index[folds.isin(SPLIT_FOLDS[split])].to_numpy()

    def superclass_targets(self, ecg_ids: Sequence[int] | None = None) -> np.ndarray:
        """Multi-hot superclass targets y [N, 5] in SUPERCLASSES order."""
        rows = self.database if ecg_ids is None else self.database.loc[list(ecg_ids)]
        return multi_hot(rows["superclasses"], SUPERCLASSES)

    def record_base(self, ecg_id: int, sampling_rate: int = 100) -> Path:
        """Path (without extension) of a record at 100 or 500 Hz, checked to stay inside ``root``."""
        column = {100: "filename_lr", 500: "filename_hr"}.get(sampling_rate)
        if column is None:
            raise ValueError(f"PTB-XL stores records at 100 or 500 Hz, not {sampling_rate}")
        csv = self.root / DATABASE_CSV
        if column not in self.database.columns:
            raise ECGDataError(csv, f"has no column {column!r} for {sampling_rate} Hz records")
        rel = self.database.at[ecg_id, column]
        if not isinstance(rel, str) or not rel.strip():
            raise ECGDataError(csv, f"ecg_id {ecg_id} has no {sampling_rate} Hz record ({column} is empty)")
        return safe_join(self.root, rel, csv)

    def available_rates(self) -> list[int]:
        """Sampling rates for which every record lists a file."""
        rates = []
        for rate, column in ((100, "filename_lr"), (500, "filename_hr")):
            if column in self.database.columns:
                names = self.database[column].fillna("").astype(str).str.strip()
                if len(names) and (names != "").all():
                    rates.append(rate)
        return rates


def safe_join(root: Path, relative: str, source: Path) -> Path:
    """``root / relative``, refusing absolute paths and paths that escape ``root``."""
    rel = Path(relative.strip())
    target = (root / rel).resolve()
    if rel.is_absolute() or not target.is_relative_to(root.resolve()):
        raise ECGDataError(source, f"path {relative!r} points outside the dataset directory {root}")
    return root / rel


def multi_hot(label_lists: Iterable[Sequence[str]], classes: Sequence[str]) -> np.ndarray:
    """Lists of class names -> float32 multi-hot matrix [N, len(classes)]."""
    index = {name: i for i, name in enumerate(classes)}
    lists = list(label_lists)
    y = np.zeros((len(lists), len(classes)), dtype=np.float32)
    for row, names in enumerate(lists):
        for name in names:
            if name in index:
                y[row, index[name]] = 1.0
    return y


def parse_scp_codes(raw: object, csv: Path, ecg_id: object) -> dict[str, float]:
    """Parse one ``scp_codes`` cell, e.g. ``"{'NORM': 100.0, 'SR': 0.0}"``."""
    if isinstance(raw, float) and math.isnan(raw):
        return {}
    try:
        value = ast.literal_eval(str(raw))
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        value = None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, int | float) and not isinstance(v, bool)
        for k, v in value.items()
    ):
        raise ECGDataError(
            csv,
            f"ecg_id {ecg_id}: scp_codes {str(raw)[:80]!r} does not parse as a dict of code -> likelihood",
        )
    return {k.strip(): float(v) for k, v in value.items()}


def _read_csv(path: Path, **kwargs) -> pd.DataFrame:
    if not path.is_file():
        raise ECGDataError(
            path, "file is missing (a PTB-XL directory needs ptbxl_database.csv and scp_statements.csv)"
        )
    try:
        return pd.read_csv(path, **kwargs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise ECGDataError(path, f"cannot be read as CSV ({exc})") from None


def load_statements(root: str | os.PathLike) -> pd.DataFrame:
    """``scp_statements.csv`` indexed by SCP code, with ``diagnostic``/``form``/``rhythm`` as 0/1."""
    path = Path(root) / STATEMENTS_CSV
    table = _read_csv(path, index_col=0)
    missing = {"diagnostic", "diagnostic_class", "diagnostic_subclass"} - set(table.columns)
    if missing:
        raise ECGDataError(path, f"lacks the column(s) {sorted(missing)}")
    table.index = table.index.astype(str).str.strip()
    for flag in ("diagnostic", "form", "rhythm"):
        if flag in table.columns:
            table[flag] = pd.to_numeric(table[flag], errors="coerce").fillna(0).astype(int)
    return table


def load_ptbxl(root: str | os.PathLike, unknown_codes: str = "error") -> PTBXL:
    """Read a dataset in the PTB-XL layout and derive its label sets.

    ``unknown_codes``: what to do with an SCP code missing from ``scp_statements.csv``:
    ``"error"`` (default: ECGDataError naming the record and the code) or ``"ignore"``
    (the code is kept in ``scp`` but contributes to no label set).
    """
    if unknown_codes not in ("error", "ignore"):
        raise ValueError("unknown_codes must be 'error' or 'ignore'")
    root = Path(root)
    if not root.is_dir():
        raise ECGDataError(root, "dataset directory does not exist")
    csv = root / DATABASE_CSV
    statements = load_statements(root)
    database = _read_csv(csv)
    for column in ("ecg_id", "scp_codes"):
        if column not in database.columns:
            raise ECGDataError(csv, f"lacks the column {column!r}")
    database = database.set_index("ecg_id")
    if "filename_lr" not in database.columns and "filename_hr" not in database.columns:
        raise ECGDataError(csv, "lacks both filename_lr and filename_hr: no record can be found")
    if database.index.has_duplicates:
        dup = database.index[database.index.duplicated()][0]
        raise ECGDataError(csv, f"ecg_id {dup} appears more than once")
    if "strat_fold" not in database.columns:
        database["strat_fold"] = np.nan
    database["strat_fold"] = pd.to_numeric(database["strat_fold"], errors="coerce")

    diagnostic = statements[statements["diagnostic"] == 1]
    known = set(statements.index)
    scp, supers, subs, alls = [], [], [], []
    for ecg_id, raw in database["scp_codes"].items():
        codes = parse_scp_codes(raw, csv, ecg_id)
        unknown = [c for c in codes if c not in known]
        if unknown and unknown_codes == "error":
            raise ECGDataError(csv, f"ecg_id {ecg_id}: SCP code(s) {unknown} not found in {STATEMENTS_CSV}")
        diag = [c for c in codes if c in diagnostic.index]
        scp.append(codes)
        supers.append(_unique(diagnostic.loc[diag, "diagnostic_class"]))
        subs.append(_unique(diagnostic.loc[diag, "diagnostic_subclass"]))
        alls.append([c for c in codes if c in known])
    database["scp"] = scp
    database["superclasses"] = supers
    database["subclasses"] = subs
    database["statements_all"] = alls
    return PTBXL(root=root, database=database, statements=statements)


def _unique(values: pd.Series) -> list[str]:
    return sorted({str(v) for v in values if isinstance(v, str) and v.strip()})


def summary(root: str | os.PathLike) -> dict:
    """Counts a user checks first: records, multi-label superclass counts, fold sizes."""
    db = load_ptbxl(root)
    y = db.superclass_targets()
    folds = db.database["strat_fold"].dropna().astype(int).value_counts().sort_index()
    subclass_counts = pd.Series([s for subs in db.database["subclasses"] for s in subs]).value_counts()
    return {
        "path": str(db.root),
        "records": int(len(db.database)),
        "superclass_counts": {name: int(y[:, i].sum()) for i, name in enumerate(SUPERCLASSES)},
        "records_without_superclass": int((y.sum(axis=1) == 0).sum()),
        "fold_sizes": {str(k): int(v) for k, v in folds.items()},
        "split_sizes": {split: int(len(db.split_ids(split))) for split in SPLIT_FOLDS},
        "subclass_counts": {str(k): int(v) for k, v in subclass_counts.items()},
        "sampling_rates": db.available_rates(),
    }


# --------------------------------------------------------------------------- records


def canonical_lead_name(name: str) -> str | None:
    """'aVR', ' avr', 'Lead II' -> 'AVR', 'AVR', 'II'; None for leads outside the 12 (e.g. 'vx')."""
    key = name.strip().upper().replace(" ", "")
    return LEAD_ALIASES.get(key)


def _is_negated_avr(name: str) -> bool:
    """Whether a signal is lead aVR recorded inverted, as '-aVR' (the Cabrera display)."""
    return name.strip().upper().replace(" ", "") == "-AVR"


def _standard_lead(name: str) -> str | None:
    """The standard lead a signal name records ('-aVR' counts as AVR); None for any other."""
    if _is_negated_avr(name):
        return "AVR"
    return None if name.strip().startswith("-") else canonical_lead_name(name)


@dataclass(frozen=True)
class SignalFormat:
    """A WFDB format field ``format[xsamples_per_frame][:skew][+byte_offset]``, parsed.

    ``16`` is PTB-XL's; ``16x1+24`` (or ``16+24``) is a CinC 2020/2021 ``.mat`` file: format 16
    samples after the file's 24-byte MATLAB v4 header.
    """

    fmt: str
    samples_per_frame: int = 1
    skew: int = 0
    byte_offset: int = 0


def parse_format_field(field: str) -> SignalFormat:
    """Parse ``format[xsamples_per_frame][:skew][+byte_offset]``; ValueError for anything else."""
    match = _FORMAT_FIELD.fullmatch(field.strip())
    if match is None or int(match["spf"] or 1) < 1:
        raise ValueError(f"format field {field!r} is not format[xsamples_per_frame][:skew][+byte_offset]")
    return SignalFormat(
        fmt=match["fmt"],
        samples_per_frame=int(match["spf"] or 1),
        skew=int(match["skew"] or 0),
        byte_offset=int(match["offset"] or 0),
    )


def signal_formats(hea: Path, n_sig: int) -> list[SignalFormat]:
    """The parsed format field of each signal line ``file_name format[xN][:skew][+offset] ...``."""
    lines = [line.strip() for line in hea.read_text(errors="replace").splitlines()]
    signal_lines = [line for line in lines if line and not line.startswith("#")][1 : 1 + n_sig]
    if len(signal_lines) != n_sig:
        raise ECGDataError(hea, f"announces {n_sig} signal(s) but has {len(signal_lines)} signal line(s)")
    formats = []
    for number, line in enumerate(signal_lines, start=1):
        fields = line.split()
        try:
            formats.append(parse_format_field(fields[1] if len(fields) > 1 else ""))
        except ValueError as exc:
            raise ECGDataError(hea, f"signal line {number}: {exc}") from None
    return formats


# A header of the plain single-segment kind (PTB-XL, CinC, PTB, what wfdb.wrsamp writes): the record
# line "name n_sig fs sig_len [...]" and signal lines "file format gain[(baseline)]/units adc_res
# adc_zero init_value checksum block_size description". Anything else is left to wfdb.rdheader.
_RECORD_LINE = re.compile(
    r"(?P<name>[^\s/]+)\s+(?P<n_sig>\d+)\s+(?P<fs>\d+(?:\.\d*)?)\s+(?P<sig_len>\d+)(?:\s.*)?"
)
_SIGNAL_LINE = re.compile(
    r"(?P<file>\S+)\s+(?P<format>\S+)\s+(?P<gain>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)(?:\((?P<baseline>-?\d+)\))?"
    r"/(?P<units>\S+)\s+(?P<adc_res>\d+)\s+(?P<adc_zero>-?\d+)\s+-?\d+\s+-?\d+\s+\d+\s+(?P<name>\S.*)"
)


@dataclass(frozen=True)
class SimpleHeader:
    """The fields of a plain WFDB header that reading needs, parsed without wfdb (module comment).

    wfdb's header parser costs about 10 ms a record on the course's CPUs, mostly in pandas lookups,
    and ``wfdb.rdrecord`` parses the header again: more than the rest of ``predict`` together.
    Same attribute names as ``wfdb.Record``.
    """

    fs: float
    sig_len: int
    sig_name: list[str]
    units: list[str]
    file_name: list[str]
    fmt: list[SignalFormat]
    adc_gain: list[float]
    baseline: list[int]


def simple_header(hea: Path) -> SimpleHeader | None:
    """Parse a plain header (see :class:`SimpleHeader`); None for anything else (then wfdb parses it)."""
    try:
        lines = [line.strip() for line in hea.read_text().splitlines()]
    except (OSError, UnicodeDecodeError):
        return None
    lines = [line for line in lines if line and not line.startswith("#")]
    record = _RECORD_LINE.fullmatch(lines[0]) if lines else None
    if record is None:
        return None
    n_sig = int(record["n_sig"])
    signals = [_SIGNAL_LINE.fullmatch(line) for line in lines[1 : 1 + n_sig]]
    if n_sig == 0 or len(signals) != n_sig or not all(signals):
        return None
    try:
        formats = [parse_format_field(m["format"]) for m in signals]
    except ValueError:
        return None
    gains = [float(m["gain"]) for m in signals]
    if any(g == 0 for g in gains):  # gain 0 means "uncalibrated" (wfdb uses its default 200)
        return None
    return SimpleHeader(
        fs=float(record["fs"]),
        sig_len=int(record["sig_len"]),
        sig_name=[m["name"].strip() for m in signals],
        units=[m["units"] for m in signals],
        file_name=[m["file"] for m in signals],
        fmt=formats,
        adc_gain=gains,
        baseline=[int(m["baseline"] if m["baseline"] is not None else m["adc_zero"]) for m in signals],
    )


def _read_format16(base: Path, header: SimpleHeader, channels: list[int]) -> np.ndarray | None:
    """Samples [T, len(channels)] in physical units, as ``wfdb.rdrecord(...).p_signal`` gives them.

    Only for files whose every signal is format 16 (little-endian int16, one sample per frame,
    no skew); None otherwise (then wfdb reads). Digital -32768 is WFDB's invalid sample: NaN.
    """
    per_file: dict[str, list[int]] = {}
    for i, file_name in enumerate(header.file_name):
        per_file.setdefault(file_name, []).append(i)
    wanted = {header.file_name[c] for c in channels}
    if any(header.fmt[i] != SignalFormat("16", byte_offset=header.fmt[i].byte_offset)
           for f in wanted for i in per_file[f]):
        return None
    columns: dict[int, np.ndarray] = {}
    for file_name in wanted:
        signals = per_file[file_name]
        count = header.sig_len * len(signals)
        data = np.fromfile(base.parent / file_name, dtype="<i2", count=count,
                           offset=header.fmt[signals[0]].byte_offset).reshape(header.sig_len, len(signals))
        for position, i in enumerate(signals):
            columns[i] = data[:, position]
    digital = np.stack([columns[c] for c in channels], axis=1)  # [T, 12]
    invalid = digital == -32768
    signal = digital.astype(np.float64)
    np.subtract(signal, np.asarray([header.baseline[c] for c in channels]), signal)
    np.divide(signal, np.asarray([header.adc_gain[c] for c in channels]), signal)
    signal[invalid] = np.nan
    return signal


def read_header(base: str | os.PathLike) -> wfdb.Record:
    """The WFDB header of a record (path without extension); a missing or malformed one is an ECGDataError."""
    base = Path(base)
    hea = base.with_name(base.name + ".hea")
    if not hea.is_file():
        raise ECGDataError(hea, "header file is missing")
    try:
        return wfdb.rdheader(str(base))
    except Exception as exc:  # wfdb raises many types for a malformed header
        raise ECGDataError(hea, f"header cannot be parsed ({type(exc).__name__}: {exc})") from None


@dataclass(frozen=True)
class Recording:
    """One record's 12 standard leads: ``x`` [12, T] float32 in mV (NU when ``normalised``), ``fs`` in Hz."""

    x: np.ndarray
    fs: float
    normalised: bool = False


@dataclass(frozen=True)
class LeadLayout:
    """Where the 12 standard leads sit among a record's signals, and how each becomes mV.

    ``channels`` [12]: the signal index of each lead of LEADS; ``factors`` [12]: unit -> mV (1 for
    NU); ``negated`` [12]: recorded as -aVR; ``normalised``: every lead in NU.
    """

    channels: list[int]
    factors: np.ndarray
    negated: np.ndarray
    normalised: bool


def twelve_lead_layout(
    sig_name: Sequence[str],
    units: Sequence[str | None],
    source: str | os.PathLike,
    allow_normalised: bool = False,
    shown_names: Sequence[str] | None = None,
) -> LeadLayout:
    """Find the 12 standard leads among signals named ``sig_name`` (any order and case; -aVR counts).

    A missing lead or a unit other than mV, uV, V (or NU with ``allow_normalised``) is an
    ECGDataError naming ``source`` and the leads found (``shown_names``: as the file spells them).
    """
    channels: dict[str, int] = {}
    for i, name in enumerate(sig_name):
        lead = _standard_lead(name)
        if lead is not None and lead not in channels:
            channels[lead] = i
    missing = [lead for lead in LEADS if lead not in channels]
    if missing:
        names = list(shown_names if shown_names is not None else sig_name)
        raise ECGDataError(
            source,
            f"has {len(names)} lead(s) {names}; missing {missing} of the 12 standard leads",
        )

    factors = []
    for lead in LEADS:
        unit = str(units[channels[lead]] or "").strip()
        if unit.lower() in _UNIT_TO_MV:
            factors.append(_UNIT_TO_MV[unit.lower()])
        elif unit.upper() == "NU" and allow_normalised:
            factors.append(1.0)
        else:
            raise ECGDataError(
                source,
                f"lead {lead} is in unit {unit!r}; expected mV, uV or V"
                + (" (NU needs allow_normalised=True)" if unit.upper() == "NU" else ""),
            )
    normalised = all(str(units[channels[lead]] or "").strip().upper() == "NU" for lead in LEADS)
    return LeadLayout(
        channels=[channels[lead] for lead in LEADS],
        factors=np.asarray(factors),
        negated=np.asarray([_is_negated_avr(sig_name[channels[lead]]) for lead in LEADS]),
        normalised=normalised,
    )


def scaled_leads(signal: np.ndarray, layout: LeadLayout, file_of: Callable[[str], Path]) -> np.ndarray:
    """The layout's 12 columns of ``signal`` [T, 12] (already selected) as x [12, T] float32 in mV.

    NaN/inf samples are an ECGDataError naming ``file_of(lead)`` of the first bad lead.
    """
    x = np.asarray(signal, dtype=np.float64).T * layout.factors[:, None]  # [12, T]
    x[layout.negated] = -x[layout.negated]
    bad = ~np.isfinite(x)
    if bad.any():
        rows = sorted({LEADS[r] for r in np.nonzero(bad)[0]}, key=LEADS.index)
        raise ECGDataError(file_of(rows[0]), f"{int(bad.sum())} NaN/inf or invalid samples in lead(s) {rows}")
    return x.astype(np.float32)


def read_recording(base: str | os.PathLike, allow_normalised: bool = False) -> Recording:
    """:func:`read_record`, with whether the record is in normalised units (NU)."""
    base = Path(base)
    hea = base.with_name(base.name + ".hea")
    header = simple_header(hea) if hea.is_file() else None
    if header is None:
        header = read_header(base)
    if isinstance(header, wfdb.MultiRecord):
        raise ECGDataError(hea, "is a multi-segment WFDB record; only single-segment records are read")
    if not header.sig_name or not header.sig_len:
        raise ECGDataError(hea, "header lists no signals or no samples")
    _check_signal_files(base, header)
    layout = twelve_lead_layout(header.sig_name, header.units, hea, allow_normalised)

    files = sorted({header.file_name[c] for c in layout.channels})
    signal = _read_format16(base, header, layout.channels) if isinstance(header, SimpleHeader) else None
    if signal is None:
        try:  # reads only the files of these 12 channels, after each file's byte offset
            signal = wfdb.rdrecord(str(base), channels=layout.channels).p_signal
        except Exception as exc:
            source = base.parent / files[0] if len(files) == 1 else hea
            raise ECGDataError(source, f"cannot be read ({type(exc).__name__}: {exc})") from None
    x = scaled_leads(signal, layout,
                     lambda lead: base.parent / header.file_name[layout.channels[LEADS.index(lead)]])
    return Recording(x, float(header.fs), layout.normalised)


def read_record(base: str | os.PathLike, allow_normalised: bool = False) -> tuple[np.ndarray, float]:
    """Read one WFDB record as x [12, T] float32 in mV (leads in LEADS order) and its rate.

    Handling (documented and tested): leads are reordered to the standard order and names
    matched case-insensitively (aVR == AVR); extra leads (e.g. Frank leads vx, vy, vz of the
    15-lead PTB layout) are dropped, and a signal file holding only such leads (PTB's ``.xyz``)
    may be absent; a lead recorded as -aVR is negated back; a byte offset in the format field
    ``format[xsamples_per_frame][:skew][+byte_offset]`` is honoured (CinC 2020/2021 ``.mat``
    files: ``16+24``); microvolts and volts are converted to mV; ``NU`` (already normalised
    units) is accepted only with ``allow_normalised=True``. Everything else raises
    ECGDataError: a missing file holding standard leads, a signal file shorter or longer than
    its header says, missing leads, NaN/inf samples. A plain header (:class:`SimpleHeader`) is
    parsed here and format-16 samples are read with numpy: bit for bit what ``wfdb.rdrecord``
    gives (tested on every PTB-XL-500 record), about 20x faster; anything else goes through wfdb.
    """
    recording = read_recording(base, allow_normalised)
    return recording.x, recording.fs


def _check_signal_files(base: Path, header: wfdb.Record | SimpleHeader) -> None:
    """Check each signal file named in the header: present, and as long as promised.

    A missing file is an error when it is the record's only file, or holds any of the 12
    standard leads (then naming the header, the file and those leads); it is skipped when it
    holds none of them (PTB's ``.xyz`` file of Frank leads vx, vy, vz).
    """
    hea = base.with_name(base.name + ".hea")
    formats = header.fmt if isinstance(header, SimpleHeader) else signal_formats(hea, len(header.sig_name))
    per_file: dict[str, list[int]] = {}
    for i, file_name in enumerate(header.file_name):
        per_file.setdefault(file_name, []).append(i)
    for file_name, signals in per_file.items():
        path = base.parent / file_name
        if path.is_file():
            _check_size(path, header.sig_len, [formats[i] for i in signals])
            continue
        held = [lead for lead in (_standard_lead(header.sig_name[i]) for i in signals) if lead]
        if len(per_file) == 1:  # the record's only file
            raise ECGDataError(path, "signal file named in the header is missing")
        if held:
            raise ECGDataError(
                path,
                f"signal file named in the header is missing (header {hea} puts the "
                f"standard lead(s) {held} in it)",
            )


def _check_size(path: Path, sig_len: int, formats: list[SignalFormat]) -> None:
    """Refuse a signal file unlike its header: ``byte_offset + sig_len x bytes per frame``.

    A frame holds ``samples_per_frame`` samples of every signal in the file; a skewed signal
    may add up to ``skew`` frames at the end. Formats outside ``_BYTES_PER_SAMPLE`` are left
    to wfdb.
    """
    if any(f.fmt not in _BYTES_PER_SAMPLE for f in formats):
        return
    offsets = sorted({f.byte_offset for f in formats})
    if len(offsets) > 1:
        raise ECGDataError(path, f"the header gives its signals different byte offsets {offsets}")
    offset = offsets[0]
    frame = sum(_BYTES_PER_SAMPLE[f.fmt] * f.samples_per_frame for f in formats)
    data = math.ceil(sig_len * frame)
    expected = offset + data
    longest = offset + math.ceil((sig_len + max(f.skew for f in formats)) * frame)
    size = path.stat().st_size
    if expected <= size <= longest:
        return
    spf = {f.samples_per_frame for f in formats}
    promise = f"{sig_len} samples x {len(formats)} lead(s)"
    promise += f" with {sorted(spf)} samples per frame" if spf != {1} else ""
    promise += f" after a {offset}-byte prefix" if offset else ""
    hint = ""
    if path.suffix.lower() == ".mat" and size > data and size - data != offset:
        first = formats[0]
        field = first.fmt + (f"x{first.samples_per_frame}" if first.samples_per_frame > 1 else "")
        hint = (
            f"; if the samples follow a {size - data}-byte MATLAB header, "
            f"the format field should read {field}+{size - data}"
        )
    if size < expected:
        raise ECGDataError(
            path,
            f"holds {size} bytes but the header promises {promise} = {expected} bytes "
            f"(truncated file, or header and data disagree){hint}",
        )
    raise ECGDataError(
        path,
        f"holds {size} bytes but the header promises only {expected} ({promise}): "
        f"header and data disagree{hint}",
    )


def load_signals(
    db: PTBXL,
    ecg_ids: Sequence[int] | None = None,
    sampling_rate: int = 100,
    allow_normalised: bool = False,
    progress: bool = True,
) -> np.ndarray:
    """Read records into one array x [N, 12, T] float32 (mV).

    Records are read at ``sampling_rate`` (100 or 500 Hz, the two PTB-XL stores); a record
    whose header gives another rate is resampled to it. All records must have the same
    duration, otherwise the offending file is named.
    """
    ids = db.ecg_ids if ecg_ids is None else np.asarray(ecg_ids)
    if len(ids) == 0:
        raise ECGDataError(db.root / DATABASE_CSV, "the requested split holds no records")
    out: np.ndarray | None = None
    iterator = tqdm(ids, desc=f"reading {len(ids)} records", disable=not progress, leave=False)
    for i, ecg_id in enumerate(iterator):
        base = db.record_base(int(ecg_id), sampling_rate)
        x, fs = read_record(base, allow_normalised=allow_normalised)
        if round(fs) != sampling_rate:
            from evl_lite.data.preprocessing import resample

            x = resample(x, fs, sampling_rate).astype(np.float32)
        if out is None:
            out = np.empty((len(ids), len(LEADS), x.shape[1]), dtype=np.float32)
        if x.shape[1] != out.shape[2]:
            raise ECGDataError(
                base.with_name(base.name + ".hea"),
                f"lasts {x.shape[1]} samples at {sampling_rate} Hz; earlier records last {out.shape[2]}",
            )
        out[i] = x
    assert out is not None
    return out
