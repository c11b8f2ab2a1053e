"""A stored trial re-run from the store alone equals what the study recorded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from engine.errors import InputError
from engine.optimize import Study
from engine.optimize.rerun import inspect_trial, load_trial, rerun_trial
from engine.store.study_sqlite import SqliteStore


async def test_rerun_gives_the_stored_metrics_and_artifacts(study_file: Callable[..., Path], tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    # A hold-out: the trials ran on the first 75 % of the bars, and so must the re-run.
    await Study.from_file(study_file(oos=0.25, fast_high=8, slow_high=30), db=db).run()
    store = await SqliteStore.open(db, readonly=True)
    try:
        study = await store.require_study("t")
        best = (await store.best(study.id, maximize=True, k=1))[0]
        stored = await store.artifacts(study.id, best.number)
    finally:
        await store.close()
    setup = await load_trial(db, "t", best.number)
    assert len(setup.bars) == 2250 and setup.params == {"fast": best.params["fast"], "slow": best.params["slow"]}
    assert setup.options.fee == 0.001
    result = await rerun_trial(db, "t", best.number)
    assert best.metrics is not None
    for name, value in result.metrics.as_dict().items():
        if np.isfinite(value):
            assert best.metrics[name] == pytest.approx(value, rel=1e-12, abs=1e-12), name
    assert result.trades is not None and np.array_equal(result.trades, stored["trades"])
    inspection = await inspect_trial(db, "t", best.number)
    assert len(inspection.trades) == len(result.trades)
    assert [t.entry for t in inspection.trades] == result.trades["entry_idx"].tolist()
    assert f"trial #{best.number}" in inspection.title
    with pytest.raises(InputError, match="no trial #99999"):
        await load_trial(db, "t", 99999)
