"""First-call compile time is recorded apart from run time."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from engine.profile import Profiler
from engine.profile.numba_timing import COMPILE_STAGE, timed_kernel


def _total_nb(x):  # compiled fresh per test (no disk cache)
    total = 0.0
    for v in x:
        total += v
    return total


def _stats(p: Profiler) -> dict:
    return {s.name: s for s in p.stats()}


def test_compile_is_kept_apart_from_run_time() -> None:
    p = Profiler(enabled=True)
    kernel = timed_kernel(njit(_total_nb), "backtest.kernel", timer=p)
    x = np.arange(1000.0)
    x.flags.writeable = False  # Bars arrays are read-only: typing must match the call
    for _ in range(5):
        assert kernel(x) == 499500.0
    stats = _stats(p)
    assert stats[COMPILE_STAGE].count == 1
    assert stats["backtest.kernel"].count == 5
    assert len(kernel.dispatcher.signatures) == 1  # the explicit compile was the one used
    # A compile takes far longer than summing a thousand floats.
    assert stats[COMPILE_STAGE].total_s > stats["backtest.kernel"].max_s

    # A new signature later compiles inside the call; the listener moves it.
    assert kernel(np.arange(10, dtype=np.int64)) == 45.0
    stats = _stats(p)
    assert stats[COMPILE_STAGE].count == 2
    assert stats["backtest.kernel"].count == 6
    assert stats[COMPILE_STAGE].min_s > stats["backtest.kernel"].max_s
    # Both are top level here, and together they are all the covered time.
    assert p.covered_s() == pytest.approx(stats[COMPILE_STAGE].top_s + stats["backtest.kernel"].top_s, abs=1e-9)


def test_disabled_profiler_just_calls() -> None:
    p = Profiler(enabled=False)
    kernel = timed_kernel(njit(_total_nb), "backtest.kernel", timer=p)
    assert kernel(np.ones(4)) == 4.0
    assert p.stats() == []


def test_inside_a_stage_the_split_is_nested() -> None:
    p = Profiler(enabled=True)
    kernel = timed_kernel(njit(_total_nb), "backtest.kernel", timer=p)
    with p.stage("optimize.trial"):
        kernel(np.ones(8))
    stats = _stats(p)
    assert stats[COMPILE_STAGE].top_s == 0.0 and stats["backtest.kernel"].top_s == 0.0
    assert stats["optimize.trial"].total_s >= stats[COMPILE_STAGE].total_s + stats["backtest.kernel"].total_s
