"""Funding rates of a perpetual future: the events a backtest settles against its position.

A source that knows them puts a :class:`FundingRates` in ``Bars.meta["funding"]``;
``engine.backtest`` applies them (``docs/backtest.md``, Funding).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.errors import DataError


@dataclass(frozen=True, slots=True)
class FundingRates:
    """Funding events: ``ts`` (int64 ns UTC, strictly increasing) and ``rate`` (a fraction
    of the position's notional; positive: longs pay shorts)."""

    ts: np.ndarray
    rate: np.ndarray

    def __post_init__(self) -> None:
        ts = np.ascontiguousarray(self.ts, dtype=np.int64)
        rate = np.ascontiguousarray(self.rate, dtype=np.float64)
        if ts.shape != rate.shape or ts.ndim != 1:
            raise DataError(f"funding rates: {ts.shape[0]} times but {rate.shape[0]} rates")
        if ts.shape[0] > 1 and not bool(np.all(np.diff(ts) > 0)):
            raise DataError("funding rates: event times must be strictly increasing")
        if not bool(np.all(np.isfinite(rate))):
            raise DataError("funding rates: every rate must be a finite number")
        object.__setattr__(self, "ts", ts)
        object.__setattr__(self, "rate", rate)

    def __len__(self) -> int:
        return int(self.ts.shape[0])
