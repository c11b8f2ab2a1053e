"""``Study``: run or resume a parameter study end to end, without any UI.

The loop, per sampler batch (``execution.checkpoint_every`` points, or the
sampler's own batch such as a genetic generation):

1. ask the sampler for the batch; give each new point the next trial number
   (points already stored in an earlier batch are told their stored value and
   not run again);
2. evaluate the batch through the executor (with successive halving when
   ``prune = "halving"``), storing each trial as its chunk comes back;
3. tell the sampler every result in ask order (so the process backend, whose
   results arrive in any order, stays deterministic);
4. checkpoint: the sampler state after the batch, written in the same
   transaction as the batch's last trials.

A resumed study restores the sampler from the last checkpoint, asks that
batch again and skips the keys already stored, so a SIGKILL loses at most the
trials of the last unflushed store batch and re-runs exactly those.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import logging
import math
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import numpy as np

from engine.backtest.options import BacktestOptions
from engine.errors import ConfigError, GenesisError, StoreWriteError, out_of_room
from engine.optimize.backends.base import Backend, ChunkDone, check_workers, make_backend
from engine.optimize.executor import Executor
from engine.optimize.progress import ProgressTracker, StudyProgress
from engine.optimize.pruning import HalvingPlan
from engine.optimize.trial import Encoded, WorkerSetup
from engine.profile import caches, profiler
from engine.store.factory import open_study_store
from engine.store.protocol import StudyStore
from engine.store.records import (
    StudyRecord,
    StudyState,
    TrialRecord,
    TrialResult,
    TrialState,
    TrialTask,
    rank_value,
)
from engine.store.result_batch import COMPLETE, FAILED, PRUNED, ResultBatch
from engine.store.url import DatabaseUrl, StoreLocation, store_location

if TYPE_CHECKING:
    from engine.data.bars import Bars
    from engine.data.basket import Basket
    from engine.load_progress import LoadProgress
    from engine.load_progress import ProgressCallback as DataProgressCallback
    from engine.optimize.fork_server import ForkedCall
    from engine.optimize.samplers import Sampler
    from engine.optimize.spec import StudySpec
    from engine.strategy.core import StrategyDef

ProgressCallback = Callable[[StudyProgress], object]
_T = TypeVar("_T")

#: The top N's artifacts are brought up to date at a batch end at most this often, and at the end.
ARTIFACT_FILL_INTERVAL_S = 15.0
#: Batches in a row that bring no new point before a sampler counts as exhausted.
MAX_EMPTY_BATCHES = 3
PROGRESS_INTERVAL_S = 0.1
#: Trial-key dedup: a point whose key is already stored or asked in the same batch is a hit (not run again).
_TRIAL_KEYS = caches.counters("optimize.trial_keys")

log = logging.getLogger("engine.optimize.study")


@dataclass(frozen=True, slots=True)
class StudySummary:
    """How a run of a study ended."""

    name: str
    state: str
    trials: int
    complete: int
    failed: int
    pruned: int
    best: TrialRecord | None
    elapsed_s: float
    trials_per_s: float
    db: str
    validation: dict[str, Any] | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        best = None
        if self.best is not None:
            best = {
                "number": self.best.number,
                "key": self.best.key,
                "params": self.best.params,
                "objective": self.best.objective,
                "metrics": self.best.metrics,
            }
        return {
            "study": self.name,
            "state": self.state,
            "trials": self.trials,
            "complete": self.complete,
            "failed": self.failed,
            "pruned": self.pruned,
            "best": best,
            "elapsed_s": round(self.elapsed_s, 3),
            "trials_per_s": round(self.trials_per_s, 2),
            "db": self.db,
            "validation": self.validation,
            "error": self.error,
            **self.extra,
        }


# ---------------------------------------------------------------------------
# reading the study spec (the spec module is the authority on its shape and defaults)


def _check_spec_workers(
    spec: StudySpec, where: str, *, backend: str | Backend | None, workers: int | None, allow_many: bool
) -> None:
    """Refuse a file's ``execution.workers`` above the machine's bound when it starts local processes.

    A ``workers`` override is checked where it was given (``--workers``).
    """
    if workers is not None:
        return
    execution = spec.execution
    chosen = backend or execution.backend
    local = chosen == "process" or (chosen == "dask" and execution.scheduler == "local")
    if local:
        check_workers(int(execution.workers), f"{where}: execution.workers", allow_many=allow_many)


def parse_artifacts(policy: str | int | None) -> int | None:
    """``"all"`` -> ``None`` (every trial), ``"none"`` -> 0, ``"top:N"`` -> N."""
    if policy is None:
        return 20
    if isinstance(policy, int):
        return policy
    text = str(policy).strip().lower()
    if text == "all":
        return None
    if text == "none":
        return 0
    if text.startswith("top:"):
        with contextlib.suppress(ValueError):
            n = int(text[4:])
            if n >= 0:
                return n
    raise ConfigError(f"execution.artifacts: expected all, none or top:N, got {policy!r}")


def _load_spec_file(path: Path) -> tuple[StudySpec, str]:
    from engine.optimize.spec import load_study_with_text

    return load_study_with_text(path)


_STAMP = "# genesis: strategy file in "


def strategy_stamp(spec_toml: str) -> tuple[str, str] | None:
    """``(study folder, sha256)`` of the strategy file a stored study ran, from its stamp line."""
    for line in reversed(spec_toml.splitlines()):
        if line.startswith(_STAMP):
            folder, _, digest = line[len(_STAMP) :].rpartition(" sha256 ")
            return folder, digest
    return None


def with_strategy_stamp(spec_toml: str, spec: StudySpec) -> str:
    """The study text as stored: a user strategy's file content hash (and the study's folder,
    so that ``genesis resume NAME`` finds a relative ``file``) appended as a TOML comment."""
    source = spec.source
    if source is None or strategy_stamp(spec_toml) is not None:
        return spec_toml
    folder = Path(spec.path).resolve().parent if Path(spec.path).exists() else Path.cwd()
    return spec_toml.rstrip("\n") + f"\n{_STAMP}{folder} sha256 {source.hash}\n"


def strategy_of(spec: StudySpec) -> StrategyDef:
    """The strategy record a study runs (its file imported by content, or a built-in)."""
    from engine.backtest import resolve_strategy

    return resolve_strategy(spec.strategy.name, spec.source)


def _load_spec_text(text: str, name: str) -> StudySpec:
    from engine.config import parse_toml
    from engine.optimize.spec import study_from_dict

    raw = parse_toml(text, f"stored study {name!r}")
    stamp = strategy_stamp(text)
    base = Path(stamp[0]) if stamp is not None else None
    return study_from_dict(raw, where=f"stored study {name!r}", default_name=name, base=base)


def _make_sampler(spec: StudySpec) -> Sampler:
    from engine.optimize.samplers import make_sampler

    return make_sampler(spec.search, spec.space)


def _store_of(spec: StudySpec, db: str | Path | DatabaseUrl | None) -> StoreLocation | None:
    """``--db``, else the study file's ``[execution] db`` (a path relative to the file), else ``None``."""
    if db is not None:
        return store_location(db)
    configured = spec.execution.db
    if not configured:
        return None
    location = store_location(str(configured))
    source = spec.path
    if isinstance(location, Path):
        location = location.expanduser()
        if not location.is_absolute() and source:
            location = Path(source).parent / location
    return location


class Study:
    """One study file bound to a store; run, pause, resume, stop, read."""

    def __init__(
        self,
        spec: StudySpec,
        spec_toml: str,
        *,
        db: str | Path | DatabaseUrl | None = None,
        backend: str | Backend | None = None,
        workers: int | None = None,
        batch_size: int | None = None,
        worker_nice: int = 0,
        allow_changed_strategy: bool = False,
    ) -> None:
        from engine.paths import default_store_path

        self.spec = spec
        self.spec_toml = with_strategy_stamp(spec_toml, spec)
        self.allow_changed_strategy = allow_changed_strategy
        self.db = _store_of(spec, db) or default_store_path()
        execution, search = spec.execution, spec.search
        self.name: str = spec.name
        self.backend_choice: str | Backend = backend or execution.backend
        self.workers = int(workers if workers is not None else execution.workers)
        self.trial_timeout_s = float(execution.trial_timeout_s)
        self.scheduler = execution.scheduler
        self.worker_nice = worker_nice
        self.max_failures = int(execution.max_consecutive_failures)
        self.batch_size = int(batch_size or spec.batch_size)
        self.store_batch = int(execution.checkpoint_every)
        self.flush_interval_s = float(execution.checkpoint_interval_s)
        self.artifacts_top = parse_artifacts(execution.artifacts)
        self.objective: str = search.objective
        self.maximize = search.direction.lower() != "minimize"
        self.budget = spec.trials
        self.prune = search.prune.lower()
        self.space = spec.space
        self._executor: Executor | None = None
        self._store: StudyStore | None = None
        self._stop_requested = False
        self._tracker = ProgressTracker(self.name, self.budget, objective=self.objective, workers=1)
        # The top N by objective: a min-heap of (rank, -number, number, key, params), and who has artifacts.
        self._top: list[tuple[float, int, int, str, dict[str, Any]]] = []
        self._with_artifacts: set[int] = set()
        self._record: StudyRecord | None = None
        # (counts, best trial) the validation read of the final trials; the summary takes them
        self._final: tuple[dict[TrialState, int], list[TrialRecord]] | None = None

    @property
    def shared(self) -> bool:
        """Several drivers may share this run: a PostgreSQL store (the sampler's state lives in it)."""
        return isinstance(self.db, DatabaseUrl)

    # -- construction -------------------------------------------------------

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        *,
        db: str | Path | DatabaseUrl | None = None,
        backend: str | Backend | None = None,
        workers: int | None = None,
        batch_size: int | None = None,
        worker_nice: int = 0,
        allow_many_workers: bool = False,
        allow_changed_strategy: bool = False,
    ) -> Study:
        """Load a study file (errors are one-line ``ConfigError``s naming the file and key).

        ``backend`` and ``workers`` override ``[execution]``, ``batch_size`` the sampler's
        batch; ``None`` keeps the file's choice (whose defaults live in the spec module).
        ``allow_many_workers``: accept an ``execution.workers`` above the machine's bound;
        ``allow_changed_strategy``: resume although the strategy file changed.
        """
        path = Path(path)
        spec, text = _load_spec_file(path)
        if (backend or spec.execution.backend) == "process":
            # The worker pool's fork server imports the engine (and this study's kernels) while this
            # process loads the data.
            from engine.optimize.fork_server import start_fork_server

            start_fork_server(path)
        _check_spec_workers(spec, str(path), backend=backend, workers=workers, allow_many=allow_many_workers)
        return cls(
            spec, text, db=db, backend=backend, workers=workers, batch_size=batch_size,
            worker_nice=worker_nice, allow_changed_strategy=allow_changed_strategy,
        )

    @classmethod
    async def from_store(
        cls,
        name: str,
        *,
        db: str | Path | DatabaseUrl,
        backend: str | Backend | None = None,
        workers: int | None = None,
        batch_size: int | None = None,
        worker_nice: int = 0,
        allow_many_workers: bool = False,
        allow_changed_strategy: bool = False,
    ) -> Study:
        """The study ``name`` as stored in ``db`` (its spec text is kept with it); overrides as :meth:`from_file`."""
        store = await open_study_store(db, readonly=True)
        try:
            record = await store.require_study(name)
        finally:
            await store.close()
        spec = _load_spec_text(record.spec_toml, name)
        _check_spec_workers(
            spec, f"stored study {name!r}", backend=backend, workers=workers, allow_many=allow_many_workers
        )
        return cls(
            spec, record.spec_toml, db=db, backend=backend, workers=workers, batch_size=batch_size,
            worker_nice=worker_nice, allow_changed_strategy=allow_changed_strategy,
        )

    # -- control (the console calls these) ------------------------------------

    async def pause(self) -> None:
        """Finish the trials in hand and start none until :meth:`resume`."""
        if self._executor is not None:
            self._executor.pause()
            self._tracker.state = StudyState.PAUSED.value

    async def resume(self) -> None:
        """Start trials again after :meth:`pause`."""
        if self._executor is not None:
            self._executor.resume()
            self._tracker.state = StudyState.RUNNING.value

    async def stop(self) -> None:
        """Finish the trials in hand, store them and make :meth:`run` return."""
        self.request_stop()

    def request_stop(self) -> None:
        """:meth:`stop` without awaiting: safe from a progress callback inside :meth:`run`."""
        self._stop_requested = True
        if self._executor is not None:
            self._executor.stop()

    @property
    def stop_requested(self) -> bool:
        """A stop was asked for and :meth:`run` has not returned yet."""
        return self._stop_requested

    @property
    def tracker(self) -> ProgressTracker:
        """The live counters a run updates; :meth:`progress` is their immutable snapshot."""
        return self._tracker

    def progress(self) -> StudyProgress:
        """An immutable snapshot of the run's progress."""
        if self._executor is not None:
            self._tracker.in_flight = self._executor.in_flight
        return self._tracker.snapshot()

    # -- reads --------------------------------------------------------------

    async def _read(self, reader: Callable[[StudyStore, int], Awaitable[_T]]) -> _T:
        if self._store is not None and self._record is not None:
            return await reader(self._store, self._record.id)
        store = await open_study_store(self.db, readonly=True)
        try:
            record = await store.require_study(self.name)
            return await reader(store, record.id)
        finally:
            await store.close()

    async def trials(self) -> list[TrialRecord]:
        """Every stored trial, by number."""
        return await self._read(lambda store, sid: store.trials(sid))

    async def best(self, k: int = 1) -> list[TrialRecord]:
        """The ``k`` best complete trials."""
        return await self._read(lambda store, sid: store.best(sid, maximize=self.maximize, k=k))

    # -- the run --------------------------------------------------------------

    async def run(
        self, progress_callback: ProgressCallback | None = None, *, progress_interval_s: float = PROGRESS_INTERVAL_S,
        data_progress: DataProgressCallback | None = None, searched: Callable[[], None] | None = None,
    ) -> StudySummary:
        """Run (or resume) the study to its end, a stop, or too many failures.

        ``progress_callback`` gets a :class:`StudyProgress` at most every
        ``progress_interval_s`` seconds (and at the start and the end).
        While the data downloads, :meth:`progress` carries its ``loading``
        report and ``data_progress`` hears every one (from loader threads).
        ``searched`` is called (on the loop) once the search has ended complete,
        every trial committed, before the validation: the headless runner then
        reads what its report needs of the trials while the study validates.
        """
        self.progress_interval_s = progress_interval_s
        if self.shared:
            from engine.optimize.shared import lease_seconds

            lease_seconds()  # a bad GENESIS_LEASE_S is bad input: refused before anything starts
        self._top, self._with_artifacts = [], set()
        t_start = time.monotonic()
        backend = self.backend_choice
        with profiler.stage("optimize.backend_setup"):  # (the dask backend imports distributed here)
            if isinstance(backend, str):
                backend = make_backend(
                    backend, workers=self.workers, trial_timeout_s=self.trial_timeout_s, scheduler=self.scheduler,
                    worker_nice=self.worker_nice,
                )
            prepare = getattr(backend, "prepare", None)
            if prepare is not None:
                prepare()  # e.g. start the process pool's server while the data loads
        # Bad data is bad input: fail before anything is written to the store.
        # (engine.data.load times itself as "data.load"; a second stage here would count it twice.)
        from engine.data import load_market

        board = self._tracker.loading

        def heard(report: LoadProgress) -> None:
            board(report)
            if data_progress is not None:
                data_progress(report)

        try:
            bars = await asyncio.to_thread(load_market, self.spec.data.all, progress=heard)
        finally:
            board.clear()  # the loading line goes once the data is in (or failed)
        with profiler.stage("optimize.store_open"):
            store = await open_study_store(
                self.db, batch_size=self.store_batch, batch_interval_s=self.flush_interval_s
            )
        self._store = store
        try:
            return await self._run(store, progress_callback, backend, bars, t_start, searched)
        finally:
            self._store = None
            self._stop_requested = False  # the stop is honoured; the object can be run again
            with profiler.stage("optimize.store_close"):
                await store.close()

    async def _run(
        self, store: StudyStore, progress_callback: ProgressCallback | None, backend: Backend, bars: Bars | Basket,
        t_start: float, searched: Callable[[], None] | None = None,
    ) -> StudySummary:
        with profiler.stage("optimize.store_open"):
            record, sampler, stored, in_sample = await self._open_study(store, bars)
        if getattr(self.spec, "source", None) is not None:
            with profiler.stage("strategy.check"):
                await asyncio.to_thread(_warn_if_biased, self.spec, in_sample)
        tracker = self._tracker
        executor = self._executor = Executor(backend)
        if self._stop_requested:  # stopped while the data loaded: start no workers
            executor.stop()
        tracker.workers = executor.workers
        setup = WorkerSetup(
            strategy=self.spec.strategy.name,
            source=self.spec.source,
            backtest=self.spec.backtest,
            routes=dict(self.spec.routes),
            profile=profiler.enabled,
            objective=self.objective,
            maximize=self.maximize,
            trial_timeout_s=self.trial_timeout_s,
            blocks=self.spec.validation.blocks,
        )
        error: str | None = None
        final_state = StudyState.COMPLETE
        last_emit = 0.0
        pbo_child: asyncio.Task[ForkedCall] | None = None
        early: asyncio.Task[dict[str, Any] | None] | None = None

        def emit(force: bool = False) -> None:
            nonlocal last_emit
            now = time.monotonic()
            if progress_callback is not None and (force or now - last_emit >= self.progress_interval_s):
                last_emit = now
                progress_callback(self.progress())

        with profiler.stage("optimize.store_write"):
            await store.set_study_state(record.id, StudyState.RUNNING)
        tracker.state = StudyState.RUNNING.value
        emit(force=True)
        try:
            # Load the kernels this process will run (inline trials, validation) while the workers start.
            warming = _driver_warm_up(self.spec, backend, self._total())
            warm = (
                asyncio.create_task(asyncio.to_thread(warming, strategy_of(self.spec), setup.backtest))
                if warming is not None else None
            )
            with profiler.stage("optimize.workers_start"):
                await executor.start(in_sample, setup)
            if warming is None and (record.validation is None or record.state is not StudyState.COMPLETE):
                pbo_child = self._start_pbo_child(backend)
            tracker.restart_clock()  # the rate (and so the ETA) counts from the workers being ready
            loop_kind = _BatchLoop
            if self.shared:
                from engine.optimize.shared import SharedLoop

                loop_kind = SharedLoop
            loop = loop_kind(self, store, record, sampler, executor, stored, emit, len(in_sample))
            error = await loop.run()
            if error is not None:
                final_state = StudyState.FAILED
            elif self._stop_requested or executor.stopping:
                final_state = StudyState.STOPPED
            elif record.validation is None or record.state is not StudyState.COMPLETE:
                # The validation starts at once: it reads and computes while the workers stop and the state is written.
                early = asyncio.create_task(
                    self._validation(store, record, bars, fork_server=_forks_from_server(backend), child=pbo_child))
                pbo_child = None
        except BaseException as failure:
            # A failed write (a full disk) stops a sound study: it resumes once there is room.
            stopped = isinstance(failure, asyncio.CancelledError | StoreWriteError) or out_of_room(failure)
            final_state = StudyState.STOPPED if stopped else StudyState.FAILED
            error = error or f"{type(failure).__name__}: {failure}"
            if early is not None:
                early.cancel()
            raise
        finally:
            if pbo_child is not None:
                _discard_child(pbo_child)  # (never handed to a PBO)
            with profiler.stage("optimize.workers_stop"), contextlib.suppress(Exception):
                await executor.close()
            self._executor = None
            tracker.in_flight = 0
            with profiler.stage("optimize.store_write"), contextlib.suppress(Exception):
                await store.set_study_state(record.id, final_state, error, after_failure=True)
            tracker.state = final_state.value

        if final_state is StudyState.COMPLETE and searched is not None:
            searched()
        if warm is not None:
            with contextlib.suppress(Exception):
                await warm  # its thread is timed as numba.warm_up
        validation = record.validation if record.state is StudyState.COMPLETE else None
        if final_state is StudyState.COMPLETE and validation is None:
            with profiler.stage("optimize.validation"):
                validation = await self._validate(
                    store, record, bars, fork_server=_forks_from_server(backend), started=early)
        with profiler.stage("optimize.summary"):
            summary = await self._summary(store, record, final_state, error, validation, executor, backend, t_start)
        emit(force=True)
        if final_state is StudyState.FAILED:
            raise GenesisError(f"study {self.name!r} stopped: {error}")
        return summary

    async def _open_study(
        self, store: StudyStore, bars: Bars | Basket
    ) -> tuple[StudyRecord, Sampler, dict[str, tuple[TrialState, float | None, int, int]], Bars | Basket]:
        """Create or reopen the study in the store; its sampler, resumable batch and the in-sample bars."""
        previous = await store.get_study(self.name)
        if previous is not None and strategy_stamp(previous.spec_toml) != strategy_stamp(self.spec_toml):
            if not self.allow_changed_strategy:
                was, now = strategy_stamp(previous.spec_toml), strategy_stamp(self.spec_toml)
                raise ConfigError(
                    f"study {self.name!r}: its strategy file changed since the study started "
                    f"(sha256 {(was or ('', '-'))[1][:12]} then, {(now or ('', '-'))[1][:12]} now); resuming would "
                    "mix two strategies: restore the file, rename the study, or pass --allow-changed-strategy"
                )
            self.spec_toml = previous.spec_toml  # the stored study goes on, with the file as it is now
        record = await store.create_study(self.name, self.spec_toml)
        self._record = record
        in_sample = _in_sample(self.spec, bars)

        sampler = _make_sampler(self.spec)
        if record.sampler_state is not None:
            sampler.set_state(record.sampler_state)
        # Only the batch that was in progress at the last stop can hold trials the sampler asks
        # again (samplers never repeat a key), so memory stays one batch deep however long the study.
        stored = await store.trial_outcomes(record.id, batch=record.checkpoint_seq + 1)
        total = self._total()
        tracker = self._tracker = ProgressTracker(self.name, total, objective=self.objective, workers=1)
        for state, n in (await store.counts(record.id)).items():
            if n:
                tracker.count(state.value, n)
        for best in await store.best(record.id, maximize=self.maximize, k=1):
            tracker.offer_best(best.objective, best.number, best.params, self.maximize)  # type: ignore[arg-type]
        if self.artifacts_top:
            for trial in await store.best(record.id, maximize=self.maximize, k=self.artifacts_top):
                heapq.heappush(
                    self._top,
                    (rank_value(trial.objective, self.maximize), -trial.number, trial.number, trial.key, trial.params),
                )
            self._with_artifacts = set(await store.artifact_numbers(record.id))
        return record, sampler, stored, in_sample

    async def _summary(
        self, store: StudyStore, record: StudyRecord, final_state: StudyState, error: str | None,
        validation: dict[str, Any] | None, executor: Executor, backend: Backend, t_start: float,
    ) -> StudySummary:
        """The run's summary, saved with the study."""
        tracker = self._tracker
        final, self._final = self._final, None
        if final is not None and final_state is StudyState.COMPLETE and not self.shared:  # (one writer: final)
            counts, best = final
        else:
            counts = await store.counts(record.id)
            best = await store.best(record.id, maximize=self.maximize, k=1)
        elapsed = time.monotonic() - t_start
        summary = StudySummary(
            name=self.name,
            state=final_state.value,
            trials=sum(counts.values()),
            complete=counts[TrialState.COMPLETE],
            failed=counts[TrialState.FAILED],
            pruned=counts[TrialState.PRUNED],
            best=best[0] if best else None,
            elapsed_s=elapsed,
            trials_per_s=(tracker.done - tracker.resumed_from) / max(elapsed, 1e-9),
            db=str(self.db),
            validation=validation,
            error=error,
            extra={
                "workers": executor.workers,
                "backend": backend.name,
                "dispatch_overhead": executor.sizer.overhead_ratio,
                "indicator_cache": executor.cache_stats(),
            },
        )
        await store.save_summary(record.id, {k: v for k, v in summary.as_dict().items() if k != "validation"})
        return summary

    def _total(self) -> int:
        """The trial budget, or the feasible grid's size when a grid is smaller."""
        total = self.budget
        size = None
        if self.spec.search.sampler == "grid":
            with contextlib.suppress(Exception):
                size = self.space.feasible_grid_size()
        if isinstance(size, int) and size >= 0:
            total = min(total, size)
        return total

    async def _validate(
        self, store: StudyStore, record: StudyRecord, bars: Bars | Basket, *, fork_server: bool = False,
        started: asyncio.Task[dict[str, Any] | None] | None = None,
    ) -> dict[str, Any] | None:
        """:meth:`_validation`, stored (``started``: that task, started already)."""
        as_dict = await (started or self._validation(store, record, bars, fork_server=fork_server))
        if as_dict is not None:
            await store.save_validation(record.id, as_dict)
        return as_dict

    async def _validation(
        self, store: StudyStore, record: StudyRecord, bars: Bars | Basket, *, fork_server: bool = False,
        child: asyncio.Task[ForkedCall] | None = None,
    ) -> dict[str, Any] | None:
        """Hold-out / walk-forward re-runs of the best trials, the deflated Sharpe ratio and the PBO
        (``fork_server``, ``child``: :func:`_pbo`); it commits what is queued first, so it may start
        as soon as the search ends."""
        from engine.optimize import validation as validation_module

        # The PBO (numpy, or numba's threads without the GIL) runs while the rest reads the store.
        pbo = asyncio.create_task(_pbo(store, record.id, self.spec.search.seed, fork_server=fork_server, child=child))
        try:
            with contextlib.suppress(Exception):  # (a failed write: what was committed is read)
                await store.flush()
            settings = self.spec.validation
            k = max(settings.top_k, settings.walk_forward_candidates, 1)
            top = await store.best(record.id, maximize=self.maximize, k=k)
            if not top:
                pbo.cancel()
                return None
            counts = await store.counts(record.id)
            self._final = (counts, top[:1])  # the trials are final: the summary's counts and best
            n_trials = sum(counts.values())
            sharpes = [v for v in await store.metric_values(record.id, "sharpe") if v is not None and math.isfinite(v)]
            from engine.data.basket import Basket

            runner = None
            if self.artifacts_top != 0 and not isinstance(bars, Basket) and top[0].metrics:
                # The best trial's curve is stored (top-N artifacts): the deflated Sharpe reads it, no re-run.
                equity = (await store.artifacts(record.id, top[0].number)).get("equity")
                searched = _in_sample(self.spec, bars)
                if equity is not None and len(searched):
                    span = (len(searched), int(searched.ts[0]), int(searched.ts[-1]))
                    runner = validation_module.stored_first_runner(self.spec, top[0].params, top[0].metrics, equity, span)
            result = await asyncio.to_thread(
                validation_module.validate,
                self.spec,
                bars,
                [t.params for t in top],
                n_trials=n_trials,
                trial_sharpes=sharpes or None,
                runner=runner,
            )
            as_dict = result.as_dict()
            as_dict = json.loads(json.dumps(as_dict, default=str))  # plain lists and dicts, as the store gives back
        except BaseException:
            pbo.cancel()  # the rest failed: nobody reads it
            raise
        as_dict["pbo"] = await pbo
        return as_dict

    def _start_pbo_child(self, backend: Backend) -> asyncio.Task[ForkedCall] | None:
        """A child of the fork server for this study's PBO, forked and warmed while the search runs
        (:func:`_pbo`), when its CSCV will want numba and this process has none; else ``None``."""
        from engine.analysis.pbo import uses_numba
        from engine.optimize.overfitting import MAX_SPLITS

        blocks = self.spec.validation.blocks
        if not blocks or "numba" in sys.modules or not _forks_from_server(backend):
            return None
        if not uses_numba(self._total(), blocks, max_splits=MAX_SPLITS):
            return None
        from engine.optimize.fork_server import ForkedCall
        from engine.optimize.overfitting import warm_pbo

        return asyncio.create_task(asyncio.to_thread(ForkedCall, warm_pbo))

    # -- top-N artifacts (called by the batch loop) -----------------------------

    @property
    def artifacts_for_all(self) -> bool:
        """``artifacts = "all"``: every complete trial brings its artifacts with it."""
        return self.artifacts_top is None

    def top_threshold(self) -> float:
        """The rank value a trial needs to enter the top N (``-inf`` while it has room; ``inf`` when kept off)."""
        top = self.artifacts_top
        if not top:
            return math.inf
        return self._top[0][0] if len(self._top) >= top else -math.inf

    def consider_top(self, store: StudyStore, study_id: int, result: TrialResult, task: TrialTask) -> None:
        """Keep the top-N leaderboard; a trial pushed out of it loses its stored artifacts."""
        if result.state is TrialState.COMPLETE and result.objective is not None:
            self.offer_top(store, study_id, result.objective, result.number, task)

    def offer_top(self, store: StudyStore, study_id: int, objective: float, number: int, task: TrialTask) -> None:
        """:meth:`consider_top` of a complete trial with an objective."""
        top = self.artifacts_top
        if not top:
            return
        entry = (rank_value(objective, self.maximize), -number, number, task.key, task.params)
        if len(self._top) < top:
            heapq.heappush(self._top, entry)
        elif entry[:2] > self._top[0][:2]:
            evicted = heapq.heappushpop(self._top, entry)
            if evicted[2] in self._with_artifacts:
                store.drop_artifacts(study_id, evicted[2])
                self._with_artifacts.discard(evicted[2])

    def missing_artifacts(self) -> list[TrialTask]:
        """Top-N trials whose artifacts are not stored yet (re-run with curves at a batch end)."""
        return [
            TrialTask(number, params, key)
            for _, _, number, key, params in sorted(self._top, reverse=True)
            if number not in self._with_artifacts
        ]

    def store_artifacts(self, store: StudyStore, study_id: int, number: int, arrays: dict[str, Encoded]) -> None:
        if arrays:
            store.put_artifacts(study_id, number, arrays)
            self._with_artifacts.add(number)


def _warn_if_biased(spec: StudySpec, bars: Bars | Basket) -> None:
    """The fast look-ahead and lookback check of a user strategy, as a warning (``genesis check`` for the full one)."""
    from engine.data.basket import Basket
    from engine.strategy.check import check

    strategy = strategy_of(spec)
    params = {**strategy.defaults(), **dict(spec.strategy.fixed)}
    if isinstance(bars, Basket):
        bars = bars.members[0]  # the same code runs on every symbol: one is enough for the fast check
    try:
        report = check(strategy, bars, params, fast=True)
    except GenesisError as error:
        log.warning("%s: the strategy check could not run: %s", spec.name, error)
        return
    first = report.first()
    if first is not None:
        where = f"{strategy.file}:{strategy.name}" if strategy.file else strategy.name
        log.warning("%s: strategy %s: %s (run `genesis check %s` for the full check)", spec.name,
                    strategy.label(params), report.hint(first), where)


def _driver_warm_up(
    spec: StudySpec, backend: Backend, trials: int
) -> Callable[[StrategyDef, BacktestOptions], None] | None:
    """What this process loads while the workers start: the backtest kernels when it runs
    trials itself (``inline``, or a Dask cluster that may share it) or re-runs them after the
    search (hold-out, walk-forward, no stored best curve); nothing otherwise.

    With worker processes and no re-runs the driver never loads numba (about 0.35 s of
    start-up, more on a loaded box, and CPU taken from the workers): the workers fork from
    a server that has it, and a PBO too large for numpy runs in a child of that server
    (:func:`_pbo`). ``trials``: the study's size (kept for callers; no longer decides)."""
    settings = spec.validation
    reruns = settings.out_of_sample > 0 or settings.walk_forward_folds > 0 or parse_artifacts(
        spec.execution.artifacts) == 0
    if backend.name != "process" or reruns:
        return _warm_kernels
    return None


def _forks_from_server(backend: Backend) -> bool:
    """Whether ``backend`` is the process backend with workers forked from the warm fork server."""
    from engine.optimize.backends.process import ProcessBackend

    return isinstance(backend, ProcessBackend) and backend.forks_from_server


def _warm_kernels(strategy: StrategyDef, options: BacktestOptions) -> None:
    """Run the strategy once on a few synthetic bars (loads numba's compiled kernels)."""
    with profiler.stage("numba.warm_up"), contextlib.suppress(Exception):
        from engine import backtest
        from engine.data.bars import tiny_bars

        backtest.run_many(tiny_bars(), strategy, [strategy.defaults()], options=options)


async def _pbo(
    store: StudyStore, study_id: int, seed: int | None, *, fork_server: bool = False,
    child: asyncio.Task[ForkedCall] | None = None,
) -> dict[str, Any] | None:
    """The probability of backtest overfitting over the stored per-block returns (``None`` without them),
    with every figure of the report's PBO part (the report then reads it instead of running it again).

    ``fork_server``: the study's workers forked from one. A CSCV too large for numpy then runs in a
    child of that server (numba and its threads loaded there already) unless this process has
    numba: the driver never loads it (same bits either way: docs/optimizer.md). ``child``: that
    child, forked (and warmed) already (:meth:`Study._start_pbo_child`); from a SQLite store it
    reads the figures itself once everything queued is committed."""
    from engine.analysis.pbo import uses_numba
    from engine.optimize.overfitting import MAX_SPLITS, pbo_figures, pbo_of_sqlite
    from engine.store.study_sqlite import SqliteStore

    try:
        # Started as the search ends: every trial queued is committed first.
        with contextlib.suppress(Exception):  # (a failed write: the figures committed are read)
            await store.flush()
        if child is not None and isinstance(store, SqliteStore):
            try:
                forked, child = await child, None
                return await asyncio.to_thread(forked.call, pbo_of_sqlite, str(store.path), study_id, seed or 0)
            except (RuntimeError, OSError) as failure:  # (a server that cannot fork): here, then
                child = None
                log.warning("the PBO's process failed (%s): computing it here", failure)
        _, figures = await store.trial_blocks(study_id)
        if fork_server and "numba" not in sys.modules and uses_numba(*figures.shape, max_splits=MAX_SPLITS):
            from engine.optimize.fork_server import ForkedCall

            try:
                forked, child = await (child or asyncio.to_thread(ForkedCall)), None
                return await asyncio.to_thread(forked.call, pbo_figures, figures, seed or 0)
            except (RuntimeError, OSError) as failure:
                child = None
                log.warning("the PBO's process failed (%s): computing it here", failure)
        return await asyncio.to_thread(pbo_figures, figures, seed or 0)
    finally:
        if child is not None:
            _discard_child(child)


def _discard_child(child: asyncio.Task[ForkedCall]) -> None:
    """Close a forked PBO child that will not be called (when its fork has finished, if it has not yet)."""

    def close(task: asyncio.Task[ForkedCall]) -> None:
        if not task.cancelled() and task.exception() is None:
            task.result().close()

    if child.done():
        close(child)
    else:
        child.add_done_callback(close)


def _in_sample(spec: StudySpec, bars: Bars | Basket) -> Bars | Basket:
    """The bars the search runs on (the hold-out, if any, is kept for validation)."""
    from engine.optimize.validation import in_sample

    return in_sample(bars, spec.validation)


class _Planned(NamedTuple):
    """A batch asked and planned ahead: its points, tasks, known values, numbers by point, and the
    sampler's state from before it was asked."""

    points: list[dict[str, Any]]
    tasks: list[TrialTask]
    known: dict[int, float | None]
    numbers: list[int | None]
    state: dict[str, Any]


class _BatchLoop:
    """The ask -> evaluate -> tell -> checkpoint loop of one run."""

    def __init__(
        self,
        study: Study,
        store: StudyStore,
        record: StudyRecord,
        sampler: Sampler,
        executor: Executor,
        stored: dict[str, tuple[TrialState, float | None, int, int]],
        emit: Callable[..., None],
        n_bars: int,
    ) -> None:
        self.study = study
        self.store = store
        self.record = record
        self.sampler = sampler
        self.executor = executor
        self.stored = stored
        self.emit = emit
        self.seq = record.checkpoint_seq
        self.next_number = record.next_number
        self.consecutive_failures = 0
        self.failure: str | None = None
        self.halving = HalvingPlan.for_bars(n_bars) if study.prune == "halving" else None
        self.tracker = study.tracker
        self.done = study.tracker.done  # trials stored so far
        self.last_fill = time.monotonic()
        # The next batch, asked and planned while the tail of the current one runs (samplers that
        # ask ahead only), with the sampler's state from before that ask (the checkpoint's).
        self._ahead: _Planned | None = None
        self._ahead_from: tuple[int, list[int | None], int] | None = None  # (done after, numbers, batch)

    async def run(self) -> str | None:
        empty_batches = 0
        while not self.study.stop_requested and self.failure is None:
            # The batch a stop interrupted is asked again whole: its stored trials are told, not
            # run. Asked short (its stored trials counted as done), the rest of them would come
            # back in the next batch, run again and be dropped by the store: the budget falls short.
            done = self.done - len(self.stored)
            batch = self.seq + 1
            ahead, self._ahead = self._ahead, None
            if ahead is not None:
                if not ahead.points:
                    break
                points, tasks, known, numbers, _ = ahead
            else:
                if done >= self.study.budget or self.sampler.exhausted:
                    break
                wanted = min(self._batch_size(), self.study.budget - done)
                with profiler.stage("optimize.sampler"):
                    points = self.sampler.ask(wanted)
                if not points:
                    break
                with profiler.stage("optimize.sampler"):
                    tasks, known, numbers = self._plan(points, batch)
            if self.sampler.asks_ahead and not self.stored and self.halving is None:
                self._ahead_from = (done + len(tasks), numbers, batch)
            if not tasks and not known:
                empty_batches += 1
                if empty_batches >= MAX_EMPTY_BATCHES:
                    break
            else:
                empty_batches = 0
            with profiler.stage("optimize.evaluate"):
                finished = await self._evaluate(tasks, batch)
            self._ahead_from = None
            if finished is None:  # stopped, or too many failures
                self._ahead = None
                self.executor.discard_prefetch()
                break
            if self.sampler.listens:
                values = {**known, **finished}
                with profiler.stage("optimize.sampler"):
                    for params, number in zip(points, numbers, strict=True):
                        key_value = values.get(number) if number is not None else None
                        self.sampler.tell(params, key_value)
            if time.monotonic() - self.last_fill >= ARTIFACT_FILL_INTERVAL_S and not await self._fill_artifacts():
                break
            self.seq = batch
            used = [n for n in numbers if n is not None and n >= 0]
            if used:
                self.next_number = max(self.next_number, max(used) + 1)
            with profiler.stage("optimize.checkpoint"):
                # Not waited for: the workers would idle while the writer commits the batch. Trials of
                # the next batch committed with it are found stored on a resume (told, not run again).
                # (With the next batch asked already: the state from before that ask.)
                state = self._ahead.state if self._ahead is not None else self.sampler.get_state()
                await self.store.checkpoint(self.record.id, state, self.seq, self.next_number, wait=False)
            self.stored.clear()  # the resumed batch, if any, is behind us
            self.emit()
        self._ahead = None  # (a stop between batches)
        self.executor.discard_prefetch()
        if self.failure is None and not self.study.stop_requested:
            await self._fill_artifacts()  # the final top N always has its curves
        return self.failure

    def _batch_size(self) -> int:
        return self.sampler.preferred_batch or self.study.batch_size

    def _plan_ahead(self) -> None:
        """Ask and plan the next batch now (every task of this one is with the workers), so that
        the workers get its first chunks the moment this batch's last results are in.

        Only for samplers whose asks ignore the results (the points, their numbers and the
        checkpointed state are those the next turn of :meth:`run` would give) and with no stored
        trials to match (a resumed batch)."""
        assert self._ahead_from is not None
        done, numbers, batch = self._ahead_from
        self._ahead_from = None
        if done >= self.study.budget or self.sampler.exhausted:
            return
        used = [n for n in numbers if n is not None and n >= 0]
        first = max(self.next_number, max(used) + 1) if used else self.next_number
        with profiler.stage("optimize.sampler"):
            state = self.sampler.get_state()
            points = self.sampler.ask(min(self._batch_size(), self.study.budget - done))
            if not points:
                self._ahead = _Planned(points, [], {}, [], state)
                return
            tasks, known, planned = self._plan(points, batch + 1, first=first)
        self._ahead = _Planned(points, tasks, known, planned, state)
        # Workers this batch leaves free start on the next one (its results are stored after this one's).
        self.executor.prefetch(tasks, artifacts=self.study.artifacts_for_all)

    def _plan(
        self, points: Sequence[dict[str, Any]], batch: int, *, first: int | None = None
    ) -> tuple[list[TrialTask], dict[int, float | None], list[int | None]]:
        """New tasks, values already known (by number; negative numbers for old duplicates), numbers by point.

        ``first``: the first new number (default: the next unused one)."""
        tasks: list[TrialTask] = []
        known: dict[int, float | None] = {}
        numbers: list[int | None] = []
        seen: dict[str, int] = {}
        number = self.next_number if first is None else first
        duplicate = -1
        counters = _TRIAL_KEYS
        keys = self.study.space.trial_keys(points)
        if not self.stored and len(set(keys)) == len(keys):
            # The common case (no resumed batch, no point twice): every point is a new task, numbered in order.
            new = range(number, number + len(keys))
            tasks = list(map(TrialTask, new, map(dict, points), keys))
            numbers.extend(new)
            counters.misses += len(tasks)
            counters.entries = len(tasks)
            return tasks, known, numbers
        counters.hits += len(points)  # every point is a hit but the new tasks (taken back below)
        for params, key in zip(points, keys, strict=True):
            if key in seen:  # the same point twice in one batch
                numbers.append(seen[key])
                continue
            hit = self.stored.get(key) if self.stored else None
            if hit is not None and hit[3] != batch:
                # Stored by an earlier batch: tell its value, run nothing, use no number.
                known[duplicate] = _told_value(hit[0], hit[1])
                numbers.append(duplicate)
                seen[key] = duplicate
                duplicate -= 1
                continue
            if hit is not None:
                # Stored by this very batch before an interruption: same number, not run again.
                known[hit[2]] = _told_value(hit[0], hit[1])
                numbers.append(hit[2])
                seen[key] = hit[2]
                number = max(number, hit[2] + 1)
                continue
            while number in known:
                number += 1
            tasks.append(TrialTask(number, dict(params), key))
            numbers.append(number)
            seen[key] = number
            number += 1
        counters.hits -= len(tasks)
        counters.misses += len(tasks)
        counters.entries = len(self.stored) + len(seen)
        return tasks, known, numbers

    async def _evaluate(self, tasks: list[TrialTask], batch: int) -> dict[int, float | None] | None:
        """Run the batch's tasks; the told value by number, or ``None`` if the run must end."""
        if not tasks:
            return {}
        if self.halving is not None:
            return await self._evaluate_halving(tasks, batch)
        by_number = {t.number: t for t in tasks}
        values: dict[int, float | None] = {}  # (only for a sampler that listens)
        listens = self.sampler.listens
        study_id = self.record.id

        async def on_done(event: ChunkDone) -> None:
            # Columns in, rows out only where something reads them (best trial, top N, a failure).
            results = event.batch
            numbers = results.numbers.tolist()
            chunk_tasks = [by_number[number] for number in numbers]
            complete = results.states == COMPLETE
            if listens:
                told = np.where(complete, results.objectives, np.nan).tolist()
                values.update(zip(numbers, [None if v != v else v for v in told], strict=True))
            ranked = complete & ~np.isnan(results.objectives)
            self._account_batch(results, chunk_tasks, ranked)
            if ranked.any():
                objectives = results.objectives
                ranks = objectives if self.study.maximize else -objectives
                for row in np.flatnonzero(ranked & (ranks >= self.study.top_threshold())).tolist():
                    self.study.offer_top(self.store, study_id, float(objectives[row]), numbers[row], chunk_tasks[row])
            if event.artifacts:
                row_of = {number: row for row, number in enumerate(numbers)}
                for number, arrays in event.artifacts.items():
                    at = row_of.get(number)
                    if at is not None and complete[at]:
                        self.study.store_artifacts(self.store, study_id, number, arrays)
            await self.store.add_batch(study_id, batch, results, chunk_tasks)
            if (
                self._ahead_from is not None and self.executor.queued == 0
                and self.failure is None and not self.study.stop_requested
            ):
                self._plan_ahead()
            self.emit()

        outcome = await self.executor.run_batch(tasks, on_done, artifacts=self.study.artifacts_for_all)
        if outcome.stopped or self.failure is not None or self.study.stop_requested:
            return None
        return values

    async def _evaluate_halving(self, tasks: list[TrialTask], batch: int) -> dict[int, float | None] | None:
        """Successive halving over the batch; every trial is stored once it is final."""
        assert self.halving is not None
        plan = self.halving
        by_number = {t.number: t for t in tasks}
        final: dict[int, tuple[TrialResult, dict | None]] = {}
        alive = list(tasks)
        for rung in range(plan.rungs):
            stop = plan.stop_for(rung)
            rung_tasks = [TrialTask(t.number, t.params, t.key, rung, stop) for t in alive]
            rung_results: dict[int, TrialResult] = {}
            artifacts: dict[int, dict] = {}

            async def on_done(event: ChunkDone, rung_results: dict = rung_results, artifacts: dict = artifacts) -> None:
                for result in event.results:
                    rung_results[result.number] = result
                    if result.state is TrialState.FAILED:
                        self._count_failure(result)
                    else:
                        self.consecutive_failures = 0
                artifacts.update(event.artifacts)

            outcome = await self.executor.run_batch(
                rung_tasks, on_done, artifacts=self.study.artifacts_for_all and stop is None
            )
            if outcome.stopped or self.failure is not None or self.study.stop_requested:
                return None
            results = [rung_results[t.number] for t in rung_tasks]
            for result in results:
                if result.state is TrialState.FAILED:
                    final[result.number] = (result, None)
            if stop is None:
                for result in results:
                    if result.state is TrialState.COMPLETE:
                        final[result.number] = (result, artifacts.get(result.number))
                break
            promoted, pruned = plan.survivors(results, self.study.maximize)
            for number in pruned:
                result = rung_results[number]
                final[number] = (
                    TrialResult(
                        result.number, TrialState.PRUNED, result.metrics, result.objective, result.started,
                        result.duration_s, result.worker, None, rung,
                    ),
                    None,
                )
            keep = set(promoted)
            alive = [t for t in alive if t.number in keep]
        pairs = []
        values: dict[int, float | None] = {}
        for number in sorted(final):
            result, arrays = final[number]
            task = by_number[number]
            pairs.append((result, task))  # with the full-data rung's per-block figures
            values[number] = result.objective if result.state is TrialState.COMPLETE else None
            self._account(result, task, count_failure=False, count=True)
            self.study.consider_top(self.store, self.record.id, result, task)
            if arrays and result.state is TrialState.COMPLETE:
                self.study.store_artifacts(self.store, self.record.id, number, arrays)
        await self.store.add_results(self.record.id, batch, pairs)
        self.emit()
        return values

    async def _fill_artifacts(self) -> bool:
        """Re-run the top-N trials that lack artifacts, with curves; ``False`` if the run must end."""
        with profiler.stage("optimize.artifacts"):
            return await self._fill_artifacts_now()

    async def _fill_artifacts_now(self) -> bool:
        self.last_fill = time.monotonic()
        missing = self.study.missing_artifacts()
        if not missing:
            return True

        async def on_done(event: ChunkDone) -> None:
            for result in event.results:
                if result.state is TrialState.COMPLETE and result.number in event.artifacts:
                    self.study.store_artifacts(self.store, self.record.id, result.number, event.artifacts[result.number])

        outcome = await self.executor.run_batch(missing, on_done, artifacts=True)
        return not (outcome.stopped or self.study.stop_requested)

    def _count_failure(self, result: TrialResult) -> None:
        self.consecutive_failures += 1
        if self.consecutive_failures >= self.study.max_failures and self.failure is None:
            self.failure = (
                f"{self.consecutive_failures} consecutive trials failed "
                f"(execution.max_consecutive_failures = {self.study.max_failures}); last error: {result.error}"
            )
            self.executor.stop()

    def _account_batch(self, results: ResultBatch, tasks: Sequence[TrialTask], ranked: np.ndarray) -> None:
        """:meth:`_account` of every row of ``results`` (``tasks[i]`` is row ``i``'s), from the columns.

        ``ranked``: the rows that are complete with an objective (the caller's mask, computed once).
        """
        n = len(results)
        self.done += n
        states = results.states
        for code, state in ((COMPLETE, "complete"), (FAILED, "failed"), (PRUNED, "pruned")):
            count = int(np.count_nonzero(states == code))
            if count:
                self.tracker.count(state, count)
        if (states == FAILED).any():  # rare: the streak needs the rows in order
            for row, code in enumerate(states.tolist()):
                if code == FAILED:
                    self._count_failure(results.result(row))
                else:
                    self.consecutive_failures = 0
        elif n:
            self.consecutive_failures = 0
        if ranked.any():
            rows = np.flatnonzero(ranked)
            objectives = results.objectives[rows]
            best = objectives.max() if self.study.maximize else objectives.min()
            tied = rows[objectives == best]
            row = int(tied[np.argmin(results.numbers[tied])])  # ties: the lower number, as offer_best
            self.tracker.offer_best(float(best), int(results.numbers[row]), tasks[row].params, self.study.maximize)

    def _account(self, result: TrialResult, task: TrialTask, *, count_failure: bool = True, count: bool = False) -> None:
        self.done += 1
        if count:
            self.tracker.count(result.state.value)
        if result.state is TrialState.FAILED:
            if count_failure:
                self._count_failure(result)
            return
        self.consecutive_failures = 0
        if result.state is TrialState.COMPLETE and result.objective is not None:
            self.tracker.offer_best(result.objective, result.number, task.params, self.study.maximize)


def _told_value(state: TrialState, objective: float | None) -> float | None:
    return objective if state is TrialState.COMPLETE else None
