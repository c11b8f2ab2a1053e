"""The demo tells the story: the SMA study finds a real (planted) edge, the EMA study a lucky winner."""

from __future__ import annotations

from pathlib import Path

from engine.demo import write_demo_studies
from engine.optimize import Study
from engine.optimize.report import report_from_db


async def test_the_demo_has_a_real_winner_and_a_spurious_one(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    paths = write_demo_studies(tmp_path, trials=200, bars=200_000, backend="inline")
    for path in paths:
        await Study.from_file(path, db=db).run()
    real = await report_from_db(db, "demo-sma-cross")
    luck = await report_from_db(db, "demo-ema-cross")
    # Both have a winner with a positive Sharpe ratio in sample...
    assert real["best"]["objective"] > 0 and luck["best"]["objective"] > 0
    assert real["best"]["metrics"]["final_value"] > 10_000
    # ... but only one of them is real.
    assert real["overfitting"]["pbo"] < 0.1 <= 0.4 <= luck["overfitting"]["pbo"]
    assert real["overfitting"]["prob_oos_loss"] < luck["overfitting"]["prob_oos_loss"]
    holdout_real = real["validation"]["holdout"]["mean_out"]
    assert holdout_real > 0  # the planted edge goes on after the searched bars
