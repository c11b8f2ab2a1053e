"""The ``inline`` backend: trials run in this process, one chunk at a time, in a thread.

For tiny studies and tests. The event loop stays free (chunks run through
``asyncio.to_thread``). A thread cannot be killed, so the per-trial timeout is
enforced after the fact: a trial that overran it is recorded failed, as the
``process`` backend would have done.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

from engine.optimize.backends.base import Chunk, ChunkDone
from engine.optimize.trial import Evaluator, WorkerSetup
from engine.store.records import TrialState
from engine.store.result_batch import FAILED, ResultBatch


class InlineBackend:
    """Runs chunks in a worker thread of this process."""

    name = "inline"

    def __init__(self, *, trial_timeout_s: float = 30.0) -> None:
        self.trial_timeout_s = trial_timeout_s
        self._evaluator: Evaluator | None = None
        self._pending: collections.deque[Chunk] = collections.deque()
        self._results: asyncio.Queue[ChunkDone | None] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def workers(self) -> int:
        return 1

    async def start(self, bars: Any, setup: WorkerSetup) -> None:
        self._evaluator = await asyncio.to_thread(Evaluator, bars, setup, worker="inline")
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="inline-backend")

    def submit(self, chunk: Chunk) -> None:
        self._pending.append(chunk)
        self._wake.set()

    def interrupt_start(self) -> None:
        """Nothing to interrupt: the one evaluator is built in a moment."""

    def cancel_pending(self) -> list[Chunk]:
        taken = list(self._pending)
        self._pending.clear()
        return taken

    async def results(self) -> AsyncIterator[ChunkDone]:
        while True:
            event = await self._results.get()
            if event is None:
                return
            yield event

    async def _loop(self) -> None:
        assert self._evaluator is not None
        evaluator = self._evaluator
        while not self._closed:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            chunk = self._pending.popleft()
            t0 = time.perf_counter()
            output = await asyncio.to_thread(
                evaluator.evaluate, chunk.tasks, artifacts=chunk.artifacts, isolate=chunk.isolate
            )
            batch = output.batch
            late = (batch.durations > self.trial_timeout_s) & (batch.states != FAILED)
            if late.any():
                results = [
                    dataclasses.replace(
                        r, state=TrialState.FAILED, objective=None,
                        error=f"timeout: ran {r.duration_s:.1f}s, limit {self.trial_timeout_s:g}s",
                    )
                    if r.duration_s > self.trial_timeout_s and r.state is not TrialState.FAILED
                    else r
                    for r in batch.to_results()
                ]
                batch = ResultBatch.from_results(results, batch.worker)
            self._results.put_nowait(
                ChunkDone(
                    chunk.id, batch, output.artifacts, "inline", time.perf_counter() - t0,
                    output.cache_hits, output.cache_misses,
                )
            )

    async def close(self) -> None:
        self._closed = True
        self._wake.set()
        if self._task is not None:
            try:
                await self._task
            finally:
                self._task = None
        self._results.put_nowait(None)
