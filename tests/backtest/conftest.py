"""Fixtures of the backtest tests: bars built from plain lists."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from engine.data import Bars

DAY_NS = 86_400 * 1_000_000_000


def make_bars(
    close: Sequence[float],
    open_: Sequence[float] | None = None,
    high: Sequence[float] | None = None,
    low: Sequence[float] | None = None,
    timeframe: str = "1d",
) -> Bars:
    """Bars from lists; open defaults to the close, high/low to max/min(open, close)."""
    c = np.asarray(close, dtype=np.float64)
    o = c.copy() if open_ is None else np.asarray(open_, dtype=np.float64)
    h = np.maximum(o, c) if high is None else np.asarray(high, dtype=np.float64)
    lo = np.minimum(o, c) if low is None else np.asarray(low, dtype=np.float64)
    ts = np.arange(c.shape[0], dtype=np.int64) * DAY_NS + 1_700_000_000 * 1_000_000_000
    return Bars(ts, o, h, lo, c, np.ones_like(c), symbol="TEST", timeframe=timeframe)


@pytest.fixture
def random_bars(rng: np.random.Generator) -> Bars:
    """2,000 one-minute bars of a random walk with wicks and gaps."""
    n = 2_000
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.004, n)))
    open_ = np.r_[close[0], close[:-1]] * np.exp(rng.normal(0.0, 0.001, n))
    high = np.maximum(open_, close) * (1.0 + rng.uniform(0.0, 0.004, n))
    low = np.minimum(open_, close) * (1.0 - rng.uniform(0.0, 0.004, n))
    return make_bars(close, open_, high, low, timeframe="1m")
