"""Final equity agrees with backtesting.py (kernc/backtesting.py) to 1e-6 relative.

How the two are aligned:

- Fills: ``fill="close"`` here, ``trade_on_close=True`` there. backtesting.py
  fills an order placed in ``next()`` of bar t at bar t's close while processing
  bar t+1, so an order placed on the very last bar never fills; ours would fill
  at the last close. The data is cut so that no signal falls on the last bar.
- Fees: ``fee`` here, ``commission`` there: both charge ``fee * units * price``
  on entry and again on exit, from cash.
- Units: backtesting.py buys whole units, ``int(equity * (1 - eps) //
  (price * (1 + commission)))``; ours buys ``cash / (price * (1 + fee))``
  fractional units. ``FractionalBacktest`` trades in units of 1e-8 (it scales
  prices by 1e-8), so its rounding is below 1e-8 of a unit: far under 1e-6.
- Signals: backtesting.py computes its own indicators with pandas (rolling
  mean, rolling population std) and uses its own strict ``crossover``; its
  ``next()`` starts once every indicator is defined, which is exactly when our
  strict crossovers can first fire.
- Open position at the end: neither closes it (``finalize_trades=False``); both
  mark it at the last close without an exit fee.
- Shorts: ``sell()`` sizes like ``buy()``; its equity is ``cash + size * (price
  - entry)`` with ``size < 0``, which is our short cash accounting.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from backtesting import Strategy
from backtesting.lib import FractionalBacktest, crossover

from engine.backtest import get_strategy, run
from engine.data import Bars, load


def frame(bars: Bars) -> pd.DataFrame:
    return pd.DataFrame(
        {"Open": bars.open, "High": bars.high, "Low": bars.low, "Close": bars.close, "Volume": bars.volume},
        index=pd.to_datetime(bars.ts, unit="ns"),
    )


class _Signals(Strategy):
    """Long (or short) on our strategies' rules, with pandas indicators."""

    rule = "sma_cross"
    params: dict = {}  # noqa: RUF012
    direction = "long"

    def init(self) -> None:
        close = pd.Series(np.asarray(self.data.Close))
        p = self.params
        if self.rule == "sma_cross":
            self.a = self.I(lambda: close.rolling(p["fast"]).mean().to_numpy(), name="fast")
            self.b = self.I(lambda: close.rolling(p["slow"]).mean().to_numpy(), name="slow")
        else:  # bollinger_breakout
            mid = close.rolling(p["window"]).mean()
            upper = mid + p["k"] * close.rolling(p["window"]).std(ddof=0)
            self.mid = self.I(lambda: mid.to_numpy(), name="mid")
            self.upper = self.I(lambda: upper.to_numpy(), name="upper")

    def next(self) -> None:
        if self.rule == "sma_cross":
            entry, exit_ = crossover(self.a, self.b), crossover(self.b, self.a)
        else:
            entry, exit_ = crossover(self.data.Close, self.upper), crossover(self.mid, self.data.Close)
        if self.direction == "long":
            if entry and not self.position:
                self.buy()
            elif exit_ and self.position:
                self.position.close()
        else:
            if exit_ and not self.position:
                self.sell()
            elif entry and self.position:
                self.position.close()


def cut_last_signal(bars: Bars, strategy: str, params: dict) -> Bars:
    """Drop trailing bars until the last bar carries no signal (see the module docstring)."""
    entries, exits = get_strategy(strategy).signals(bars, params)
    n = len(bars)
    while entries[n - 1] or exits[n - 1]:
        n -= 1
    return bars.slice(0, n)


def backtesting_py_final(bars: Bars, rule: str, params: dict, fee: float, direction: str) -> tuple[float, int]:
    test = FractionalBacktest(
        frame(bars), _Signals, cash=10_000.0, commission=fee, trade_on_close=True, finalize_trades=False
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = test.run(rule=rule, params=params, direction=direction)
    return float(stats["Equity Final [$]"]), int(stats["# Trades"])


@pytest.mark.parametrize(
    ("spec", "rule", "params", "fee", "direction"),
    [
        ("synthetic:bars=4000,seed=11,timeframe=1h", "sma_cross", {"fast": 10, "slow": 30}, 0.001, "long"),
        ("synthetic:bars=4000,seed=12,timeframe=1m", "sma_cross", {"fast": 5, "slow": 40}, 0.0, "long"),
        ("synthetic:bars=4000,seed=13,timeframe=1d", "sma_cross", {"fast": 8, "slow": 21}, 0.002, "short"),
        ("synthetic:bars=4000,seed=14,timeframe=1h", "bollinger_breakout", {"window": 20, "k": 1.5}, 0.001, "long"),
        ("synthetic:bars=4000,seed=15,timeframe=5m", "bollinger_breakout", {"window": 30, "k": 1.0}, 0.0005, "short"),
    ],
)
def test_final_equity_matches_backtesting_py(spec: str, rule: str, params: dict, fee: float, direction: str) -> None:
    bars = cut_last_signal(load(spec), rule, params)
    ours = run(bars, rule, params, fee=fee, fill="close", direction=direction, trades=True)
    theirs, their_trades = backtesting_py_final(bars, rule, params, fee, direction)
    assert ours.metrics.final_value == pytest.approx(theirs, rel=1e-6)
    assert ours.metrics.trades == their_trades  # closed round trips on both sides
    assert ours.metrics.trades >= 20  # a meaningful number of round trips
