"""The dask backend on a real cluster: a scheduler and workers started as separate processes on 127.0.0.1.

One worker is SIGKILLed mid-study: the study completes with the trials and
the best of the process backend. The scheduler is SIGKILLed mid-study: the
run stops with one clear error, the store keeps a checkpoint, and the study
resumes on another backend to the same trials as an uninterrupted run. Both
in-process (``Study``) and from outside (``genesis run`` subprocesses).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
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
from engine.optimize.trial import FAULTS_ENV
from engine.store.records import StudyState, TrialState
from engine.store.study_sqlite import SqliteStore
from tests.gate import STRATEGY_LINES, Gate
from tests.optimize.conftest import write_study
from tests.optimize.test_dask import stored_trials
from tests.optimize.test_kill_resume import _committed

STARTUP_S = 60.0
#: A grid of 171 trials on 20,000 bars: long enough to kill something in the middle.
GRID = {"bars": 20_000, "fast_high": 20, "fast_step": 1, "slow_high": 100, "batch_size": 32, "checkpoint_every": 16}


class Cluster:
    """A ``dask scheduler`` and ``dask worker`` processes, each in its own process group."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.scheduler_file = directory / "scheduler.json"
        self.scheduler: subprocess.Popen[bytes] | None = None
        self.address = ""
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
        while not (address := self._written_address()):
            assert self.scheduler.poll() is None, (self.directory / "scheduler.log").read_text()
            assert time.monotonic() < deadline, "the scheduler did not start"
            time.sleep(0.1)
        self.address = address
        for _ in range(workers):
            self.add_worker()
        return self.address

    def _written_address(self) -> str:
        """The scheduler's address once its file is complete JSON (it may be read mid-write), else ``""``."""
        try:
            return str(json.loads(self.scheduler_file.read_text())["address"])
        except (OSError, ValueError, KeyError):
            return ""

    def add_worker(self) -> subprocess.Popen[bytes]:
        """Start one more worker (named ``w0``, ``w1``, ... in order)."""
        index = len(self.workers)
        worker = self._spawn(
            ["distributed.cli.dask_worker", self.address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
             "--host", "127.0.0.1", "--name", f"w{index}", "--death-timeout", "30"],
            f"worker{index}.log",
        )
        self.workers.append(worker)
        return worker

    def wait_registered(self) -> None:
        """Block until every worker has registered with the scheduler (its log says so)."""
        deadline = time.monotonic() + STARTUP_S
        for index, worker in enumerate(self.workers):
            log = self.directory / f"worker{index}.log"
            while b"Registered to" not in log.read_bytes():
                assert worker.poll() is None, log.read_text()
                assert time.monotonic() < deadline, f"worker {index} did not register"
                time.sleep(0.05)

    @staticmethod
    def kill(process: subprocess.Popen[Any] | None) -> None:
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
    cluster.wait_registered()  # both get the scatter, so the survivor holds a copy when w0 dies

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


async def test_data_lost_with_its_only_worker_is_shipped_again_once(cluster: Cluster, tmp_path: Path) -> None:
    path = write_study(tmp_path, **GRID)
    reference = await Study.from_file(path, db=tmp_path / "inline.db", backend="inline").run()
    address = cluster.start(workers=1)
    cluster.wait_registered()
    fired: list[int] = []

    def replace_the_worker(progress: StudyProgress) -> None:
        # w1 joins after w0 (the only holder of the data) is gone: nobody has a copy left
        if not fired and progress.done >= 40:
            fired.append(progress.done)
            Cluster.kill(cluster.workers[0])
            cluster.add_worker()

    backend = DaskBackend(scheduler=address)
    summary = await Study.from_file(path, db=tmp_path / "dask.db", backend=backend).run(
        replace_the_worker, progress_interval_s=0.0
    )

    assert fired and fired[0] < summary.trials
    trials = await stored_trials(tmp_path / "dask.db")
    ref_trials = await stored_trials(tmp_path / "inline.db")
    assert {t.key: (t.number, t.objective) for t in trials} == {t.key: (t.number, t.objective) for t in ref_trials}
    assert all(t.state is TrialState.COMPLETE for t in trials)
    assert {t.worker for t in trials} == {"dask:w0", "dask:w1"}
    assert summary.best is not None and reference.best is not None and summary.best.key == reference.best.key
    # every chunk in flight lost the data, yet it went out again once, not once per chunk
    assert backend.scatters == 2


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



# ---------------------------------------------------------------------------
# ``genesis run`` from outside: the study file switched from process to dask in one line


GENESIS = [sys.executable, "-m", "genesis_tui.cli"]
CLI_GRID = {"bars": 50_000, "fast_high": 40, "fast_step": 1, "slow_high": 200, "batch_size": 32,
            "checkpoint_every": 16, "checkpoint_interval_s": 0.1, "backend": "process"}


def _stored(db: Path) -> dict[str, tuple[int, str, float | None, str]]:
    """Trials by key: ``(number, state, objective, worker)``; a key stored twice fails the test."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT key, number, state, objective, worker FROM trials").fetchall()
    assert len(rows) == len({r[0] for r in rows}), "a trial was stored twice"
    return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}


#: The trial of the ``genesis run`` under test that waits at a gate until the victim is killed: number
#: ~300 of the grid's 716 (fast-major, 20 slow values), after a quarter is stored (batches of 32).
HOLD = {"fast": 17, "slow": 90}


def _reference(cluster: Cluster, tmp_path: Path, name: str) -> tuple[Path, dict[str, Any], str, Gate]:
    """A study file run with ``genesis run`` on the process backend: ``(path, trials, best key, gate)``.

    Both run the gated strategy (the same objectives); ``path`` is the copy under test, whose
    trial :data:`HOLD` waits at ``gate``, the reference's is held by nothing."""
    (tmp_path / "ref").mkdir()
    Gate(tmp_path / "ref", fast=0, slow=0).write(tmp_path / "ref")  # holds nothing: fast is at least 2
    reference = write_study(tmp_path / "ref", name=name, strategy=STRATEGY_LINES, timeout=3600, **CLI_GRID)
    done = subprocess.run([*GENESIS, "run", str(reference), "--db", str(tmp_path / "ref.db"), "--json"],
                          capture_output=True, text=True, timeout=300, env=cluster.env)
    assert done.returncode == 0, done.stderr[-3000:]
    gate = Gate.at(tmp_path, HOLD)
    gate.write(tmp_path)
    path = write_study(tmp_path, name=name, strategy=STRATEGY_LINES, timeout=3600, **CLI_GRID)
    return path, _stored(tmp_path / "ref.db"), json.loads(done.stdout)["best"]["key"], gate


def _run_and_kill(
    cluster: Cluster, path: Path, db: Path, victim: subprocess.Popen[bytes] | None, total: int, gate: Gate
) -> tuple[int, str, str]:
    """``genesis run`` ``path``; SIGKILL ``victim`` once a quarter of ``total`` is stored and the gated
    trial waits (so the run cannot have completed), then open the gate: ``(code, out, err)``."""
    run = subprocess.Popen([*GENESIS, "run", str(path), "--db", str(db), "--headless", "--json"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cluster.env, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while _committed(db) < total // 4 or not gate.held():
            assert run.poll() is None, run.stderr.read().decode()[-3000:] if run.stderr else ""
            assert time.monotonic() < deadline, "the study never got going"
            time.sleep(0.02)
        Cluster.kill(victim)
        assert _committed(db) < total
        gate.open()
        out, err = run.communicate(timeout=300)
    finally:
        gate.open()
        Cluster.kill(run)
    return run.returncode, out.decode(), err.decode()


def test_genesis_run_on_a_cluster_survives_a_worker_kill_from_outside(cluster: Cluster, tmp_path: Path) -> None:
    address = cluster.start(workers=2)
    cluster.wait_registered()  # both take chunks from the start, so both appear before w0 dies
    path, expected, best, gate = _reference(cluster, tmp_path, "outside")
    path.write_text(path.read_text().replace('backend = "process"', f'backend = "dask"\nscheduler = "{address}"'))

    code, out, err = _run_and_kill(cluster, path, tmp_path / "dask.db", cluster.workers[0], len(expected), gate)
    assert code == 0, err[-3000:]
    summary = json.loads(out)
    assert summary["backend"] == "dask" and summary["state"] == "complete"
    got = _stored(tmp_path / "dask.db")
    assert {k: v[:3] for k, v in got.items()} == {k: v[:3] for k, v in expected.items()}
    assert {v[3] for v in got.values()} == {"dask:w0", "dask:w1"}  # the cluster's workers, both
    assert summary["best"]["key"] == best


def test_genesis_run_losing_the_scheduler_exits_1_then_resumes_on_the_process_backend(
    cluster: Cluster, tmp_path: Path
) -> None:
    address = cluster.start(workers=1)
    path, expected, best, gate = _reference(cluster, tmp_path, "lost")
    path.write_text(path.read_text().replace('backend = "process"', f'backend = "dask"\nscheduler = "{address}"'))
    db = tmp_path / "dask.db"

    code, _, err = _run_and_kill(cluster, path, db, cluster.scheduler, len(expected), gate)
    assert code == 1, err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith("genesis: ")]
    assert len(lines) == 1 and "lost the dask scheduler" in lines[0]
    assert "Traceback" not in err  # Dask's reconnect noise stays out of the user's way
    assert 0 < _committed(db) < len(expected)

    resumed = subprocess.run([*GENESIS, "resume", "lost", "--db", str(db), "--backend", "process", "--json"],
                             capture_output=True, text=True, timeout=300, env=cluster.env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    got = _stored(db)
    assert {k: v[:3] for k, v in got.items()} == {k: v[:3] for k, v in expected.items()}
    assert json.loads(resumed.stdout)["best"]["key"] == best
