"""The inline and process backends against the backend conformance suite."""

from __future__ import annotations

from typing import Any

import pytest

from engine.optimize.backends.inline import InlineBackend
from engine.optimize.backends.process import ProcessBackend
from tests.optimize.backend_conformance import BackendConformance


class TestInlineBackend(BackendConformance):
    @pytest.fixture
    def backend_factory(self) -> Any:
        return lambda: InlineBackend(trial_timeout_s=30.0)


class TestProcessBackend(BackendConformance):
    @pytest.fixture
    def backend_factory(self) -> Any:
        return lambda: ProcessBackend(workers=2, trial_timeout_s=30.0)


class TestSpawnedProcessBackend(BackendConformance):
    """Where there is no fork server, workers are spawned: the same contract holds."""

    @pytest.fixture
    def backend_factory(self) -> Any:
        return lambda: ProcessBackend(workers=2, trial_timeout_s=30.0, context="spawn")


async def test_niced_workers_run_below_the_parent_priority() -> None:
    """``nice`` lowers the workers' CPU priority (the console keeps the CPU for its keys)."""
    import os

    from engine.data import load
    from tests.optimize.backend_conformance import SETUP

    backend = ProcessBackend(workers=2, trial_timeout_s=30.0, nice=7)
    await backend.start(load("synthetic:bars=500,seed=3,timeframe=1m"), SETUP)
    try:
        pids = [w.pid for w in backend._workers]
        parent = os.getpriority(os.PRIO_PROCESS, 0)
        assert len(pids) == 2 and all(pids)
        assert [os.getpriority(os.PRIO_PROCESS, pid) for pid in pids] == [min(19, parent + 7)] * 2
    finally:
        await backend.close()


async def test_start_returns_before_the_workers_are_ready_and_reports_a_failed_start_on_results() -> None:
    """The pool's start does not wait for its workers (the first batch is planned meanwhile); a worker
    that cannot start is reported on the results stream, where the executor waits."""
    from dataclasses import replace

    from engine.data import load
    from engine.errors import GenesisError
    from tests.optimize.backend_conformance import SETUP

    backend = ProcessBackend(workers=2, trial_timeout_s=30.0)
    await backend.start(load("synthetic:bars=500,seed=3,timeframe=1m"), replace(SETUP, strategy="no_such_strategy"))
    try:
        with pytest.raises(GenesisError, match="failed to start"):
            await backend.results().__aiter__().__anext__()
    finally:
        await backend.close()
