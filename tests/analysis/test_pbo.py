"""CSCV/PBO: the kernel against a slow pure-Python reference, and the two properties on generated markets."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from engine import backtest
from engine.analysis.pbo import cscv, split_halves
from engine.data import load


def reference(figures: list[list[float]]) -> dict[str, float]:
    """Bailey et al.'s CSCV written plainly: every split, every trial, sorted ranks."""
    trials, blocks = len(figures), len(figures[0])
    logits, inside, outside = [], [], []
    for train in itertools.combinations(range(blocks), blocks // 2):
        test = [b for b in range(blocks) if b not in train]
        r_train = [sum(row[b] for b in train) for row in figures]
        r_test = [sum(row[b] for b in test) for row in figures]
        best = max(range(trials), key=lambda t: (r_train[t], -t))
        value = r_test[best]
        below = sum(1 for v in r_test if v < value)
        equal = sum(1 for v in r_test if v == value)
        omega = (below + (equal + 1) / 2) / (trials + 1)
        logits.append(math.log(omega / (1 - omega)))
        inside.append(r_train[best])
        outside.append(value)
    mx, my = sum(inside) / len(inside), sum(outside) / len(outside)
    slope = sum((x - mx) * (y - my) for x, y in zip(inside, outside, strict=True)) / sum(
        (x - mx) ** 2 for x in inside
    )
    return {
        "pbo": sum(1 for lam in logits if lam <= 0) / len(logits),
        "slope": slope,
        "loss": sum(1 for y in outside if y < 0) / len(outside),
        "logits": sorted(logits),
    }


@pytest.mark.parametrize(("trials", "blocks", "seed"), [(40, 8, 1), (25, 10, 2), (3, 2, 3), (60, 6, 4)])
def test_cscv_matches_the_reference(trials: int, blocks: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    # A few trials with a real edge among noise, so the figures are neither all 0 nor all 1.
    figures = rng.normal(0.0, 0.02, size=(trials, blocks)) + rng.normal(0.0, 0.004, size=(trials, 1))
    figures = figures.astype(np.float32).astype(np.float64)  # as stored
    got = cscv(figures)
    want = reference(figures.tolist())
    assert got.splits == got.total_splits == math.comb(blocks, blocks // 2)
    assert got.pbo == pytest.approx(want["pbo"], abs=1e-12)
    assert got.prob_oos_loss == pytest.approx(want["loss"], abs=1e-12)
    assert got.slope == pytest.approx(want["slope"], rel=1e-9)
    assert sorted(got.logits.tolist()) == pytest.approx(want["logits"], abs=1e-9)


def test_ties_take_the_lowest_trial_and_share_ranks() -> None:
    figures = np.zeros((4, 4))  # every trial equal: trial 0 chosen, the median rank, logit 0
    result = cscv(figures)
    assert set(result.chosen.tolist()) == {0}
    assert np.allclose(result.logits, 0.0) and result.pbo == 1.0


def test_a_sample_of_splits_is_seeded_and_symmetric() -> None:
    halves = split_halves(16, max_splits=200, seed=5)
    assert halves.shape == (100, 8) and (halves[:, 0] == 0).all()
    assert len({tuple(row) for row in halves.tolist()}) == 100
    assert np.array_equal(halves, split_halves(16, max_splits=200, seed=5))
    figures = np.random.default_rng(0).normal(size=(50, 16))
    assert cscv(figures, max_splits=200, seed=5).splits == 200
    assert split_halves(16).shape == (math.comb(15, 7), 8)
    with pytest.raises(ValueError, match="even"):
        split_halves(7)


SETS = [{"fast": f, "slow": s} for f in range(2, 40, 3) for s in range(20, 200, 12) if f < s]


def _study_figures(spec: str, fee: float) -> np.ndarray:
    bars = load(spec)
    figures = np.empty((len(SETS), 16))
    backtest.run_many(bars, "sma_cross", SETS, blocks=figures, fee=fee)
    return figures.astype(np.float32).astype(np.float64)


def test_pbo_is_high_on_a_driftless_random_walk() -> None:
    # No drift, no costs: nothing persists from block to block but luck.
    figures = _study_figures("synthetic:bars=60000,seed=3,timeframe=1h,regimes=false,jumps=0", fee=0.0)
    assert cscv(figures).pbo >= 0.4


def test_pbo_is_low_when_a_trend_follower_has_a_planted_edge() -> None:
    # Persistent trends (20-day spells of +-300%/year drift) that slow crossovers ride and fast ones,
    # paying fees on every whipsaw, do not: the in-sample ranking holds out of sample.
    figures = _study_figures("synthetic:bars=60000,seed=3,timeframe=1h,trend=3,trend_days=20,vol=0.3", fee=0.002)
    result = cscv(figures)
    assert result.pbo <= 0.1
    assert result.prob_oos_loss <= 0.1
