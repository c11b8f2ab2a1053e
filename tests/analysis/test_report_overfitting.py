"""The report's ``overfitting`` section end to end: two studies, the CLI's JSON, an independent check."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.optimize import Study
from engine.store.study_sqlite import SqliteStore
from tests.analysis.test_pbo import reference

STUDY = """\
name = "{name}"

[data]
spec = "{spec}"

[strategy]
name = "sma_cross"

[space]
fast = {{ int = [2, 40], step = 3 }}
slow = {{ int = [20, 200], step = 12 }}
constraints = ["fast < slow"]

[backtest]
fee = {fee}

[search]
sampler = "grid"

[execution]
backend = "inline"
artifacts = "top:3"

[validation]
out_of_sample = 0.25
blocks = 8
"""

NOISE = "synthetic:bars=60000,seed=3,timeframe=1h,regimes=false,jumps=0"
TREND = "synthetic:bars=60000,seed=3,timeframe=1h,trend=3,trend_days=20,vol=0.3"


def _report(db: Path, name: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "genesis_tui.cli", "report", name, "--db", str(db), "--format", "json"],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


async def test_pbo_tells_the_noise_study_from_the_trend_study(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    for name, spec, fee in (("noise", NOISE, 0.0), ("trend", TREND, 0.002)):
        path = tmp_path / f"{name}.toml"
        path.write_text(STUDY.format(name=name, spec=spec, fee=fee))
        await Study.from_file(path, db=db).run()
    noise, trend = _report(db, "noise")["overfitting"], _report(db, "trend")["overfitting"]
    assert noise["blocks"] == trend["blocks"] == 8 and noise["splits"] == trend["splits"] == 70
    assert 0.0 <= trend["pbo"] <= 0.1 and noise["pbo"] >= 0.4
    assert trend["prob_oos_loss"] < noise["prob_oos_loss"] + 1e-12

    # The same stored figures, through the slow reference: the same PBO, loss probability and slope.
    store = await SqliteStore.open(db, readonly=True)
    try:
        for name, section in (("noise", noise), ("trend", trend)):
            study = await store.require_study(name)
            numbers, figures = await store.trial_blocks(study.id)
            assert len(numbers) == section["trials"] == len(await store.trials(study.id))
            want = reference(figures.tolist())
            assert section["pbo"] == pytest.approx(want["pbo"], abs=1e-12)
            assert section["prob_oos_loss"] == pytest.approx(want["loss"], abs=1e-12)
            assert section["degradation"]["slope"] == pytest.approx(want["slope"], rel=1e-9)
            assert np.isfinite(figures).all()
    finally:
        await store.close()

    # The rest of the section: the robust best smooths at least as well as the raw best, importance shares,
    # the Monte Carlo ran on the best trial's trades.
    for section in (noise, trend):
        stability = section["stability"]
        assert stability["method"] == "grid"
        assert stability["robust_best"]["smoothed"] >= stability["raw_best"]["smoothed"]
        # (fast < slow ties the two together, so their shares may overlap: each in [0, 1], no sum rule)
        assert set(section["importance"]) == {"fast", "slow"}
        assert all(0.0 <= v <= 1.0 for v in section["importance"].values())
        mc = section["monte_carlo"]
        assert mc["paths"] == 10_000 and mc["trades"] > 0
        assert mc["final_return"]["p5"] <= mc["final_return"]["p50"] <= mc["final_return"]["p95"]
        assert 0.0 <= mc["prob_drawdown_over"] <= 1.0

    # genesis compare puts the same figures side by side: PBO, robust best, importance order.
    done = subprocess.run(
        [sys.executable, "-m", "genesis_tui.cli", "compare", "noise", "trend", "--db", str(db), "--format", "json"],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr
    columns = {c["study"]: c["overfitting"] for c in json.loads(done.stdout)["studies"]}
    for name, section in (("noise", noise), ("trend", trend)):
        assert columns[name]["pbo"] == section["pbo"]
        assert columns[name]["robust_best"]["number"] == section["stability"]["robust_best"]["number"]
        shares = section["importance"]
        assert list(columns[name]["importance"]) == sorted(shares, key=lambda k: shares[k], reverse=True)
    text = subprocess.run(
        [sys.executable, "-m", "genesis_tui.cli", "compare", "noise", "trend", "--db", str(db)],
        capture_output=True, text=True, check=True,
    ).stdout
    assert "P(overfit) (PBO)" in text and "robust best trial" in text


async def test_the_report_reads_the_pbo_the_study_stored_instead_of_running_it_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The study stores every PBO figure at its end; the report takes them (no second CSCV over the same
    figures: 0.4 s of a 17k-trial grid's report) and they equal a fresh CSCV. A stored PBO that does not
    match the figures (another seed) is run again."""
    import engine.optimize.overfitting as overfitting
    from engine.optimize.report import report_from_db

    db = tmp_path / "s.db"
    path = tmp_path / "noise.toml"
    path.write_text(STUDY.format(name="noise", spec=NOISE, fee=0.0).replace("out_of_sample = 0.25", "out_of_sample = 0"))
    await Study.from_file(path, db=db).run()
    store = await SqliteStore.open(db, readonly=True)
    try:
        study = await store.require_study("noise")
        _, figures = await store.trial_blocks(study.id)
    finally:
        await store.close()
    fresh = overfitting.pbo_figures(figures, 0)
    assert fresh is not None
    runs: list[int] = []
    real = overfitting.cscv
    monkeypatch.setattr(overfitting, "cscv", lambda *a, **k: runs.append(1) or real(*a, **k))
    section = (await report_from_db(db, "noise"))["overfitting"]
    assert runs == []
    assert {k: section[k] for k in fresh if k not in ("seed", "max_splits")} == {
        k: v for k, v in fresh.items() if k not in ("seed", "max_splits")}
    # The stored figures were made with another seed: the report runs its own.
    assert overfitting._stored_pbo({**fresh, "seed": 5}, figures.shape, 0) is None
    assert overfitting._stored_pbo({"pbo": 0.5, "blocks": 8}, figures.shape, 0) is None  # an older study's
    assert overfitting._stored_pbo(fresh, figures[:-1].shape, 0) is None  # more trials since


SIZED = """\
name = "{name}"

[data]
{data}

[strategy]
name = "sma_cross"

[space]
fast = {{ int = [4, 12], step = 4 }}
slow = {{ int = [30, 60], step = 30 }}

[backtest]
fee = 0.001
size = {size}
cash = 5000
{allocation}

[search]
sampler = "grid"

[execution]
backend = "inline"
artifacts = "top:2"

[validation]
out_of_sample = 0
"""


@pytest.mark.parametrize(
    ("data", "size", "allocation"),
    [
        ('spec = "synthetic:bars=3000,seed=5,timeframe=1h"', 0.25, ""),
        ('spec = "synthetic:bars=3000,seed=5,timeframe=1h,symbols=4"', 1.0, 'allocation = "split"'),
    ],
    ids=["size-quarter", "split-basket"],
)
async def test_the_report_monte_carlo_compounds_the_trades_to_the_trials_own_final_value(
    tmp_path: Path, data: str, size: float, allocation: str
) -> None:
    """The Monte Carlo resamples returns on equity: unresampled, the best trial's trades end at its final value.
    On each trade's notional (a quarter of the equity here) they compounded to far more than the trial made."""
    from engine.optimize.report import report_from_db

    db = tmp_path / "s.db"
    path = tmp_path / "sized.toml"
    path.write_text(SIZED.format(name="sized", data=data, size=size, allocation=allocation))
    await Study.from_file(path, db=db).run()
    report = await report_from_db(db, "sized")
    mc = report["overfitting"]["monte_carlo"]
    store = await SqliteStore.open(db, readonly=True)
    try:
        study = await store.require_study("sized")
        trial = next(t for t in await store.trials(study.id) if t.number == mc["trial"])
        trades = (await store.artifacts(study.id, trial.number))["trades"]
    finally:
        await store.close()
    assert trial.metrics is not None
    own = trial.metrics["final_value"] / 5000 - 1
    assert mc["in_order_return"] == pytest.approx(own, rel=1e-9, abs=1e-12)
    assert abs(float(np.prod(1 + trades["return"]) - 1) - own) > 0.01  # the notional returns' figure is off
    assert mc["trades"] == len(trades)
    assert mc["final_return"]["p5"] <= mc["final_return"]["p50"] <= mc["final_return"]["p95"]
