"""Strategies whose code fails in each way a user's can."""

import numpy as np
from numba import njit

from engine.strategy import Param, strategy, ta


@strategy(params=[Param.int("window", 5, 2, 50)], lookback="window")
def raises(bars, window):
    x = ta.sma(bars.close, window)
    return x > 1, {}["missing"]  # the line a user must see


@strategy(params=[Param.int("window", 5, 2, 50)])
def not_a_pair(bars, window):
    return bars.close > 0


@strategy(params=[Param.int("window", 5, 2, 50)])
def floats(bars, window):
    return ta.sma(bars.close, window), bars.close < 0


@strategy(params=[Param.int("window", 5, 2, 50)])
def too_short(bars, window):
    entries = bars.close > 0
    return entries[:-1], entries[:-1]


@strategy(params=[Param.int("window", 5, 2, 50)])
def two_dimensional(bars, window):
    entries = np.zeros((len(bars), 2), dtype=bool)
    return entries, entries


@njit(cache=True)
def add_label_nb(x):
    out = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        out[i] = x[i] + "label"  # a float plus a string: numba cannot type this line
    return out


@strategy(params=[Param.int("window", 5, 2, 50)])
def untypable(bars, window):
    labelled = add_label_nb(bars.close)
    return labelled > 0, labelled < 0


@njit(cache=True)
def mixed_nb(x):
    d = {}
    d[1] = x[0]
    d[2] = "text"  # fine in Python, a dict numba cannot type
    return x


@strategy(params=[Param.int("window", 5, 2, 50)])
def python_only(bars, window):
    x = mixed_nb(bars.close)
    return x > 0, x < 0
