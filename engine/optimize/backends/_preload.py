"""Imported once by the ``forkserver`` of the process backend: heavy imports and the kernel load.

Every worker is forked from that server, so it starts with numpy, numba, the
backtest engine and compiled kernels already in memory: the kernels of the
study the server was started for (:data:`~engine.optimize.fork_server.STUDY_ENV`),
else the generic simulation kernel (numba's start-up, the bulk of the cost, either way).
"""

from __future__ import annotations

import contextlib
import gc
import os

from engine.optimize.fork_server import (
    STUDY_ENV,
    exit_quickly,
    freeze_for_forks,
    in_fork_server,
    peek_study,
)

#: Bars of the warm-ups: as many as a worker's own warm-up runs on (``Evaluator.warm_up``).
WARM_BARS = 64


def _warm_study(path: str) -> bool:
    """Load the kernels the study file at ``path`` calls, as its workers' warm-up would: its built-in
    strategy at its defaults under its ``[backtest]``; whether it could.

    Built-ins only: workers load a user's strategy from its content, as another module
    than the server would, so the server's load (or compile) of it would serve none."""
    import msgspec

    import engine.backtest as backtest
    from engine.backtest.options import BacktestOptions
    from engine.backtest.strategies import STRATEGIES
    from engine.data.bars import tiny_bars

    table = peek_study(path)  # (None for a pipe: never waited on, never taken from the loader)
    strategy = table.get("strategy") if table is not None else None
    if table is None or not isinstance(strategy, dict) or strategy.get("file") is not None:
        return False
    definition = STRATEGIES.get(str(strategy.get("name")))
    if definition is None:
        return False
    try:
        options = msgspec.convert(table.get("backtest", {}), BacktestOptions)
        bars = tiny_bars(WARM_BARS)
        backtest.run_many(bars, definition, [definition.defaults()], options=options)  # its trials
        backtest.run(bars, definition, definition.defaults(), options=options, equity=True, trades=True)  # artifacts
    except Exception:  # the study loader reports a bad file; the generic warm-up stands in
        return False
    return True


def _warm() -> None:
    """The generic simulation kernel on a few bars."""
    import numpy as np

    import engine.backtest as backtest
    from engine.data.bars import tiny_bars

    bars = tiny_bars(WARM_BARS)
    signals = np.zeros(WARM_BARS, dtype=np.bool_)
    signals[5] = True
    backtest.run_signals(bars, signals, signals[::-1].copy())


def _load() -> None:
    """Import what every worker runs and load the kernels it will call."""
    import engine.optimize.backends.process  # (a worker's entry point: asyncio, the shared bars)
    import engine.optimize.trial  # noqa: F401 - what every worker runs

    study = os.environ.get(STUDY_ENV)
    if not (study and _warm_study(study)):
        with contextlib.suppress(Exception):
            _warm()


if in_fork_server():
    # Everything loaded here is frozen below: a full collection meanwhile (~40 ms) would free next to nothing.
    gc.disable()
    try:
        _load()
        from engine.profile.caches import caches

        caches.clear_counts()  # a worker's lookup counters count its own
        freeze_for_forks()
    finally:
        gc.enable()
else:
    _load()
exit_quickly()  # (a no-op outside the fork server)
