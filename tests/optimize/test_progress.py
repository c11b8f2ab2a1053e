"""Progress snapshots: counts, rate and an ETA that is right with parallel workers."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from engine.optimize.progress import ProgressTracker, format_duration, progress_line
from engine.store.records import TrialState


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class R:
    state: TrialState


def test_eta_uses_wall_throughput_of_all_workers() -> None:
    """Four workers each finishing a 1 s trial every second: 4 trials/s, not 1."""
    clock = Clock()
    tracker = ProgressTracker("s", total=400, objective="sharpe", workers=4, clock=clock)
    for _ in range(20):
        clock.now += 1.0
        tracker.count_many([R(TrialState.COMPLETE)] * 4)
    snap = tracker.snapshot()
    assert snap.done == 80 and snap.trials_per_s == pytest.approx(4.0)
    assert snap.eta_s == pytest.approx((400 - 80) / 4.0)


def test_counts_best_and_resume_offset() -> None:
    clock = Clock()
    tracker = ProgressTracker("s", total=10, objective="sharpe", workers=2, clock=clock)
    tracker.count("complete", 3)
    tracker.count("failed")
    tracker.restart_clock()  # a resumed run: stored trials do not count towards the rate
    clock.now = 2.0
    tracker.count_many([R(TrialState.PRUNED), R(TrialState.COMPLETE)])
    tracker.offer_best(1.5, 7, {"fast": 3}, maximize=True)
    tracker.offer_best(0.5, 2, {"fast": 9}, maximize=True)
    tracker.offer_best(1.5, 4, {"fast": 4}, maximize=True)  # a tie goes to the lower number
    snap = tracker.snapshot()
    assert (snap.complete, snap.failed, snap.pruned, snap.done) == (4, 1, 1, 6)
    assert snap.resumed_from == 4 and snap.trials_per_s == pytest.approx(1.0)
    assert (snap.best_value, snap.best_number, snap.best_params) == (1.5, 4, {"fast": 4})
    line = progress_line(snap)
    assert "6/10" in line and "failed 1" in line and "pruned 1" in line and "#4" in line


def test_minimize_keeps_the_lowest() -> None:
    tracker = ProgressTracker("s", total=10, objective="max_drawdown", workers=1)
    tracker.offer_best(0.3, 1, {}, maximize=False)
    tracker.offer_best(0.1, 2, {}, maximize=False)
    tracker.offer_best(0.2, 3, {}, maximize=False)
    assert tracker.snapshot().best_number == 2


def test_duration_format() -> None:
    assert format_duration(None) == "--"
    assert format_duration(12.34) == "12.3s"
    assert format_duration(185) == "3m05s"
    assert format_duration(3720) == "1h02m"
