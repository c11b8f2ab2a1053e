"""Bars builders for the paper-trading tests."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from engine.data.bars import Bars

T0 = 1_700_000_000_000_000_000
MINUTE = 60_000_000_000


def bars_from(
    close: list[float],
    *,
    gap: list[float] | None = None,
    wick: list[float] | None = None,
    symbol: str = "BTC",
) -> Bars:
    """Bars around a close path: open = previous close * (1 + gap), wicks outside both."""
    c = np.asarray(close, dtype=float)
    n = c.shape[0]
    g = np.zeros(n) if gap is None else np.asarray(gap, dtype=float)
    w = np.full(n, 0.001) if wick is None else np.asarray(wick, dtype=float)
    o = np.r_[c[0], c[:-1]] * (1.0 + g)
    h = np.maximum(o, c) * (1.0 + w)
    lo = np.minimum(o, c) * (1.0 - w)
    ts = T0 + np.arange(n, dtype=np.int64) * MINUTE
    return Bars(
        ts=ts, open=o, high=h, low=lo, close=c, volume=np.ones(n), symbol=symbol, timeframe="1m"
    )


@st.composite
def hypothesis_bars(draw: st.DrawFn, min_size: int = 40, max_size: int = 160) -> Bars:
    """A random walk with flat stretches, gaps and wicks (valid OHLC by construction)."""
    n = draw(st.integers(min_size, max_size))
    seed = draw(st.integers(0, 2**32 - 1))
    vol = draw(st.sampled_from([0.002, 0.01, 0.03]))
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, vol, n)
    steps[rng.random(n) < draw(st.sampled_from([0.0, 0.2]))] = 0.0  # flat stretches
    close = 100.0 * np.exp(np.cumsum(steps))
    gap = rng.normal(0.0, vol / 3, n)
    wick = np.abs(rng.normal(0.0, vol, n))
    return bars_from(close.tolist(), gap=gap.tolist(), wick=wick.tolist())
