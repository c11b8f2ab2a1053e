"""Hypothesis generators of bars and signals for the backtest tests."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from engine.data import Bars
from tests.backtest.conftest import make_bars

# A bar-to-bar move: often exactly flat, sometimes a gap.
_moves = st.one_of(
    st.just(0.0),
    st.floats(-0.03, 0.03, allow_nan=False),
    st.floats(-0.25, 0.25, allow_nan=False),
)
_wicks = st.one_of(st.just(0.0), st.floats(0.0, 0.05, allow_nan=False))


def bars(min_size: int = 1, max_size: int = 60) -> st.SearchStrategy[Bars]:
    """Random OHLC bars: a random walk (flat stretches, gaps, wicks) or, as often, prices on a
    coarse grid whose indicator values tie (a crossover must be strict on both sides)."""
    return st.one_of(walk_bars(min_size, max_size), grid_bars(min_size, max_size))


@st.composite
def grid_bars(draw: st.DrawFn, min_size: int = 1, max_size: int = 60) -> Bars:
    """Whole-number closes with long flat runs: moving averages of equal windows are exactly
    equal, so fast and slow lines touch without crossing."""
    n = draw(st.integers(min_size, max_size))
    level = draw(st.integers(3, 12))
    close = []
    for step in draw(st.lists(st.sampled_from([0, 0, 0, 0, 1, -1, 2, -2]), min_size=n, max_size=n)):
        level = max(1, level + step)
        close.append(float(level))
    open_ = [close[0], *close[:-1]]
    wick = draw(st.sampled_from([0.0, 1.0]))
    high = [max(o, c) + wick for o, c in zip(open_, close, strict=True)]
    low = [max(0.5, min(o, c) - wick) for o, c in zip(open_, close, strict=True)]
    return make_bars(close, open_, high, low)


@st.composite
def walk_bars(draw: st.DrawFn, min_size: int = 1, max_size: int = 60) -> Bars:
    """Random OHLC bars: flat stretches, gaps between close and next open, wicks."""
    n = draw(st.integers(min_size, max_size))
    start = draw(st.floats(0.5, 2_000.0))
    close_moves = draw(st.lists(_moves, min_size=n, max_size=n))
    gaps = draw(st.lists(st.one_of(st.just(0.0), _moves), min_size=n, max_size=n))
    ups = draw(st.lists(_wicks, min_size=n, max_size=n))
    downs = draw(st.lists(_wicks, min_size=n, max_size=n))
    close, open_ = [], []
    prev = start
    for i in range(n):
        o = prev * math.exp(gaps[i])
        c = o * math.exp(close_moves[i])
        open_.append(o)
        close.append(c)
        prev = c
    high = [max(o, c) * (1.0 + u) for o, c, u in zip(open_, close, ups, strict=True)]
    low = [min(o, c) * (1.0 - d) for o, c, d in zip(open_, close, downs, strict=True)]
    return make_bars(close, open_, high, low)


@st.composite
def signals(draw: st.DrawFn, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Sparse random entry/exit arrays (sometimes both on one bar)."""
    density = draw(st.sampled_from([0.05, 0.2, 0.5]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    return rng.random(n) < density, rng.random(n) < density


options = st.fixed_dictionaries(
    {
        "fill": st.sampled_from(["next_open", "close"]),
        "direction": st.sampled_from(["long", "short", "both"]),
        "fee": st.one_of(st.just(0.0), st.floats(0.0, 0.01)),
        "slippage": st.one_of(st.just(0.0), st.floats(0.0, 0.01)),
        "size": st.one_of(st.just(1.0), st.floats(0.05, 1.0)),
        "cash": st.sampled_from([10_000.0, 1.0, 123_456.78]),
        "stop_loss": st.one_of(st.just(0.0), st.floats(0.005, 0.3)),
        "take_profit": st.one_of(st.just(0.0), st.floats(0.005, 0.5)),
    }
)
