"""The dask backend on a real ``LocalCluster`` (2 worker processes, 1 thread each).

Same trials and the same best as the inline and process backends, failure
isolation (a trial that raises, one that hangs past its timeout, one that
kills its worker), and the missing-extra error.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine.errors import ConfigError
from engine.optimize import Study
from engine.optimize.backends.dask import DaskBackend
from engine.optimize.trial import FAULTS_ENV
from engine.store.records import TrialRecord, TrialState
from engine.store.study_sqlite import SqliteStore
from tests.optimize.conftest import write_study

GENETIC = {"sampler": "genetic", "trials": 40, "search_extra": "population = 10\ngenerations = 4\n"}


async def stored_trials(db: Path, name: str = "t") -> list[TrialRecord]:
    store = await SqliteStore.open(db, readonly=True)
    try:
        study = await store.require_study(name)
        return await store.trials(study.id)
    finally:
        await store.close()


@pytest.fixture(scope="module")
def inline_reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The genetic study run inline: trials by key and the best key."""
    directory = tmp_path_factory.mktemp("reference")
    path = write_study(directory, **GENETIC)

    async def run() -> dict[str, Any]:
        summary = await Study.from_file(path, db=directory / "ref.db", backend="inline").run()
        trials = await stored_trials(directory / "ref.db")
        assert summary.best is not None
        return {"trials": {t.key: (t.number, t.objective) for t in trials}, "best": summary.best.key}

    return asyncio.run(run())


@pytest.mark.parametrize("backend", ["inline", "process", "dask"])
async def test_every_backend_gives_the_same_trials_and_best(
    backend: str, inline_reference: dict[str, Any], study_file: Callable[..., Path], tmp_path: Path
) -> None:
    """The study file names its backend (dask: a local cluster of 2 workers); nothing else changes."""
    path = study_file(backend=backend, workers=2, **GENETIC)
    summary = await Study.from_file(path, db=tmp_path / "s.db").run()
    trials = {t.key: (t.number, t.objective) for t in await stored_trials(tmp_path / "s.db")}
    assert trials == inline_reference["trials"]
    assert summary.best is not None and summary.best.key == inline_reference["best"]
    assert summary.extra["backend"] == backend
    if backend != "inline":
        assert summary.extra["indicator_cache"]["hits"] > 0  # each worker's cache served later chunks


async def test_dask_isolates_raise_hang_and_worker_death(
    study_file: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on the process backend: each faulty trial is failed with its reason, the rest complete, none twice."""
    monkeypatch.setenv(FAULTS_ENV, "3:raise,7:hang,11:exit")
    db = tmp_path / "s.db"
    # The hang costs the timeout; 5 s keeps an ordinary trial on a very busy machine well inside it.
    path = study_file(timeout=5, batch_size=40, max_failures=5)
    backend = DaskBackend(workers=2, trial_timeout_s=5)
    summary = await Study.from_file(path, db=db, backend=backend).run()
    trials = await stored_trials(db)
    by_number = {t.number: t for t in trials}
    assert sorted(by_number) == list(range(len(trials)))  # none lost, none repeated
    assert len({t.key for t in trials}) == len(trials)
    assert summary.failed == 3 and summary.complete == len(trials) - 3
    assert by_number[3].state is TrialState.FAILED and "injected failure" in (by_number[3].error or "")
    assert by_number[7].state is TrialState.FAILED and "timeout" in (by_number[7].error or "")
    assert by_number[11].state is TrialState.FAILED and "worker died" in (by_number[11].error or "")
    others = [t for n, t in by_number.items() if n not in (3, 7, 11)]
    assert all(t.state is TrialState.COMPLETE for t in others)
    assert backend.timeouts == 1  # the hang was reported once by its worker's watchdog
    assert backend.max_in_flight <= 2 * 2  # re-runs one trial per task respect the bound too


def test_missing_distributed_is_one_config_error_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(ConfigError, match=r"genesis-console\[dask\]") as info:
        DaskBackend(scheduler="local")
    assert "\n" not in str(info.value)


async def test_a_stopped_dask_study_resumes_inline_to_the_same_trials(
    inline_reference: dict[str, Any], study_file: Callable[..., Path], tmp_path: Path
) -> None:
    """Stop mid-study (chunks not sent yet come back, chunks in hand finish), then finish on another backend."""
    path = study_file(backend="dask", workers=2, **GENETIC)
    db = tmp_path / "s.db"
    study = Study.from_file(path, db=db)
    stops: list[asyncio.Task[None]] = []

    def stop_early(progress: Any) -> None:
        if not stops and progress.done >= 12:
            stops.append(asyncio.get_running_loop().create_task(study.stop()))

    stopped = await study.run(stop_early, progress_interval_s=0.0)
    assert stops and stopped.state == "stopped"
    assert 12 <= stopped.trials < len(inline_reference["trials"])

    resumed = await Study.from_file(path, db=db, backend="inline").run()
    trials = {t.key: (t.number, t.objective) for t in await stored_trials(db)}
    assert trials == inline_reference["trials"]
    assert resumed.best is not None and resumed.best.key == inline_reference["best"]


def test_genesis_run_without_distributed_exits_2_with_one_line(study_file: Callable[..., Path], tmp_path: Path) -> None:
    """A machine without the extra: ``import distributed`` fails, the error names the extra, no trial is written."""
    shadow = tmp_path / "shadow" / "distributed"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named distributed')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shadow.parent), os.environ.get("PYTHONPATH", "")])}
    path = study_file(backend="dask")
    done = subprocess.run(
        [sys.executable, "-m", "genesis_tui.cli", "run", str(path), "--db", str(tmp_path / "s.db"), "--headless"],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("genesis: ") and "genesis-console[dask]" in lines[0]
    if (tmp_path / "s.db").exists():  # the headless runner's own tables may be there; no study, no trial
        with sqlite3.connect(tmp_path / "s.db") as conn:
            tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            assert "trials" not in tables or conn.execute("SELECT count(*) FROM trials").fetchone()[0] == 0


async def test_a_stop_before_the_cluster_is_ready_skips_shipping_the_data() -> None:
    """``interrupt_start`` (the executor's stop during start): start returns without scattering the
    data or preparing the workers, and close ends the local cluster."""
    from engine.data import load
    from tests.optimize.backend_conformance import SETUP

    backend = DaskBackend(scheduler="local", workers=1, trial_timeout_s=30.0)
    backend.interrupt_start()
    await backend.start(load("synthetic:bars=500,seed=3,timeframe=1m"), SETUP)
    try:
        assert backend.scatters == 0 and backend._data is None
    finally:
        await backend.close()
    assert backend._cluster is None and backend._client is None
