"""Strategy adapters: turn the bars replayed so far into one bar's signals.

The loop never looks ahead: at bar ``i`` a source sees the arrays ``[0, i]``
only (views of buffers that are filled as bars arrive) and recomputes the
strategy's indicators over that prefix with the backtester's own kernels, then
evaluates the strategy's rule at ``i`` exactly as ``simulate_nb`` does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np

from engine.backtest import indicators
from engine.backtest.enums import KIND_SIGNALS
from engine.backtest.indicators import IndicatorCache
from engine.backtest.nb import rule_nb
from engine.backtest.strategies import Strategy, get_strategy
from engine.profile.caches import caches

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


class _PrefixBars:
    """The columns a strategy's indicator recipe reads, for the bars seen so far.

    Not a validated ``Bars``: the feed's bars were validated once, and building a
    ``Bars`` per bar would re-check the whole prefix every time.
    """

    __slots__ = ("close", "high", "low", "open", "volume")

    def __init__(self, prefix: Arrays) -> None:
        self.open, self.high, self.low, self.close, self.volume = prefix


# The backtester's own indicator recipes (name -> f(bars, window)); private there,
# so fall back to the public cache path if it ever moves.
_RECIPES: dict[str, Callable[[Any, int], np.ndarray]] = getattr(indicators, "_COMPUTE", {})


class _PassThrough(IndicatorCache):
    """Computes every request afresh: a prefix is never asked for twice, and the
    cache's bookkeeping (locks, stage timers, read-only flags) would cost more per
    bar than the kernels do."""

    def __init__(self) -> None:
        super().__init__(max_bytes=0)
        self.counters = caches.counters("live.indicators")

    def get(self, bars: Any, name: str, window: int) -> np.ndarray:
        recipe = _RECIPES.get(name)
        if recipe is None:
            return super().get(bars, name, window)
        self.counters.misses += 1
        return recipe(bars, int(window))

    def _insert(self, key: tuple[int, str, int], bars: Any, values: np.ndarray) -> None:
        return None


class RegistrySignals:
    """A strategy from the backtest registry (``engine.backtest.strategies``).

    At every bar the strategy's own indicator recipe (``Strategy.kernel_inputs``)
    runs over the prefix and its kernel rule is evaluated at the last bar, so the
    loop and ``engine.backtest.run`` share one definition of every signal.
    """

    def __init__(self, name: str, params: Mapping[str, Any] | None = None) -> None:
        self.strategy: Strategy = get_strategy(name)
        self.params = self.strategy.validate(params)
        self.name = name
        self._cache = _PassThrough()

    def signal_at(self, prefix: Arrays) -> tuple[bool, bool]:
        close = prefix[3]
        i = close.shape[0] - 1
        if i < 1:
            return False, False
        inputs = self.strategy.kernel_inputs(_PrefixBars(prefix), self.params, self._cache)  # type: ignore[arg-type]
        a, b = inputs.a, inputs.b
        entry, exit_ = rule_nb(
            inputs.kind,
            a[i - 1],
            a[i],
            b[i - 1],
            b[i],
            close[i - 1],
            close[i],
            inputs.p0,
            inputs.p1,
        )
        return bool(entry), bool(exit_)


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
