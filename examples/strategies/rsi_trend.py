"""RSI dips bought only in an uptrend (close above its long SMA).

    genesis check examples/strategies/rsi_trend.py:rsi_trend
"""

from __future__ import annotations

from engine.strategy import Param, strategy, ta


@strategy(
    params=[
        Param.int("window", 14, 2, 100),
        Param.float("lower", 30.0, 5.0, 50.0),
        Param.float("upper", 65.0, 50.0, 95.0),
        Param.int("trend", 200, 20, 1000),
    ],
    constraints=["lower < upper"],
    lookback="10*window + trend",  # Wilder's smoothing remembers every bar
)
def rsi_trend(bars, window, lower, upper, trend):
    """Enter when RSI crosses below lower while the close is above SMA(trend); exit when RSI crosses above upper."""
    rsi = ta.rsi(bars.close, window)
    uptrend = bars.close > ta.sma(bars.close, trend)  # False while the SMA is NaN
    return ta.crossed_below(rsi, lower) & uptrend, ta.crossed_above(rsi, upper)
