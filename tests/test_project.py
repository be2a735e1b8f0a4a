"""The project's setup promises: pinned dependencies in step, CI calls the README's test command."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pins(requirements: list[str]) -> dict[str, str]:
    pins = {}
    for req in requirements:
        name, sep, version = req.partition("==")
        assert sep, f"{req!r} is not pinned with =="
        pins[name.strip().lower()] = version.strip()
    return pins


def _pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    return _pins(reqs)


def test_environment_yml_lists_what_pyproject_lists():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_lists = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_lists) == 1
    assert _pins(pip_lists[0]) == _pyproject_pins()
    assert "python=3.11" in env["dependencies"]


def test_lock_file_agrees_with_pyproject_and_pins_cpu_torch():
    lock = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            lock[name.strip().lower()] = version.strip()
    for name, version in _pyproject_pins().items():
        assert lock.get(name) == version, (
            f"requirements.lock pins {name}=={lock.get(name)}, pyproject {version}"
        )
    assert lock["torch"] == "2.13.0"
    assert not any(name.startswith(("nvidia-", "triton")) for name in lock), (
        "a CUDA build crept into the lock"
    )


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make run" in readme
    assert re.search(r"^make test$", ci, flags=re.M), ".ci/run must call `make test`"


def test_relative_links_in_the_documentation_point_at_files():
    """README.md, data/README.md and docs/*.md: every [text](path) that is not a URL exists."""
    pages = [ROOT / "README.md", ROOT / "data" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    assert ROOT / "docs" / "teacher_search.md" in pages
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = (page.parent / target.split("#")[0]).resolve()
            assert path.exists(), f"{page.relative_to(ROOT)} links to {target}, which does not exist"


def test_cli_help_lists_the_commands():
    out = subprocess.run(
        [sys.executable, "-m", "evl_lite", "--help"], capture_output=True, text=True, check=True
    )
    for command in ("data", "bench", "run"):
        assert re.search(rf"^\s+{command}\s", out.stdout, flags=re.M), f"{command} missing from --help"
    out = subprocess.run(
        [sys.executable, "-m", "evl_lite", "data", "--help"], capture_output=True, text=True, check=True
    )
    for command in ("summary", "synth", "download"):
        assert command in out.stdout


def test_ruff_passes_on_the_package_the_tests_and_the_notebooks():
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "evl_lite", "tests", "notebooks"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_pre_commit_runs_ruff_and_the_notebook_output_check():
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = {h["id"]: h for repo in config["repos"] for h in repo["hooks"]}
    assert "ruff check" in hooks["ruff"]["entry"] and "jupyter" in hooks["ruff"]["types_or"]
    assert hooks["notebooks-without-outputs"]["entry"].endswith("evl_lite notebooks check")


def _readme_commands() -> list[str]:
    """Every command line in the README's bash blocks (continuations joined, comments dropped)."""
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    lines = "\n".join(blocks).replace("\\\n", " ").splitlines()
    return [line.split(" #")[0].strip() for line in lines if line.strip() and not line.startswith("#")]


def test_every_command_the_readme_shows_exists():
    from evl_lite.cli import build_parser

    commands = _readme_commands()
    assert commands[0] == "make run MODE=workshop", "the README's first command should run the course"
    makefile = (ROOT / "Makefile").read_text()
    checked = 0
    for command in commands:
        words = command.split()
        if words[0] == "make":
            assert re.search(rf"^{words[1]}:", makefile, flags=re.M), f"no make target for {command!r}"
        elif words[:3] == ["python", "-m", "evl_lite"]:
            try:
                build_parser().parse_args(words[3:])
            except SystemExit:
                pytest.fail(f"the command line does not accept the README's {command!r}")
        else:
            continue
        checked += 1
    assert checked >= 6, commands


def test_the_readme_stays_a_front_page():
    readme = (ROOT / "README.md").read_text()
    size = len(readme.encode())
    assert size <= 8 * 1024, f"README.md is {size} bytes; move detail to docs/"
    assert "../shared" not in readme and not re.search(r"\bissue \d", readme, flags=re.I)
