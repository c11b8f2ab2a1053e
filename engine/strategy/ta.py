"""``engine.strategy.ta``: the indicators and crossings a strategy builds its signals from.

Conventions (the same as the built-in strategies', bit for bit):

- An indicator is NaN until its window is full. A NaN in the input splits the
  series: the indicator restarts after it as if the series began there (so
  ``ta.ema(ta.ema(x, 12) - ta.ema(x, 26), 9)`` works on the warm-up NaNs).
- Crossings are strict on both sides and False while either side is NaN:
  ``crossed_above(a, b)[t]`` is ``a[t-1] < b[t-1] and a[t] > b[t]``.
- Indicator arrays are read-only: inside a backtest or a study they come from
  a cache shared by every trial over the same bars (each distinct window is
  computed once). Copy one (``x.copy()``) before writing into it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from engine.errors import InputError
from engine.strategy.cache import Values, check_window, memo

__all__ = [
    "atr",
    "bollinger",
    "crossed_above",
    "crossed_below",
    "donchian",
    "ema",
    "highest",
    "lowest",
    "rolling_std",
    "rsi",
    "shift",
    "sma",
    "zscore",
]


def _array(x: Any, what: str = "x") -> np.ndarray:
    if isinstance(x, np.ndarray) and x.dtype == np.float64 and x.ndim == 1 and x.flags.c_contiguous:
        return x  # the same object, so that it stays a cache key (numba's dtype objects differ from numpy's)
    array = np.ascontiguousarray(x, dtype=np.float64)
    if array.ndim != 1:
        raise InputError(f"ta: {what} must be a one-dimensional array, got shape {array.shape}")
    return array


def _by_runs(kernel: Callable[..., Values], arrays: tuple[np.ndarray, ...], *args: Any) -> Values:
    """``kernel(*arrays, *args)`` applied to each stretch of bars where no input is NaN."""
    invalid = np.isnan(arrays[0])
    for a in arrays[1:]:
        invalid |= np.isnan(a)
    if not invalid.any():
        return kernel(*arrays, *args)
    n = arrays[0].shape[0]
    # Starts and stops of the runs of valid values.
    edges = np.flatnonzero(np.diff(np.concatenate(([True], invalid, [True])).astype(np.int8)))
    result: Values | None = None
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        part = kernel(*(a[start:stop] for a in arrays), *args)
        if result is None:
            result = tuple(np.full(n, np.nan) for _ in part) if isinstance(part, tuple) else np.full(n, np.nan)
        for out, values in zip(result if isinstance(result, tuple) else (result,),
                               part if isinstance(part, tuple) else (part,), strict=True):  # fmt: skip
            out[start:stop] = values
    if result is None:  # every value NaN: the kernel's shape on no data
        part = kernel(*(a[:0] for a in arrays), *args)
        result = tuple(np.full(n, np.nan) for _ in part) if isinstance(part, tuple) else np.full(n, np.nan)
    return result


#: name -> kernel's name in :mod:`engine.strategy.nb` (its inputs are NaN-free: _by_runs splits at NaNs).
_KERNELS: dict[str, str] = {
    "sma": "sma_nb",
    "ema": "ema_nb",
    "rsi": "rsi_nb",
    "atr": "atr_nb",
    "rolling_std": "rolling_std_nb",
    "highest": "rolling_max_nb",
    "lowest": "rolling_min_nb",
    "zscore": "zscore_nb",
    "bollinger": "bollinger_nb",
    "donchian": "donchian_nb",
}


def _nb() -> ModuleType:
    """The kernels, imported on first use: defining a strategy (a study's driver does) loads no numba."""
    return importlib.import_module("engine.strategy.nb")


def compute(name: str, inputs: tuple[np.ndarray, ...], args: tuple[Any, ...]) -> Values:
    """Indicator ``name`` over float64 ``inputs`` with ``args``, uncached."""
    kernel: Callable[..., Values] = getattr(_nb(), _KERNELS[name])
    return _by_runs(kernel, inputs, *args)


def _indicator(name: str, inputs: tuple[np.ndarray, ...], args: tuple[Any, ...]) -> Values:
    lengths = {x.shape[0] for x in inputs}
    if len(lengths) > 1:
        raise InputError(f"ta.{name}: inputs of different lengths {sorted(lengths)}")
    return memo(name, inputs, args, lambda: compute(name, inputs, args))


def sma(x: Any, window: int) -> np.ndarray:
    """Simple moving average of the last ``window`` values."""
    return _indicator("sma", (_array(x),), (check_window(window),))  # type: ignore[return-value]


def ema(x: Any, window: int) -> np.ndarray:
    """Exponential moving average, alpha = 2/(window+1), seeded with the SMA of the first ``window`` values."""
    return _indicator("ema", (_array(x),), (check_window(window),))  # type: ignore[return-value]


def rsi(x: Any, window: int) -> np.ndarray:
    """Wilder's RSI (defined from the ``window``-th change on; 100 with no losses, 50 on a flat window)."""
    return _indicator("rsi", (_array(x),), (check_window(window),))  # type: ignore[return-value]


def atr(high: Any, low: Any, close: Any, window: int) -> np.ndarray:
    """Wilder's average true range."""
    inputs = (_array(high, "high"), _array(low, "low"), _array(close, "close"))
    return _indicator("atr", inputs, (check_window(window),))  # type: ignore[return-value]


def rolling_std(x: Any, window: int) -> np.ndarray:
    """Rolling population standard deviation (ddof = 0); exactly 0 on a flat window."""
    return _indicator("rolling_std", (_array(x),), (check_window(window),))  # type: ignore[return-value]


def zscore(x: Any, window: int) -> np.ndarray:
    """``(x - sma) / rolling_std`` over ``window`` values; NaN where the std is 0."""
    return _indicator("zscore", (_array(x),), (check_window(window),))  # type: ignore[return-value]


def highest(x: Any, window: int) -> np.ndarray:
    """Highest of the last ``window`` values (this bar included)."""
    return _indicator("highest", (_array(x),), (check_window(window),))  # type: ignore[return-value]


def lowest(x: Any, window: int) -> np.ndarray:
    """Lowest of the last ``window`` values (this bar included)."""
    return _indicator("lowest", (_array(x),), (check_window(window),))  # type: ignore[return-value]


def bollinger(x: Any, window: int, k: float = 2.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bollinger bands: (middle, upper, lower) = SMA, SMA + k*std, SMA - k*std (population std)."""
    return _indicator("bollinger", (_array(x),), (check_window(window), float(k)))  # type: ignore[return-value]


def donchian(high: Any, low: Any, window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Donchian channel: (highest high, lowest low, midpoint) over the last ``window`` bars."""
    inputs = (_array(high, "high"), _array(low, "low"))
    return _indicator("donchian", inputs, (check_window(window),))  # type: ignore[return-value]


def shift(x: Any, periods: int = 1) -> np.ndarray:
    """``x`` delayed by ``periods`` bars (``out[t] = x[t - periods]``, NaN for the first ones).

    Only delays: a negative shift would read later bars (look-ahead) and is refused.
    """
    if isinstance(periods, bool) or not isinstance(periods, (int, np.integer)) or periods < 0:
        raise InputError(f"ta.shift: periods must be an integer >= 0 (a negative shift reads the future), got {periods!r}")
    array = _array(x)
    return memo("shift", (array,), (int(periods),), lambda: _nb().shift_nb(array, int(periods)))  # type: ignore[return-value]


def _pair(a: Any, b: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    left = _array(a, "a")
    right = np.full(left.shape[0], float(b)) if np.ndim(b) == 0 else _array(b, "b")
    if right.shape != left.shape:
        raise InputError(f"ta.{name}: a and b have different lengths ({left.shape[0]} and {right.shape[0]})")
    return left, right


def crossed_above(a: Any, b: Any) -> np.ndarray:
    """True at bar t when ``a[t-1] < b[t-1]`` and ``a[t] > b[t]``; ``b`` may be a number."""
    return _nb().crossed_above_nb(*_pair(a, b, "crossed_above"))


def crossed_below(a: Any, b: Any) -> np.ndarray:
    """True at bar t when ``a[t-1] > b[t-1]`` and ``a[t] < b[t]``; ``b`` may be a number."""
    return _nb().crossed_below_nb(*_pair(a, b, "crossed_below"))
