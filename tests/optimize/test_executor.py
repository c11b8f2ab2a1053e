"""Executor and backends: real worker processes, failure isolation, determinism, chunk sizing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from engine.errors import GenesisError
from engine.optimize import Study
from engine.optimize.executor import ChunkSizer
from engine.optimize.trial import FAULTS_ENV, parse_faults
from engine.store.records import TrialState
from engine.store.study_sqlite import SqliteStore


async def _trials(db: Path, name: str = "t") -> list:
    store = await SqliteStore.open(db, readonly=True)
    try:
        study = await store.require_study(name)
        return await store.trials(study.id)
    finally:
        await store.close()


def test_chunk_sizer_keeps_overhead_under_two_percent() -> None:
    sizer = ChunkSizer(max_overhead=0.02, target_chunk_s=0.05)
    assert sizer.size(10_000, 2) >= 1
    for _ in range(10):
        sizer.observe(trials=100, busy_s=100 * 0.0003, elapsed_s=100 * 0.0003 + 0.002)
    n = sizer.size(1_000_000, 2)
    assert sizer.overhead_s is not None and sizer.trial_s is not None
    assert sizer.overhead_s / (n * sizer.trial_s) <= 0.02 + 1e-9
    # the tail of a batch is cut finer so both workers end together
    assert sizer.size(40, 2) <= 10


def test_fault_hook_parsing() -> None:
    assert parse_faults("3:raise, 7:hang,11:exit") == {3: "raise", 7: "hang", 11: "exit"}
    assert parse_faults(None) == {}


async def test_process_backend_isolates_raise_hang_and_worker_death(
    study_file: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One trial raises, one hangs past its timeout, one kills its worker: each is failed, the rest complete."""
    monkeypatch.setenv(FAULTS_ENV, "3:raise,7:hang,11:exit")
    db = tmp_path / "s.db"
    path = study_file(backend="process", workers=2, timeout=2, batch_size=40, max_failures=5)
    summary = await Study.from_file(path, db=db).run()
    trials = await _trials(db)
    by_number = {t.number: t for t in trials}
    assert sorted(by_number) == list(range(len(trials)))  # none lost, none repeated
    assert summary.failed == 3 and summary.complete == len(trials) - 3
    assert by_number[3].state is TrialState.FAILED and "injected failure" in (by_number[3].error or "")
    assert by_number[7].state is TrialState.FAILED and "timeout" in (by_number[7].error or "")
    assert by_number[11].state is TrialState.FAILED and "exit code 13" in (by_number[11].error or "")
    others = [t for n, t in by_number.items() if n not in (3, 7, 11)]
    assert all(t.state is TrialState.COMPLETE for t in others)
    assert len({t.worker for t in trials}) >= 2

    from engine.optimize.report import render_markdown, report_from_db

    report = await report_from_db(db, "t")
    reasons = {f["error"]: f["count"] for f in report["failures"]}
    assert sum(reasons.values()) == 3 and any("injected failure" in r for r in reasons)
    assert "## Failures" in render_markdown(report)


async def test_consecutive_failures_stop_the_study_with_a_clear_error(
    study_file: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FAULTS_ENV, ",".join(f"{n}:raise" for n in range(200)))
    db = tmp_path / "s.db"
    with pytest.raises(GenesisError, match="5 consecutive trials failed") as info:
        await Study.from_file(study_file(max_failures=5, batch_size=4), db=db).run()
    assert "injected failure" in str(info.value)
    store = await SqliteStore.open(db, readonly=True)
    record = await store.require_study("t")
    assert record.state.value == "failed"
    await store.close()


async def test_inline_and_process_give_the_same_trials_and_best(
    study_file: Callable[..., Path], tmp_path: Path
) -> None:
    path = study_file(sampler="genetic", trials=40, search_extra="population = 10\ngenerations = 4\n")
    inline = await Study.from_file(path, db=tmp_path / "a.db", backend="inline").run()
    process = await Study.from_file(path, db=tmp_path / "b.db", backend="process", workers=2).run()
    a = {t.key: (t.number, t.objective) for t in await _trials(tmp_path / "a.db")}
    b = {t.key: (t.number, t.objective) for t in await _trials(tmp_path / "b.db")}
    assert a == b and len(a) == inline.trials == process.trials
    assert inline.best is not None and process.best is not None
    assert inline.best.key == process.best.key


async def test_workers_ship_their_stage_timings_when_profiling(
    study_file: Callable[..., Path], tmp_path: Path
) -> None:
    from engine.profile import profiler

    was = profiler.enabled
    profiler.reset()
    profiler.enabled = True
    try:
        summary = await Study.from_file(study_file(backend="process"), db=tmp_path / "s.db").run()
        stages = {s.name: s.count for s in profiler.stats()}
    finally:
        profiler.enabled = was
        profiler.reset()
    # one kernel call per trial, measured in the workers and merged here (validation adds a few)
    assert stages.get("backtest.kernel", 0) >= summary.trials
    assert stages.get("optimize.dispatch", 0) > 0 and stages.get("optimize.store_write", 0) > 0
