"""The study watch reads a live store incrementally: what it shows equals a fresh read of every trial."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.runtime._watch import LEADERBOARD, StudyWatch
from engine.store.records import TrialState
from engine.store.study_sqlite import SqliteStore
from engine.telemetry_map import build_heatmap
from tests.optimize.store_conformance import make_trial


async def _write(store: SqliteStore, study_id: int, trials: list[Any]) -> None:
    await store.add_trials(study_id, trials)
    await store.flush()


async def test_the_watch_reads_the_board_again_only_when_a_new_trial_could_enter_it(
    tmp_path: Path, monkeypatch: Any
) -> None:
    path = tmp_path / "s.db"
    store = await SqliteStore.open(path, batch_size=10_000)
    study = await store.create_study("alpha", "x")
    await _write(store, study.id, [make_trial(i, float(i)) for i in range(100)])
    watch = StudyWatch("alpha", path, maximize=True)
    reads = 0
    best = SqliteStore.best

    async def counted(self: SqliteStore, *args: Any, **kwargs: Any) -> Any:
        nonlocal reads
        reads += 1
        return await best(self, *args, **kwargs)

    monkeypatch.setattr(SqliteStore, "best", counted)

    async def shown_equals_stored() -> None:
        top = await best(store, study.id, maximize=True, k=LEADERBOARD)  # not counted
        assert [(row.number, row.value) for row in watch.leaderboard] == [(t.number, t.objective) for t in top]

    try:
        await watch.poll()
        assert reads == 1
        await shown_equals_stored()
        await _write(store, study.id, [make_trial(i, -float(i)) for i in range(100, 150)])  # all below the board
        await _write(store, study.id, [make_trial(150, state=TrialState.FAILED)])
        reads = 0
        await watch.poll()
        assert reads == 0  # nothing new could enter: the stored board was not read again
        await shown_equals_stored()
        await _write(store, study.id, [make_trial(151, 75.0)])  # ties the 25th best: read again
        await watch.poll()
        assert reads == 1
        await shown_equals_stored()
        await _write(store, study.id, [make_trial(152, 1e9)])
        await watch.poll(final=True)
        assert reads == 2 and watch.leaderboard[0].number == 152
        await shown_equals_stored()
        complete = await store.trials(study.id, states=[TrialState.COMPLETE], order="rowid")
        points = [(t.params, float(t.objective)) for t in complete if t.objective is not None]
        assert watch.heatmap == build_heatmap(points, maximize=True)  # read in pages, folded as it came
        assert len(watch.convergence) == len(points) and watch.convergence[-1] == 1e9
    finally:
        await watch.stop(read_last=False)
        await store.close()


async def test_a_read_ahead_leaves_the_last_read_only_the_validation(tmp_path: Path, monkeypatch: Any) -> None:
    """Read ahead as the search ends, the watch shows every trial (heatmap and importance built now);
    its last read at stop folds in nothing more and picks up the validation stored since."""
    path = tmp_path / "s.db"
    store = await SqliteStore.open(path, batch_size=10_000)
    study = await store.create_study("alpha", "x")
    await _write(store, study.id, [make_trial(i, float(i % 17)) for i in range(60)])
    watch = StudyWatch("alpha", path, maximize=True)
    watch.read_ahead()
    watch.read_ahead()  # once
    assert watch._ahead is not None
    await watch._ahead
    shown = (watch.heatmap, watch.importance, watch.leaderboard, len(watch.values))
    assert watch.importance and watch.heatmap is not None and len(watch.values) == 60
    folded: list[int] = []
    add = StudyWatch.add
    monkeypatch.setattr(StudyWatch, "add", lambda self, p, o: folded.append(len(o)) or add(self, p, o))
    await store.save_validation(study.id, {"pbo": {"pbo": 0.25}})
    await store.flush()
    await watch.stop()
    assert sum(folded) == 0
    assert (watch.heatmap, watch.importance, watch.leaderboard, len(watch.values)) == shown
    assert watch.validation is not None
    await store.close()
