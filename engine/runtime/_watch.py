"""The study watch: a running study's store, read incrementally for the console's views of it."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.errors import InputError, StoreError
from engine.store.url import StoreLocation
from engine.telemetry import DriverRow, Heatmap, TrialRow, ValidationTelemetry
from engine.telemetry_map import HeatPoints, figures, thin_curve, validation_from_dict

if TYPE_CHECKING:
    from engine.store.protocol import StudyStore
    from engine.store.records import TrialRecord

log = logging.getLogger("engine.runtime")

LEADERBOARD = 25
PAGE = 4096  # trials a read takes from the store (the last short page ends a poll)
WATCH_INTERVAL_S = 1.0
HEATMAP_INTERVAL_S = 3.0


class StudyWatch:
    """Reads a running study's store incrementally and keeps the console's views of it.

    One read-only connection; every second it fetches the trials written since
    the last read (by rowid: only their parameters and objectives, see
    :meth:`~engine.store.protocol.StudyStore.points_after`), extends the
    best-so-far curve and the heatmap's columns, refreshes the leaderboard and,
    when the best trial changes, loads its equity curve from the stored
    artifacts. The heatmap folds in only the new rows (:class:`HeatPoints`).
    """

    def __init__(self, name: str, db: StoreLocation, *, maximize: bool) -> None:
        self.name = name
        self.db = db
        self.maximize = maximize
        self.rowid = 0
        self.convergence: list[float] = []
        self.params: list[dict[str, Any]] = []  # complete trials with a finite objective, in write order
        self.values: list[float] = []
        self.heat = HeatPoints()
        self.leaderboard: tuple[TrialRow, ...] = ()
        self.best_equity: tuple[float, ...] = ()
        self.heatmap: Heatmap | None = None
        self.importance: tuple[tuple[str, float], ...] = ()
        self.validation: ValidationTelemetry | None = None
        self.checkpointed_at: float | None = None
        self.checkpoint_trials = 0
        self.study_id: int | None = None
        self._equity_for: int | None = None
        self._heat_dirty = False
        self._heat_at = -1e9
        self.heatmap_axes: tuple[str, str] | None = None  # None: the two parameters with most values
        self.drivers: tuple[DriverRow, ...] = ()
        self._board_stale = True  # the leaderboard is read again only when a new trial could enter it
        self._convergence_frozen: tuple[float, ...] = ()
        self._store: StudyStore | None = None
        # The watch loop, the study's last read and the console's trial view share one
        # store: unserialized, two reads would each open one (leaking a connection thread,
        # which hangs the interpreter at exit) and count the same trials twice.
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._ahead: asyncio.Task[None] | None = None
        self._stopped = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"study-watch-{self.name}")

    def read_ahead(self) -> None:
        """The study's search has ended (its trials are final): read them now, beside its validation,
        so that the last read (:meth:`stop`) finds only the validation to show; no read every second
        until then (nothing else changes)."""
        if not self._stopped and self._ahead is None:
            if self._task is not None:
                self._task.cancel()
            self._ahead = asyncio.get_running_loop().create_task(self.poll(final=True))

    async def stop(self, *, read_last: bool = True) -> None:
        """One last read (so the final state is shown; ``read_last=False``: nobody will look), then close; once."""
        if self._stopped:
            return
        self._stopped = True
        for task in (self._task, self._ahead):
            if task is not None:
                if not read_last or task is self._task:
                    task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._task = self._ahead = None
        if read_last:
            with contextlib.suppress(Exception):
                await self.poll(final=True)
        await self._close()

    async def _close(self) -> None:
        async with self._lock:
            store, self._store = self._store, None
            if store is not None:
                with contextlib.suppress(Exception):
                    await store.close()

    async def _run(self) -> None:
        while True:
            try:
                await self.poll()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the store may be mid-creation; try again next tick
                log.debug("study watch %s: %s", self.name, error)
                await self._close()
            await asyncio.sleep(WATCH_INTERVAL_S)

    async def _open(self) -> StudyStore | None:
        if self._store is None:
            from engine.store.factory import open_study_store

            if isinstance(self.db, Path) and not self.db.exists():
                return None
            self._store = await open_study_store(self.db, readonly=True)
        return self._store

    async def poll(self, final: bool = False) -> None:
        """Read the trials stored since the last poll (``final``: rebuild the heatmap now)."""
        async with self._lock:
            await self._poll(final)

    async def _poll(self, final: bool) -> None:
        store = await self._open()
        if store is None:
            return
        record = await store.get_study(self.name)
        if record is None:
            return
        self.study_id = record.id
        if record.checkpoint_seq:
            self.checkpointed_at = record.updated
            self.checkpoint_trials = record.next_number
        while True:
            page = await store.points_after(record.id, self.rowid, limit=PAGE)
            self.rowid = max(self.rowid, page.rowid)
            self._board_stale = self._board_stale or self._may_enter_board(page.objectives)
            self.add(page.params, page.objectives)
            if page.read < PAGE:
                break
        if self._heat_dirty:
            self._convergence_frozen = thin_curve(self.convergence)
            now = time.monotonic()
            # importance is O(trials) in Python: every few seconds, not on every read
            if now - self._heat_at >= HEATMAP_INTERVAL_S or final:
                self._heat_at = now
                self.heatmap = self.heat.heatmap(self.maximize, self.heatmap_axes)
                self.importance = _importance(self.params, self.values, self.heat)
                self._heat_dirty = False
        self.drivers = tuple(
            DriverRow(d.host, d.pid, d.state, d.trials, d.rate) for d in await store.drivers(record.id)
        )
        if self._board_stale:  # stored trials never change: unless a new one could enter, the board stands
            top = await store.best(record.id, maximize=self.maximize, k=LEADERBOARD)
            self.leaderboard = tuple(
                TrialRow(
                    number=t.number,
                    value=t.objective,
                    params=tuple(sorted(t.params.items())),
                    metrics=figures(t.metrics),
                    state=str(t.state),
                    duration_s=float(t.duration_s or 0.0),
                )
                for t in top
            )
            self._board_stale = False
        leader = self.leaderboard[0].number if self.leaderboard else None
        if leader is not None and leader != self._equity_for:  # (its artifacts may be stored after it)
            arrays = await store.artifacts(record.id, leader)
            equity = arrays.get("equity")
            if equity is not None and len(equity):
                self.best_equity = thin_curve(equity)
                self._equity_for = leader
        if record.validation:
            self.validation = validation_from_dict(record.validation, len(self.values))

    def _may_enter_board(self, objectives: list[float]) -> bool:
        """Whether a new complete trial's objective could enter the leaderboard (a tie may: by number)."""
        if not objectives:
            return False
        if len(self.leaderboard) < LEADERBOARD:
            return True
        floor = self.leaderboard[-1].value
        if floor is None:
            return True
        return max(objectives) >= floor if self.maximize else min(objectives) <= floor

    def add(self, params: list[dict[str, Any]], objectives: list[float]) -> None:
        """Take complete trials read from the store, in write order (a non-finite objective is skipped)."""
        if not objectives:
            return
        values = np.asarray(objectives, dtype=np.float64)
        finite = np.isfinite(values)
        if not finite.all():
            params = [p for p, ok in zip(params, finite.tolist(), strict=True) if ok]
            values = values[finite]
            if not len(values):
                return
        new = values.tolist()
        first = self.convergence[-1] if self.convergence else new[0]
        running = itertools.accumulate(new, max if self.maximize else min, initial=first)
        next(running)  # the seed itself: the last best (or the first value) is not a trial of its own
        self.convergence.extend(running)
        self.params.extend(params)
        self.values.extend(new)
        self.heat.extend(params, new)
        self._heat_dirty = True

    def next_heatmap_axes(self) -> tuple[str, str] | None:
        """Show the next pair of parameters on the heatmap (wrapping round); the pair, or ``None``
        when fewer than two parameters vary."""
        pairs = self.heat.pairs()
        if not pairs:
            return None
        current = (self.heatmap.x_param, self.heatmap.y_param) if self.heatmap is not None else None
        self.heatmap_axes = pairs[(pairs.index(current) + 1) % len(pairs)] if current in pairs else pairs[0]
        self.heatmap = self.heat.heatmap(self.maximize, self.heatmap_axes)
        return self.heatmap_axes

    @property
    def curve(self) -> tuple[float, ...]:
        return self._convergence_frozen

    async def trial(self, number: int) -> tuple[TrialRecord, dict[str, Any]]:
        """The stored record and artifacts of trial ``number``."""
        async with self._lock:
            store = await self._open()
            if store is None or self.study_id is None:
                raise StoreError(f"{self.db}: study {self.name!r} has no stored trials yet")
            for trial in await store.trials(self.study_id):
                if trial.number == number:
                    return trial, await store.artifacts(self.study_id, number)
        raise InputError(f"study {self.name!r}: no trial #{number} in {self.db}")


def _importance(params: list[dict[str, Any]], values: list[float], heat: HeatPoints) -> tuple[tuple[str, float], ...]:
    """Each parameter's share of the objective's variance (first-order), largest first (``heat``: the
    same rows' columns: when every value is a number they are encoded without a pass over ``params``)."""
    # numba (via stability) loads here, after the console's first frame, not at its start
    from engine.analysis.importance import importance
    from engine.analysis.stability import encode_numbers

    if len(values) < 4:
        return ()
    names = heat.names
    columns = [heat.column(name) for name in names]
    numbers = all(not np.isnan(column).any() for column in columns)
    scores = importance(params, np.array(values), names=names, encoded=encode_numbers(columns) if numbers else None)
    return tuple((name, float(share)) for name, share in scores.items())
