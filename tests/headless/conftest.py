"""Fixtures of the headless tests: study files, real `genesis` processes, store readers."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.gate import STRATEGY_LINES, Gate
from tests.optimize.conftest import write_study

GENESIS = [sys.executable, "-m", "genesis_tui.cli"]

__all__ = ["GENESIS", "env", "gated_study", "genesis", "stored_trials", "study_row", "wait_for", "write_study"]


def env(**extra: str) -> dict[str, str]:
    """The environment of a child `genesis`: no injected faults, an isolated global config."""
    out = dict(os.environ)
    out.pop("GENESIS_TEST_FAULTS", None)
    out.update(extra)
    return out


def genesis(*args: str | Path, timeout: float = 300, **extra_env: str) -> subprocess.CompletedProcess[str]:
    """Run `genesis ARGS` to the end with stdout and stderr captured (not a terminal)."""
    return subprocess.run([*GENESIS, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env=env(**extra_env))


def start(*args: str | Path, **extra_env: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*GENESIS, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env(**extra_env))


def stored_trials(db: Path, study: str | None = None) -> dict[str, tuple[int, str, float | None]]:
    """key -> (number, state, objective); asserts no key is stored twice."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        if study is None:
            rows = conn.execute("SELECT key, number, state, objective FROM trials").fetchall()
        else:
            rows = conn.execute(
                "SELECT t.key, t.number, t.state, t.objective FROM trials t JOIN studies s ON s.id = t.study_id "
                "WHERE s.name = ?", (study,)
            ).fetchall()
    keys = [r[0] for r in rows]
    assert len(keys) == len(set(keys)), "a trial was stored twice"
    numbers = [r[1] for r in rows]
    assert len(numbers) == len(set(numbers)), "a trial number was used twice"
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def committed(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("SELECT count(*) FROM trials").fetchone()[0])
    except sqlite3.Error:
        return 0


def study_row(db: Path, name: str) -> dict[str, Any]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        row = conn.execute("SELECT state, checkpoint_seq, next_number FROM studies WHERE name = ?", (name,)).fetchone()
    assert row is not None, f"no study {name!r} in {db}"
    return {"state": row[0], "checkpoint_seq": row[1], "next_number": row[2]}


def wait_for(predicate: Any, proc: subprocess.Popen[str] | None = None, timeout: float = 120.0) -> None:
    """Poll ``predicate`` until true; fail early if ``proc`` exits first."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"process exited {proc.returncode} first: {out[-2000:]} {err[-2000:]}")
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def one_json(stdout: str) -> dict[str, Any]:
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert len(lines) == 1, stdout
    return json.loads(lines[0])


def big_study(directory: Path, name: str = "nightly", **overrides: Any) -> Path:
    """A study that takes a few seconds on two workers (a grid unless told otherwise)."""
    values: dict[str, Any] = dict(
        name=name, bars=100_000, fast_high=60, fast_step=1, slow_high=200, backend="process", workers=2,
        batch_size=64, checkpoint_every=32, checkpoint_interval_s=0.1, artifacts="top:5",
    )
    values.update(overrides)
    return write_study(directory, **values)


#: The gated trial of :func:`gated_study`: number ~300 of its 1,520 (the grid is fast-major, slow inner:
#: 20 slow values). Every batch (64 trials) before it completes while it waits (~250 trials stored),
#: and ~1,200 trials come after it, so a study held there can store trials but never complete.
HOLD = {"fast": 17, "slow": 90}
#: A later one: number ~700, for a test that waits for more trials stored (~640) before it acts.
HOLD_LATE = {"fast": 40, "slow": 100}


def gated_study(directory: Path, *, hold: dict[str, int] = HOLD, opened: bool = False,
                **overrides: Any) -> tuple[Path, Gate]:
    """A :func:`big_study` grid of 1,520 trials (unless told otherwise) on the gated strategy, whose trial
    ``hold`` waits at a gate (opened already when told); its watchdog waits an hour, not for the gate."""
    gate = Gate.at(directory, hold)
    gate.write(directory)
    if opened:
        gate.open()
    values: dict[str, Any] = dict(strategy=STRATEGY_LINES, fast_high=100, timeout=3600)
    values.update(overrides)
    return big_study(directory, **values), gate
