"""Strategies that look into the future, each in a usual way (genesis check must catch them)."""

import numpy as np

from engine.strategy import Param, strategy, ta


@strategy(params=[Param.int("window", 20, 2, 200)], lookback="window")
def rolled(bars, window):
    """Tomorrow's close, by np.roll."""
    nxt = np.roll(bars.close, -1)
    return nxt > bars.close, nxt < bars.close


@strategy(params=[Param.int("window", 21, 3, 201)], lookback="window")
def centred(bars, window):
    """A moving average centred on the bar (half of its window is in the future)."""
    half = window // 2
    mid = np.full(len(bars), np.nan)
    mid[: len(bars) - half] = ta.sma(bars.close, window)[half:]
    return ta.crossed_above(bars.close, mid), ta.crossed_below(bars.close, mid)


@strategy(params=[Param.float("level", 0.5, 0.1, 0.9)], lookback=50)
def normalised(bars, level):
    """The close scaled by the whole series' lowest and highest closes."""
    x = (bars.close - bars.close.min()) / (bars.close.max() - bars.close.min())
    return ta.crossed_above(x, level), ta.crossed_below(x, level)


@strategy(params=[Param.int("window", 20, 2, 200)], lookback="window")
def shifted_wrong_way(bars, window):
    """The moving average moved one bar back instead of forward: it holds tomorrow's close."""
    average = np.full(len(bars), np.nan)
    average[:-1] = ta.sma(bars.close, window)[1:]
    return ta.crossed_above(bars.close, average), ta.crossed_below(bars.close, average)


@strategy(params=[Param.int("fast", 10, 2, 100), Param.int("slow", 50, 5, 500)], constraints=["fast < slow"], lookback="fast")
def short_lookback(bars, fast, slow):
    """Causal, but it needs `slow` bars of history and declares only `fast`."""
    f, s = ta.sma(bars.close, fast), ta.sma(bars.close, slow)
    return ta.crossed_above(f, s), ta.crossed_below(f, s)
