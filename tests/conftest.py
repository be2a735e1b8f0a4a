"""Shared fixtures: the real PTB-XL subset from ../shared, and tiny hand-made PTB-XL layouts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import wfdb
from toy_ecg import toy_split

# Under pytest-xdist (``make test`` runs two workers on the two cores) each worker and every
# process it starts computes on one thread: two workers of two threads each would oversubscribe.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"  # read by the processes a test starts
    torch.set_num_threads(1)

from evl_lite.constants import LEADS

SHARED = Path(__file__).resolve().parents[2] / "shared"
SHARED_DATA = SHARED / "data"


def require_shared(name: str) -> Path:
    """Path of a shared dataset; skip when absent, except in CI (CI=true) where it must exist."""
    return require_shared_path(f"data/{name}")


def require_shared_path(relative: str) -> Path:
    """``../shared/<relative>`` (file or folder); skip when absent, except in CI where it must exist."""
    path = SHARED / relative
    if not path.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{path} is missing: CI must have ../shared/{relative}")
        pytest.skip(f"{path} is absent (tests on shared data run where ../shared exists)")
    return path


@pytest.fixture(scope="session")
def ptbxl500() -> Path:
    return require_shared("ptbxl-500")


@pytest.fixture(scope="session")
def ptbxl_unlabelled() -> Path:
    return require_shared("ptbxl-unlabelled")


STATEMENTS = pd.DataFrame(
    {
        "description": [
            "normal ECG",
            "inferior myocardial infarction",
            "left ventricular hypertrophy",
            "sinus rhythm",
        ],
        "diagnostic": [1.0, 1.0, 1.0, None],
        "form": [None, None, None, None],
        "rhythm": [None, None, None, 1.0],
        "diagnostic_class": ["NORM", "MI", "HYP", None],
        "diagnostic_subclass": ["NORM", "IMI", "LVH", None],
    },
    index=["NORM", "IMI", "LVH", "SR"],
)


def ecg_like(fs: float, seconds: float = 10.0, n_leads: int = 12, seed: int = 0) -> np.ndarray:
    """A smooth, finite ECG-shaped signal [T, n_leads] in mV (spikes at 1 Hz plus noise)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(fs * seconds)) / fs
    beat = np.exp(-(((t % 1.0) - 0.5) ** 2) / (2 * 0.015**2))
    gains = rng.uniform(0.3, 1.5, n_leads)
    return beat[:, None] * gains[None, :] + 0.01 * rng.standard_normal((t.size, n_leads))


def write_record(
    directory: Path,
    name: str,
    signal: np.ndarray,
    fs: float,
    sig_name: list[str] | None = None,
    units: list[str] | None = None,
    gain: float = 1000.0,
) -> None:
    """Write a WFDB record (fmt 16) like PTB-XL's; signal is [T, n_leads]."""
    n = signal.shape[1]
    directory.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(
        name,
        fs=fs,
        units=units or ["mV"] * n,
        sig_name=sig_name or list(LEADS[:n]),
        p_signal=signal,
        fmt=["16"] * n,
        adc_gain=[gain] * n,
        baseline=[0] * n,
        write_dir=str(directory),
    )


def make_layout(root: Path, codes: list[str], folds: list[int] | None = None, fs: int = 100) -> Path:
    """A tiny dataset in the PTB-XL layout with one record per ``scp_codes`` string."""
    folds = folds or [(i % 10) + 1 for i in range(len(codes))]
    rows = []
    for i, (code, fold) in enumerate(zip(codes, folds, strict=True), start=1):
        rel = f"records{fs}/00000/{i:05d}_{'lr' if fs == 100 else 'hr'}"
        write_record(root / rel.rsplit("/", 1)[0], rel.rsplit("/", 1)[1], ecg_like(fs, seed=i), fs)
        rows.append(
            {
                "ecg_id": i,
                "patient_id": i,
                "scp_codes": code,
                "strat_fold": fold,
                "filename_lr": rel if fs == 100 else "",
                "filename_hr": rel if fs == 500 else "",
            }
        )
    pd.DataFrame(rows).to_csv(root / "ptbxl_database.csv", index=False)
    STATEMENTS.to_csv(root / "scp_statements.csv")
    return root


@pytest.fixture
def tiny_layout(tmp_path: Path) -> Path:
    codes = [
        "{'NORM': 100.0, 'SR': 0.0}",
        "{'IMI': 50.0, 'LVH': 100.0}",
        "{'SR': 0.0}",
        "{'NORM': 80.0}",
        "{'LVH': 100.0}",
    ]
    return make_layout(tmp_path / "ptbxl", codes, folds=[1, 2, 9, 10, 10])


ACCELERATE = Path(sys.executable).parent / "accelerate"
requires_accelerate = pytest.mark.skipif(not ACCELERATE.is_file(), reason="accelerate launcher not installed")


def accelerate_launch(args: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``args`` (a script and its arguments, or ``-m module ...``) on 2 CPU processes.

    Accelerate 1.15 starts several CPU processes through its torchrun launcher (``--multi_gpu``)
    when ACCELERATE_USE_CPU is set; ``--cpu --num_processes 2`` alone starts only one without MPI.
    Each launch gets its own free port: two launches in parallel test workers would otherwise both
    bind torchrun's default 29500, and the second would fail. A failure shows the processes' stderr.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "true"}
    command = [str(ACCELERATE), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
               "--main_process_port", str(free_port()), "--mixed_precision", "no", "--dynamo_backend", "no",
               *args]
    proc = subprocess.run(command, timeout=timeout, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"accelerate launch exited with {proc.returncode}:\n{proc.stderr[-3000:]}"
    return proc


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the system picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one thread, above all on a shared 2-core machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def toy():
    """The toy task's training and validation splits (``toy_ecg``)."""
    return toy_split("train", 96, 0), toy_split("val", 40, 1)

