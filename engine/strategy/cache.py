"""The indicator cache a sweep shares, and the one a strategy's ``ta`` calls use while it runs.

:class:`IndicatorCache` computes each (indicator, inputs, arguments) once and
hands out read-only arrays, so a sweep over 174 ``sma_cross`` pairs, or 17,000
trials of a user strategy, computes each moving average once. Built-in
strategies ask by name (:meth:`IndicatorCache.get`); ``engine.strategy.ta``
asks through :func:`memo` while :func:`evaluating` has installed a cache for
the bars being evaluated.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from engine.errors import InputError
from engine.profile import profiler
from engine.profile.caches import caches, indicator_cache_budget

if TYPE_CHECKING:
    from engine.data import Bars

CACHE_NAME = "backtest.indicators"

Values = np.ndarray | tuple[np.ndarray, ...]

# name -> (ta function name, bars columns it reads): the one-window indicators
# the built-in strategies ask for by name.
_NAMED: dict[str, tuple[str, tuple[str, ...]]] = {
    "sma": ("sma", ("close",)),
    "ema": ("ema", ("close",)),
    "rsi": ("rsi", ("close",)),
    "atr": ("atr", ("high", "low", "close")),
    "std": ("rolling_std", ("close",)),
    "highest": ("highest", ("high",)),
    "lowest": ("lowest", ("low",)),
    "zscore": ("zscore", ("close",)),
}
INDICATORS = tuple(sorted(_NAMED))


def check_window(window: Any) -> int:
    """``window`` as an int >= 1, or a one-line InputError."""
    if type(window) is int and window >= 1:  # the usual case, first: checked on every cache lookup
        return window
    if isinstance(window, bool) or not isinstance(window, (int, float, np.integer, np.floating)):
        raise InputError(f"indicator window must be an integer >= 1, got {window!r}")
    if int(window) != window or window < 1:
        raise InputError(f"indicator window must be an integer >= 1, got {window!r}")
    return int(window)


class _Entry(NamedTuple):
    values: Values
    anchors: tuple[Any, ...]  # the objects whose ids are in the key, kept alive so no id is recycled
    nbytes: int


def _nbytes(values: Values) -> int:
    return sum(v.nbytes for v in values) if isinstance(values, tuple) else values.nbytes


def _freeze(values: Values) -> Values:
    for v in values if isinstance(values, tuple) else (values,):
        v.flags.writeable = False
    return values


class IndicatorCache:
    """A bounded LRU of indicator arrays keyed by (indicator, input arrays, arguments).

    Inputs are identified by object identity; an entry keeps a reference to its
    inputs, so an id cannot be recycled while cached. Arrays are read-only.
    Hits, misses, evictions, bytes and entries are reported through
    ``engine.profile.caches.counters("backtest.indicators")`` (summed over
    every cache in the process).
    """

    def __init__(self, max_bytes: int | None = None) -> None:
        """``max_bytes``: the budget (default :func:`~engine.profile.caches.indicator_cache_budget`)."""
        self.max_bytes = indicator_cache_budget() if max_bytes is None else int(max_bytes)
        self._entries: OrderedDict[tuple[Any, ...], _Entry] = OrderedDict()
        self._outputs: dict[int, int] = {}  # id(array handed out) -> entries holding it
        self._bytes = 0
        self.counters = caches.counters(CACHE_NAME)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        """Bytes held by the cached arrays."""
        return self._bytes

    def holds(self, array: Any) -> bool:
        """Whether ``array`` is one this cache handed out (so it is a stable key)."""
        return id(array) in self._outputs

    def get(self, bars: Bars, name: str, window: int) -> np.ndarray:
        """Indicator ``name`` with ``window`` over ``bars`` (computed on the first request)."""
        named = _NAMED.get(name)
        if named is None:
            raise InputError(f"unknown indicator {name!r} (known: {', '.join(INDICATORS)})")
        function, columns = named
        inputs = tuple([getattr(bars, column) for column in columns])
        window = check_window(window)
        return self.memo(function, inputs, (window,), lambda: _compute(function, inputs, window))  # type: ignore[return-value]

    def memo(self, name: str, inputs: tuple[np.ndarray, ...], args: tuple[Any, ...], compute: Callable[[], Values]) -> Values:
        """``compute()`` for ``name`` over ``inputs`` with ``args``, computed once per cache."""
        key = (name, *map(id, inputs), *args)
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            self.counters.hits += 1
            return entry.values
        self.counters.misses += 1
        with profiler.stage("backtest.indicators"):
            values = _freeze(compute())
        self._insert(key, _Entry(values, inputs, _nbytes(values)))
        return values

    def _insert(self, key: tuple[Any, ...], entry: _Entry) -> None:
        self._entries[key] = entry
        for v in entry.values if isinstance(entry.values, tuple) else (entry.values,):
            self._outputs[id(v)] = self._outputs.get(id(v), 0) + 1
        self._bytes += entry.nbytes
        self.counters.bytes += entry.nbytes
        self.counters.entries += 1
        while self._bytes > self.max_bytes and len(self._entries) > 1:
            _, old = self._entries.popitem(last=False)
            self._forget(old)
            self.counters.evictions += 1

    def _forget(self, entry: _Entry) -> None:
        self._bytes -= entry.nbytes
        self.counters.bytes -= entry.nbytes
        self.counters.entries -= 1
        for v in entry.values if isinstance(entry.values, tuple) else (entry.values,):
            left = self._outputs[id(v)] - 1
            if left:
                self._outputs[id(v)] = left
            else:
                del self._outputs[id(v)]

    def clear(self) -> None:
        """Drop every cached array."""
        while self._entries:
            self._forget(self._entries.popitem()[1])

    def __del__(self) -> None:
        # Keep the process-wide byte and entry counts honest when a cache goes away.
        try:
            self.counters.bytes -= self._bytes
            self.counters.entries -= len(self._entries)
        except Exception:  # interpreter shutdown
            pass


def _compute(function: str, inputs: tuple[np.ndarray, ...], window: int) -> Values:
    """``ta``'s ``function`` over ``inputs`` with ``window`` (imported on a miss only: ta imports this module)."""
    from engine.strategy import ta

    return ta.compute(function, inputs, (window,))


class _Scope(NamedTuple):
    cache: IndicatorCache
    columns: frozenset[int]  # ids of the evaluated bars' columns


_SCOPE: contextvars.ContextVar[_Scope | None] = contextvars.ContextVar("genesis_ta_scope", default=None)


@contextlib.contextmanager
def evaluating(bars: Bars, cache: IndicatorCache | None) -> Iterator[None]:
    """``ta`` calls inside go through ``cache`` (none given: nothing is cached)."""
    if cache is None:
        yield
        return
    columns = frozenset(id(getattr(bars, c)) for c in ("open", "high", "low", "close", "volume"))
    token = _SCOPE.set(_Scope(cache, columns))
    try:
        yield
    finally:
        _SCOPE.reset(token)


def memo(name: str, inputs: tuple[np.ndarray, ...], args: tuple[Any, ...], compute: Callable[[], Values]) -> Values:
    """``compute()`` through the installed cache when every input is a stable
    array (a column of the bars being evaluated, or an array the cache handed
    out); otherwise computed afresh (a temporary would only fill the cache)."""
    scope = _SCOPE.get()
    if scope is not None and all(id(x) in scope.columns or scope.cache.holds(x) for x in inputs):
        return scope.cache.memo(name, inputs, args, compute)
    return _freeze(compute())
