"""The shared-study loop: one of several drivers takes claims from a PostgreSQL store until the study is done.

Each pass takes a claim whose lease ran out (a dead driver's), else a new
claim from the shared sampler (:class:`~engine.store.claims.ClaimBoard`),
runs the claim's points whose keys are not committed yet, commits the
trials, then closes the claim and tells the shared sampler. A background
heartbeat renews the driver's leases. A driver that stops (SIGINT, SIGTERM,
a stop from the console) hands its open claims back at once; one that dies
leaves them to expire after the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from engine.errors import ConfigError
from engine.optimize.samplers import Sampler
from engine.optimize.study import (
    ARTIFACT_FILL_INTERVAL_S,
    MAX_EMPTY_BATCHES,
    _BatchLoop,
    _make_sampler,
)
from engine.profile import profiler
from engine.store.claims import Claim, ClaimBoard, TellFn
from engine.store.records import TrialTask
from engine.store.url import DatabaseUrl

if TYPE_CHECKING:
    from engine.optimize.spec import StudySpec

log = logging.getLogger("engine.optimize.shared")

#: Lease of a claim, seconds (``GENESIS_LEASE_S`` overrides: tests shorten it).
DEFAULT_LEASE_S = 30.0
#: A claim is at most this many points, so several drivers share even a small study.
MAX_CLAIM = 256
#: How often a driver counts the others' trials into its progress (seconds).
SYNC_INTERVAL_S = 2.0


def lease_seconds() -> float:
    """The lease from ``GENESIS_LEASE_S`` (default :data:`DEFAULT_LEASE_S`)."""
    text = os.environ.get("GENESIS_LEASE_S", "").strip()
    if not text:
        return DEFAULT_LEASE_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.5 <= value <= 86400:
        raise ConfigError(f"GENESIS_LEASE_S: expected seconds between 0.5 and 86400, got {text!r}")
    return value


def driver_name() -> str:
    """This driver's id in the store: host, pid and a random tail (a pid is reused across reboots)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class SharedLoop(_BatchLoop):
    """The batch loop of a study several drivers share (see the module docstring)."""

    async def run(self) -> str | None:
        assert isinstance(self.study.db, DatabaseUrl)
        lease = lease_seconds()
        board = await ClaimBoard.open(self.study.db, lease_s=lease)
        self.driver = driver_name()
        study_id = self.record.id
        await board.register(study_id, self.driver, socket.gethostname(), os.getpid())
        self._leaving = asyncio.Event()
        beat = asyncio.create_task(self._heartbeat(board, lease / 3), name="claims-heartbeat")
        finished = False
        try:
            finished = await self._drive(board, lease)
            if finished and self.failure is None and not self.study.stop_requested:
                await self._fill_artifacts()
            return self.failure
        finally:
            # Not cancelled: a heartbeat cut off inside its transaction would leave the connection unusable.
            self._leaving.set()
            with contextlib.suppress(Exception):
                await beat
            with contextlib.suppress(Exception):
                await board.leave(study_id, self.driver, "done" if finished else "stopped")
            await board.close()

    async def _heartbeat(self, board: ClaimBoard, every_s: float) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._leaving.wait(), every_s)
            if self._leaving.is_set():
                return
            try:
                await board.heartbeat(self.record.id, self.driver)
            except Exception as error:  # a dropped connection: the leases may run out; the claims survive
                log.warning("%s: heartbeat failed: %s", self.study.name, error)

    async def _drive(self, board: ClaimBoard, lease: float) -> bool:
        """Take and run claims; ``True`` once the study is done, ``False`` on a stop or a failure."""
        study, study_id = self.study, self.record.id
        probe = _make_sampler(study.spec)
        want = min(probe.preferred_batch or study.batch_size, MAX_CLAIM)
        tell = _teller(study.spec)
        initial = (self.record.sampler_state, max(0, self.done - len(self.stored)), self.next_number)
        idle = 0
        self._synced = time.monotonic()
        while not study.stop_requested and self.failure is None:
            claim = await board.take_expired(study_id, self.driver)
            if claim is not None:
                log.info("%s: took over claim %d (%d points) from a driver whose lease ran out",
                         study.name, claim.id, len(claim.points))
            else:
                with profiler.stage("optimize.sampler"):
                    claim = await board.claim(study_id, self.driver, self._ask, want, budget=study.budget,
                                              initial=initial)
            if claim is None:
                if await board.finished(study_id, study.budget):
                    await self._sync_progress()
                    return True
                # Others hold open claims (wait for them to close or expire), or the sampler awaits results.
                idle = idle + 1 if await board.open_claims(study_id) == 0 else 0
                if idle >= MAX_EMPTY_BATCHES:
                    return True
                await asyncio.sleep(min(1.0, lease / 4))
                continue
            idle = 0
            values = await self._run_claim(board, claim)
            if values is None:
                return False
            await self.store.flush()  # the claim closes only once its trials are committed
            if not await board.complete(claim, self.driver, values, tell):
                log.warning("%s: claim %d was handed to another driver (this one stalled past its lease)",
                            study.name, claim.id)
            if time.monotonic() - self._synced >= SYNC_INTERVAL_S:
                await self._sync_progress()
            self.emit()
            if time.monotonic() - self.last_fill >= ARTIFACT_FILL_INTERVAL_S and not await self._fill_artifacts():
                return False
        return False

    async def _sync_progress(self) -> None:
        """Count the other drivers' committed trials and best into this driver's progress (not its rate)."""
        self._synced = time.monotonic()
        tracker, study_id = self.tracker, self.record.id
        for state, n in (await self.store.counts(study_id)).items():
            mine = getattr(tracker, state.value, None)
            if isinstance(mine, int) and n > mine:
                setattr(tracker, state.value, n)
                tracker.resumed_from += n - mine
        for best in await self.store.best(study_id, maximize=self.study.maximize, k=1):
            if best.objective is not None:
                tracker.offer_best(best.objective, best.number, best.params, self.study.maximize)

    def _ask(self, state: dict[str, Any] | None, n: int) -> tuple[list[dict[str, Any]], dict[str, Any], bool]:
        sampler = _make_sampler(self.study.spec)
        if state is not None:
            sampler.set_state(state)
        points = sampler.ask(n)
        return points, sampler.get_state(), sampler.exhausted

    async def _run_claim(self, board: ClaimBoard, claim: Claim) -> list[float | None] | None:
        """Run the claim's points not committed yet; every point's told value, or ``None`` on a stop."""
        space = self.study.space
        keys = [space.trial_key(params) for params in claim.points]
        stored = await board.stored_values(claim.study_id, keys)
        tasks = [
            TrialTask(claim.first_number + i, dict(params), key)
            for i, (params, key) in enumerate(zip(claim.points, keys, strict=True))
            if key not in stored
        ]
        with profiler.stage("optimize.evaluate"):
            finished = await self._evaluate(tasks, claim.id)
        if finished is None:
            return None
        return [
            stored[key] if key in stored else finished.get(claim.first_number + i)
            for i, key in enumerate(keys)
        ]


def _teller(spec: StudySpec) -> TellFn | None:
    """What closes a claim tells the shared sampler (``None`` for samplers that learn nothing from results)."""
    if type(_make_sampler(spec)).tell is Sampler.tell:
        return None

    def tell(
        state: dict[str, Any] | None, points: Sequence[dict[str, Any]], values: Sequence[float | None]
    ) -> dict[str, Any]:
        sampler = _make_sampler(spec)
        if state is not None:
            sampler.set_state(state)
        for params, value in zip(points, values, strict=True):
            sampler.tell(params, value)
        return sampler.get_state()

    return tell
