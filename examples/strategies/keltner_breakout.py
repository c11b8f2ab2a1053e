"""Keltner-channel breakout: EMA +/- a multiple of the ATR, with the band built in numba.

    genesis check examples/strategies/keltner_breakout.py:keltner_breakout
"""

from __future__ import annotations

import numpy as np
from numba import njit

from engine.strategy import Param, strategy, ta


@njit(cache=True)  # compiled once per content of this file, then loaded from disk
def band_nb(middle: np.ndarray, atr: np.ndarray, mult: float) -> np.ndarray:
    out = np.empty(middle.shape[0])
    for i in range(middle.shape[0]):
        out[i] = middle[i] + mult * atr[i]  # NaN while either input warms up
    return out


@strategy(
    params=[
        Param.int("window", 20, 2, 200),
        Param.int("atr_window", 10, 2, 100),
        Param.float("mult", 2.0, 0.5, 5.0),
    ],
    lookback="10*window + 10*atr_window",
)
def keltner_breakout(bars, window, atr_window, mult):
    """Enter when the close crosses above EMA + mult*ATR; exit when it crosses below the EMA."""
    middle = ta.ema(bars.close, window)
    upper = band_nb(middle, ta.atr(bars.high, bars.low, bars.close, atr_window), mult)
    return ta.crossed_above(bars.close, upper), ta.crossed_below(bars.close, middle)
