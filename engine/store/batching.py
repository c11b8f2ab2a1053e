"""The write side every study store shares: writes queued in memory, committed in batches by one writer task.

Trials, artifacts and checkpoints are queued and written in one transaction
per batch (``batch_size`` trials or ``batch_interval_s`` seconds, whichever
first); a checkpoint is written in the same transaction as the trials queued
before it, so sampler state and trials never disagree. A failed write is kept
and raised on the next call, never dropped. A backend supplies
:meth:`BatchedStore._transaction` (commit one :class:`Pending`); the queueing,
the timing and the error rules are the same for SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import keyword
from collections.abc import Iterable, Sequence
from typing import Any, Self

import msgspec
import numpy as np

from engine.errors import StoreError, StoreWriteError
from engine.profile import profiler
from engine.store.artifacts import CODEC, encode_array
from engine.store.records import TrialRecord, TrialResult
from engine.store.result_batch import STATES, ResultBatch

_json_encoder = msgspec.json.Encoder()
_STATE_VALUES = [state.value for state in STATES]  # by code


def dumps(value: Any) -> str:
    """JSON text of ``value`` (the stores' one encoder)."""
    return _json_encoder.encode(value).decode()


def trial_row(study_id: int, trial: TrialRecord) -> tuple[Any, ...]:
    """A queued trial: the columns of ``trials`` after ``id``, in order (JSON as text)."""
    return (
        study_id,
        trial.number,
        trial.key,
        dumps(trial.params),
        trial.state.value,
        None if trial.metrics is None else dumps(trial.metrics),
        trial.objective,
        trial.started,
        trial.duration_s,
        trial.worker,
        trial.error,
        trial.step,
        trial.batch,
    )


def metrics_texts(results: ResultBatch) -> list[str | None]:
    """Each row's metrics as the JSON text a worker's dict would encode to (``None``: no metrics)."""
    encode = _json_encoder.encode
    names = results.metric_names
    ints = [names.index(name) for name in results.int_metrics]
    simple = results.has_metrics.copy()
    if results.partial:
        simple[list(results.partial)] = False
    if ints:
        simple &= ~np.isnan(results.metrics[:, ints]).any(axis=1)
    layout = _metrics_struct(names)
    if layout is not None and bool(simple.all()):
        # The common case: one struct per row, built and encoded in C (half the cost of a dict).
        columns = results.metrics.T.tolist()
        for j in ints:
            columns[j] = results.metrics[:, j].astype(np.int64).tolist()
        return [text.decode() for text in map(encode, map(layout, *columns))]
    texts: list[str | None] = []
    for row in range(len(results)):
        metrics = results.metrics_dict(row)
        texts.append(None if metrics is None else encode(metrics).decode())
    return texts


@functools.lru_cache(maxsize=16)
def _metrics_struct(names: tuple[str, ...]) -> Any:
    """A struct type whose JSON is the object ``{name: value, ...}`` in ``names``' order (``None``: names
    that cannot be fields)."""
    if not names or not all(name.isidentifier() and not keyword.iskeyword(name) for name in names):
        return None
    try:
        return msgspec.defstruct("Metrics", list(names), gc=False)  # (floats only: one per row, short-lived)
    except (TypeError, ValueError):
        return None


class Pending:
    """Writes queued for the next transaction (touched only on the event loop).

    ``trials``: :func:`trial_row` tuples; ``artifacts``: ``(study_id, number,
    name, dtype, shape, codec, blob)``; ``drops``: ``(study_id, number)``;
    ``checkpoints``: ``study_id -> (state JSON, seq, next_number)``;
    ``blocks``: ``(study_id, number, float32 bytes)`` (first write wins, as for trials).
    """

    __slots__ = ("artifacts", "blocks", "checkpoints", "drops", "trials", "waiters")

    def __init__(self) -> None:
        self.trials: list[tuple[Any, ...]] = []
        self.blocks: list[tuple[int, int, bytes]] = []
        self.artifacts: list[tuple[Any, ...]] = []
        self.drops: list[tuple[int, int]] = []
        self.checkpoints: dict[int, tuple[Any, ...]] = {}
        self.waiters: list[asyncio.Future[None]] = []

    def __len__(self) -> int:
        return len(self.trials) + len(self.artifacts) + len(self.drops) + len(self.checkpoints)


class BatchedStore:
    """The queue and the writer task; subclasses open connections and implement ``_transaction``.

    ``path`` is what messages name the store by (a file, or a redacted URL).
    """

    path: Any

    def _start_writer(self, *, batch_size: int, batch_interval_s: float, writable: bool) -> None:
        self.batch_size = max(1, batch_size)
        self.batch_interval_s = batch_interval_s
        self.commits = 0  # write transactions committed by the writer task
        self.trials_written = 0
        self._writable = writable
        self._pending = Pending()
        self._wake = asyncio.Event()
        self._closing = False
        self._error: BaseException | None = None
        self._task: asyncio.Task[None] | None = None
        if writable:
            self._task = asyncio.get_running_loop().create_task(self._write_loop(), name="store-writer")

    async def _transaction(self, pending: Pending) -> None:
        """Commit ``pending`` in one transaction (trials, then drops, artifacts, checkpoints)."""
        raise NotImplementedError

    async def close(self) -> None:
        """Flush queued writes and close the connections."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _stop_writer(self) -> None:
        """Flush what is queued and end the writer task (the first step of ``close``)."""
        if self._task is not None:
            self._closing = True
            self._wake.set()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._writable = False

    def _write_failed(self, error: BaseException) -> StoreWriteError:
        """The one error a failed write is reported as (naming the store)."""
        return StoreWriteError(f"{self.path}: write failed: {error}")

    def _raise_closed_error(self) -> None:
        """After ``close``: raise a write failure that no call has reported yet."""
        if self._error is not None:
            error, self._error = self._error, None
            raise self._write_failed(error) from None

    # -- the writer task ----------------------------------------------------

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.batch_interval_s
        while True:
            timeout = max(0.0, deadline - loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            pending = self._pending
            due = (
                len(pending.trials) >= self.batch_size
                or pending.checkpoints
                or pending.waiters
                or self._closing
                or (loop.time() >= deadline and len(pending))
            )
            if due:
                await self._flush_pending()
                deadline = loop.time() + self.batch_interval_s
            elif not len(pending):
                deadline = loop.time() + self.batch_interval_s
            if self._closing and not len(self._pending) and not self._pending.waiters:
                return

    async def _flush_pending(self) -> None:
        pending, self._pending = self._pending, Pending()
        if self._error is not None:
            # After a failed write no batch is tried again: the next call reports the failure, and the
            # one-statement write that follows it (the study's final state) must have the connection to
            # itself, not interleave with (and be rolled back by) a batch queued during the failure.
            for waiter in pending.waiters:
                if not waiter.done():
                    waiter.set_exception(self._write_failed(self._error))
            return
        try:
            if len(pending):
                with profiler.stage("optimize.store_write"):
                    await self._transaction(pending)
                self.commits += 1
                self.trials_written += len(pending.trials)
        except BaseException as error:  # a failed write must not vanish: surface it on the next call
            self._error = error
            for waiter in pending.waiters:
                if not waiter.done():
                    waiter.set_exception(self._write_failed(error))
            if isinstance(error, asyncio.CancelledError):
                raise
            return
        for waiter in pending.waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._write_failed(self._error)
        if not self._writable:
            raise StoreError(f"{self.path}: store opened read-only")

    async def _backpressure(self) -> None:
        if len(self._pending.trials) >= 4 * self.batch_size:
            await self.flush()

    async def _before_write_now(self, *, after_failure: bool) -> None:
        """Everything queued is committed before a one-statement write (``after_failure``: even after an error).

        ``after_failure``: try it even though an earlier write failed (a full
        disk may still take a one-row update once the failed batch rolled back).
        """
        if after_failure:
            with contextlib.suppress(StoreWriteError):
                await self.flush()
            if not self._writable:
                raise StoreError(f"{self.path}: store opened read-only")
        else:
            self._raise_if_failed()
            await self.flush()

    # -- batched writes -----------------------------------------------------

    async def add_trials(self, study_id: int, trials: Iterable[TrialRecord]) -> None:
        """Queue trials for the next batch (waits only when far behind)."""
        self._raise_if_failed()
        rows = self._pending.trials
        before = len(rows)
        rows.extend(trial_row(study_id, trial) for trial in trials)
        if len(rows) >= self.batch_size > before:
            self._wake.set()
        await self._backpressure()

    async def add_results(self, study_id: int, batch: int, pairs: Iterable[tuple[TrialResult, Any]]) -> None:
        """Queue workers' results with their tasks (``.key``, ``.params``): the fast path of a running study."""
        self._raise_if_failed()
        rows = self._pending.trials
        blocks = self._pending.blocks
        before = len(rows)
        encode = _json_encoder.encode
        for r, task in pairs:
            rows.append((
                study_id, r.number, task.key, encode(task.params).decode(), r.state.value,
                None if r.metrics is None else encode(r.metrics).decode(), r.objective, r.started, r.duration_s,
                r.worker, r.error, r.step, batch,
            ))
            if r.blocks is not None:
                blocks.append((study_id, r.number, r.blocks))
        if len(rows) >= self.batch_size > before:
            self._wake.set()
        await self._backpressure()

    async def add_batch(self, study_id: int, batch: int, results: ResultBatch, tasks: Sequence[Any]) -> None:
        """Queue a worker's result columns with their tasks (``tasks[i]`` is row ``i``'s: ``.key``, ``.params``).

        The fast path of a running study: rows are encoded straight from the columns."""
        self._raise_if_failed()
        n = len(results)
        if len(tasks) != n:
            raise ValueError(f"{n} results for {len(tasks)} tasks")
        rows = self._pending.trials
        before = len(rows)
        encode = _json_encoder.encode
        numbers = results.numbers.tolist()
        if [task.number for task in tasks] != numbers:
            raise ValueError("results given with the tasks of other trials (rows out of step)")
        states = list(map(_STATE_VALUES.__getitem__, results.states.tolist()))
        objectives = results.objectives.tolist()
        if np.isnan(results.objectives).any():
            objectives = [None if o != o else o for o in objectives]
        errors = results.errors
        rows.extend(
            zip(
                [study_id] * n,
                numbers,
                [task.key for task in tasks],
                [encode(task.params).decode() for task in tasks],
                states,
                metrics_texts(results),
                objectives,
                results.started.tolist(),
                results.durations.tolist(),
                [results.worker] * n,
                [errors.get(row) for row in range(n)] if errors else [None] * n,
                results.steps.tolist(),
                [batch] * n,
                strict=True,
            )
        )
        if results.blocks is not None:
            kept = range(n) if results.has_blocks is None else np.flatnonzero(results.has_blocks).tolist()
            raw = np.ascontiguousarray(results.blocks, dtype="<f4").tobytes()  # one copy, sliced by row
            width = len(raw) // n if n else 0
            self._pending.blocks.extend((study_id, numbers[row], raw[row * width : (row + 1) * width]) for row in kept)
        if len(rows) >= self.batch_size > before:
            self._wake.set()
        await self._backpressure()

    async def add_trial(self, study_id: int, trial: TrialRecord) -> None:
        """Queue one trial."""
        await self.add_trials(study_id, (trial,))

    def put_artifacts(self, study_id: int, number: int, arrays: dict[str, Any]) -> None:
        """Queue a trial's artifacts (arrays, or ``(dtype, shape, blob)`` encoded by a worker), replacing any."""
        self._raise_if_failed()
        for name, array in arrays.items():
            dtype, shape, blob = array if isinstance(array, tuple) else encode_array(array)
            self._pending.artifacts.append((study_id, number, name, dtype, shape, CODEC, blob))

    def drop_artifacts(self, study_id: int, number: int) -> None:
        """Queue the removal of a trial's artifacts (it left the top N)."""
        self._raise_if_failed()
        # An artifact still queued is dropped here rather than written then deleted.
        self._pending.artifacts = [a for a in self._pending.artifacts if not (a[0] == study_id and a[1] == number)]
        self._pending.drops.append((study_id, number))

    async def checkpoint(
        self, study_id: int, sampler_state: dict[str, Any], seq: int, next_number: int, *, wait: bool = True
    ) -> None:
        """Write the sampler state with every trial queued so far, in one transaction; wait for it
        unless ``wait`` is false (the transaction may then also take trials queued after it)."""
        self._raise_if_failed()
        self._pending.checkpoints[study_id] = (dumps(sampler_state), seq, next_number)
        if wait:
            await self.flush()
        else:
            self._wake.set()

    async def flush(self) -> None:
        """Commit everything queued so far and wait for it."""
        if self._task is None:
            return
        if self._error is not None:
            self._raise_if_failed()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.waiters.append(waiter)
        self._wake.set()
        await waiter

    @property
    def queued(self) -> int:
        """Trials queued and not yet committed."""
        return len(self._pending.trials)
