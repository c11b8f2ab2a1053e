"""Strategy adapters: turn the bars replayed so far into one bar's signals.

The loop never looks ahead: at bar ``i`` a source sees the arrays ``[0, i]``
only (views of buffers that are filled as bars arrive). Registry strategies
(:class:`RegistrySignals`) feed each new bar to streaming indicators and
evaluate the strategy's kernel rule at ``i`` exactly as ``simulate_nb`` does;
the generic adapters (:class:`RuleSignals`, :class:`ArraySignals`) call a
user's function over the whole prefix at every bar.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple, Protocol, overload

import numpy as np

from engine.backtest.enums import KIND_SIGNALS
from engine.backtest.nb import rule_nb
from engine.backtest.strategies import Strategy, StrategyDef, get_strategy
from engine.backtest.streaming import IndicatorBank, rule_step_nb
from engine.data.timeframes import timeframe_seconds
from engine.errors import InputError, StrategyError

Arrays = Sequence[np.ndarray]  # open, high, low, close, volume of the bars so far
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


class _Slot(NamedTuple):
    """An indicator a strategy's recipe asked for, in place of its array."""

    name: str
    window: int


class _Recorder:
    """Stands in for the ``IndicatorCache`` a recipe reads: records which
    indicators it asks for instead of computing them."""

    def get(self, bars: Any, name: str, window: int) -> _Slot:
        return _Slot(name, int(window))


class RegistrySignals:
    """A strategy from the backtest registry (``engine.backtest.strategies``),
    evaluated bar by bar with streaming indicators.

    The strategy's own recipe (``Strategy.kernel_inputs``) names its signal rule
    and the indicators the rule reads; their streaming twins
    (``engine.backtest.streaming``, bit-for-bit the batch kernels' values) take
    each new bar in O(1), and the kernel rule (``nb.rule_nb``) is evaluated at
    the last bar, all in one compiled call per bar. So the loop and
    ``engine.backtest.run`` share one definition of every signal, and nothing is
    recomputed over the bars already seen.

    ``signal_at`` follows one growing series: each call sees the bars of the
    previous call plus new ones (usually one); a prefix no longer than the last
    one starts a new series (as does :meth:`reset`).
    """

    def __init__(self, name: str, params: Mapping[str, Any] | None = None) -> None:
        self.strategy: Strategy = get_strategy(name)
        self.params = self.strategy.validate(params)
        self.name = name
        cannot = f"{name}: its recipe does more than fetch indicators, so the paper loop cannot stream it"
        try:  # the recipe runs against a recorder: indicators come back as names
            inputs = self.strategy.kernel_inputs(None, self.params, _Recorder())  # type: ignore[arg-type]
        except Exception as error:  # e.g. arithmetic on an indicator
            raise StrategyError(f"{cannot} ({type(error).__name__}: {error})") from error
        a, b = inputs.a, inputs.b
        if not isinstance(a, _Slot) or not isinstance(b, _Slot):
            raise StrategyError(cannot)
        try:
            self.bank: IndicatorBank = IndicatorBank([a, b])
        except InputError as error:
            raise StrategyError(f"{name}: {error}") from None
        self.kind = int(inputs.kind)
        self.bank.set_rule(self.kind, a, b, inputs.p0, inputs.p1)
        self._bank: np.ndarray = self.bank.bank
        self._n: int = 0
        # Compile (or load from numba's disk cache) the step now, not at the first bar.
        idle = np.empty(0)
        rule_step_nb(self._bank, idle, idle, idle, 0, 0)

    def reset(self) -> None:
        """Forget the bars seen: the next call starts a new series."""
        self.bank.reset()
        self._n = 0

    def signal_at(self, prefix: Arrays) -> tuple[bool, bool]:
        if type(prefix) is Prefix:  # the loop's buffer: read its columns, no slicing
            columns = prefix.columns
            high, low, close = columns[1], columns[2], columns[3]
            n = prefix.n
        else:  # any sequence of arrays (float64 and contiguous: one compiled step)
            high, low, close = (np.ascontiguousarray(prefix[k], dtype=np.float64) for k in (1, 2, 3))
            n = close.shape[0]
        start = self._n
        if n <= start:
            self.bank.reset()
            start = 0
        self._n = n
        return rule_step_nb(self._bank, high, low, close, start, n)


class UserSignals:
    """A Python strategy (``@strategy``, a user's file), evaluated at each bar over the
    last ``lookback + margin`` bars seen: the history it declares it needs, plus a
    margin for indicators that settle slowly (an EMA). Where its signals depend on the
    declared lookback only, the loop trades exactly as ``engine.backtest.run``
    (``genesis check`` tells whether they do)."""

    MARGIN = 64

    def __init__(self, strategy: StrategyDef, params: Mapping[str, Any] | None = None, margin: int = MARGIN,
                 *, symbol: str = "", timeframe: str = "1m") -> None:
        self.strategy = strategy
        self.symbol = symbol
        self.timeframe = timeframe
        self.params = strategy.validate(params)
        self.name = strategy.name
        self.kind = KIND_SIGNALS
        lookback = strategy.lookback_bars(self.params) if strategy.lookback is not None else None
        if lookback is None:
            raise StrategyError(
                f"{strategy.name}: the paper loop needs the strategy's lookback (declare lookback= in @strategy)"
            )
        self.window = lookback + 1 + max(0, margin)

    def signal_at(self, prefix: Arrays) -> tuple[bool, bool]:
        from engine.data.bars import Bars

        columns = list(prefix)
        n = columns[3].shape[0]
        start = max(0, n - self.window)
        ts = getattr(prefix, "ts", None)
        if ts is not None:
            times = ts[start:n]
        else:  # a bare sequence of columns: evenly spaced times of the feed's timeframe
            times = np.arange(start, n, dtype=np.int64) * (timeframe_seconds(self.timeframe) * 1_000_000_000)
        o, h, lo, c, v = (np.ascontiguousarray(col[start:n]) for col in columns)
        bars = Bars(times, o, h, lo, c, v, symbol=self.symbol or self.name, timeframe=self.timeframe)
        entries, exits = self.strategy.signals(bars, self.params)
        return bool(entries[-1]), bool(exits[-1])


def signals_for(strategy: str | StrategyDef, params: Mapping[str, Any] | None = None,
                *, symbol: str = "", timeframe: str = "1m") -> SignalSource:
    """The loop's source for ``strategy``: a built-in streams its fused rule, any other runs its
    function over bars labelled with the feed's ``symbol`` and ``timeframe``."""
    record = get_strategy(strategy)
    if record.fused is not None and record.source is None:
        return RegistrySignals(record.name, params)
    return UserSignals(record, params, symbol=symbol, timeframe=timeframe)


class Prefix(Sequence[np.ndarray]):
    """The bars seen so far as five arrays (open, high, low, close, volume) of
    length ``n``: views of a :class:`PrefixBuffer`'s columns, made when asked for.

    Immutable: later appends to the buffer never change what it shows. A source
    that reads ``columns`` (the buffer's arrays, valid up to ``n``) directly
    saves the five slices per bar.
    """

    __slots__ = ("columns", "n", "times")

    def __init__(self, columns: Sequence[np.ndarray], n: int, times: np.ndarray | None = None) -> None:
        self.columns = columns
        self.n = n
        self.times = times

    @property
    def ts(self) -> np.ndarray | None:
        """The bars' timestamps (ns UTC) when the buffer was given them."""
        return None if self.times is None else self.times[: self.n]

    def __len__(self) -> int:
        return 5

    @overload
    def __getitem__(self, index: int) -> np.ndarray: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[np.ndarray, ...]: ...
    def __getitem__(self, index: int | slice) -> np.ndarray | tuple[np.ndarray, ...]:
        n = self.n
        if isinstance(index, slice):
            return tuple(col[:n] for col in self.columns[index])
        return self.columns[index][:n]

    def __iter__(self) -> Iterator[np.ndarray]:
        n = self.n
        return (col[:n] for col in self.columns)


class PrefixBuffer:
    """Growing OHLCV arrays; ``view()`` is the prefix seen so far (no copies)."""

    __slots__ = ("_cols", "_ts", "n")

    def __init__(self, capacity: int = 1_024) -> None:
        self._cols = [np.empty(max(capacity, 1)) for _ in range(5)]
        self._ts = np.zeros(max(capacity, 1), dtype=np.int64)
        self.n = 0

    def append(self, o: float, h: float, lo: float, c: float, v: float, ts: int = 0) -> None:
        if self.n == self._cols[0].shape[0]:
            self._cols = [np.concatenate([col, np.empty(col.shape[0])]) for col in self._cols]
            self._ts = np.concatenate([self._ts, np.zeros(self._ts.shape[0], dtype=np.int64)])
        n = self.n
        self._ts[n] = ts
        cols = self._cols
        cols[0][n] = o
        cols[1][n] = h
        cols[2][n] = lo
        cols[3][n] = c
        cols[4][n] = v
        self.n = n + 1

    def view(self) -> Prefix:
        """The bars appended so far."""
        return Prefix(self._cols, self.n, self._ts)
