"""Project hygiene: layering, lint, and the README/CI contract."""

from __future__ import annotations

import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import engine
import genesis_tui

ROOT = Path(__file__).resolve().parent.parent


def _modules(package: object) -> list[str]:
    return sorted(
        info.name
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}.")  # type: ignore[attr-defined]
    )


HEADLESS_MODULES = [
    *_modules(engine),
    "genesis_tui.cli",
    *[m for m in _modules(genesis_tui) if m.startswith("genesis_tui.commands.")],
]


@pytest.mark.parametrize("module", HEADLESS_MODULES)
def test_headless_module_never_loads_textual(module: str) -> None:
    """Engine modules and the command-line front end import without textual."""
    code = (
        "import importlib, sys\n"
        f"importlib.import_module({module!r})\n"
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        "assert not bad, bad[:5]\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]


def test_engine_never_imports_console_import_linter() -> None:
    """The import-linter contract in pyproject.toml holds."""
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    result = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "KEPT" in result.stdout


def test_ruff_clean() -> None:
    """The code base passes ruff."""
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "engine", "genesis_tui", "tests", "benchmarks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:]


def test_mypy_clean() -> None:
    """engine and genesis_tui type-check with the [tool.mypy] settings in pyproject.toml.

    mypy's incremental cache (.mypy_cache, gitignored) makes a run after the first take
    about 3 s; a fresh clone pays the full check once (20 s of CPU, a minute on a busy two-core machine).
    """
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(ROOT / ".mypy_cache")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Success" in result.stdout


def test_ci_runs_readme_test_command() -> None:
    """.ci/run calls exactly the test command README gives."""
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    command = ci[-1].strip()
    assert command in readme
