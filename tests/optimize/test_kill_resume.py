"""SIGKILL a real ``genesis run`` mid-study, ``genesis resume`` it, compare with an uninterrupted run.

The killed run's middle trial waits at a gate (:mod:`tests.gate`) that opens only after the
kill, so the run cannot have completed first however fast the kernel is; the uninterrupted
run has the same strategy with nothing held.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.gate import STRATEGY_LINES, Gate
from tests.optimize.conftest import write_study

GENESIS = [sys.executable, "-m", "genesis_tui.cli"]


def _trials(db: Path) -> dict[str, tuple[int, str, float | None]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT key, number, state, objective FROM trials").fetchall()
    keys = [r[0] for r in rows]
    assert len(keys) == len(set(keys)), "a trial was stored twice"
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def _params(db: Path, number: int) -> dict[str, int]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        (text,) = conn.execute("SELECT params FROM trials WHERE number = ?", (number,)).fetchone()
    return dict(json.loads(text))


def _committed(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return conn.execute("SELECT count(*) FROM trials").fetchone()[0]
    except sqlite3.Error:
        return 0


def _best(trials: dict[str, tuple[int, str, float | None]]) -> tuple[str, float]:
    complete = [(obj, -num, key) for key, (num, state, obj) in trials.items() if state == "complete" and obj is not None]
    obj, _, key = max(complete)
    return key, obj


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("GENESIS_TEST_FAULTS", None)
    return env


@pytest.mark.parametrize("sampler, extra, trials", [
    ("grid", "", None),
    ("random", "", 600),
])
def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path: Path, sampler: str, extra: str, trials: int | None) -> None:
    values: dict[str, object] = dict(
        name="killme", strategy=STRATEGY_LINES, bars=20_000, fast_high=60, fast_step=1, slow_high=200,
        sampler=sampler, trials=trials, search_extra=extra, backend="process", workers=2, batch_size=64,
        checkpoint_every=32, checkpoint_interval_s=0.1, artifacts="top:5", timeout=3600,
    )
    ref_dir, killed_dir = tmp_path / "ref", tmp_path / "killed"
    ref_dir.mkdir()
    killed_dir.mkdir()
    Gate(ref_dir, fast=0, slow=0).write(ref_dir)  # holds nothing: fast is at least 2
    ref_db, db = tmp_path / "ref.db", tmp_path / "killed.db"
    ref = subprocess.run([*GENESIS, "run", str(write_study(ref_dir, **values)), "--db", str(ref_db), "--json"],
                         capture_output=True, text=True, timeout=600, env=_env())
    assert ref.returncode == 0, ref.stderr[-3000:]
    expected = _trials(ref_db)
    # The middle trial waits; the batches (64 trials) before it are stored, so a quarter is reached.
    gate = Gate.at(killed_dir, _params(ref_db, len(expected) // 2))
    gate.write(killed_dir)
    study = write_study(killed_dir, **values)

    proc = subprocess.Popen([*GENESIS, "run", str(study), "--db", str(db), "--headless"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env())
    deadline = time.monotonic() + 300
    while _committed(db) < len(expected) // 4 or not gate.held():
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:] if proc.stderr else ""
        assert time.monotonic() < deadline, "the study never got going"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    interrupted = _committed(db)
    assert 0 < interrupted < len(expected)
    gate.open()

    resumed = subprocess.run([*GENESIS, "resume", "killme", "--db", str(db), "--json"],
                             capture_output=True, text=True, timeout=600, env=_env())
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    got = _trials(db)
    assert set(got) == set(expected)  # no trial lost, none extra
    assert {k: v[0] for k, v in got.items()} == {k: v[0] for k, v in expected.items()}  # same numbers
    assert _best(got) == _best(expected)
