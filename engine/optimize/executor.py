"""Async orchestration of trial evaluation: chunking, dispatch, pause and stop.

The executor runs on the event loop and never evaluates a trial itself: it
cuts a batch of tasks into chunks, hands them to a backend and passes each
:class:`~engine.optimize.backends.base.ChunkDone` to the caller as it
arrives. Chunk sizes adapt to the measured trial time and dispatch overhead
so that overhead stays under ``max_overhead`` (2%) of trial time, while the
tail of a batch is cut finer so that all workers finish together (guided
self-scheduling: a chunk is at most the unassigned trials over ``TAIL_SHARE``
times the workers, and at least ``MIN_CHUNK_S`` of trial time). A chunk is
cut only when a worker can take it at once (``Backend.depth`` chunks in hand
each), so its size is computed from the remaining count at that moment.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.optimize.backends.base import Backend, Chunk, ChunkDone
from engine.optimize.trial import WorkerSetup
from engine.profile import profiler
from engine.store.records import TrialTask

MIN_CHUNK = 1
MAX_CHUNK = 4096
FIRST_CHUNK = 4
#: Guided self-scheduling: a chunk holds at most 1/(TAIL_SHARE x workers) of the unassigned trials.
TAIL_SHARE = 2
#: The smallest chunk in trial time (the tail's floor): below it a chunk's round trip costs more than
#: the imbalance it saves. Also at least 4x the measured per-chunk overhead.
MIN_CHUNK_S = 0.005
#: Chunks in flight per worker for a backend that does not say (``Backend.depth``).
DEFAULT_DEPTH = 3


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """How a batch ended: every task reported, or stopped early with some not run."""

    reported: int
    stopped: bool


class ChunkSizer:
    """Chunk sizes from measured per-trial time and per-chunk dispatch overhead (EWMAs)."""

    def __init__(self, *, max_overhead: float = 0.02, target_chunk_s: float = 0.25, alpha: float = 0.3) -> None:
        self.max_overhead = max_overhead
        self.target_chunk_s = target_chunk_s
        self.alpha = alpha
        self.trial_s: float | None = None
        self.overhead_s: float | None = None
        self.total_busy_s = 0.0
        self.total_overhead_s = 0.0

    def observe(self, trials: int, busy_s: float, elapsed_s: float) -> None:
        """Fold in one chunk: ``busy_s`` summed trial time, ``elapsed_s`` dispatch to results."""
        if trials <= 0 or elapsed_s <= 0:
            return
        per_trial = max(busy_s / trials, 1e-7)
        overhead = max(elapsed_s - busy_s, 0.0)
        self.total_busy_s += busy_s
        self.total_overhead_s += overhead
        a = self.alpha
        self.trial_s = per_trial if self.trial_s is None else (1 - a) * self.trial_s + a * per_trial
        self.overhead_s = overhead if self.overhead_s is None else (1 - a) * self.overhead_s + a * overhead

    def size(self, remaining: int, workers: int) -> int:
        """The next chunk's size for ``remaining`` tasks over ``workers``."""
        if self.trial_s is None:
            wanted = FIRST_CHUNK
        else:
            for_overhead = (self.overhead_s or 0.0) / (self.max_overhead * self.trial_s)
            for_target = self.target_chunk_s / self.trial_s
            wanted = math.ceil(max(for_overhead, for_target))
        workers = max(1, workers)
        balanced = math.ceil(remaining / (TAIL_SHARE * workers))
        # The floor never leaves a worker without a chunk: the last few are shared out evenly,
        # none below a share of it (halving them down to single trials only adds round trips).
        floor = self.floor()
        floor = min(floor, max(math.ceil(remaining / workers), math.ceil(floor / (2 * workers))))
        return int(max(MIN_CHUNK, min(wanted, MAX_CHUNK, max(balanced, floor), remaining)))

    def floor(self) -> int:
        """The fewest trials worth a chunk of their own (before any measurement: ``MIN_CHUNK``)."""
        if self.trial_s is None:
            return MIN_CHUNK
        smallest_s = max(MIN_CHUNK_S, 4 * (self.overhead_s or 0.0))
        return max(MIN_CHUNK, math.ceil(smallest_s / self.trial_s))

    @property
    def overhead_ratio(self) -> float | None:
        """Dispatch overhead over trial time, measured over every chunk so far.

        Overhead is a chunk's time from the moment its worker could start it to
        its results being back, minus the time its trials ran.
        """
        if self.total_busy_s <= 0:
            return None
        return self.total_overhead_s / self.total_busy_s


class Executor:
    """Drives a :class:`Backend`: chunks, dispatch, pause/resume/stop."""

    def __init__(self, backend: Backend, *, sizer: ChunkSizer | None = None) -> None:
        self.backend = backend
        self.sizer = sizer or ChunkSizer()
        self._next_chunk = 0
        self._running = asyncio.Event()
        self._running.set()
        self._stopping = False
        self._results: Any = None
        self._started = False
        self._cache: dict[str, tuple[int, int]] = {}  # worker -> (hits, misses), cumulative
        self.in_flight = 0  # trials handed to the backend and not reported yet
        self.queued = 0  # trials of the current batch not handed to the backend yet
        self._in_backend = 0  # chunks submitted and not finished (this batch's and the prefetched one's)
        self._ahead: _Ahead | None = None  # the next batch, when prefetched

    @property
    def workers(self) -> int:
        return self.backend.workers

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    async def start(self, bars: Any, setup: WorkerSetup) -> None:
        """Start the backend's workers with the data and the setup."""
        await self.backend.start(bars, setup)
        self._results = self.backend.results().__aiter__()
        self._started = True

    async def close(self) -> None:
        """Stop the workers."""
        if self._started:
            self._started = False
            await self.backend.close()

    def pause(self) -> None:
        """Start no new chunk; chunks in hand finish."""
        self._running.clear()

    def resume(self) -> None:
        """Start chunks again."""
        self._running.set()

    def stop(self) -> None:
        """Finish the chunks in hand and return from :meth:`run_batch` without the rest.

        During :meth:`start` the backend starts no more workers: a stop must not wait for a
        large pool to come up (nothing will run on it)."""
        self._stopping = True
        self._running.set()
        self.backend.interrupt_start()

    @property
    def stopping(self) -> bool:
        return self._stopping

    def cache_stats(self) -> dict[str, int]:
        """Indicator-cache hits and misses summed over the workers (their latest counts)."""
        hits = sum(h for h, _ in self._cache.values())
        misses = sum(m for _, m in self._cache.values())
        return {"hits": hits, "misses": misses}

    def suggested_batch(self) -> int:
        """How many tasks a sampler batch should hold to keep every worker busy."""
        chunk = self.sizer.size(10**9, self.workers) if self.sizer.trial_s is not None else 64
        return int(min(50_000, max(256, 6 * self.workers * chunk)))

    def prefetch(self, tasks: Sequence[TrialTask], *, artifacts: bool = False) -> None:
        """Hand ``tasks`` (the next batch) to workers that the current batch leaves free.

        Their results are kept until :meth:`run_batch` is called with this very sequence, which
        reports them first and goes on with the rest; so a batch's results are still all
        reported (and stored) before the next batch's. A second prefetch is ignored.
        """
        if self._ahead is None and tasks:
            self._ahead = _Ahead(tasks, list(tasks), artifacts)

    def discard_prefetch(self) -> None:
        """Forget the prefetched batch (its chunks in hand finish; their results are dropped)."""
        self._ahead = None

    async def run_batch(
        self,
        tasks: Sequence[TrialTask],
        on_done: Callable[[ChunkDone], Awaitable[None]],
        *,
        artifacts: bool = False,
    ) -> BatchOutcome:
        """Evaluate ``tasks``, calling ``on_done`` for each chunk's results as they arrive.

        With ``artifacts`` every trial also brings back its equity curve and trades. Once every
        task is handed out, workers left free take chunks of the prefetched batch, if any.
        """
        if not self._started:
            raise RuntimeError("executor not started")
        ahead = self._ahead
        if ahead is not None and ahead.tasks is tasks:
            # The prefetched batch: its chunks in hand are ours, its results so far come first.
            self._ahead = None
            queue, position, mine, outstanding = ahead.queue, ahead.position, ahead.chunks, ahead.outstanding
            early = ahead.events
        else:
            queue, position, mine, outstanding, early = list(tasks), 0, set(), 0, []
        reported = 0
        workers = max(1, self.workers)
        # Cut a chunk only when a worker can take it: sized from the remaining count of that moment.
        limit = max(1, int(getattr(self.backend, "depth", DEFAULT_DEPTH))) * workers

        def cut(pending: list[TrialTask], at: int, with_artifacts: bool) -> Chunk:
            size = self.sizer.size(len(pending) - at, workers)
            chunk = Chunk(self._next_chunk, tuple(pending[at : at + size]), with_artifacts)
            self._next_chunk += 1
            with profiler.stage("optimize.dispatch"):
                self.backend.submit(chunk)
            self._in_backend += 1
            return chunk

        def submit_more() -> None:
            nonlocal position, outstanding
            while self._in_backend < limit and self._running.is_set() and not self._stopping:
                if position < len(queue):
                    chunk = cut(queue, position, artifacts)
                    position += len(chunk.tasks)
                    outstanding += len(chunk.tasks)
                    mine.add(chunk.id)
                elif self._ahead is not None and self._ahead.position < len(self._ahead.queue):
                    later = self._ahead
                    chunk = cut(later.queue, later.position, later.artifacts)
                    later.position += len(chunk.tasks)
                    later.outstanding += len(chunk.tasks)
                    later.chunks.add(chunk.id)
                else:
                    break
            self.in_flight = outstanding
            self.queued = len(queue) - position

        for event in early:
            reported += len(event.batch)
            await on_done(event)
        submit_more()
        while outstanding > 0 or (position < len(queue) and not self._stopping):
            if outstanding == 0 and (self._in_backend == 0 or not self._running.is_set()):
                # Paused with nothing in hand: wait for resume or stop. (Running, with the workers
                # full of another batch's chunks: wait for one of them, below.)
                with profiler.stage("optimize.paused"):
                    await self._running.wait()
                submit_more()
                continue
            if not self._running.is_set() or self._stopping:
                # Take back chunks that have not started; they go back to their queue.
                for chunk in self.backend.cancel_pending():
                    self._in_backend -= 1
                    if chunk.id in mine:
                        mine.discard(chunk.id)
                        outstanding -= len(chunk.tasks)
                        queue[position:position] = list(chunk.tasks)
                    elif self._ahead is not None and chunk.id in self._ahead.chunks:
                        later = self._ahead
                        later.chunks.discard(chunk.id)
                        later.outstanding -= len(chunk.tasks)
                        later.queue[later.position : later.position] = list(chunk.tasks)
                self.queued = len(queue) - position
                if outstanding == 0:
                    continue
            with profiler.stage("optimize.wait"):  # on the workers (their own stages come back merged)
                event = await self._results.__anext__()
            n = len(event.batch)
            if event.elapsed_s > 0:
                self.sizer.observe(n, event.batch.busy_s, event.elapsed_s)
            if event.final:
                self._in_backend -= 1
            if event.profile:
                profiler.merge(event.profile)  # workers' stage timings and cache counts
            if event.worker and (event.cache_hits or event.cache_misses):
                self._cache[event.worker] = (event.cache_hits, event.cache_misses)
            if event.chunk_id not in mine:
                upcoming = self._ahead
                if upcoming is not None and event.chunk_id in upcoming.chunks:
                    upcoming.events.append(event)  # the next batch's: reported when it runs
                    upcoming.outstanding -= n
                    if event.final:
                        upcoming.chunks.discard(event.chunk_id)
                submit_more()
                continue
            if event.final:
                mine.discard(event.chunk_id)
            outstanding -= n
            self.in_flight = outstanding
            reported += n
            await on_done(event)
            submit_more()
        self.in_flight = 0
        self.queued = 0
        return BatchOutcome(reported, stopped=position < len(queue))


@dataclass(slots=True)
class _Ahead:
    """A prefetched batch: its tasks (the caller's sequence), what is left to hand out, its chunks
    with the workers and the results already back."""

    tasks: Sequence[TrialTask]
    queue: list[TrialTask]
    artifacts: bool
    position: int = 0
    outstanding: int = 0  # trials handed out and not back
    chunks: set[int] = field(default_factory=set)
    events: list[ChunkDone] = field(default_factory=list)
