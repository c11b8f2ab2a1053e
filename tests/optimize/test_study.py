"""Study end to end on the real backtest engine, the inline backend and a real SQLite store."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from engine.optimize import Study
from engine.optimize.progress import StudyProgress
from engine.optimize.study import parse_artifacts
from engine.store.records import StudyState, TrialState
from engine.store.study_sqlite import SqliteStore


async def _stored(db: Path, name: str) -> tuple[list, object]:
    store = await SqliteStore.open(db, readonly=True)
    try:
        study = await store.require_study(name)
        return await store.trials(study.id), study
    finally:
        await store.close()


def _feasible_grid(fast_high: int = 20, fast_step: int = 2, slow_high: int = 80) -> set[tuple[int, int]]:
    return {(f, s) for f in range(2, fast_high + 1, fast_step) for s in range(10, slow_high + 1, 10) if f < s}


async def test_grid_study_runs_every_feasible_point_once(study_file: Callable[..., Path], tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    snapshots: list[StudyProgress] = []
    study = Study.from_file(study_file(), db=db)
    summary = await study.run(progress_callback=snapshots.append)
    trials, record = await _stored(db, "t")
    points = {(t.params["fast"], t.params["slow"]) for t in trials}
    assert points == _feasible_grid()
    assert len(trials) == len(points) == summary.trials
    assert len({t.key for t in trials}) == len(trials)
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    assert all(t.state is TrialState.COMPLETE for t in trials)
    best = max((t for t in trials if t.objective is not None), key=lambda t: (t.objective, -t.number))
    assert summary.best is not None and summary.best.number == best.number
    assert (await study.best())[0].key == best.key
    assert record.state is StudyState.COMPLETE
    final = snapshots[-1]
    assert final.done == final.total == len(trials) and final.best_number == best.number
    assert final.eta_s == 0.0


async def test_metrics_match_a_direct_backtest(study_file: Callable[..., Path], tmp_path: Path) -> None:
    from engine import backtest
    from engine.data import load

    db = tmp_path / "s.db"
    await Study.from_file(study_file(), db=db).run()
    trials, _ = await _stored(db, "t")
    bars = load("synthetic:bars=3000,seed=11,timeframe=1m")
    for trial in trials[:5]:
        direct = backtest.run(bars, "sma_cross", dict(trial.params), fee=0.001).metrics.as_dict()
        assert trial.metrics is not None
        for name, value in direct.items():
            stored = trial.metrics[name]
            if value is None or (isinstance(value, float) and not np.isfinite(value)):
                continue
            assert stored == pytest.approx(value, rel=1e-12, abs=1e-12), name


async def test_top_n_artifacts_follow_the_leaderboard(study_file: Callable[..., Path], tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    await Study.from_file(study_file(artifacts="top:3"), db=db).run()
    store = await SqliteStore.open(db, readonly=True)
    study = await store.require_study("t")
    top = await store.best(study.id, maximize=True, k=3)
    assert await store.artifact_numbers(study.id) == sorted(t.number for t in top)
    arrays = await store.artifacts(study.id, top[0].number)
    assert arrays["equity"].shape == (3000,)
    assert "trades" in arrays and arrays["trades"].dtype.names is not None
    await store.close()


@pytest.mark.parametrize("policy", ["all", "none"])
async def test_artifact_policies_all_and_none(study_file: Callable[..., Path], tmp_path: Path, policy: str) -> None:
    db = tmp_path / "s.db"
    summary = await Study.from_file(study_file(artifacts=policy), db=db).run()
    store = await SqliteStore.open(db, readonly=True)
    study = await store.require_study("t")
    numbers = await store.artifact_numbers(study.id)
    await store.close()
    assert numbers == (list(range(summary.complete)) if policy == "all" else [])


def test_artifact_policy() -> None:
    assert parse_artifacts("all") is None
    assert parse_artifacts("none") == 0
    assert parse_artifacts("top:7") == 7


@pytest.mark.parametrize("sampler, extra, prune", [
    ("grid", "", "none"),
    ("grid", "", "halving"),
    ("random", "", "none"),
    ("genetic", "population = 8\ngenerations = 4\nelite = 2\n", "none"),
    ("tpe", "startup_trials = 4\n", "none"),
])
async def test_stop_and_resume_gives_the_uninterrupted_result(
    study_file: Callable[..., Path], tmp_path: Path, sampler: str, extra: str, prune: str
) -> None:
    trials = None if sampler == "grid" else 30
    bars = 20_000 if prune == "halving" else 3000
    path = study_file(sampler=sampler, trials=trials, search_extra=extra, batch_size=6, prune=prune, bars=bars)
    reference = await Study.from_file(path, db=tmp_path / "ref.db").run()
    ref_trials, _ = await _stored(tmp_path / "ref.db", "t")

    db = tmp_path / "s.db"
    study = Study.from_file(path, db=db)
    stopped = False

    def stop_midway(p: StudyProgress) -> None:
        nonlocal stopped
        if not stopped and p.done >= 9:
            stopped = True
            asyncio.get_running_loop().create_task(study.stop())

    first = await study.run(progress_callback=stop_midway, progress_interval_s=0)
    assert first.state == "stopped" and first.trials < reference.trials
    resumed = await Study.from_file(path, db=db).run()
    got, record = await _stored(db, "t")
    assert record.state is StudyState.COMPLETE
    assert {t.key: t.number for t in got} == {t.key: t.number for t in ref_trials}
    assert {t.key: t.objective for t in got} == {t.key: t.objective for t in ref_trials}
    assert resumed.best is not None and reference.best is not None
    assert (resumed.best.key, resumed.best.objective) == (reference.best.key, reference.best.objective)


@pytest.mark.parametrize("sampler", ["random", "grid"])
async def test_a_stop_in_the_last_batch_resumes_to_the_full_budget(
    study_file: Callable[..., Path], tmp_path: Path, sampler: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped late in the last batch, the resumed run re-asks that whole batch: its stored trials
    are recognised, none is run twice (the store would ignore it and the budget fall short)."""
    # batches of 16, 16 and 8; the last runs as chunks of 4, 2, 1 and 1, three in hand at a time.
    # Stopped after its first chunk, the chunks in hand finish: 7 of its 8 trials are stored and
    # the resume has 1 trial left, fewer than the 7 of that batch already stored
    # (with no floor on the tail's chunks: with it the 8 trials of one worker are one chunk)
    from engine.optimize.executor import MIN_CHUNK, ChunkSizer

    monkeypatch.setattr(ChunkSizer, "floor", lambda self: MIN_CHUNK)
    path = study_file(sampler=sampler, trials=40, batch_size=16, checkpoint_every=1, checkpoint_interval_s=0.01)
    reference = await Study.from_file(path, db=tmp_path / "ref.db").run()
    ref_trials, _ = await _stored(tmp_path / "ref.db", "t")

    db = tmp_path / "s.db"
    study = Study.from_file(path, db=db)

    def stop_late(p: StudyProgress) -> None:
        if p.done >= 36 and not study.stop_requested:
            study.request_stop()  # now, before the next chunk is dispatched

    first = await study.run(progress_callback=stop_late, progress_interval_s=0)
    # How many chunks are in hand when the stop lands depends on the machine (39 when idle);
    # what matters is that the last batch has more trials stored than the budget has left.
    assert first.state == "stopped" and 36 <= first.trials < 40
    assert first.trials - 32 >= 40 - first.trials
    resumed = await Study.from_file(path, db=db).run()
    got, record = await _stored(db, "t")
    assert record.state is StudyState.COMPLETE and resumed.trials == reference.trials
    assert {t.key: t.number for t in got} == {t.key: t.number for t in ref_trials}
    assert {t.key: t.objective for t in got} == {t.key: t.objective for t in ref_trials}


async def test_a_finished_study_run_again_runs_nothing(study_file: Callable[..., Path], tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    path = study_file()
    first = await Study.from_file(path, db=db).run()
    again = await Study.from_file(path, db=db).run()
    assert again.trials == first.trials and again.best is not None and first.best is not None
    assert again.best.key == first.best.key


async def test_pause_holds_trials_until_resume(study_file: Callable[..., Path], tmp_path: Path) -> None:
    """Paused: the trials in hand finish and no chunk is handed to the backend until resume."""
    study = Study.from_file(study_file(batch_size=4), db=tmp_path / "s.db")
    submitted: list[bool] = []  # per chunk handed to the backend: was the study paused?
    drained = asyncio.Event()
    pausing: list[int] = []

    def on_progress(p: StudyProgress) -> None:
        executor = study._executor
        if executor is None:  # not started yet, or closed
            return
        if not submitted:  # the first report: count every chunk from here on
            submit = executor.backend.submit

            def counted(chunk: object) -> None:
                submitted.append(executor.paused)
                submit(chunk)  # type: ignore[arg-type]

            executor.backend.submit = counted  # type: ignore[method-assign]
            submitted.append(False)
        if p.done >= 4 and not pausing:
            pausing.append(p.done)
            asyncio.get_running_loop().create_task(study.pause())
        if executor.paused and p.in_flight == 0:
            drained.set()

    task = asyncio.create_task(study.run(progress_callback=on_progress, progress_interval_s=0))
    waiting = asyncio.create_task(drained.wait())
    await asyncio.wait({waiting, task}, timeout=120, return_when=asyncio.FIRST_COMPLETED)
    assert drained.is_set() and not task.done(), submitted
    held = study.progress()
    assert held.state == "paused" and held.in_flight == 0 and held.done < held.total
    await study.resume()
    summary = await asyncio.wait_for(task, 120)
    assert summary.state == "complete" and summary.trials == len(_feasible_grid())
    assert True not in submitted, submitted  # nothing started while paused
    assert submitted.count(False) > 2  # chunks were counted before the pause and after the resume


async def test_successive_halving_prunes_with_the_step_reached(study_file: Callable[..., Path], tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    path = study_file(bars=20_000, prune="halving", batch_size=27)
    summary = await Study.from_file(path, db=db).run()
    trials, record = await _stored(db, "t")
    pruned = [t for t in trials if t.state is TrialState.PRUNED]
    complete = [t for t in trials if t.state is TrialState.COMPLETE]
    assert pruned and complete and summary.pruned == len(pruned)
    assert {t.step for t in pruned} <= {0, 1}
    assert all(t.step == 2 for t in complete)  # three rungs: 20000/9, 20000/3, all
    assert len(trials) == len(_feasible_grid())
    # the survivors of a batch's first rung are the best third of it on that prefix
    assert len(complete) < len(trials) / 3 + 10
    # Only the trials that ran on all the bars recorded per-block figures (a prefix has other blocks).
    store = await SqliteStore.open(db, readonly=True)
    try:
        numbers, figures = await store.trial_blocks(record.id)  # type: ignore[attr-defined]
    finally:
        await store.close()
    assert numbers.tolist() == sorted(t.number for t in complete) and figures.shape[1] == 16


async def test_out_of_sample_validation_is_stored_and_reported(study_file: Callable[..., Path], tmp_path: Path) -> None:
    from engine.optimize.report import render_markdown, report_from_db

    db = tmp_path / "s.db"
    summary = await Study.from_file(study_file(oos=0.25), db=db).run()
    assert summary.validation is not None
    _, record = await _stored(db, "t")
    assert record.validation == summary.validation
    report = await report_from_db(db, "t")
    assert "Validation" in render_markdown(report)


@pytest.mark.parametrize("artifacts", ["top:3", "all"])  # the batched kernel path, and one trial at a time
async def test_each_trial_records_its_block_returns(
    study_file: Callable[..., Path], tmp_path: Path, artifacts: str
) -> None:
    from engine import backtest
    from engine.data import load

    db = tmp_path / "s.db"
    await Study.from_file(study_file(artifacts=artifacts, oos=0.25), db=db).run()
    trials, record = await _stored(db, "t")
    store = await SqliteStore.open(db, readonly=True)
    try:
        numbers, figures = await store.trial_blocks(record.id)  # type: ignore[attr-defined]
    finally:
        await store.close()
    complete = sorted(t.number for t in trials if t.state is TrialState.COMPLETE)
    assert numbers.tolist() == complete and figures.shape == (len(complete), 16)
    bars = load("synthetic:bars=3000,seed=11,timeframe=1m").slice(0, 2250)  # the in-sample part only
    by_number = {t.number: t for t in trials}
    for row in (0, len(numbers) // 2, len(numbers) - 1):
        trial = by_number[int(numbers[row])]
        direct = backtest.run(bars, "sma_cross", dict(trial.params), fee=0.001, equity=True)
        assert direct.equity is not None
        want = backtest.block_returns(direct.equity, 16, 10_000.0)
        assert figures[row] == pytest.approx(want, abs=1e-7)
        # The blocks tile the in-sample bars: together they are the whole run's growth.
        assert figures[row].sum() == pytest.approx(np.log(trial.metrics["final_value"] / 10_000.0), abs=1e-5)


async def test_the_end_of_study_validation_stores_the_pbo(study_file: Callable[..., Path], tmp_path: Path) -> None:
    from engine.analysis.pbo import cscv

    db = tmp_path / "s.db"
    await Study.from_file(study_file(oos=0.25), db=db).run()
    _, record = await _stored(db, "t")
    store = await SqliteStore.open(db, readonly=True)
    try:
        _, figures = await store.trial_blocks(record.id)  # type: ignore[attr-defined]
    finally:
        await store.close()
    stored = record.validation["pbo"]  # type: ignore[attr-defined]
    assert stored["blocks"] == 16 and stored["splits"] == 12_870
    assert stored["pbo"] == cscv(figures, seed=7).pbo and 0.0 <= stored["pbo"] <= 1.0


async def test_the_deflated_sharpe_reads_the_stored_best_curve(
    study_file: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the best trial's curve stored, validation re-runs nothing (no kernel in the driver)
    and its deflated Sharpe is the one a re-run of the best trial gives."""
    rerun = await Study.from_file(study_file(name="rerun", artifacts="none"), db=tmp_path / "a.db").run()
    from engine.optimize import validation

    def no_rerun(spec: object) -> object:
        raise AssertionError("the best trial was run again")

    monkeypatch.setattr(validation, "backtest_runner", no_rerun)
    stored = await Study.from_file(study_file(name="stored", artifacts="top:3"), db=tmp_path / "b.db").run()
    assert rerun.validation is not None and stored.validation is not None
    assert rerun.validation["deflated_sharpe"] is not None
    assert stored.validation["deflated_sharpe"] == rerun.validation["deflated_sharpe"]


def test_the_stored_runner_answers_only_the_searched_run_of_the_best(tmp_path: Path) -> None:
    from engine.data import load
    from engine.optimize.spec import load_study
    from engine.optimize.validation import backtest_runner, equity_returns, stored_first_runner
    from tests.optimize.conftest import write_study

    spec = load_study(write_study(tmp_path))
    bars = load("synthetic:bars=3000,seed=11,timeframe=1m")
    best = {"fast": 4, "slow": 30}
    equity = np.linspace(10_000.0, 11_000.0, len(bars))
    span = (len(bars), int(bars.ts[0]), int(bars.ts[-1]))
    run = stored_first_runner(spec, best, {"sharpe": 1.5, "trades": 3, "cagr": None}, equity, span)
    metrics, returns = run(bars, dict(best), True)
    assert metrics["sharpe"] == 1.5 and math.isnan(metrics["cagr"])  # JSON's null is NaN again
    assert returns is not None and np.array_equal(returns, equity_returns(equity, 10_000.0))
    # Another trial, or the best on other bars: a real backtest.
    for asked, on in ((dict(best, fast=6), bars), (best, bars.slice(0, 2000))):
        got, _ = run(on, asked, False)
        assert got == backtest_runner(spec)(on, asked, False)[0]
