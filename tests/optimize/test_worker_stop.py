"""A stop requested while a process pool is starting starts no more workers (real processes).

Workers are started from a thread pool of the event loop; the ones already
being started when the stop arrives may finish, the queued ones must not start.
Counted, not timed.
"""

from __future__ import annotations

import asyncio
import multiprocessing.process
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from engine.data import load
from engine.optimize.backends.process import ProcessBackend
from engine.optimize.executor import Executor
from engine.optimize.study import Study
from tests.optimize.backend_conformance import SETUP, _tasks

pytestmark = pytest.mark.timeout(300)

#: Processes being started at once: the size of the loop's default thread pool.
IN_FLIGHT = min(32, (os.cpu_count() or 1) + 4)
#: Far more workers than can be in flight at once.
WORKERS = IN_FLIGHT + 12


class StartCounter:
    """Counts worker processes started (``genesis-w*``) and those whose start began after ``stopped``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, after_each: Callable[[int], None] = lambda n: None) -> None:
        self.lock = threading.Lock()
        self.started: list[int] = []
        self.after_stop = 0
        self.stopped = threading.Event()
        original = multiprocessing.process.BaseProcess.start

        def start(process: Any) -> None:
            if not process.name.startswith("genesis-w"):
                return original(process)
            late = self.stopped.is_set()
            original(process)
            with self.lock:
                self.started.append(process.pid)
                self.after_stop += late
                count = len(self.started)
            after_each(count)

        monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", start)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def test_executor_stop_while_the_pool_starts_stops_worker_creation(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    executor = Executor(ProcessBackend(workers=WORKERS, trial_timeout_s=30.0))
    children_at_stop: set[int] = set()

    def stop_now() -> None:
        executor.stop()
        counter.stopped.set()
        children_at_stop.update(p.pid for p in psutil.Process().children(recursive=True))

    def after_each(count: int) -> None:  # (in a starting thread)
        if count == 2:
            loop.call_soon_threadsafe(stop_now)

    counter = StartCounter(monkeypatch, after_each)
    try:
        await executor.start(load("synthetic:bars=500,seed=3,timeframe=1m"), SETUP)
        assert counter.stopped.is_set()
        new_children = {p.pid for p in psutil.Process().children(recursive=True)} - children_at_stop
        # Only the starts already under way when the stop came may finish; the rest never begin.
        assert counter.after_stop <= IN_FLIGHT
        assert len(new_children) <= IN_FLIGHT
        assert len(counter.started) < WORKERS
        seen: list[Any] = []

        async def on_done(event: Any) -> None:
            seen.append(event)

        outcome = await executor.run_batch(_tasks(0, 20), on_done)
        assert outcome.stopped and outcome.reported == 0 and not seen
    finally:
        await executor.close()
    assert not [pid for pid in counter.started if _alive(pid)]  # every started worker is gone


async def test_a_study_stopped_before_its_pool_starts_starts_almost_no_worker(
    monkeypatch: pytest.MonkeyPatch, study_file: Callable[..., Path], tmp_path: Path
) -> None:
    """The study's stop (what SIGTERM calls) reaches the pool while it starts."""
    counter = StartCounter(monkeypatch)
    study = Study.from_file(study_file(backend="process"), db=tmp_path / "s.db", workers=WORKERS)
    stops: list[asyncio.Task[None]] = []

    def on_progress(_snapshot: Any) -> None:  # the first call comes before the workers start
        if not stops:
            stops.append(asyncio.get_running_loop().create_task(study.stop()))

    summary = await study.run(progress_callback=on_progress)
    assert summary.state == "stopped" and summary.trials == 0
    assert len(counter.started) <= IN_FLIGHT
    assert not [pid for pid in counter.started if _alive(pid)]
