"""Provenance names the machine precisely enough to explain a result that differs across CPUs."""

import platform

import torch

from evl_lite.reproducibility import (
    RESULT_VARIABLES,
    cpu_model,
    machine_description,
    provenance,
    shell_command,
)


def test_machine_names_the_cpu_and_pytorchs_kernel_level():
    line = machine_description()
    assert f"{cpu_model()} ({torch.backends.cpu.get_cpu_capability()} kernels)" in line
    assert cpu_model() != ""
    assert "CPUs" in line and "Python" in line


def test_cpu_model_reads_the_model_name_and_falls_back_without_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: Acme\nmodel name\t: Acme Zen 9 64-Core\nflags\t: avx2\n")
    assert cpu_model(info) == "Acme Zen 9 64-Core"
    assert cpu_model(tmp_path / "missing") == (platform.processor() or "unknown CPU")


def test_provenance_carries_the_machine_line():
    assert provenance(seeds=[0])["machine"] == machine_description()


def test_provenance_records_the_environment_variables_that_change_results(monkeypatch):
    for name in RESULT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert provenance()["environment"] == {}
    monkeypatch.setenv("EVL_LITE_SCALE", "full")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    monkeypatch.setenv("UNRELATED_VARIABLE", "x")
    assert provenance()["environment"] == {"EVL_LITE_SCALE": "full", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def test_shell_command_puts_the_environment_first():
    command = "python -m evl_lite teacher-student --seeds 1"
    record = {"command": command, "environment": {"EVL_LITE_SCALE": "full"}}
    assert shell_command(record) == f"EVL_LITE_SCALE=full {command}"
    assert shell_command({"command": command}) == command  # records made before the field existed
