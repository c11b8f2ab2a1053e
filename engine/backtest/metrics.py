"""The metrics record of one backtest (computed by the kernel, see ``nb._finish_metrics_nb``).

Definitions (``r_t`` is the equity return of bar ``t``, the first one against the
starting cash; ``n`` bars; ``P`` = bars per year of the timeframe):

- ``final_value``: cash plus the open position marked at the last close.
- ``total_return``: final_value / cash - 1.
- ``cagr``: (final_value / cash) ** (P / n) - 1 (-1 when the final value is <= 0).
- ``volatility``: sample std of r (ddof 1) * sqrt(P).
- ``sharpe``: mean(r) / std(r) * sqrt(P) (risk-free rate 0; 0 when std is 0).
- ``sortino``: mean(r) / sqrt(mean(min(r, 0)^2)) * sqrt(P) (0 without a losing bar).
- ``max_drawdown``: largest fall from a running peak, 1 - equity / peak (a positive fraction;
  the starting cash counts as the first peak).
- ``calmar``: cagr / max_drawdown (0 without a drawdown).
- ``trades``: closed trades (a position still open at the end is not counted).
- ``win_rate``: share of closed trades with a net pnl > 0 (fees included).
- ``profit_factor``: gross profit / gross loss of closed trades (inf without a loss, 0 without trades).
- ``avg_trade``: mean net return of closed trades, pnl / (units * entry fill price).
- ``exposure``: share of bars that close with a position open.
- ``funding_paid``: perpetual funding paid through cash over the run (negative:
  received; 0 without funding). Already in ``final_value`` and each trade's pnl.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from engine.backtest.enums import METRIC_NAMES


@dataclass(frozen=True, slots=True)
class Metrics:
    """The metrics of one backtest (see the module docstring for definitions)."""

    final_value: float
    total_return: float
    cagr: float
    volatility: float
    sharpe: float
    sortino: float
    max_drawdown: float
    calmar: float
    trades: int
    win_rate: float
    profit_factor: float
    avg_trade: float
    exposure: float
    funding_paid: float

    @classmethod
    def from_array(cls, values: np.ndarray) -> Metrics:
        """From the kernel's output array (``enums.METRIC_NAMES`` order)."""
        fields: dict[str, Any] = {name: float(values[i]) for i, name in enumerate(METRIC_NAMES)}
        fields["trades"] = int(fields["trades"])
        return cls(**fields)

    def as_dict(self) -> dict[str, float | int]:
        """Metric name -> value (snake_case keys, in the documented order)."""
        return asdict(self)

    def as_json(self) -> dict[str, Any]:
        """Like :meth:`as_dict` with non-finite values (an infinite profit factor) as None."""
        return {k: (v if isinstance(v, int) or math.isfinite(v) else None) for k, v in asdict(self).items()}
