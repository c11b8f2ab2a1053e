"""A store that runs out of room stops the run (exit 1) and leaves the study stopped and resumable."""

from __future__ import annotations

import resource
import sqlite3
import subprocess
from pathlib import Path

from tests.headless.conftest import GENESIS, env, genesis, stored_trials, study_row, write_study

LIMIT_BYTES = 1400 * 1024  # above the shared price data (20k bars), below the store the grid needs


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT_BYTES, LIMIT_BYTES))  # writes past it fail with EFBIG


def test_a_full_store_stops_the_run_with_exit_1_and_the_study_resumes(tmp_path: Path) -> None:
    study = write_study(tmp_path, name="full", bars=20_000, fast_high=150, fast_step=1, slow_high=400,
                        backend="process", batch_size=64, checkpoint_every=64, artifacts="top:20")
    db = tmp_path / "s.db"
    result = subprocess.run([*GENESIS, "run", str(study), "--db", str(db), "--headless"], capture_output=True,
                            text=True, timeout=300, env=env(), preexec_fn=_limited)
    assert result.returncode == 1, result.stderr
    assert "write failed" in result.stderr and "Traceback" not in result.stderr
    assert study_row(db, "full")["state"] == "stopped", result.stdout + result.stderr
    kept = stored_trials(db, "full")
    assert kept, "nothing was committed before the store filled up"
    resumed = genesis("run", study, "--db", db, "--headless")
    assert resumed.returncode == 0, resumed.stderr
    after = stored_trials(db, "full")
    grid = sum(1 for f in range(2, 151) for s in range(10, 401, 10) if f < s)
    assert len(after) == grid
    assert {k: v for k, v in after.items() if k in kept} == kept  # what was committed is kept unchanged
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
