"""MACD crossover entries with an ATR trailing exit (a chandelier exit), all as signals.

    genesis check examples/strategies/macd_atr_trail.py:macd_atr_trail
    genesis backtest --strategy examples/strategies/macd_atr_trail.py:macd_atr_trail --data synthetic:bars=100000,seed=1
"""

from __future__ import annotations

from engine.strategy import Param, strategy, ta


@strategy(
    params=[
        Param.int("fast", 12, 2, 100),
        Param.int("slow", 26, 5, 300),
        Param.int("signal", 9, 2, 50),
        Param.int("atr_window", 14, 2, 100),
        Param.int("trail", 22, 2, 200),
        Param.float("atr_mult", 3.0, 0.5, 10.0),
    ],
    constraints=["fast < slow"],
    # EMAs and Wilder's ATR remember every bar; ten windows of history settle them.
    lookback="10*slow + 10*signal + 10*atr_window + trail",
)
def macd_atr_trail(bars, fast, slow, signal, atr_window, trail, atr_mult):
    """Enter when MACD crosses above its signal line; exit when the close falls
    atr_mult ATRs below the highest close of the last trail bars, or MACD crosses back."""
    close = bars.close
    macd = ta.ema(close, fast) - ta.ema(close, slow)
    signal_line = ta.ema(macd, signal)  # ta restarts after macd's warm-up NaNs
    stop = ta.highest(close, trail) - atr_mult * ta.atr(bars.high, bars.low, close, atr_window)
    entries = ta.crossed_above(macd, signal_line)
    exits = ta.crossed_below(close, stop) | ta.crossed_below(macd, signal_line)
    return entries, exits
