"""The conformance suite every execution backend must pass (inline, process, dask, ...).

Bind ``backend_factory`` (a callable returning a fresh, unstarted backend) in a
test module and subclass :class:`BackendConformance`.
"""

from __future__ import annotations

from typing import Any

import pytest

from engine.backtest import BacktestOptions
from engine.data import load
from engine.optimize.backends.base import Backend, Chunk, ChunkDone
from engine.optimize.trial import WorkerSetup
from engine.store.records import TrialState, TrialTask

SETUP = WorkerSetup(strategy="sma_cross", backtest=BacktestOptions(fee=0.001), objective="sharpe", trial_timeout_s=30.0)


def _tasks(start: int, n: int) -> tuple[TrialTask, ...]:
    return tuple(
        TrialTask(i, {"fast": 2 + i % 20, "slow": 30 + i % 40}, f"k{i}") for i in range(start, start + n)
    )


async def _collect(backend: Backend, expected: int) -> list[ChunkDone]:
    events: list[ChunkDone] = []
    got = 0
    stream = backend.results().__aiter__()
    while got < expected:
        event = await stream.__anext__()
        events.append(event)
        got += len(event.results)
    return events


class BackendConformance:
    """Subclass in a test module that provides the ``backend_factory`` fixture."""

    @pytest.fixture
    def bars(self) -> Any:
        return load("synthetic:bars=2000,seed=3,timeframe=1m")

    async def test_every_task_gets_exactly_one_result(self, backend_factory: Any, bars: Any) -> None:
        backend = backend_factory()
        await backend.start(bars, SETUP)
        try:
            chunks = [Chunk(c, _tasks(10 * c, 10)) for c in range(6)]
            for chunk in chunks:
                backend.submit(chunk)
            events = await _collect(backend, 60)
        finally:
            await backend.close()
        numbers = sorted(r.number for e in events for r in e.results)
        assert numbers == list(range(60))
        assert all(r.state is TrialState.COMPLETE and r.metrics for e in events for r in e.results)
        assert {e.chunk_id for e in events} == set(range(6))

    async def test_a_start_interrupted_beforehand_returns_and_closes(self, backend_factory: Any, bars: Any) -> None:
        """``interrupt_start`` (a stop that came before the pool started) makes :meth:`start` return
        with nothing to run on; :meth:`close` still ends it cleanly."""
        backend = backend_factory()
        backend.interrupt_start()
        await backend.start(bars, SETUP)
        await backend.close()

    async def test_results_match_a_direct_backtest(self, backend_factory: Any, bars: Any) -> None:
        from engine import backtest

        backend = backend_factory()
        await backend.start(bars, SETUP)
        try:
            backend.submit(Chunk(0, _tasks(0, 5)))
            events = await _collect(backend, 5)
        finally:
            await backend.close()
        for result in (r for e in events for r in e.results):
            params = {"fast": 2 + result.number % 20, "slow": 30 + result.number % 40}
            direct = backtest.run(bars, "sma_cross", params, fee=0.001).metrics.as_dict()
            assert result.objective == pytest.approx(direct["sharpe"], rel=1e-12)

    async def test_artifacts_come_back_encoded_when_asked(self, backend_factory: Any, bars: Any) -> None:
        from engine.store.artifacts import decode_array

        backend = backend_factory()
        await backend.start(bars, SETUP)
        try:
            backend.submit(Chunk(0, _tasks(0, 2), artifacts=True))
            events = await _collect(backend, 2)
        finally:
            await backend.close()
        artifacts = {n: a for e in events for n, a in e.artifacts.items()}
        assert sorted(artifacts) == [0, 1]
        equity = decode_array(*artifacts[0]["equity"])
        assert equity.shape == (len(bars),)

    async def test_cancel_pending_takes_back_unstarted_chunks(self, backend_factory: Any, bars: Any) -> None:
        backend = backend_factory()
        await backend.start(bars, SETUP)
        try:
            for c in range(40):
                backend.submit(Chunk(c, _tasks(5 * c, 5)))
            taken = backend.cancel_pending()
            reported = 200 - sum(len(chunk.tasks) for chunk in taken)
            events = await _collect(backend, reported) if reported else []
        finally:
            await backend.close()
        done = sorted(r.number for e in events for r in e.results)
        returned = sorted(t.number for chunk in taken for t in chunk.tasks)
        assert sorted(done + returned) == list(range(200))  # each task exactly once: run, or handed back
        assert backend.workers >= 1
