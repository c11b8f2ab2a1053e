"""Asking the next batch while the current one's tail runs changes nothing that is stored."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine.optimize import Study
from engine.optimize.samplers import GridSampler, RandomSampler
from engine.optimize.study import _BatchLoop
from engine.store.batching import BatchedStore
from engine.store.study_sqlite import SqliteStore


async def _run(path: Path, db: Path, monkeypatch: pytest.MonkeyPatch, ahead: bool) -> tuple[list, list, int]:
    checkpoints: list[tuple[int, int, dict[str, Any]]] = []
    planned_ahead = 0
    checkpoint = BatchedStore.checkpoint
    plan_ahead = _BatchLoop._plan_ahead

    async def spy(self: BatchedStore, study_id: int, state: dict[str, Any], seq: int, next_number: int,
                  **kwargs: Any) -> None:
        checkpoints.append((seq, next_number, dict(state)))
        await checkpoint(self, study_id, state, seq, next_number, **kwargs)

    def counting(self: _BatchLoop) -> None:
        nonlocal planned_ahead
        planned_ahead += 1
        plan_ahead(self)

    with monkeypatch.context() as patch:
        patch.setattr(BatchedStore, "checkpoint", spy)
        patch.setattr(_BatchLoop, "_plan_ahead", counting)
        patch.setattr(GridSampler, "asks_ahead", ahead)
        patch.setattr(RandomSampler, "asks_ahead", ahead)
        await Study.from_file(path, db=db).run()
    store = await SqliteStore.open(db, readonly=True)
    try:
        record = await store.require_study("t")
        trials = [(t.number, t.key, t.state.value, t.objective, t.batch) for t in await store.trials(record.id)]
    finally:
        await store.close()
    return sorted(trials), checkpoints, planned_ahead


@pytest.mark.parametrize("sampler, trials", [("grid", None), ("random", 70)])
async def test_asking_ahead_stores_the_same_trials_batches_and_checkpoints(
    study_file: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sampler: str, trials: int | None
) -> None:
    path = study_file(sampler=sampler, trials=trials, batch_size=16)
    ahead = await _run(path, tmp_path / "ahead.db", monkeypatch, True)
    behind = await _run(path, tmp_path / "behind.db", monkeypatch, False)
    assert ahead[2] >= 3 and behind[2] == 0  # batches were asked ahead (and not without it)
    assert ahead[0] == behind[0] and len(ahead[0]) >= 64
    assert ahead[1] == behind[1]  # same sampler state, batch and next number at every checkpoint
