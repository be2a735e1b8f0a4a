"""WFDB records from outside PTB-XL: CinC 2020/2021 ``.mat`` signal files and PTB's ``.xyz``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import wfdb
from conftest import ecg_like, write_record

from evl_lite.constants import LEADS
from evl_lite.data.ptbxl import SignalFormat, _read_format16, parse_format_field, read_record, simple_header
from evl_lite.errors import ECGDataError

CINC_NAMES = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
MAT_HEADER = 24  # MATLAB v4: 20-byte header + the variable name "val\0"


@pytest.mark.parametrize(
    ("field", "parsed"),
    [
        ("16", SignalFormat("16")),
        ("212", SignalFormat("212")),
        ("16+24", SignalFormat("16", byte_offset=24)),
        ("16x1+24", SignalFormat("16", samples_per_frame=1, byte_offset=24)),
        ("16x4:2+512", SignalFormat("16", samples_per_frame=4, skew=2, byte_offset=512)),
        ("212:3", SignalFormat("212", skew=3)),
    ],
)
def test_format_field_follows_the_wfdb_syntax(field, parsed):
    assert parse_format_field(field) == parsed


@pytest.mark.parametrize("field", ["", "x1", "16+", "16x0", "16:bad", "16+24x1", "sixteen"])
def test_malformed_format_field_is_a_value_error(field):
    with pytest.raises(ValueError, match="format field"):
        parse_format_field(field)


def write_cinc(
    directory: Path, fmt_field: str = "16x1+24", name: str = "E07500", seed: int = 0
) -> np.ndarray:
    """A CinC 2020/2021-style record: MATLAB v4 .mat (24-byte prefix, int16 LE, interleaved)."""
    digital = np.round(ecg_like(500, seed=seed) * 1000).astype("<i2")  # [5000, 12], 1000/mV
    (directory / f"{name}.mat").write_bytes(b"\0" * MAT_HEADER + digital.tobytes())
    lines = [f"{name} 12 500 {len(digital)} 05-May-2020 14:50:55"]
    for i, lead in enumerate(CINC_NAMES):
        checksum = (int(digital[:, i].astype(np.int64).sum()) + 32768) % 65536 - 32768  # 16-bit signed
        lines.append(f"{name}.mat {fmt_field} 1000/mV 16 0 {digital[0, i]} {checksum} 0 {lead}")
    lines += ["#Age: 74", "#Sex: Male", "#Dx: 426783006"]
    (directory / f"{name}.hea").write_text("\n".join(lines) + "\n")
    return digital


@pytest.mark.parametrize("fmt_field", ["16x1+24", "16+24"])
def test_cinc_mat_record_reads_as_wfdb_reads_it(tmp_path, fmt_field):
    digital = write_cinc(tmp_path, fmt_field)
    x, fs = read_record(tmp_path / "E07500")
    reference = wfdb.rdrecord(str(tmp_path / "E07500"))
    assert fs == 500.0 and x.shape == (12, 5000) and x.dtype == np.float32
    assert [n.upper() for n in reference.sig_name] == list(LEADS)
    assert reference.units == ["mV"] * 12
    np.testing.assert_allclose(x, reference.p_signal.T, atol=1e-6)
    np.testing.assert_allclose(x, digital.T / 1000.0, atol=1e-6)  # the MATLAB prefix is not a sample


@pytest.mark.parametrize(
    ("fmt_field", "kind"), [("16", "only 120000"), ("16x1+48", "truncated"), ("16+12", "only")]
)
def test_mat_with_a_wrong_byte_offset_is_one_clear_line(tmp_path, fmt_field, kind):
    write_cinc(tmp_path, fmt_field)
    with pytest.raises(
        ECGDataError, match=r"E07500\.mat: holds 120024 bytes but the header promises"
    ) as info:
        read_record(tmp_path / "E07500")
    message = str(info.value)
    assert kind in message and "format field should read 16+24" in message and "\n" not in message


def test_truncated_or_over_long_mat_is_refused(tmp_path):
    write_cinc(tmp_path)
    mat = tmp_path / "E07500.mat"
    data = mat.read_bytes()
    mat.write_bytes(data[:-100])
    with pytest.raises(ECGDataError, match=r"E07500\.mat: holds 119924 bytes .* = 120024 bytes \(truncated"):
        read_record(tmp_path / "E07500")
    mat.write_bytes(data + b"\0" * 24)
    with pytest.raises(ECGDataError, match=r"E07500\.mat: holds 120048 bytes .*only 120024.*disagree"):
        read_record(tmp_path / "E07500")


def write_ptb(directory: Path, name: str, signal: np.ndarray, in_dat: int = 12) -> None:
    """A PTB diagnostic-style record: 15 signals, the first ``in_dat`` in .dat, the rest in .xyz."""
    names = ["i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6", "vx", "vy", "vz"]
    parts = {"dat": (slice(0, in_dat), f"{name}.dat"), "xyz": (slice(in_dat, 15), f"{name}.xyz")}
    lines = []
    for part, (columns, file_name) in parts.items():
        n = len(names[columns])
        wfdb.wrsamp(
            f"part_{part}",
            fs=1000,
            units=["mV"] * n,
            sig_name=names[columns],
            p_signal=signal[:, columns],
            fmt=["16"] * n,
            adc_gain=[2000.0] * n,
            baseline=[0] * n,
            write_dir=str(directory),
        )
        (directory / f"part_{part}.dat").rename(directory / file_name)
        part_hea = directory / f"part_{part}.hea"
        lines += [
            line.replace(f"part_{part}.dat", file_name) for line in part_hea.read_text().splitlines()[1:]
        ]
        part_hea.unlink()
    record_line = f"{name} 15 1000 {len(signal)}"
    (directory / f"{name}.hea").write_text("\n".join([record_line, *lines]) + "\n")


def test_ptb_record_reads_its_twelve_leads_with_or_without_the_xyz_file(tmp_path):
    signal = ecg_like(1000, seconds=2, n_leads=15, seed=7)
    write_ptb(tmp_path, "s0010_re", signal)
    full, fs = read_record(tmp_path / "s0010_re")
    assert fs == 1000.0 and full.shape == (12, 2000)
    np.testing.assert_allclose(full, signal[:, :12].T, atol=1e-3)
    (tmp_path / "s0010_re.xyz").unlink()  # the Frank leads only: not needed
    x, _ = read_record(tmp_path / "s0010_re")
    np.testing.assert_array_equal(x, full)


def test_ptb_xyz_present_but_truncated_is_still_refused(tmp_path):
    write_ptb(tmp_path, "s0010_re", ecg_like(1000, seconds=2, n_leads=15, seed=7))
    xyz = tmp_path / "s0010_re.xyz"
    xyz.write_bytes(xyz.read_bytes()[:1000])
    with pytest.raises(ECGDataError, match=r"s0010_re\.xyz: holds 1000 bytes .*truncated"):
        read_record(tmp_path / "s0010_re")


def test_missing_file_holding_standard_leads_names_header_file_and_leads(tmp_path):
    write_ptb(tmp_path, "s0010_re", ecg_like(1000, seconds=2, n_leads=15, seed=7), in_dat=9)
    (tmp_path / "s0010_re.xyz").unlink()  # would hold V4, V5, V6 and the Frank leads
    with pytest.raises(ECGDataError) as info:
        read_record(tmp_path / "s0010_re")
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 's0010_re.xyz'}: signal file named in the header is missing")
    assert str(tmp_path / "s0010_re.hea") in message and "['V4', 'V5', 'V6']" in message
    assert "\n" not in message


def test_plain_headers_are_read_without_wfdb_exactly_as_wfdb_reads_them(tmp_path):
    """``simple_header`` + format 16 with numpy (10x faster): wfdb.rdrecord's samples, bit for bit."""
    write_cinc(tmp_path)
    write_ptb(tmp_path, "s0010_re", ecg_like(1000, seconds=2, n_leads=15, seed=7))
    signal = ecg_like(100, seed=3)
    signal[5:9, 4] = np.nan  # stored as WFDB's invalid sample, read as NaN
    write_record(tmp_path, "r", signal, 100)
    for name in ("E07500", "s0010_re", "r"):
        header = simple_header(tmp_path / f"{name}.hea")
        reference = wfdb.rdrecord(str(tmp_path / name), channels=list(range(12)))
        assert header.sig_name[:12] == reference.sig_name and header.units[:12] == reference.units
        assert (header.fs, header.sig_len) == (reference.fs, reference.sig_len)
        fast = _read_format16(tmp_path / name, header, list(range(12)))
        np.testing.assert_array_equal(fast, reference.p_signal)
    x, _ = read_record(tmp_path / "E07500")
    np.testing.assert_array_equal(x, wfdb.rdrecord(str(tmp_path / "E07500")).p_signal.T.astype(np.float32))


def test_real_ptbxl_headers_take_the_fast_path_and_read_as_wfdb_does(ptbxl500):
    for base in sorted((ptbxl500 / "records100" / "00000").glob("*.hea"))[:10] + sorted(
            (ptbxl500 / "records500" / "00000").glob("*.hea"))[:5]:
        base = base.with_suffix("")
        assert simple_header(base.with_name(base.name + ".hea")) is not None
        x, _ = read_record(base)
        np.testing.assert_array_equal(x, wfdb.rdrecord(str(base)).p_signal.T.astype(np.float32))


def test_headers_wfdb_must_parse_still_read(tmp_path):
    """A header outside the plain kind (here: gains without units, which WFDB reads as mV) goes to wfdb."""
    write_record(tmp_path, "r", ecg_like(100, seed=2), 100)
    hea = tmp_path / "r.hea"
    hea.write_text(hea.read_text().replace("/mV", ""))
    assert simple_header(hea) is None
    x, fs = read_record(tmp_path / "r")
    assert fs == 100 and x.shape == (12, 1000)
    np.testing.assert_allclose(x, ecg_like(100, seed=2).T, atol=1e-3)
