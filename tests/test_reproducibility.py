"""Provenance names the machine precisely enough to explain a result that differs across CPUs."""

import torch

from evl_lite.reproducibility import cpu_model, machine_description, provenance


def test_machine_names_the_cpu_and_pytorchs_kernel_level():
    line = machine_description()
    assert f"{cpu_model()} ({torch.backends.cpu.get_cpu_capability()} kernels)" in line
    assert cpu_model() != ""
    assert "CPUs" in line and "Python" in line


def test_provenance_carries_the_machine_line():
    assert provenance(seeds=[0])["machine"] == machine_description()
