"""Strategy adapters: turn the bars replayed so far into one bar's signals.

The loop never looks ahead: at bar ``i`` a source sees the arrays ``[0, i]``
only (views of buffers that are filled as bars arrive) and recomputes the
strategy's indicators over that prefix with the backtester's own kernels, then
evaluates the strategy's rule at ``i`` exactly as ``simulate_nb`` does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from engine.backtest.enums import KIND_SIGNALS
from engine.backtest.nb import rule_nb

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
Indicators = Callable[
    [np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]
]
SignalArrays = Callable[
    [np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]
]


class SignalSource(Protocol):
    """What the loop needs from a strategy."""

    name: str

    def signal_at(self, prefix: Arrays) -> tuple[bool, bool]:
        """(entry, exit) at the last bar of ``prefix`` (open, high, low, close, volume)."""
        ...


class RuleSignals:
    """A strategy given as a kernel rule (``enums.KIND_*``) over two indicator arrays."""

    def __init__(
        self, name: str, kind: int, indicators: Indicators, p0: float = 0.0, p1: float = 0.0
    ) -> None:
        self.name = name
        self.kind = int(kind)
        self.indicators = indicators
        self.p0 = float(p0)
        self.p1 = float(p1)

    def signal_at(self, prefix: Arrays) -> tuple[bool, bool]:
        close = prefix[3]
        i = close.shape[0] - 1
        if i < 1:
            return False, False
        a, b = self.indicators(*prefix)
        entry, exit_ = rule_nb(
            self.kind, a[i - 1], a[i], b[i - 1], b[i], close[i - 1], close[i], self.p0, self.p1
        )
        return bool(entry), bool(exit_)


class ArraySignals:
    """A strategy given as a function of the bars returning entry and exit arrays."""

    def __init__(self, name: str, signals: SignalArrays) -> None:
        self.name = name
        self.kind = KIND_SIGNALS
        self.signals = signals

    def signal_at(self, prefix: Arrays) -> tuple[bool, bool]:
        entries, exits = self.signals(*prefix)
        return bool(entries[-1]), bool(exits[-1])


class PrefixBuffer:
    """Growing OHLCV arrays; ``view()`` is the prefix seen so far (no copies)."""

    def __init__(self, capacity: int = 1_024) -> None:
        self._cols = [np.empty(max(capacity, 1)) for _ in range(5)]
        self.n = 0

    def append(self, o: float, h: float, lo: float, c: float, v: float) -> None:
        if self.n == self._cols[0].shape[0]:
            self._cols = [np.concatenate([col, np.empty(col.shape[0])]) for col in self._cols]
        n = self.n
        cols = self._cols
        cols[0][n] = o
        cols[1][n] = h
        cols[2][n] = lo
        cols[3][n] = c
        cols[4][n] = v
        self.n = n + 1

    def view(self) -> Arrays:
        n = self.n
        c = self._cols
        return c[0][:n], c[1][:n], c[2][:n], c[3][:n], c[4][:n]
