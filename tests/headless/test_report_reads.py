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
    real = SqliteStore.trials

    async def counted(self: SqliteStore, *args: object, **kwargs: object) -> object:
        reads.append(str(kwargs.get("order", "number")))
        return await real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(SqliteStore, "trials", counted)
    report, charts = await build_full_report(db, "t")
    assert reads == ["rowid"]
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
