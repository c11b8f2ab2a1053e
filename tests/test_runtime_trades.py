"""The Engine's trade-screen commands: a stored trial re-run, a strategy backtested on the
study's data, and the trial detail naming a user strategy's file and line."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.runtime import Engine
from engine.store.study_sqlite import SqliteStore
from tests.waiting import until

MINE = """\
from engine.strategy import Param, strategy, ta


@strategy(params=[Param.int("fast", 5, 2, 50), Param.int("slow", 30, 5, 200)], constraints=["fast < slow"],
          lookback="slow")
def my_cross(bars, fast, slow):
    f, s = ta.ema(bars.close, fast), ta.sma(bars.close, slow)
    return ta.crossed_above(f, s), ta.crossed_below(f, s)
"""

STUDY = """\
name = "mine"

[data]
spec = "synthetic:bars=3000,seed=5,timeframe=1m"

[strategy]
file = "mine.py"
name = "my_cross"

[space]
fast = { int = [3, 12] }
slow = { int = [20, 60], step = 10 }

[backtest]
fee = 0.001
stop_loss = 0.004

[search]
sampler = "random"
trials = 12
seed = 3

[execution]
backend = "inline"
artifacts = "top:3"
"""


async def test_trial_detail_inspection_and_strategy_backtest(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text(MINE)
    (tmp_path / "mine.toml").write_text(STUDY)
    db = tmp_path / "s.db"
    engine = Engine(db=db, profile=False, monitor=False)
    await engine.start()
    try:
        await engine.start_study(tmp_path / "mine.toml")
        await until(lambda: engine.study is not None and engine.study.progress().state == "complete", "the study")
        assert engine._study_task is not None
        await engine._study_task
        store = await SqliteStore.open(db, readonly=True)
        try:
            record = await store.require_study("mine")
            best = (await store.best(record.id, maximize=True, k=1))[0]
            stored = await store.artifacts(record.id, best.number)
        finally:
            await store.close()

        detail = await engine.open_trial(best.number)
        assert detail.strategy == f"{tmp_path / 'mine.py'}:4"

        inspection = await engine.inspect_trial(best.number)
        assert inspection.source == detail.strategy
        assert f"trial #{best.number}" in inspection.title
        assert [t.entry for t in inspection.trades] == stored["trades"]["entry_idx"].tolist()
        assert np.array_equal(inspection.equity, stored["equity"])
        assert dict(inspection.metrics)["total_return"] == best.metrics["total_return"]

        backtest = await engine.backtest_strategy("sma_cross")
        assert len(backtest.ts) == 3000 and backtest.source == ""  # the study's data; a built-in
        assert [name for name, _ in backtest.overlays] == ["fast", "slow"]
    finally:
        await engine.close()
