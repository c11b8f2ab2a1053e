"""The backend protocol: where trials run.

A backend is started once with the market data and the worker setup, then
takes chunks of trials and reports their results. Its one promise: every
submitted task yields exactly one :class:`~engine.store.records.TrialResult`
(complete or failed), even when a worker raises, hangs or dies; a backend
re-runs the other trials of a dead worker's chunk itself. Results arrive as
:class:`ChunkDone` events on an async stream, each holding a
:class:`~engine.store.result_batch.ResultBatch` (columns, not one object per trial).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from engine.optimize.trial import Encoded, WorkerSetup
from engine.profile.stages import Profiler
from engine.store.records import TrialResult, TrialTask
from engine.store.result_batch import ResultBatch

#: Local worker processes a study may start per core unless the user allows more (``--allow-many-workers``).
WORKERS_PER_CORE = 4
ALLOW_MANY_WORKERS_FLAG = "--allow-many-workers"

#: The stage a worker ships with each chunk: its busy time on it (see :func:`add_chunk_time`).
WORKER_CHUNK_STAGE = "optimize.worker_chunk"


@dataclass(frozen=True, slots=True)
class Chunk:
    """Trials dispatched together; ``artifacts``: bring back their equity curves and trades (encoded)."""

    id: int
    tasks: tuple[TrialTask, ...]
    artifacts: bool = False
    isolate: bool = False


@dataclass(frozen=True, slots=True)
class ChunkDone:
    """Results of (part of) a chunk, as a backend reports them."""

    chunk_id: int
    batch: ResultBatch
    artifacts: dict[int, dict[str, Encoded]] = field(default_factory=dict)
    worker: str = ""
    elapsed_s: float = 0.0  # wall time from dispatch to results (dispatch overhead included)
    cache_hits: int = 0
    cache_misses: int = 0
    final: bool = True  # False when the rest of the chunk was queued again (a worker died)
    profile: dict[str, Any] | None = None  # the worker's profiler export (stage timings, cache counts)

    @property
    def results(self) -> list[TrialResult]:
        """The results as objects (built on each call: the study's hot path reads :attr:`batch`)."""
        return self.batch.to_results()


@runtime_checkable
class Backend(Protocol):
    """Runs chunks of trials somewhere other than the event loop.

    A backend may set ``depth``: how many chunks each worker holds at once (one running, the
    next ones waiting in its pipe). The executor then cuts no chunk that no worker can take
    at once, so each chunk is sized from the trials remaining when a worker receives it.
    Without it the executor keeps three per worker in flight. :meth:`start` may return
    before the workers are ready (chunks wait for them); a worker that then fails to start
    is reported on :meth:`results`.
    """

    name: str

    @property
    def workers(self) -> int:
        """How many chunks can run at the same time."""
        ...

    async def start(self, bars: Any, setup: WorkerSetup) -> None:
        """Bring the workers up with the data (sent once per worker) and the setup."""
        ...

    def submit(self, chunk: Chunk) -> None:
        """Queue a chunk (returns at once)."""
        ...

    def results(self) -> AsyncIterator[ChunkDone]:
        """Results as they arrive (runs until :meth:`close`)."""
        ...

    def cancel_pending(self) -> list[Chunk]:
        """Take back the chunks not started yet (chunks in hand finish)."""
        ...

    def interrupt_start(self) -> None:
        """Start no more workers: a :meth:`start` under way returns as soon as it can, with the
        workers that have started (possibly none); :meth:`close` still stops them."""
        ...

    async def close(self) -> None:
        """Stop the workers and release their resources."""
        ...


def add_chunk_time(payload: dict[str, Any], seconds: float) -> None:
    """Add a worker's busy time on one chunk to its profiler export (``optimize.worker_chunk``).

    Not top-level: the worker's own stages inside the chunk already are, so the
    profile report can set the workers' stage time against their busy time."""
    timer = Profiler(enabled=True)
    timer.record(WORKER_CHUNK_STAGE, seconds, top_level=False)
    payload.setdefault("stages", {}).update(timer.export(include_caches=False)["stages"])


def worker_bound() -> int:
    """The most local worker processes a study starts on this machine without ``--allow-many-workers``."""
    return WORKERS_PER_CORE * (os.cpu_count() or 1)


def check_workers(workers: int, where: str, *, allow_many: bool = False) -> None:
    """Refuse more than :func:`worker_bound` workers unless ``allow_many``; ``where`` names the flag or key.

    Each worker is a process with its own copy of the kernels and caches: far
    more workers than cores only adds memory and start-up time (``--workers
    2000`` on two cores once started 1,300 processes and 8.9 GB).
    """
    from engine.errors import InputError

    bound = worker_bound()
    if workers > bound and not allow_many:
        raise InputError(
            f"{where}: {workers} workers is more than this machine's bound of {bound} "
            f"({WORKERS_PER_CORE} per core, {os.cpu_count() or 1} cores); use fewer, "
            f"or pass {ALLOW_MANY_WORKERS_FLAG} to start them all"
        )


def make_backend(
    name: str, *, workers: int, trial_timeout_s: float, scheduler: str = "local", worker_nice: int = 0
) -> Backend:
    """The backend called ``name`` (``inline``, ``process`` or ``dask`` on ``scheduler``);
    ``worker_nice`` lowers the CPU priority of local worker processes."""
    from engine.errors import ConfigError

    if name == "inline":
        from engine.optimize.backends.inline import InlineBackend

        return InlineBackend(trial_timeout_s=trial_timeout_s)
    if name == "process":
        from engine.optimize.backends.process import ProcessBackend

        return ProcessBackend(workers=workers, trial_timeout_s=trial_timeout_s, nice=worker_nice)
    if name == "dask":
        from engine.optimize.backends.dask import DaskBackend

        return DaskBackend(scheduler=scheduler, workers=workers, trial_timeout_s=trial_timeout_s)
    raise ConfigError(f"execution.backend: unknown backend {name!r}; expected inline, process or dask")
