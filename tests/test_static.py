"""Lint, format and type checks as part of the suite: ruff and mypy, configured in pyproject.toml, zero findings."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PACKAGES = ("core", "db", "api", "worker", "client", "cli")
CHECKED = (*PACKAGES, "bench", "tests", "scripts")


def python_files(folders: tuple[str, ...]) -> int:
    return sum(1 for folder in folders for _ in (REPO / folder).rglob("*.py"))


def run(args: list[str], cwd: Path = REPO, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def report(result: subprocess.CompletedProcess[str]) -> str:
    return f"$ {' '.join(result.args)}\nexit {result.returncode}\n{result.stdout}{result.stderr}"


def test_ruff_finds_nothing() -> None:
    result = run([str(BIN / "ruff"), "check", *CHECKED])
    assert result.returncode == 0 and "All checks passed!" in result.stdout, report(result)


def test_code_is_formatted() -> None:
    result = run([str(BIN / "ruff"), "format", "--check", *CHECKED])
    assert result.returncode == 0, "run `ruff format` on these files:\n" + report(result)
    # Every file was looked at (none excluded by configuration).
    formatted = re.search(r"(\d+) files? already formatted", result.stdout)
    assert formatted and int(formatted[1]) >= python_files(CHECKED), report(result)


def mypy(namespace_root: Path, *targets: str) -> subprocess.CompletedProcess[str]:
    args = [str(BIN / "mypy"), "--config-file", str(REPO / "pyproject.toml"), *targets]
    return run(args, cwd=namespace_root, env={"MYPYPATH": str(namespace_root), "PATH": str(BIN)})


@pytest.mark.timeout(900)
def test_mypy_finds_nothing(tmp_path: Path) -> None:
    # The installed namespace maps imagebatch.<package> onto top-level folders through an import
    # hook that mypy does not run, so mypy reads the same files through a tree of links instead.
    namespace = tmp_path / "imagebatch"
    namespace.mkdir()
    for package in PACKAGES:
        (namespace / package).symlink_to(REPO / package, target_is_directory=True)
    result = mypy(tmp_path, *[arg for package in PACKAGES for arg in ("-p", f"imagebatch.{package}")])
    assert result.returncode == 0, f"(imagebatch/<package>/... below is <package>/... here)\n{report(result)}"
    # Not vacuous: every module of every package was checked (the count also holds namespace folders).
    checked = re.search(r"^Success: no issues found in (\d+) source files$", result.stdout, re.MULTILINE)
    assert checked and int(checked[1]) >= python_files(PACKAGES), report(result)


def test_mypy_config_reports_errors(tmp_path: Path) -> None:
    """The configuration in force catches an error: nothing in it silences the check above."""
    (tmp_path / "wrong.py").write_text('def half(n: int) -> int:\n    return n / 2\n\n\nhalf("4")\n')
    result = mypy(tmp_path, "-m", "wrong")
    assert result.returncode == 1, report(result)
    assert "wrong.py:2: error" in result.stdout and "wrong.py:5: error" in result.stdout, report(result)
