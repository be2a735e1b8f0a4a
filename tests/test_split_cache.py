"""Preprocessed splits cached on disk: identical to reading the records, and never stale."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import ecg_like, make_layout, write_record

from evl_lite.data import split_cache
from evl_lite.data.dataset import prepare_splits
from evl_lite.data.preprocessing import PreprocessConfig
from evl_lite.data.split_cache import cached_splits
from evl_lite.errors import ECGDataError

CONFIG = PreprocessConfig(target_fs=100, notch_hz=None)
CODES = ["{'NORM': 100.0}", "{'IMI': 50.0, 'LVH': 100.0}", "{'NORM': 80.0}", "{'LVH': 100.0}",
         "{'IMI': 100.0}", "{'NORM': 100.0}"]


@pytest.fixture
def layout(tmp_path):
    return make_layout(tmp_path / "ptbxl", CODES, folds=[1, 2, 9, 9, 10, 10])


@pytest.fixture
def reads(monkeypatch):
    """How many times the records were actually read (prepare_splits called)."""
    calls = []

    def counting(*args, **kwargs):
        calls.append(1)
        return prepare_splits(*args, **kwargs)

    monkeypatch.setattr(split_cache, "prepare_splits", counting)
    return calls


def assert_same(a, b):
    assert list(a) == list(b) == ["train", "val", "test"]
    for name in a:
        assert a[name].x.dtype == b[name].x.dtype == np.float32
        np.testing.assert_array_equal(a[name].x, b[name].x)
        np.testing.assert_array_equal(a[name].y, b[name].y)
        np.testing.assert_array_equal(a[name].ecg_ids, b[name].ecg_ids)
        assert a[name].fs == b[name].fs


def test_cached_splits_are_what_prepare_splits_returns_and_are_read_once(layout, tmp_path, reads):
    direct, _ = prepare_splits(layout, config=CONFIG, normalisation="per_record", progress=False)
    first = cached_splits(layout, CONFIG, "per_record", tmp_path / "cache", progress=False)
    assert_same(first, direct)
    assert len(list((tmp_path / "cache").glob("splits-*.npz"))) == 1 and len(reads) == 1
    second = cached_splits(layout, CONFIG, "per_record", tmp_path / "cache", progress=False)
    assert_same(second, direct)
    assert len(reads) == 1  # loaded, not read again


def test_an_edited_record_or_another_option_misses_the_cache(layout, tmp_path, reads):
    first = cached_splits(layout, CONFIG, "per_record", tmp_path / "cache", progress=False)
    # same size, other samples: record 5 (test split)
    write_record(layout / "records100" / "00000", "00005_lr", 2 * ecg_like(100, seed=99), 100)
    edited = cached_splits(layout, CONFIG, "per_record", tmp_path / "cache", progress=False)
    assert len(reads) == 2
    np.testing.assert_array_equal(edited["train"].x, first["train"].x)
    assert not np.array_equal(edited["test"].x[0], first["test"].x[0])
    cached_splits(layout, PreprocessConfig(target_fs=100, notch_hz=None, band=(1.0, 40.0)), "per_record",
                  tmp_path / "cache", progress=False)
    cached_splits(layout, CONFIG, "none", tmp_path / "cache", progress=False)
    assert len(reads) == 4 and len(list((tmp_path / "cache").glob("splits-*.npz"))) == 4
    with pytest.raises(ValueError, match="train_stats"):
        cached_splits(layout, CONFIG, "train_stats", tmp_path / "cache", progress=False)


def test_a_truncated_record_is_reported_even_after_it_was_cached(layout, tmp_path):
    cached_splits(layout, CONFIG, "per_record", tmp_path / "cache", progress=False)
    dat = layout / "records100" / "00000" / "00003_lr.dat"
    dat.write_bytes(dat.read_bytes()[:-100])
    with pytest.raises(ECGDataError, match=r"00003_lr.dat: holds .* bytes but the header promises"):
        cached_splits(layout, CONFIG, "per_record", tmp_path / "cache", progress=False)
    dat.unlink()  # a missing file: no key, no cache, the reader's error
    with pytest.raises(ECGDataError, match="00003_lr"):
        cached_splits(layout, CONFIG, "per_record", tmp_path / "cache", progress=False)


def test_an_unreadable_cache_file_is_named_and_rebuilt(layout, tmp_path, reads, capsys):
    first = cached_splits(layout, CONFIG, "per_record", tmp_path / "cache", progress=False)
    (path,) = (tmp_path / "cache").glob("splits-*.npz")
    path.write_bytes(path.read_bytes()[:1000])  # torn by hand (the cache itself writes atomically)
    again = cached_splits(layout, CONFIG, "per_record", tmp_path / "cache", progress=False)
    assert f"{path}: cannot be read" in capsys.readouterr().out
    assert_same(again, first)
    assert len(reads) == 2
    assert_same(cached_splits(layout, CONFIG, "per_record", tmp_path / "cache", progress=False), first)
    assert len(reads) == 2  # the rebuilt file is whole again
    assert not list((tmp_path / "cache").glob(".*tmp"))


def test_the_splits_benchmark_prints_both_timings(layout, capsys):
    from evl_lite.cli import main

    assert main(["bench", "splits", "--data", "ptbxl", "--path", str(layout), "--repeats", "1"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["records"] == len(CODES) and figures["data"] == str(layout)
    assert figures["read_s"] > 0 and figures["cached_s"] > 0
    assert figures["speedup"] == pytest.approx(figures["read_s"] / figures["cached_s"])
    assert not (layout / "cache").exists()  # the benchmark's cache was temporary
