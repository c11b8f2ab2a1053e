"""load(): stage timers around loading and validation, and the dropped-rows note."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from engine.data import Bars, dropped_rows_note, load
from engine.profile import profiler


@pytest.fixture
def profiling() -> object:
    was = profiler.enabled
    profiler.reset()
    profiler.enabled = True
    yield profiler
    profiler.enabled = was
    profiler.reset()


def _counts() -> dict[str, int]:
    return {stats.name: stats.count for stats in profiler.stats()}


@pytest.mark.usefixtures("profiling")
def test_load_and_validate_stages_are_timed(write: Callable[[str, str], Path]) -> None:
    load("synthetic:bars=100,seed=1")
    path = write("x.csv", "timestamp,open,high,low,close\n1,1,2,0.5,1.5\n2,1,2,0.5,1.5\n")
    load(f"csv:{path}")
    counts = _counts()
    assert counts["data.load"] == 2
    assert counts["data.validate"] == 2


def test_no_stage_is_recorded_when_profiling_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(profiler, "enabled", False)
    before = _counts().get("data.load", 0)
    load("synthetic:bars=10,seed=1")
    assert _counts().get("data.load", 0) == before


def test_dropped_rows_note_singular(write: Callable[[str, str], Path]) -> None:
    path = write("x.csv", "timestamp,open,high,low,close\n1,1,2,0.5,1.5\n2,1,2,0.5,nan\n3,1,2,0.5,1.5\n")
    bars: Bars = load(f"csv:{path}")
    assert dropped_rows_note(bars) == (
        f"dropped 1 row with empty, NaN or inf values from {path} (first: line 3); "
        "add strict=true to the spec to reject them"
    )
