"""The bound on worker processes: ``--workers`` and ``execution.workers`` above 4 per core are refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.optimize.conftest import write_study

GENESIS = [sys.executable, "-m", "genesis_tui.cli"]
BOUND = 4 * (os.cpu_count() or 1)  # the documented bound: 4 worker processes per core

pytestmark = pytest.mark.timeout(240)


def _genesis(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GENESIS, *map(str, args)], capture_output=True, text=True, timeout=120)


def _refused(result: subprocess.CompletedProcess[str], *names: str) -> str:
    assert result.returncode == 2, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for name in (*names, str(BOUND), "--allow-many-workers"):
        assert name in lines[0]
    return lines[0]


@pytest.mark.parametrize("command", [["run"], ["run", "--headless"]])
def test_workers_flag_above_the_bound_is_refused_before_anything_starts(tmp_path: Path, command: list[str]) -> None:
    study = write_study(tmp_path, backend="process")
    db = tmp_path / "s.db"
    result = _genesis(*command, study, "--db", db, "--workers", BOUND + 1)
    _refused(result, "--workers", str(BOUND + 1))
    assert not db.exists()  # nothing written


def test_a_study_file_above_the_bound_is_refused_naming_the_file_and_key(tmp_path: Path) -> None:
    study = write_study(tmp_path, backend="process", workers=BOUND + 1)
    db = tmp_path / "s.db"
    line = _refused(_genesis("run", study, "--headless", "--db", db), "execution.workers", str(study))
    assert str(BOUND + 1) in line
    assert not db.exists()


def test_the_console_refuses_its_workers_flag_and_the_study_file_before_the_ui(tmp_path: Path) -> None:
    study = write_study(tmp_path, backend="process", workers=BOUND + 1)
    _refused(_genesis("tui", study, "--db", tmp_path / "s.db", "--workers", BOUND * 10), "--workers")
    _refused(_genesis("tui", study, "--db", tmp_path / "s.db"), "execution.workers")


def test_resume_of_a_stored_study_above_the_bound_is_refused(tmp_path: Path) -> None:
    # Stored with a count this machine allows only with the flag (as if written on a bigger machine).
    study = write_study(tmp_path, name="big", backend="process", workers=BOUND + 1, fast_high=4, slow_high=20)
    db = tmp_path / "s.db"
    first = _genesis("run", study, "--db", db, "--headless", "--backend", "inline", "--allow-many-workers")
    assert first.returncode == 0, first.stderr[-3000:]
    _refused(_genesis("resume", "big", "--db", db, "--headless"), "stored study 'big'", "execution.workers")


def test_allow_many_workers_lifts_the_bound(tmp_path: Path) -> None:
    # The inline backend starts no process, so the lifted bound costs nothing here.
    study = write_study(tmp_path, backend="inline", fast_high=4, slow_high=20)
    db = tmp_path / "s.db"
    result = _genesis("run", study, "--db", db, "--workers", BOUND + 1, "--allow-many-workers", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    assert db.exists()
