"""Integer codes shared by the kernels and their Python wrappers, and the trade dtype.

Kernels take plain ints (numba specialises on them cheaply); the wrappers map
user-facing strings such as ``"next_open"`` or ``"both"`` onto these codes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

# Fill conventions.
FILL_NEXT_OPEN = 0
FILL_CLOSE = 1
FILLS = {"next_open": FILL_NEXT_OPEN, "close": FILL_CLOSE}

# Directions.
DIR_LONG = 0
DIR_SHORT = 1
DIR_BOTH = 2
DIRECTIONS = {"long": DIR_LONG, "short": DIR_SHORT, "both": DIR_BOTH}

# Signal rules the fused kernel evaluates inline (see nb.signal_at_nb).
KIND_SIGNALS = 0  # explicit entries/exits arrays
KIND_CROSS = 1  # a crosses above b -> entry; a crosses below b -> exit
KIND_OSC = 2  # a crosses below level p0 -> entry; a crosses above level p1 -> exit
KIND_BAND = 3  # close crosses above a + p0*b -> entry; close crosses below a -> exit
KIND_CHANNEL = 4  # close > a[t-1] -> entry; close < b[t-1] -> exit
KIND_ZSCORE = 5  # z=(close-a)/b crosses below -p0 -> entry; crosses above p1 -> exit

# Why a trade ended.
EXIT_SIGNAL = 0
EXIT_STOP_LOSS = 1
EXIT_TAKE_PROFIT = 2
EXIT_OPEN = 3  # still open after the last bar: marked at the last close, no exit fee
EXIT_TRAILING_STOP = 4
EXIT_REASONS = ("signal", "stop_loss", "take_profit", "open", "trailing_stop")

#: One trade: bar indices of the entry and exit fills, signed direction (+1 long,
#: -1 short), units held, fill prices (slippage included), fees paid, net profit
#: and net return on the entry notional (``pnl / (units * entry_price)``), funding
#: paid while the trade was open (negative: received; already in ``pnl``).
TRADE_DTYPE = np.dtype(
    [
        ("entry_idx", np.int64),
        ("exit_idx", np.int64),
        ("direction", np.int64),
        ("units", np.float64),
        ("entry_price", np.float64),
        ("exit_price", np.float64),
        ("entry_fee", np.float64),
        ("exit_fee", np.float64),
        ("pnl", np.float64),
        ("return", np.float64),
        ("exit_reason", np.int64),
        ("funding", np.float64),
    ],
    align=True,
)

#: One trade of a basket backtest: the symbol's index in the basket, then the
#: fields of ``TRADE_DTYPE`` with ``entry_idx``/``exit_idx`` as rows of the
#: basket's timeline.
_TRADE_FIELDS: Mapping[str, Any] = TRADE_DTYPE.fields or {}  # (a structured dtype always has fields)
BASKET_TRADE_DTYPE = np.dtype(
    [("symbol", np.int64), *((name, _TRADE_FIELDS[name][0]) for name in TRADE_DTYPE.names or ())], align=True
)

#: One symbol's share of a basket backtest: closed trades, pnl of its trades (the
#: open one marked at the last close) over the starting cash, share of closed
#: trades won, share of its own bars that close with its position open.
SYMBOL_DTYPE = np.dtype(
    [("trades", np.int64), ("return_contribution", np.float64), ("win_rate", np.float64), ("exposure", np.float64)],
    align=True,
)

# Allocations of a basket's cash.
ALLOC_SPLIT = 0
ALLOC_SHARED = 1
ALLOCATIONS = {"split": ALLOC_SPLIT, "shared": ALLOC_SHARED}

# Position sizing.
SIZING_FRACTION = 0
SIZING_RISK = 1
SIZINGS = {"fraction": SIZING_FRACTION, "risk": SIZING_RISK}

#: Metric names in the order the kernel writes them into its output array.
METRIC_NAMES = (
    "final_value",
    "total_return",
    "cagr",
    "volatility",
    "sharpe",
    "sortino",
    "max_drawdown",
    "calmar",
    "trades",
    "win_rate",
    "profit_factor",
    "avg_trade",
    "exposure",
    "funding_paid",
)
N_METRICS = len(METRIC_NAMES)
(
    M_FINAL_VALUE,
    M_TOTAL_RETURN,
    M_CAGR,
    M_VOLATILITY,
    M_SHARPE,
    M_SORTINO,
    M_MAX_DRAWDOWN,
    M_CALMAR,
    M_TRADES,
    M_WIN_RATE,
    M_PROFIT_FACTOR,
    M_AVG_TRADE,
    M_EXPOSURE,
    M_FUNDING_PAID,
) = range(N_METRICS)
