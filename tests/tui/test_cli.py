"""``genesis tui`` input errors: one line on stderr, exit 2, before any UI starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def genesis(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "genesis_tui.cli", *args],
        capture_output=True, text=True, timeout=120, env=dict(os.environ), check=False,
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["tui", "--theme", "no-such-theme"], "--theme: no theme named 'no-such-theme'"),
        (["tui", "--refresh-hz", "0"], "--refresh-hz"),
        (["tui", "/nonexistent/study.toml"], "/nonexistent/study.toml"),
        (["tui", "--paper", "/nonexistent/study.toml"], "--paper: /nonexistent/study.toml"),
        (["tui", "--paper-speed", "5"], "--paper-speed: only with --paper"),
        (["tui", "--paper", "x.toml", "--paper-speed", "0"], "--paper-speed: expected a number"),
    ],
)
def test_bad_console_input_exits_2_with_one_line(args: list[str], expected: str) -> None:
    result = genesis(*args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("genesis: ") and expected in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("flag", [(), ("--paper",)])
def test_invalid_study_file_names_the_key(tmp_path: Path, flag: tuple[str, ...]) -> None:
    study = tmp_path / "s.toml"
    study.write_text('name = "s"\n[data]\nspec = "synthetic:bars=100"\n[strategy]\nname = "sma_cross"\n[space]\nfast = { int = [1, 5] }\n[search]\ntrials = "many"\n')
    result = genesis("tui", *flag, str(study))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "search.trials" in result.stderr and str(study) in result.stderr
