"""Studies over a basket: the same parameters on every symbol, the objective on the portfolio."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from engine.optimize import Study
from engine.store.study_sqlite import SqliteStore

STUDY = """\
name = "basket"

[data]
specs = ["synthetic:bars=1500,seed=3,timeframe=1h,symbols=2", "synthetic:bars=1200,seed=9,timeframe=1h,symbol=LATE,start=2024-01-10"]

[strategy]
name = "sma_cross"

[space]
fast = {{ int = [3, 12], step = 3 }}
slow = {{ int = [20, 60], step = 20 }}
stop_loss = {{ choice = [0.0, 0.03] }}

[backtest]
fee = 0.001
allocation = "{allocation}"
max_positions = 2

[search]
sampler = "grid"
objective = "total_return"

[execution]
backend = "{backend}"
workers = 2
artifacts = "top:2"
"""


def _bad_float(value: float) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


@pytest.mark.parametrize(("backend", "allocation"), [("inline", "shared"), ("process", "split"), ("dask", "shared")])
async def test_a_basket_studys_trials_equal_run_portfolio(tmp_path: Path, backend: str, allocation: str) -> None:
    from engine import backtest
    from engine.data import load_basket

    if backend == "dask":
        pytest.importorskip("distributed")
    path = tmp_path / "basket.toml"
    path.write_text(STUDY.format(backend=backend, allocation=allocation))
    db = tmp_path / "s.db"
    study = Study.from_file(path, db=db)
    await study.run()
    trials = await study.trials()
    assert len(trials) == 4 * 3 * 2
    best = (await study.best())[0]
    bars = load_basket(["synthetic:bars=1500,seed=3,timeframe=1h,symbols=2",
                        "synthetic:bars=1200,seed=9,timeframe=1h,symbol=LATE,start=2024-01-10"])  # fmt: skip
    options = {"fee": 0.001, "allocation": allocation, "max_positions": 2}
    objectives = set()
    for trial in [best, *trials[:6]]:
        params = dict(trial.params)
        stop = params.pop("stop_loss")
        direct = backtest.run_portfolio(bars, "sma_cross", params, stop_loss=stop, **options)
        for name, value in direct.metrics.as_dict().items():
            if value is None or _bad_float(value):
                continue
            assert trial.metrics[name] == pytest.approx(value, rel=1e-12, abs=1e-12), name
        objectives.add(trial.objective)
    assert len(objectives) > 1  # the parameters reached the portfolio
    # The best trial keeps its per-symbol table.
    store = await SqliteStore.open(db, readonly=True)
    try:
        record = await store.require_study("basket")
        arrays = await store.artifacts(record.id, best.number)
    finally:
        await store.close()
    assert arrays["symbols"].tolist() == ["SYNTH1", "SYNTH2", "LATE"]
    from engine.telemetry_map import trial_detail

    detail = trial_detail("basket", "total_return", best, arrays)  # what the trial screen reads
    assert [row.symbol for row in detail.symbols] == ["SYNTH1", "SYNTH2", "LATE"]
    assert sum(row.trades for row in detail.symbols) == best.metrics["trades"]
    params = dict(best.params)
    direct = backtest.run_portfolio(bars, "sma_cross", params, stop_loss=params.pop("stop_loss"), **options)
    np.testing.assert_array_equal(arrays["per_symbol"], direct.per_symbol)
    assert arrays["trades"].dtype.names is not None and "symbol" in arrays["trades"].dtype.names


def test_a_basket_reaches_a_worker_through_shared_memory_as_2d_views() -> None:
    from engine.data import load_market
    from engine.optimize.backends.shared_bars import SharedBars, attach_bars

    basket = load_market(["synthetic:bars=300,seed=1,timeframe=1h,symbols=2",
                          "synthetic:bars=100,seed=2,timeframe=1h,symbol=MID,start=2024-01-05"])  # fmt: skip
    shared = SharedBars(basket)
    try:
        attached, block = attach_bars(shared.handle())
        try:
            assert attached.symbols == basket.symbols and attached.timeframe == basket.timeframe
            np.testing.assert_array_equal(attached.close, basket.close)
            assert not attached.close.flags.owndata and attached.close.flags.f_contiguous
            for mine, theirs in zip(attached.members, basket.members, strict=True):
                np.testing.assert_array_equal(mine.ts, theirs.ts)
                np.testing.assert_array_equal(mine.close, theirs.close)
            assert attached.members[0].close.base is not None  # a full column is a view of the block
            del attached
        finally:
            block.close()
    finally:
        shared.close()


async def test_the_report_of_a_basket_study_has_the_best_trials_per_symbol_table(tmp_path: Path) -> None:
    from engine.headless.report import build_full_report, render_full_markdown
    from engine.optimize.report import render_markdown, report_from_db

    path = tmp_path / "basket.toml"
    path.write_text(STUDY.format(backend="inline", allocation="split"))
    db = tmp_path / "s.db"
    await Study.from_file(path, db=db).run()
    report = await report_from_db(db, "basket")
    best = report["best"]
    assert list(best["symbols"]) == ["SYNTH1", "SYNTH2", "LATE"]
    assert sum(row["trades"] for row in best["symbols"].values()) == best["metrics"]["trades"]
    contributions = sum(row["return_contribution"] for row in best["symbols"].values())
    assert contributions == pytest.approx(best["metrics"]["total_return"], rel=1e-9, abs=1e-12)
    assert report["data"].count(" + ") == 1
    markdown = render_markdown(report)
    assert "| symbol | trades | return contribution | win rate | exposure |" in markdown
    assert "| LATE | " in markdown
    full, _ = await build_full_report(db, "basket")
    assert "| SYNTH2 | " in render_full_markdown(full)
