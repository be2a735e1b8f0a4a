"""What every results file records so that a number can be traced and regenerated:
the command, the commit, the seed(s), the machine and the versions of the packages that
compute it."""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PACKAGES = (
    "evl-lite",
    "torch",
    "transformers",
    "accelerate",
    "POT",
    "numpy",
    "scipy",
    "scikit-learn",
    "wfdb",
)

# Environment variables that change what a command computes, though its command line does not show
# them: the scale of the notebooks' recipes, and the instruction sets the math libraries may use.
RESULT_VARIABLES = ("EVL_LITE_SCALE", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "ATEN_CPU_CAPABILITY")


def git_commit() -> str:
    """Short hash of the checked-out commit (with ``+dirty`` when files differ), or ``unknown``."""
    cwd = Path(__file__).parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=cwd, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            cwd=cwd,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed version of each package (``missing`` when it is not installed)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions


def cpu_model(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> str:
    """The CPU model name (``cpuinfo`` on Linux, else ``platform.processor()``) or ``unknown CPU``."""
    try:
        for line in Path(cpuinfo).read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_description() -> str:
    """One line: OS, CPU model and PyTorch's CPU kernel level, CPU count, Python, the accelerator if any.

    The CPU model is recorded because the same seed gives the same metrics only on the same kind
    of CPU: the math libraries under PyTorch (oneDNN, MKL) pick their kernels by the CPU's
    instruction set, those sum in another order, and training amplifies the last-bit changes
    (README, "What this shows"). PyTorch's own kernel level
    (``torch.backends.cpu.get_cpu_capability()``) goes with it.
    """
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    cpu = f"{cpu_model()} ({torch.backends.cpu.get_cpu_capability()} kernels)"
    return f"{platform.platform()}, {cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}, {gpu}"


def provenance(**extra) -> dict:
    """What to store next to any result: command, commit, machine, versions, and ``extra`` (seeds...).

    ``environment`` holds those of :data:`RESULT_VARIABLES` that are set (empty: none).
    """
    return {
        "command": shlex.join(["python", "-m", "evl_lite", *sys.argv[1:]])  # quoted: it can be pasted
        if sys.argv[0].endswith("__main__.py")
        else shlex.join(sys.argv),
        "environment": {name: os.environ[name] for name in RESULT_VARIABLES if name in os.environ},
        "commit": git_commit(),
        "machine": machine_description(),
        "versions": package_versions(),
        **extra,
    }


def shell_command(record: dict) -> str:
    """A provenance record's command as a shell line, its ``environment`` first (``VAR=value ...``)."""
    settings = [f"{name}={value}" for name, value in record.get("environment", {}).items()]
    return " ".join([*settings, record["command"]])
