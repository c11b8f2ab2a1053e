"""Imported once by the ``forkserver`` of the process backend: heavy imports and the kernel load.

Every worker is forked from that server, so it starts with numpy, numba, the
backtest engine and the compiled simulation kernel already in memory.
"""

from __future__ import annotations

import contextlib
import gc

import numpy as np

import engine.backtest as backtest
import engine.optimize.trial  # noqa: F401 - what every worker runs
from engine.data.bars import Bars
from engine.optimize.fork_server import exit_quickly, in_fork_server
from engine.profile.caches import caches


def tiny_bars(n: int = 256) -> Bars:
    """A few valid synthetic bars to run kernels on."""
    close = 100.0 + np.cumsum(np.sin(np.arange(n)))
    return Bars(
        ts=np.arange(n, dtype=np.int64) * 60_000_000_000,
        open=close, high=close + 1.0, low=close - 1.0, close=close, volume=np.ones(n),
    )


def _warm() -> None:
    n = 64
    bars = tiny_bars(n)
    signals = np.zeros(n, dtype=np.bool_)
    signals[5] = True
    backtest.run_signals(bars, signals, signals[::-1].copy())


def _warm_workers() -> None:
    """(In the server) load what a default study's workers would otherwise each load from numba's
    disk cache: the moving average, the batched kernel of its trials and the single one (equity,
    trades) of its artifacts; then forget the lookups (a worker's counters count its own)."""
    bars = tiny_bars()
    backtest.run_many(bars, "sma_cross", [{"fast": 2, "slow": 5}])
    backtest.run(bars, "sma_cross", {"fast": 2, "slow": 5}, equity=True, trades=True)
    caches.clear_counts()


with contextlib.suppress(Exception):
    _warm()
exit_quickly()  # (in the fork server only)
if in_fork_server():
    with contextlib.suppress(Exception):
        _warm_workers()
    # What the server loaded lives as long as it: out of the collector's sight, a forked worker's
    # first full collection no longer writes to every inherited object's header (copying ~36 MB of
    # pages: ~50 ms of CPU per worker before its first chunk, measured on the headline study).
    gc.freeze()
