"""Causal strategies with enough declared lookback."""

import numpy as np
from numba import njit

from engine.strategy import Param, strategy, ta


@strategy(params=[Param.int("fast", 10, 2, 200), Param.int("slow", 50, 5, 500)], constraints=["fast < slow"], lookback="slow")
def sma_cross(bars, fast, slow):
    """The built-in sma_cross, written with ta."""
    f, s = ta.sma(bars.close, fast), ta.sma(bars.close, slow)
    return ta.crossed_above(f, s), ta.crossed_below(f, s)


@njit(cache=True)
def momentum_nb(close, window):
    out = np.full(close.shape[0], np.nan)
    for i in range(window, close.shape[0]):
        out[i] = close[i] / close[i - window] - 1.0
    return out


@strategy(params=[Param.int("window", 20, 2, 200), Param.float("threshold", 0.0, -0.5, 0.5)], lookback="window + 1")
def momentum(bars, window, threshold):
    """Long while the momentum (user numba) is above a threshold."""
    m = momentum_nb(bars.close, window)
    return ta.crossed_above(m, threshold), ta.crossed_below(m, threshold)


@strategy(params=[Param.int("window", 20, 2, 200)], lookback="window + 1")
def donchian_prev(bars, window):
    """Breakout of the previous bars' channel (shifted the right way)."""
    upper = ta.shift(ta.highest(bars.high, window))
    lower = ta.shift(ta.lowest(bars.low, window))
    return bars.close > upper, bars.close < lower
