"""CSCV/PBO: the kernel against a slow pure-Python reference, and the two properties on generated markets."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import backtest
from engine.analysis.pbo import cscv, split_halves
from engine.analysis.pbo_nb import TILE, cscv_pairs_nb
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


def reference_pairs(columns: list[list[float]], halves: list[list[int]]) -> list[list[float]]:
    """The kernel's arithmetic written plainly, split by split: a half's figure adds its blocks in the
    half's order, the other half's is the total (from 0.0, block by block) less it; the first strictly
    best trial is chosen (NaN never; none at all leaves trial 0 and a test figure of 0.0)."""
    blocks, n = len(columns), len(columns[0])
    total = [0.0] * n
    for j in range(blocks):
        for i in range(n):
            total[i] += columns[j][i]
    chosen: list[float] = []
    inside: list[float] = []
    outside: list[float] = []
    ranks: list[float] = []
    for half in halves:
        a = list(columns[half[0]])
        for block in half[1:]:
            a = [x + y for x, y in zip(a, columns[block], strict=True)]
        b = [t - x for t, x in zip(total, a, strict=True)]
        for train, test in ((a, b), (b, a)):
            best, arg, found = -math.inf, 0, False
            for i, x in enumerate(train):
                if x > best:
                    best, arg, found = x, i, True
            value = test[arg] if found else 0.0
            chosen.append(arg)
            inside.append(best)
            outside.append(value)
            ranks.append(sum(v < value for v in test) + (sum(v == value for v in test) + 1) / 2.0)
    return [chosen, inside, outside, ranks]


#: Figure values to draw a matrix from: few of them, so that ties abound; -0.0, infinities and NaN among them.
_values = st.lists(
    st.one_of(st.floats(-0.5, 0.5, width=32), st.sampled_from([0.0, -0.0, 0.25, -math.inf, math.inf, math.nan])),
    min_size=1,
    max_size=6,
)


@settings(max_examples=60, deadline=None)
@given(
    st.one_of(st.integers(1, 12), st.sampled_from([TILE - 1, TILE, TILE + 1, 2 * TILE + 1, 3 * TILE - 3])),
    st.sampled_from([2, 4, 6]),
    _values,
    st.floats(0.0, 1.0),
    st.integers(0, 2**16),
    st.integers(1, 4),
)
def test_cscv_kernel_is_the_plain_reference_bit_for_bit(
    trials: int, blocks: int, values: list[float], spread: float, seed: int, chunks: int
) -> None:
    """Any number of trials around the tile size (the kernel visits tiles best first), ties within and
    across tiles, NaN and infinite figures: the same chosen trials, figures and ranks, bit for bit."""
    rng = np.random.default_rng(seed)
    columns = rng.choice(np.array(values), size=(blocks, trials))
    noisy = rng.random((blocks, trials)) < spread  # some trials off the palette: a best to find, not only ties
    columns[noisy] = rng.normal(0.0, 0.1, noisy.sum()).astype(np.float32)
    halves = split_halves(blocks, max_splits=None if seed % 2 else 4, seed=seed)
    pairs = halves.shape[0]
    got = [np.empty(2 * pairs, np.int64), np.empty(2 * pairs), np.empty(2 * pairs), np.empty(2 * pairs)]
    cscv_pairs_nb(columns, halves, min(chunks, pairs), *got)
    want = reference_pairs(columns.tolist(), halves.tolist())
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, np.array(b, dtype=a.dtype))
        assert np.array_equal(np.signbit(a), np.signbit(np.array(b, dtype=a.dtype)))  # -0.0 and 0.0 kept apart


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
