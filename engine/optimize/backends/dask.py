"""The ``dask`` backend: trials on a Dask cluster (a ``LocalCluster`` or an existing scheduler).

``scheduler = "local"`` starts a ``LocalCluster`` on 127.0.0.1 (one worker
process per core, one thread each, no dashboard) whose scheduler runs on its
own thread, so the study's event loop only talks to it; ``"tcp://HOST:PORT"``
connects to a running scheduler.

Data: the bars' six columns (plain numpy arrays) with the symbol and the
timeframe are scattered once to every worker (``broadcast=True``); each chunk
refers to that future, never to a copy. A worker that joins later, or replaces
a dead one, fetches the data from a peer. On each worker the first chunk of a
study builds one :class:`~engine.optimize.trial.Evaluator` per worker thread,
kept in a module global keyed by the data's token, so the indicator cache
lives across chunks exactly as in a ``process`` worker.

Chunks are submitted as Dask tasks (at most ``2 x workers`` at a time; the
executor bounds the rest) and gathered with ``as_completed``; the driver is
the only writer of the store.

Faults:

- a worker that dies (crash, kill, lost machine) has its chunk rescheduled by
  Dask on another worker; the chunk's future yields once, so no trial is
  recorded twice. A chunk that kills workers repeatedly (Dask raises
  ``KilledWorker`` after ``allowed-failures``) is re-run one trial per task:
  the trial that kills its worker again is recorded failed, the others run;
- a trial that raises is recorded failed by the evaluator, as everywhere;
- per-trial timeout: a watchdog thread in every worker process reads the
  evaluators' slots; a trial over its budget is reported to the driver (a
  Dask event), then the worker process exits (its nanny starts a fresh one).
  The driver records the trial failed with ``timeout`` and re-queues the rest
  of its chunk one trial at a time, as the ``process`` backend does. Without a
  nanny (``dask worker --no-nanny``) a timed-out worker is not replaced;
- losing the scheduler ends the run with a :class:`~engine.errors.NetworkError`;
  the trials stored so far and the last checkpoint stay, and the study
  resumes later on any backend.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from engine.errors import ConfigError, GenesisError, NetworkError
from engine.optimize.backends.base import Chunk, ChunkDone, add_chunk_time
from engine.optimize.trial import FAULTS_ENV, ChunkOutput, Evaluator, Slot, WorkerSetup, _error_line
from engine.store.records import TrialResult, TrialState, TrialTask
from engine.store.result_batch import ResultBatch

#: The Dask event topic the workers' watchdogs report timeouts on.
TIMEOUT_TOPIC = "genesis-trial-timeout"
#: Exit code of a worker process ended by its watchdog.
TIMEOUT_EXIT_CODE = 70
#: ``allowed-failures`` of a local cluster's scheduler: a chunk survives one dead worker, then is isolated.
LOCAL_ALLOWED_FAILURES = 1
#: How often a chunk is re-submitted after its data was lost before the run gives up.
MAX_RESUBMITS = 10
#: A chunk whose data went with a dying worker this often is split one trial per task ...
SPLIT_AFTER_LOSSES = 2
#: ... and a lone trial whose worker and data went this often is recorded failed.
FAIL_AFTER_LOSSES = 3
#: How often new (or restarted) workers are given a copy of the data.
REPLICATE_EVERY_S = 1.0
SCATTER_ATTEMPTS = 5
CONNECT_TIMEOUT_S = 10.0
PREPARE_TIMEOUT_S = 300.0
WORKERS_TIMEOUT_S = 60.0
EXTRA_HINT = "install the dask extra: pip install 'genesis-console[dask]'"


def _require_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ConfigError(f'execution.backend = "dask" needs dask.distributed, which is not installed; {EXTRA_HINT}') from None
    return distributed


# ---------------------------------------------------------------------------
# worker side: runs inside Dask worker processes


@dataclass(slots=True)
class _Watched:
    slot: Slot
    chunk: str | None = None


class _WorkerState:
    """One study's data and evaluators on one worker process (one evaluator per worker thread)."""

    def __init__(self, token: str, payload: dict[str, Any], setup: WorkerSetup) -> None:
        self.token = token
        self.bars = _bars_from(payload)
        self.setup = setup
        self.evaluators: dict[int, tuple[Evaluator, _Watched]] = {}

    def evaluator(self, worker: str) -> tuple[Evaluator, _Watched]:
        ident = threading.get_ident()
        entry = self.evaluators.get(ident)
        if entry is None:
            watched = _Watched(Slot([math.nan, 0.0, 0.0]))
            # With profiling on (setup.profile) it ships its stage timings with each chunk.
            evaluator = Evaluator(self.bars, self.setup, worker=worker, slot=watched.slot, ship_profile=True)
            evaluator.warm_up()
            entry = (evaluator, watched)
            with _LOCK:  # the watchdog walks these
                self.evaluators[ident] = entry
        return entry


#: Per-process state of the Dask worker, keyed by the data's token (a few studies at most).
_STATES: collections.OrderedDict[str, _WorkerState] = collections.OrderedDict()
_STATES_KEPT = 2
_LOCK = threading.Lock()
_WATCHDOG: threading.Thread | None = None


def _payload_of(bars: Any) -> dict[str, Any]:
    """What is scattered: the bars' columns, or a basket's symbols' columns (aligned again on the worker)."""
    from engine.data.basket import Basket

    if isinstance(bars, Basket):
        return {"members": [_payload_of(member) for member in bars.members]}
    return {**bars.columns(), "symbol": bars.symbol, "timeframe": bars.timeframe}


def _bars_from(payload: dict[str, Any]) -> Any:
    """Bars (or a Basket) over the scattered columns (read-only views of the worker's copy, validated once)."""
    from engine.data.bars import COLUMNS, Bars

    if "members" in payload:
        from engine.data.basket import align

        return align([_bars_from(member) for member in payload["members"]])
    columns = {}
    for name in COLUMNS:
        array = payload[name]
        with contextlib.suppress(ValueError):
            array.flags.writeable = False  # Bars then keeps the worker's array instead of copying it
        columns[name] = array
    return Bars(**columns, symbol=payload["symbol"], timeframe=payload["timeframe"])


def _worker_name() -> str:
    from distributed import get_worker

    worker = get_worker()
    return f"dask:{worker.name}"


def _state(token: str, payload: dict[str, Any], setup: WorkerSetup) -> _WorkerState:
    with _LOCK:
        state = _STATES.get(token)
        if state is None:
            state = _STATES[token] = _WorkerState(token, payload, setup)
            while len(_STATES) > _STATES_KEPT:
                _STATES.popitem(last=False)
        else:
            _STATES.move_to_end(token)
        _ensure_watchdog(setup.trial_timeout_s)
        return state


def _ensure_watchdog(timeout_s: float) -> None:
    global _WATCHDOG
    if _WATCHDOG is not None and _WATCHDOG.is_alive():
        return
    from distributed import get_worker

    worker = get_worker()
    period = min(1.0, max(0.05, timeout_s / 4))
    _WATCHDOG = threading.Thread(target=_watch, args=(worker, period), name="genesis-watchdog", daemon=True)
    _WATCHDOG.start()


def _watch(worker: Any, period: float) -> None:
    """The worker process's one watchdog: report a trial over its budget, then end the process."""
    while True:
        time.sleep(period)
        now = time.monotonic()
        with _LOCK:
            watched = [(w, state.token) for state in _STATES.values() for _, w in list(state.evaluators.values())]
        for item, token in watched:
            number, started, budget = item.slot.read()
            if math.isnan(number) or item.chunk is None or now - started <= budget:
                continue
            with contextlib.suppress(Exception):
                worker.log_event(
                    TIMEOUT_TOPIC,
                    {"token": token, "chunk": item.chunk, "number": int(number), "budget": budget,
                     "name": f"dask:{worker.name}"},
                )
            # A thread cannot be stopped: the process goes, its nanny starts a fresh one.
            time.sleep(0.5)
            os._exit(TIMEOUT_EXIT_CODE)


def evaluate_chunk(
    payload: dict[str, Any],
    setup: WorkerSetup,
    token: str,
    chunk_key: str,
    tasks: bytes,
    artifacts: bool,
    isolate: bool,
) -> tuple[ChunkOutput, str, float]:
    """Evaluate one chunk on this worker (the Dask task): ``(output, worker name, seconds)``."""
    t0 = time.perf_counter()
    name = _worker_name()
    state = _state(token, payload, setup)
    evaluator, watched = state.evaluator(name)
    watched.chunk = chunk_key
    try:
        decoded = [TrialTask(*task) for task in msgspec.msgpack.decode(tasks)]
        output = evaluator.evaluate(decoded, artifacts=artifacts, isolate=isolate)
    finally:
        watched.chunk = None
    seconds = time.perf_counter() - t0
    if output.profile is not None:
        add_chunk_time(output.profile, seconds)
    return output, name, seconds


def prepare_worker(payload: dict[str, Any], setup: WorkerSetup, token: str) -> tuple[str, str]:
    """Build this worker's evaluator and load the kernels; ``(worker name, genesis version)``."""
    import engine

    name = _worker_name()
    _state(token, payload, setup).evaluator(name)
    return name, engine.__version__


def forget(token: str) -> None:
    """Drop a study's state from this worker (``client.run`` at the end of a run)."""
    with _LOCK:
        _STATES.pop(token, None)


# ---------------------------------------------------------------------------
# driver side


@dataclass(slots=True)
class _Flight:
    """A chunk (or part of one) submitted to Dask."""

    chunk: Chunk
    key: str
    future: Any
    submitted: float
    data: Any  # the scattered data's future this chunk was sent with


def _encode_tasks(tasks: Sequence[TrialTask]) -> bytes:
    """A chunk's tasks as one msgpack blob: opaque to Dask, so submitting it does not walk thousands of dicts."""
    return _ENCODER.encode([(t.number, t.params, t.key, t.step, t.stop) for t in tasks])


def _plain_value(value: Any) -> Any:
    if hasattr(value, "item"):  # a numpy scalar
        return value.item()
    raise TypeError(f"cannot send a parameter value of type {type(value).__name__} to dask workers")


_ENCODER = msgspec.msgpack.Encoder(enc_hook=_plain_value)


class DaskBackend:
    """Runs chunks of trials as tasks on a Dask cluster."""

    name = "dask"

    def __init__(
        self,
        *,
        scheduler: str = "local",
        workers: int = 0,
        trial_timeout_s: float = 30.0,
        threads_per_worker: int = 1,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
    ) -> None:
        _require_distributed()
        self.scheduler = scheduler
        self.trial_timeout_s = trial_timeout_s
        self._requested = workers
        self._threads = threads_per_worker
        self._connect_timeout_s = connect_timeout_s
        self._cluster: Any = None
        self._config: Any = None
        self._client: Any = None
        self._address = ""
        self._size = 0
        self._run = uuid.uuid4().hex[:12]
        self._payload: dict[str, Any] | None = None
        self._setup: WorkerSetup | None = None
        self._data: Any = None  # the scattered payload's future
        self._setup_future: Any = None
        self._token = ""
        self._pending: collections.deque[Chunk] = collections.deque()
        self._flights: dict[str, _Flight] = {}
        self._losses: dict[tuple[int, tuple[int, ...]], int] = {}
        self._keeper: asyncio.Task[None] | None = None
        self._open: dict[int, int] = {}  # chunk id -> trials not reported yet
        self._fresh: set[int] = set()  # chunks submitted and not sent yet
        self._results: asyncio.Queue[ChunkDone | BaseException | None] = asyncio.Queue()
        self._last_done: dict[str, float] = {}
        self._ac: Any = None
        self._wake = asyncio.Event()
        self._gatherer: asyncio.Task[None] | None = None
        self._rescattering: asyncio.Future[None] | None = None
        self._background: set[asyncio.Future[Any]] = set()
        self._log_levels: dict[str, int] = {}
        self._closing = False
        self._failed = False
        self._interrupted = False  # interrupt_start(): stop between the start's steps
        self.scatter_s = 0.0  # the data's last scatter (seconds), for the benchmark
        self.scatters = 0
        self.timeouts = 0  # trials ended by a worker's watchdog
        self.isolated = 0  # chunks re-run one trial per task
        self.max_in_flight = 0  # the most chunks submitted to Dask at once

    @property
    def workers(self) -> int:
        if self._client is not None:
            identity = getattr(self._client, "_scheduler_identity", None) or {}
            total = identity.get("total_threads")
            if isinstance(total, int) and total > 0:
                self._size = total
        return max(1, self._size)

    @property
    def address(self) -> str:
        """The scheduler's address (``tcp://...``)."""
        return self._address

    # -- life cycle ---------------------------------------------------------

    async def start(self, bars: Any, setup: WorkerSetup) -> None:
        distributed = _require_distributed()
        # Dask's own log lines (comm errors, reconnect tracebacks) are not for the console: the
        # backend reports what matters in one line. A local scheduler's are ours to handle entirely.
        self._quiet(logging.ERROR)
        if self.scheduler == "local":
            self._quiet(logging.CRITICAL, ("distributed.scheduler",))
        try:
            await self._connect(distributed)
            if self._interrupted:
                return  # stopped while the cluster came up: nothing will run on it (close() ends it)
            self._payload = _payload_of(bars)
            self._setup = setup  # shipped as is: the workers get the study's BacktestOptions record unchanged
            self._ac = distributed.as_completed(loop=self._client.loop)
            self._client.subscribe_topic(TIMEOUT_TOPIC, self._on_timeout_event)
            self._token = self._run
            await self._scatter()
            if self._interrupted:
                return
            await self._prepare_workers()
        except BaseException:
            await self.close()
            raise
        loop = asyncio.get_running_loop()
        self._gatherer = loop.create_task(self._gather(), name="dask-gather")
        self._keeper = loop.create_task(self._keep_replicated(), name="dask-replicate")

    async def _connect(self, distributed: Any) -> None:
        if self.scheduler == "local":
            n = self._requested if self._requested > 0 else (os.cpu_count() or 1)
            self._config = _local_config()
            self._cluster = await asyncio.to_thread(_local_cluster, n, self._threads)
            self._address = self._cluster.scheduler_address
        else:
            self._address = self.scheduler
        try:
            self._client = await asyncio.wait_for(
                distributed.Client(
                    self._address, asynchronous=True, set_as_default=False, timeout=self._connect_timeout_s
                ),
                self._connect_timeout_s + 5,
            )
        except (TimeoutError, OSError) as error:
            raise NetworkError(
                f"execution.scheduler: cannot reach the dask scheduler at {self._address}: {_error_line(error)}"
            ) from None
        try:
            await self._client.wait_for_workers(1, timeout=WORKERS_TIMEOUT_S)
        except TimeoutError:
            raise NetworkError(
                f"dask scheduler {self._address}: no worker connected within {WORKERS_TIMEOUT_S:g}s"
            ) from None
        identity = await self._client.scheduler.identity(n_workers=-1)
        self._size = sum(int(w.get("nthreads", 1)) for w in identity.get("workers", {}).values())

    async def _scatter(self) -> None:
        """Ship the data (and the setup) to every worker once; retried while workers come and go."""
        assert self._payload is not None and self._setup is not None
        last: BaseException | None = None
        for attempt in range(SCATTER_ATTEMPTS):
            try:
                await self._client.wait_for_workers(1, timeout=WORKERS_TIMEOUT_S)
                t0 = time.perf_counter()
                try:
                    [data] = await self._client.scatter([self._payload], broadcast=True, hash=False, direct=True)
                except Exception:
                    # The workers cannot be reached from here (or one is going away): through the scheduler.
                    [data] = await self._client.scatter([self._payload], broadcast=True, hash=False, direct=False)
                self.scatter_s = time.perf_counter() - t0
                [setup] = await self._client.scatter([self._setup], broadcast=True, hash=False)
            except Exception as error:
                if self._client.status != "running":
                    raise self._lost() from None
                last = error
                await asyncio.sleep(0.2 * (attempt + 1))
                continue
            self._data, self._setup_future = data, setup
            self.scatters += 1
            return
        assert last is not None  # every attempt that did not return failed
        raise GenesisError(f"dask: cannot ship the data to the workers of {self._address}: {_error_line(last)}")

    def _quiet(self, level: int, names: Sequence[str] = ()) -> None:
        """Raise the level of the driver's ``distributed`` loggers (restored at :meth:`close`)."""
        known = [n for n in logging.root.manager.loggerDict if n == "distributed" or n.startswith("distributed.")]
        for name in names or ["distributed", *known]:
            logger = logging.getLogger(name)
            self._log_levels.setdefault(name, logger.level)
            logger.setLevel(max(level, logger.level))

    def _lost(self) -> NetworkError:
        return NetworkError(
            f"lost the dask scheduler {self._address}; the trials stored so far are checkpointed, "
            "resume the study later on any backend"
        )

    async def _keep_replicated(self) -> None:
        """Give a copy of the data to workers that joined (or replaced dead ones) since the scatter.

        Scattered data cannot be rebuilt by Dask: while every worker holds a
        copy, losing one worker loses nothing.
        """
        while not self._closing:
            await asyncio.sleep(REPLICATE_EVERY_S)
            client = self._client
            futures = [f for f in (self._data, self._setup_future) if f is not None and f.status == "finished"]
            if client is None or client.status != "running" or len(futures) < 2:
                continue
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.replicate(futures), 10.0)

    async def _rescatter(self) -> None:
        """Every worker holding the data died: ship it again (once for all the chunks that lost it)."""
        if self._rescattering is None:
            self._rescattering = asyncio.ensure_future(self._scatter())
        rescattering = self._rescattering
        try:
            await rescattering
        finally:
            if self._rescattering is rescattering:
                self._rescattering = None

    async def _prepare_workers(self) -> None:
        """Every worker builds its evaluator (kernels loaded) before the first chunk; versions must match."""
        import engine

        identity = await self._client.scheduler.identity(n_workers=-1)
        futures = [
            self._client.submit(
                prepare_worker, self._data, self._setup_future, self._token,
                workers=[address], allow_other_workers=True, pure=False,
                key=f"genesis-prepare-{self._token}-{index}",
            )
            for index, address in enumerate(identity.get("workers", {}))
        ]
        try:
            answers = await asyncio.wait_for(self._client.gather(futures), PREPARE_TIMEOUT_S)
        except Exception as error:
            raise GenesisError(
                f"dask workers at {self._address} cannot run Genesis trials ({_error_line(error)}); "
                f"every worker needs the same genesis-console installed: {EXTRA_HINT}"
            ) from None
        for name, version in answers:
            if version != engine.__version__:
                raise GenesisError(
                    f"dask worker {name} runs Genesis {version}, this driver {engine.__version__}; "
                    "install the same genesis-console version on every worker"
                )

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        for task in (self._gatherer, self._keeper):
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        self._gatherer = self._keeper = None
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.unsubscribe_topic(TIMEOUT_TOPIC)
            if self._token and client.status == "running":
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.run(forget, self._token), 5.0)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), 10.0)
        cluster, self._cluster = self._cluster, None
        if cluster is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(cluster.close, 10)
        config, self._config = self._config, None
        if config is not None:
            config.__exit__(None, None, None)
        for name, level in self._log_levels.items():
            logging.getLogger(name).setLevel(level)
        self._log_levels.clear()
        self._flights.clear()
        self._payload = None
        self._interrupted = False
        self._results.put_nowait(None)

    def interrupt_start(self) -> None:
        # A local cluster's workers start together inside LocalCluster (bounded by --workers);
        # what follows them (scattering the data, preparing every worker) is skipped.
        self._interrupted = True

    # -- scheduling ---------------------------------------------------------

    def submit(self, chunk: Chunk) -> None:
        self._open[chunk.id] = self._open.get(chunk.id, 0) + len(chunk.tasks)
        self._fresh.add(chunk.id)
        self._pending.append(chunk)
        self._dispatch()

    def cancel_pending(self) -> list[Chunk]:
        # Only chunks never sent go back; parts of a chunk being re-run stay in hand.
        taken = [chunk for chunk in self._pending if chunk.id in self._fresh]
        self._pending = collections.deque(chunk for chunk in self._pending if chunk.id not in self._fresh)
        for chunk in taken:
            self._fresh.discard(chunk.id)
            self._open.pop(chunk.id, None)
        return taken

    def _dispatch(self) -> None:
        limit = 2 * self.workers
        while self._pending and len(self._flights) < limit and not self._closing and not self._failed:
            self._send(self._pending.popleft())

    def _requeue(self, chunks: Sequence[Chunk]) -> None:
        """Put chunks back at the front of the queue (they run before new ones)."""
        self._pending.extendleft(reversed(chunks))

    def _split(self, chunk: Chunk) -> None:
        """Re-run a chunk one trial per task, so that a trial that kills its worker is told apart."""
        self.isolated += 1
        self._requeue([Chunk(chunk.id, (task,), chunk.artifacts, isolate=True) for task in chunk.tasks])

    def _send(self, chunk: Chunk) -> None:
        self._fresh.discard(chunk.id)
        client = self._client
        if client is None or client.status != "running":
            self._fail(self._lost())
            return
        key = f"genesis-chunk-{self._token}-{chunk.id}-{uuid.uuid4().hex[:8]}"
        future = client.submit(
            evaluate_chunk, self._data, self._setup_future, self._token, key,
            _encode_tasks(chunk.tasks), chunk.artifacts, chunk.isolate,
            key=key, pure=False,
        )
        self._flights[key] = _Flight(chunk, key, future, time.perf_counter(), self._data)
        self.max_in_flight = max(self.max_in_flight, len(self._flights))
        self._ac.add(future)
        self._wake.set()

    async def results(self) -> AsyncIterator[ChunkDone]:
        while True:
            event = await self._results.get()
            if event is None:
                return
            if isinstance(event, BaseException):
                raise event
            yield event

    def _fail(self, error: BaseException) -> None:
        if isinstance(error, NetworkError):
            self._quiet(logging.CRITICAL)  # reported here; the client's reconnect tracebacks are noise
        if not self._failed:
            self._failed = True
            self._results.put_nowait(error)

    def _report(self, chunk: Chunk, results: list[TrialResult] | ResultBatch, **extra: Any) -> None:
        batch = results if isinstance(results, ResultBatch) else ResultBatch.from_results(results)
        left = self._open.get(chunk.id, 0) - len(batch)
        if left <= 0:
            self._open.pop(chunk.id, None)
        else:
            self._open[chunk.id] = left
        self._results.put_nowait(ChunkDone(chunk.id, batch, final=left <= 0, **extra))

    # -- gathering ------------------------------------------------------------

    async def _gather(self) -> None:
        while not self._closing:
            if self._ac.is_empty():
                self._wake.clear()
                await self._wake.wait()
                continue
            async for future in self._ac:
                try:
                    await self._finished(future)
                except Exception as error:  # never lose the gatherer silently
                    self._fail(GenesisError(f"dask backend: {_error_line(error)}"))
                if self._closing:
                    return
            self._dispatch()

    async def _finished(self, future: Any) -> None:
        flight = self._flights.pop(future.key, None)
        if flight is None:
            return  # cancelled by us (a timeout re-queued its chunk)
        status = future.status
        if status == "finished":
            try:
                output, worker, _compute_s = await future.result()
            except Exception:
                # Finished, then lost with its worker before we fetched it: run it again.
                await self._on_cancelled(flight, future)
                return
            now = time.perf_counter()
            # Dispatch to results, minus the time the chunk waited behind another one on its worker.
            elapsed = now - max(flight.submitted, self._last_done.get(worker, 0.0))
            self._last_done[worker] = now
            self._report(
                flight.chunk, output.batch, artifacts=output.artifacts, worker=worker, elapsed_s=elapsed,
                cache_hits=output.cache_hits, cache_misses=output.cache_misses, profile=output.profile,
            )
        elif status == "error":
            await self._on_error(flight, await future.exception())
        else:
            await self._on_cancelled(flight, future)
        self._dispatch()

    async def _on_error(self, flight: _Flight, error: BaseException) -> None:
        from distributed.scheduler import KilledWorker

        chunk = flight.chunk
        if isinstance(error, KilledWorker):
            if len(chunk.tasks) == 1:
                task = chunk.tasks[0]
                died = f"worker died running this trial (dask KilledWorker: {str(error).split('.')[0]})"
                self._report(chunk, [_failed(task, died, "dask")])
            else:
                self._split(chunk)
            return
        self._fail(GenesisError(f"dask worker failed to evaluate chunk {chunk.id}: {_error_line(error)}"))

    async def _on_cancelled(self, flight: _Flight, future: Any) -> None:
        client = self._client
        reason = ""
        with contextlib.suppress(Exception):
            exc = future._state.exception  # FutureCancelledError carries the reason
            reason = str(getattr(exc, "reason", "") or "")
        if reason == "scheduler-connection-lost" or client is None or client.status != "running":
            self._fail(self._lost())
            return
        # The data went with a dead worker (Dask cannot rebuild scattered data): ship it
        # again and run the chunk again; a chunk that keeps losing it may hold the culprit.
        chunk = flight.chunk
        ident = (chunk.id, tuple(t.number for t in chunk.tasks))
        losses = self._losses[ident] = self._losses.get(ident, 0) + 1
        if losses > MAX_RESUBMITS:
            self._fail(GenesisError(f"dask: chunk {chunk.id} was lost {losses} times ({reason})"))
            return
        # Only the copy this chunk was sent with counts: chunks that lost an older one
        # (cancelled after a rescatter finished) run again on the new copy without another.
        stale = flight.data is not self._data
        lost = any(f is None or f.status != "finished" for f in (self._data, self._setup_future))
        if lost or (not stale and reason in ("already forgotten", "lost dependencies")):
            await self._rescatter()
        if len(chunk.tasks) == 1 and losses >= FAIL_AFTER_LOSSES:
            died = f"worker died running this trial (its worker and data were lost {losses} times)"
            self._report(chunk, [_failed(chunk.tasks[0], died, "dask")])
        elif len(chunk.tasks) > 1 and losses >= SPLIT_AFTER_LOSSES:
            self._split(chunk)
        else:
            self._requeue([chunk])

    # -- timeouts (reported by the workers' watchdogs) -----------------------------

    def _on_timeout_event(self, event: Any) -> None:
        _, message = event
        if not isinstance(message, dict) or message.get("token") != self._token:
            return
        flight = self._flights.pop(str(message.get("chunk")), None)
        if flight is None:
            return  # already handled, or from another run
        self.timeouts += 1
        with contextlib.suppress(Exception):
            cancel = asyncio.ensure_future(self._client.cancel([flight.future]))
            self._background.add(cancel)
            cancel.add_done_callback(self._background.discard)
        chunk = flight.chunk
        number = int(message.get("number", -1))
        culprit = next((t for t in chunk.tasks if t.number == number), None) if number >= 0 else None
        rest = [t for t in chunk.tasks if t is not culprit]
        worker = str(message.get("name", "dask"))
        if culprit is not None:
            self._report(chunk, [_failed(culprit, f"timeout: trial ran over {self.trial_timeout_s:g}s", worker)])
        elif len(chunk.tasks) == 1:
            self._report(chunk, [_failed(chunk.tasks[0], f"timeout: ran over {self.trial_timeout_s:g}s", worker)])
            rest = []
        self._requeue([Chunk(chunk.id, (task,), chunk.artifacts, isolate=True) for task in rest])
        self._dispatch()


def _failed(task: TrialTask, reason: str, worker: str) -> TrialResult:
    return TrialResult(task.number, TrialState.FAILED, None, None, time.time(), 0.0, worker, reason, task.step)


def _local_cluster(n_workers: int, threads: int) -> Any:
    """A ``LocalCluster`` on 127.0.0.1 (its scheduler on its own thread), no dashboard.

    Worker processes fork from a ``forkserver`` that has imported distributed
    and the engine and loaded the kernels once (the ``process`` backend's
    preload), so a worker, or the replacement of a dead one, starts warm.
    """
    from distributed import LocalCluster

    return LocalCluster(
        n_workers=n_workers,
        threads_per_worker=threads,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        # No dashboard; the scheduler's small HTTP server (health checks) on a free loopback port.
        scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
        worker_dashboard_address=None,
        silence_logs=logging.ERROR,
        # The environment reaches local workers as it reaches process workers (the test fault hook too).
        env={FAULTS_ENV: os.environ[FAULTS_ENV]} if FAULTS_ENV in os.environ else None,
    )


def _local_config() -> Any:
    """Dask settings for the life of a local cluster (entered at start, left at close)."""
    import dask

    with contextlib.suppress(Exception):
        import multiprocessing

        import distributed.utils

        from engine.optimize.backends.process import PRELOAD

        if not distributed.utils._forkserver_preload_set:
            multiprocessing.get_context("forkserver").set_forkserver_preload(["distributed", PRELOAD])
            distributed.utils._forkserver_preload_set = True
    return dask.config.set(
        {
            "distributed.scheduler.allowed-failures": LOCAL_ALLOWED_FAILURES,
            "distributed.worker.multiprocessing-method": "forkserver",
        }
    )
