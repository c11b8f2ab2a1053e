"""The dask backend on a real cluster: a scheduler and workers started as separate processes on 127.0.0.1.

One worker is SIGKILLed mid-study: the study completes with the trials and
the best of the process backend. The scheduler is SIGKILLed mid-study: the
run stops with one clear error, the store keeps a checkpoint, and the study
resumes inline to the same trials as an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.errors import NetworkError
from engine.optimize import Study
from engine.optimize.backends.dask import DaskBackend
from engine.optimize.progress import StudyProgress
from engine.optimize.records import StudyState, TrialState
from engine.optimize.store import SqliteStore
from engine.optimize.trial import FAULTS_ENV
from tests.optimize.conftest import write_study
from tests.optimize.test_dask import stored_trials

STARTUP_S = 60.0
#: A grid of 171 trials on 20,000 bars: long enough to kill something in the middle.
GRID = {"bars": 20_000, "fast_high": 20, "fast_step": 1, "slow_high": 100, "batch_size": 32, "checkpoint_every": 16}


class Cluster:
    """A ``dask scheduler`` and ``dask worker`` processes, each in its own process group."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.scheduler_file = directory / "scheduler.json"
        self.scheduler: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self.env = {k: v for k, v in os.environ.items() if k != FAULTS_ENV}

    def _spawn(self, args: list[str], log: str) -> subprocess.Popen[bytes]:
        with open(self.directory / log, "wb") as out:
            return subprocess.Popen(
                [sys.executable, "-m", *args], stdout=out, stderr=subprocess.STDOUT, env=self.env,
                start_new_session=True,
            )

    def start(self, workers: int) -> str:
        self.scheduler = self._spawn(
            ["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(self.scheduler_file), "--idle-timeout", "300"],
            "scheduler.log",
        )
        deadline = time.monotonic() + STARTUP_S
        while not self.scheduler_file.exists() or not self.scheduler_file.read_text().strip():
            assert self.scheduler.poll() is None, (self.directory / "scheduler.log").read_text()
            assert time.monotonic() < deadline, "the scheduler did not start"
            time.sleep(0.1)
        time.sleep(0.1)
        address = json.loads(self.scheduler_file.read_text())["address"]
        for index in range(workers):
            self.workers.append(
                self._spawn(
                    ["distributed.cli.dask_worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
                     "--host", "127.0.0.1", "--name", f"w{index}", "--death-timeout", "30"],
                    f"worker{index}.log",
                )
            )
        return address

    @staticmethod
    def kill(process: subprocess.Popen[bytes] | None) -> None:
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)

    def close(self) -> None:
        for process in [*self.workers, self.scheduler]:
            self.kill(process)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A cluster that is torn down whatever happens in the test."""
    running = Cluster(tmp_path)
    try:
        yield running
    finally:
        running.close()


def _killer(process: Any, after: int) -> Any:
    """A progress callback that SIGKILLs ``process`` once ``after`` trials are done."""
    fired: list[int] = []

    def callback(progress: StudyProgress) -> None:
        if not fired and progress.done >= after:
            fired.append(progress.done)
            Cluster.kill(process)

    callback.fired = fired  # type: ignore[attr-defined]
    return callback


async def test_a_worker_killed_mid_study_changes_nothing(cluster: Cluster, tmp_path: Path) -> None:
    path = write_study(tmp_path, **GRID)
    reference = await Study.from_file(path, db=tmp_path / "process.db", backend="process", workers=2).run()
    address = cluster.start(workers=2)

    killer = _killer(cluster.workers[0], after=40)
    backend = DaskBackend(scheduler=address)
    summary = await Study.from_file(path, db=tmp_path / "dask.db", backend=backend).run(killer, progress_interval_s=0.0)

    assert killer.fired, "the worker was not killed mid-study"
    assert killer.fired[0] < summary.trials
    assert cluster.workers[0].poll() is not None and cluster.workers[1].poll() is None
    trials = await stored_trials(tmp_path / "dask.db")
    ref_trials = await stored_trials(tmp_path / "process.db")
    assert len({t.key for t in trials}) == len(trials)  # none stored twice
    assert {t.key: (t.number, t.objective) for t in trials} == {t.key: (t.number, t.objective) for t in ref_trials}
    assert all(t.state is TrialState.COMPLETE for t in trials)
    assert summary.best is not None and reference.best is not None
    assert summary.best.key == reference.best.key
    assert {t.worker for t in trials} >= {"dask:w0", "dask:w1"}  # both worked before the kill
    assert backend.scatters == 1  # the data went out once; the survivor kept its copy
    assert backend.max_in_flight <= 2 * 2


async def test_losing_the_scheduler_stops_with_a_checkpoint_that_resumes_on_another_backend(
    cluster: Cluster, tmp_path: Path
) -> None:
    path = write_study(tmp_path, **GRID)
    reference = await Study.from_file(path, db=tmp_path / "ref.db", backend="inline").run()
    address = cluster.start(workers=1)
    db = tmp_path / "dask.db"

    killer = _killer(cluster.scheduler, after=40)
    with pytest.raises(NetworkError, match="lost the dask scheduler") as info:
        await Study.from_file(path, db=db, backend=DaskBackend(scheduler=address)).run(killer, progress_interval_s=0.0)
    assert killer.fired and "\n" not in str(info.value)

    store = await SqliteStore.open(db, readonly=True)
    try:
        record = await store.require_study("t")
        assert record.state is StudyState.FAILED
        assert 0 < len(await store.trials(record.id)) < reference.trials
    finally:
        await store.close()

    resumed = await Study.from_file(path, db=db, backend="inline").run()
    trials = await stored_trials(db)
    ref_trials = await stored_trials(tmp_path / "ref.db")
    assert len({t.key for t in trials}) == len(trials)
    assert {t.key: (t.number, t.objective) for t in trials} == {t.key: (t.number, t.objective) for t in ref_trials}
    assert resumed.best is not None and reference.best is not None and resumed.best.key == reference.best.key


async def test_an_unreachable_scheduler_is_one_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    path = write_study(tmp_path)
    backend = DaskBackend(scheduler=f"tcp://127.0.0.1:{port}", connect_timeout_s=1.0)
    with pytest.raises(NetworkError, match=f"cannot reach the dask scheduler at tcp://127.0.0.1:{port}") as info:
        await Study.from_file(path, db=tmp_path / "s.db", backend=backend).run()
    assert "\n" not in str(info.value)

