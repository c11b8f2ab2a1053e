"""Indicator wrappers over the numba kernels, and the cache a sweep shares.

The wrappers take numpy arrays and check their window; :class:`IndicatorCache`
computes each (indicator, parameters, bars) once and hands out read-only arrays,
so a sweep over 174 ``sma_cross`` pairs computes each moving average once.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from engine.backtest import nb
from engine.errors import InputError
from engine.profile import profiler
from engine.profile.caches import caches

if TYPE_CHECKING:
    from engine.data import Bars

CACHE_NAME = "backtest.indicators"
DEFAULT_MAX_BYTES = 256 * 1024 * 1024


def _window(window: int) -> int:
    if isinstance(window, bool) or int(window) != window or window < 1:
        raise InputError(f"indicator window must be an integer >= 1, got {window!r}")
    return int(window)


def _array(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.float64)


def sma(x: np.ndarray, window: int) -> np.ndarray:
    """Simple moving average (NaN until ``window`` values are in)."""
    return nb.sma_nb(_array(x), _window(window))


def ema(x: np.ndarray, window: int) -> np.ndarray:
    """Exponential moving average, alpha = 2/(window+1), seeded with the first SMA."""
    return nb.ema_nb(_array(x), _window(window))


def rsi(close: np.ndarray, window: int) -> np.ndarray:
    """Wilder's RSI (defined from index ``window``)."""
    return nb.rsi_nb(_array(close), _window(window))


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, window: int) -> np.ndarray:
    """Wilder's average true range."""
    return nb.atr_nb(_array(high), _array(low), _array(close), _window(window))


def rolling_std(x: np.ndarray, window: int) -> np.ndarray:
    """Rolling population standard deviation."""
    return nb.rolling_std_nb(_array(x), _window(window))


def rolling_max(x: np.ndarray, window: int) -> np.ndarray:
    """Highest of the last ``window`` values."""
    return nb.rolling_max_nb(_array(x), _window(window))


def rolling_min(x: np.ndarray, window: int) -> np.ndarray:
    """Lowest of the last ``window`` values."""
    return nb.rolling_min_nb(_array(x), _window(window))


def zscore(x: np.ndarray, window: int) -> np.ndarray:
    """Rolling z-score against the SMA and population std (NaN where std is 0)."""
    return nb.zscore_nb(_array(x), _window(window))


def bollinger(x: np.ndarray, window: int, k: float = 2.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bollinger bands: (middle, upper, lower) = SMA, SMA +/- k * population std."""
    return nb.bollinger_nb(_array(x), _window(window), float(k))


def donchian(high: np.ndarray, low: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Donchian channel: (highest high, lowest low, midpoint) over ``window`` bars."""
    return nb.donchian_nb(_array(high), _array(low), _window(window))


# name -> function of (bars, window) computing the array; all one-window indicators.
_COMPUTE: dict[str, Callable[[Bars, int], np.ndarray]] = {
    "sma": lambda bars, w: nb.sma_nb(bars.close, w),
    "ema": lambda bars, w: nb.ema_nb(bars.close, w),
    "rsi": lambda bars, w: nb.rsi_nb(bars.close, w),
    "atr": lambda bars, w: nb.atr_nb(bars.high, bars.low, bars.close, w),
    "std": lambda bars, w: nb.rolling_std_nb(bars.close, w),
    "highest": lambda bars, w: nb.rolling_max_nb(bars.high, w),
    "lowest": lambda bars, w: nb.rolling_min_nb(bars.low, w),
    "zscore": lambda bars, w: nb.zscore_nb(bars.close, w),
}
INDICATORS = tuple(sorted(_COMPUTE))


class IndicatorCache:
    """A bounded LRU of indicator arrays keyed by (indicator, window, bars).

    Bars are identified by object identity; the cache keeps a reference to every
    ``Bars`` it holds arrays for, so an id cannot be recycled while cached.
    Arrays are read-only. Hits, misses, evictions, bytes and entries are reported
    through ``engine.profile.caches.counters("backtest.indicators")`` (summed over
    every cache in the process).
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = int(max_bytes)
        self._entries: OrderedDict[tuple[int, str, int], np.ndarray] = OrderedDict()
        self._bars: dict[int, Bars] = {}
        self._bytes = 0
        self.counters = caches.counters(CACHE_NAME)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        """Bytes held by the cached arrays."""
        return self._bytes

    def get(self, bars: Bars, name: str, window: int) -> np.ndarray:
        """Indicator ``name`` with ``window`` over ``bars`` (computed on the first request)."""
        key = (id(bars), name, window)
        entry = self._entries.get(key)
        if entry is not None and self._bars.get(id(bars)) is bars:
            self._entries.move_to_end(key)
            self.counters.hits += 1
            return entry
        compute = _COMPUTE.get(name)
        if compute is None:
            raise InputError(f"unknown indicator {name!r} (known: {', '.join(INDICATORS)})")
        self.counters.misses += 1
        with profiler.stage("backtest.indicators"):
            values = compute(bars, _window(window))
        values.flags.writeable = False
        self._insert(key, bars, values)
        return values

    def _insert(self, key: tuple[int, str, int], bars: Bars, values: np.ndarray) -> None:
        if self._bars.get(key[0]) is not bars:
            # A new Bars under a recycled id: everything held for the old one is stale.
            self._drop_bars(key[0])
            self._bars[key[0]] = bars
        self._entries[key] = values
        self._bytes += values.nbytes
        self.counters.bytes += values.nbytes
        self.counters.entries += 1
        while self._bytes > self.max_bytes and len(self._entries) > 1:
            old_key, old = self._entries.popitem(last=False)
            self._forget(old_key, old)
            self.counters.evictions += 1

    def _forget(self, key: tuple[int, str, int], values: np.ndarray) -> None:
        self._bytes -= values.nbytes
        self.counters.bytes -= values.nbytes
        self.counters.entries -= 1
        if not any(k[0] == key[0] for k in self._entries):
            self._bars.pop(key[0], None)

    def _drop_bars(self, bars_id: int) -> None:
        for key in [k for k in self._entries if k[0] == bars_id]:
            self._forget(key, self._entries.pop(key))

    def clear(self) -> None:
        """Drop every cached array."""
        for key in list(self._entries):
            self._forget(key, self._entries.pop(key))
        self._bars.clear()

    def __del__(self) -> None:
        # Keep the process-wide byte and entry counts honest when a cache goes away.
        try:
            self.counters.bytes -= self._bytes
            self.counters.entries -= len(self._entries)
        except Exception:  # interpreter shutdown
            pass
