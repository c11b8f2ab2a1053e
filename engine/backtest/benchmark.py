"""Buy-and-hold: the benchmark every backtest is read against (its equity, its return, the excess over it).

Buy-and-hold puts all the starting cash into the instrument at the first fill a
strategy could get (the first bar's open under ``fill = "next_open"``, its close
under ``fill = "close"``), paying the same slippage and fee as an entry, and holds
it to the end: its final value is the position marked at the last close (no exit
fee, as for a strategy's position still open at the end). The strategy's excess
return is its total return minus buy-and-hold's (a difference of returns).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from engine.backtest.options import BacktestOptions

if TYPE_CHECKING:
    from engine.data import Bars


@dataclass(frozen=True, slots=True)
class Benchmark:
    """Buy-and-hold's return over the bars and the strategy's return above it."""

    buy_and_hold_return: float
    excess_return: float

    def as_dict(self) -> dict[str, float]:
        return {"buy_and_hold_return": self.buy_and_hold_return, "excess_return": self.excess_return}


def buy_and_hold_equity(bars: Bars, options: BacktestOptions | None = None) -> np.ndarray:
    """Buy-and-hold's equity at each bar's close (the bars' length; empty bars give an empty curve)."""
    options = options or BacktestOptions()
    if len(bars) == 0:
        return np.empty(0)
    price = float(bars.close[0] if options.fill == "close" else bars.open[0]) * (1.0 + options.slippage)
    units = options.cash / (price * (1.0 + options.fee))
    return units * np.asarray(bars.close, dtype=np.float64)


def buy_and_hold_return(bars: Bars, options: BacktestOptions | None = None) -> float:
    """Buy-and-hold's total return over ``bars`` (a fraction: 0.1 is +10 %)."""
    options = options or BacktestOptions()
    equity = buy_and_hold_equity(bars, options)
    return float(equity[-1] / options.cash - 1.0) if len(equity) else 0.0


def benchmark(bars: Bars, total_return: float, options: BacktestOptions | None = None) -> Benchmark:
    """Buy-and-hold over ``bars`` and a strategy's ``total_return`` above it."""
    held = buy_and_hold_return(bars, options)
    return Benchmark(buy_and_hold_return=held, excess_return=float(total_return) - held)
