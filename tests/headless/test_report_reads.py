"""The run report reads the study's trials once and shows what the separate readers show."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from engine.optimize import Study
from engine.store.records import TrialState
from engine.store.study_sqlite import SqliteStore
from tests.optimize.conftest import write_study


async def test_the_report_reads_the_trials_once_and_its_figures_are_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One read of the complete trials feeds the overfitting section (by number) and the charts (in the
    order stored); the section equals the stand-alone report's and the chart series the stored trials'."""
    from engine.headless.report import build_full_report
    from engine.optimize.report import report_from_db

    db = tmp_path / "s.db"
    path = write_study(tmp_path, sampler="random", trials=40, artifacts="top:3")
    await Study.from_file(path, db=db).run()
    reads: list[str] = []
    real, real_columns = SqliteStore.trials, SqliteStore.complete_trials

    async def counted(self: SqliteStore, *args: object, **kwargs: object) -> object:
        reads.append(str(kwargs.get("order", "number")))
        return await real(self, *args, **kwargs)  # type: ignore[arg-type]

    async def columns(self: SqliteStore, study_id: int) -> object:
        reads.append("columns")
        return await real_columns(self, study_id)

    monkeypatch.setattr(SqliteStore, "trials", counted)
    monkeypatch.setattr(SqliteStore, "complete_trials", columns)
    report, charts = await build_full_report(db, "t")
    assert reads == ["columns"]  # one columnar read, no record per trial
    alone = await report_from_db(db, "t")
    assert report["overfitting"] == alone["overfitting"]
    assert report["overfitting"]["stability"] is not None

    store = await SqliteStore.open(db, readonly=True)
    try:
        study = await store.require_study("t")
        stored = await store.trials_after(study.id, 0, limit=1000)
    finally:
        await store.close()
    done = [t for t in stored if t.state is TrialState.COMPLETE and t.objective is not None
            and math.isfinite(t.objective)]
    assert charts["numbers"] == [t.number for t in done]
    assert charts["objectives"] == [float(t.objective) for t in done]  # type: ignore[arg-type]
    assert len(charts["equity"]) == 3


def test_the_equity_chart_is_the_same_from_arrays_as_from_lists() -> None:
    """The report hands the stored curves to the chart as arrays (no 100k-float lists): same SVG."""
    import numpy as np

    from engine.headless.charts import equity_svg

    rng = np.random.default_rng(4)
    curves = [(f"#{i}", 10_000 * np.cumprod(1 + rng.normal(0, 0.001, 5_000))) for i in range(3)]
    curves.append(("#nan", np.array([1.0, np.nan, 2.0])))
    assert equity_svg(curves) == equity_svg([(label, [float(v) for v in values]) for label, values in curves])


async def test_the_study_watch_skips_its_last_read_when_nobody_will_look(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Headless without a recording stops the watch with ``read_last=False``: no final heatmap and
    importance rebuild over every trial (a quarter second of a 17k-trial grid's end); by default it reads."""
    from engine.runtime._watch import StudyWatch

    finals: list[bool] = []

    async def poll(self: StudyWatch, final: bool = False) -> None:
        finals.append(final)

    monkeypatch.setattr(StudyWatch, "poll", poll)
    for read_last, expected in ((False, []), (True, [True])):
        finals.clear()
        watch = StudyWatch("t", tmp_path / "absent.db", maximize=True)
        await watch.stop(read_last=read_last)
        await watch.stop()  # once
        assert finals == expected


def _same_charts(a: dict, b: dict) -> None:
    import numpy as np

    assert a.keys() == b.keys()
    assert (a["numbers"], a["objectives"], a["heatmap"]) == (b["numbers"], b["objectives"], b["heatmap"])
    assert [label for label, _ in a["equity"]] == [label for label, _ in b["equity"]]
    for (_, x), (_, y) in zip(a["equity"], b["equity"], strict=True):
        np.testing.assert_array_equal(x, y)


async def test_the_trial_parts_read_ahead_give_the_same_report(tmp_path: Path) -> None:
    """The trial parts the headless runner reads while the study validates (charts, stability,
    importance, Monte Carlo) make the same report as the report's own reads; parts of another
    study (a re-run's archive) are not used."""
    import dataclasses

    from engine.headless.report import build_full_report, read_trial_parts, write_report_dir

    db = tmp_path / "s.db"
    path = write_study(tmp_path, sampler="random", trials=40, artifacts="top:3")
    await Study.from_file(path, db=db).run()
    plain, plain_charts = await build_full_report(db, "t")
    parts = await read_trial_parts(db, "t")
    assert parts.overfitting["monte_carlo"] is not None and parts.overfitting["stability"] is not None
    ahead, ahead_charts = await build_full_report(db, "t", parts=parts)
    assert ahead == plain
    _same_charts(ahead_charts, plain_charts)
    # The charts drawn ahead are the files the report would draw.
    written = write_report_dir(plain, plain_charts, tmp_path / "plain")
    ahead_written = write_report_dir(ahead, ahead_charts, tmp_path / "ahead", drawn=parts.drawn)
    assert written.keys() == ahead_written.keys()
    assert all(written[k].read_bytes() == ahead_written[k].read_bytes() for k in written)
    # Parts of another study id are ignored (a wrong Monte Carlo would show).
    alien = dataclasses.replace(parts, study_id=parts.study_id + 1,
                                facts={**parts.facts, "overfitting": {**parts.overfitting, "monte_carlo": None}})
    assert (await build_full_report(db, "t", parts=alien))[0] == plain


def test_the_headless_run_reads_the_trial_parts_while_the_study_validates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``genesis run --headless``: the report's trial parts are read once the search has ended complete,
    and its report equals one rebuilt from the store afterwards."""
    import asyncio
    import json

    import engine.headless.report as report_module
    from engine.headless.runner import RunOptions, run

    db = tmp_path / "s.db"
    path = write_study(tmp_path, sampler="random", trials=30, artifacts="top:3")
    seen: list[object] = []
    real = report_module.read_trial_parts

    def reading(db_: object, name: str) -> object:
        seen.append(name)  # when the search ends (the task reads later, beside the validation)
        return real(db_, name)  # type: ignore[arg-type]

    monkeypatch.setattr(report_module, "read_trial_parts", reading)
    code = run(RunOptions(study_file=path, db=db, report_dir=tmp_path / "reports", quiet=True, log_to_file=False,
                          record=False))
    assert code == 0
    assert seen == ["t"]
    written = json.loads(next((tmp_path / "reports").rglob("report.json")).read_text())
    rebuilt, _ = asyncio.run(report_module.build_full_report(db, "t", run_id=1))
    assert written["overfitting"] == json.loads(json.dumps(rebuilt["overfitting"]))


async def test_the_timings_of_an_all_complete_study_come_from_the_trials_read_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every trial complete: the report's timings (busy time, duration percentiles) come from the complete
    trials it read already, no second read over every trial, and equal the stand-alone report's to the bit."""
    from engine.headless.report import build_full_report
    from engine.optimize.report import report_from_db

    db = tmp_path / "s.db"
    path = write_study(tmp_path, sampler="random", trials=40, artifacts="top:3")
    await Study.from_file(path, db=db).run()
    alone = await report_from_db(db, "t")  # reads the timings from the store
    real = SqliteStore.timings
    calls: list[int] = []

    async def counted(self: SqliteStore, study_id: int) -> object:
        calls.append(study_id)
        return await real(self, study_id)

    monkeypatch.setattr(SqliteStore, "timings", counted)
    report, _ = await build_full_report(db, "t")
    assert calls == []
    assert report["timings"] == alone["timings"] and report["timings"]["trial_time_total_s"] > 0
    assert (report["failures"], report["pruned_by_step"]) == (alone["failures"], alone["pruned_by_step"]) == ([], {})


def test_the_timings_are_read_from_the_store_when_a_trial_is_not_complete() -> None:
    """A failed or pruned trial (its error, its step) is not among the complete trials: the store's read
    is used; so is it when the trials changed since they were read."""
    from engine.optimize.report import _complete_durations
    from engine.store.records import CompleteTrials, TrialRecord

    def trial(number: int) -> TrialRecord:
        return TrialRecord(rowid=number, number=number, key=str(number), params={}, state=TrialState.COMPLETE,
                           metrics={}, objective=1.0, started=None, duration_s=0.5 * number, worker=None)

    stored = CompleteTrials.of([trial(2), trial(1)])
    complete = {TrialState.COMPLETE: 2, TrialState.FAILED: 0, TrialState.PRUNED: 0}
    assert _complete_durations(stored, complete) == [1.0, 0.5]  # order kept
    assert _complete_durations(stored, {**complete, TrialState.FAILED: 1}) is None
    assert _complete_durations(stored, {**complete, TrialState.PRUNED: 1}) is None
    assert _complete_durations(stored, {**complete, TrialState.COMPLETE: 3}) is None


async def test_the_latest_copies_are_the_run_directorys_report(tmp_path: Path) -> None:
    """``<study>.json`` is the run directory's ``report.json`` byte for byte (copied, not encoded again), and
    ``<study>.md`` differs from its ``report.md`` only in the chart links, which point into that directory."""
    from engine.headless.report import write_run_report

    db = tmp_path / "s.db"
    path = write_study(tmp_path, sampler="random", trials=20, artifacts="top:2")
    await Study.from_file(path, db=db).run()
    paths = await write_run_report(db, "t", tmp_path / "reports")
    assert paths["latest_json"].read_bytes() == paths["json"].read_bytes()
    prefix = f"{paths['dir'].parent.name}/{paths['dir'].name}/"
    run_md, latest_md = paths["md"].read_text(), paths["latest_md"].read_text()
    assert latest_md != run_md and latest_md == run_md.replace("](", "](" + prefix)
    assert not list((tmp_path / "reports").glob("*.tmp"))


def test_a_headless_run_freezes_what_it_loaded_for_the_run_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While the study runs, what the runner loaded sits in the collector's permanent generation (its full
    passes skip it); afterwards the heap is as the caller had it, so its objects are collectable again."""
    import gc

    from engine.headless.runner import HeadlessRun, RunOptions, run

    frozen: list[int] = []
    real = HeadlessRun._drive

    async def driving(self: HeadlessRun) -> object:
        frozen.append(gc.get_freeze_count())
        return await real(self)

    monkeypatch.setattr(HeadlessRun, "_drive", driving)
    assert gc.get_freeze_count() == 0
    path = write_study(tmp_path, sampler="random", trials=8, artifacts="top:2")
    code = run(RunOptions(study_file=path, db=tmp_path / "s.db", report_dir=tmp_path / "reports", quiet=True,
                          log_to_file=False, record=False))
    assert code == 0
    assert len(frozen) == 1 and frozen[0] > 10_000
    assert gc.get_freeze_count() == 0
