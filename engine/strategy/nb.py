"""Numba kernels of the strategy layer: indicators and signal helpers over numpy arrays.

Every function is pure, takes and returns numpy arrays or scalars, and compiles
lazily on its first call (``cache=True`` keeps the machine code on disk). The
backtest's fused signal rules and ``engine.strategy.ta`` share these kernels, so
a user strategy written with ``ta`` computes exactly the built-ins' numbers.
Inputs are assumed free of NaN here; ``ta`` splits a series at its NaNs.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# numpy's error model: float division by zero gives inf/nan instead of a
# Python-style check on every division in the hot loops.
kernel = njit(cache=True, nogil=True, error_model="numpy")


# --------------------------------------------------------------------------
# Indicators. Each output is NaN until its window is full.
# --------------------------------------------------------------------------


@kernel
def sma_nb(x: np.ndarray, window: int) -> np.ndarray:
    """Simple moving average over ``window`` values (a running sum).

    The sum is updated with ``x[i] - x[i - window]`` so that a flat stretch
    leaves it bit-for-bit unchanged (no spurious crossings on flat prices).
    """
    n = x.shape[0]
    out = np.full(n, np.nan)
    if window < 1 or window > n:
        return out
    total = 0.0
    for i in range(window):
        total += x[i]
    out[window - 1] = total / window
    for i in range(window, n):
        total += x[i] - x[i - window]
        out[i] = total / window
    return out


@kernel
def ema_nb(x: np.ndarray, window: int) -> np.ndarray:
    """Exponential moving average, alpha = 2 / (window + 1), seeded with the SMA
    of the first ``window`` values (at index ``window - 1``)."""
    n = x.shape[0]
    out = np.full(n, np.nan)
    if window < 1 or window > n:
        return out
    alpha = 2.0 / (window + 1.0)
    total = 0.0
    for i in range(window):
        total += x[i]
    value = total / window
    out[window - 1] = value
    for i in range(window, n):
        value = value + alpha * (x[i] - value)
        out[i] = value
    return out


@kernel
def rsi_nb(close: np.ndarray, window: int) -> np.ndarray:
    """Wilder's RSI: the first averages are plain means of the first ``window``
    gains and losses (RSI defined from index ``window``), then Wilder smoothing
    ``avg = (avg * (window - 1) + x) / window``. No losses gives 100, a flat
    window (no gains, no losses) gives 50."""
    n = close.shape[0]
    out = np.full(n, np.nan)
    if window < 1 or window >= n:
        return out
    gain = 0.0
    loss = 0.0
    for i in range(1, window + 1):
        change = close[i] - close[i - 1]
        if change > 0.0:
            gain += change
        else:
            loss -= change
    gain /= window
    loss /= window
    out[window] = _rsi_value(gain, loss)
    for i in range(window + 1, n):
        change = close[i] - close[i - 1]
        up = change if change > 0.0 else 0.0
        down = -change if change < 0.0 else 0.0
        gain = (gain * (window - 1) + up) / window
        loss = (loss * (window - 1) + down) / window
        out[i] = _rsi_value(gain, loss)
    return out


@kernel
def _rsi_value(gain: float, loss: float) -> float:
    if loss == 0.0:
        return 100.0 if gain > 0.0 else 50.0
    return 100.0 - 100.0 / (1.0 + gain / loss)


@kernel
def true_range_nb(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """True range: ``high - low`` on the first bar, then the largest of
    ``high - low``, ``|high - prev close|`` and ``|low - prev close|``."""
    n = close.shape[0]
    out = np.empty(n)
    if n == 0:
        return out
    out[0] = high[0] - low[0]
    for i in range(1, n):
        out[i] = max(high[i] - low[i], abs(high[i] - close[i - 1]), abs(low[i] - close[i - 1]))
    return out


@kernel
def atr_nb(high: np.ndarray, low: np.ndarray, close: np.ndarray, window: int) -> np.ndarray:
    """Wilder's average true range: the mean of the first ``window`` true ranges
    at index ``window - 1``, then ``atr = (atr * (window - 1) + tr) / window``."""
    n = close.shape[0]
    out = np.full(n, np.nan)
    if window < 1 or window > n:
        return out
    tr = true_range_nb(high, low, close)
    value = 0.0
    for i in range(window):
        value += tr[i]
    value /= window
    out[window - 1] = value
    for i in range(window, n):
        value = (value * (window - 1) + tr[i]) / window
        out[i] = value
    return out


@kernel
def rolling_std_nb(x: np.ndarray, window: int) -> np.ndarray:
    """Rolling population standard deviation (ddof = 0), by a sliding Welford
    update. A window of identical values gives exactly 0 (the state is re-anchored
    there, so rounding left over from earlier moves cannot fake a tiny spread).

    A slide that removes most of the spread (a jump leaving the window) cancels
    almost all of ``m2`` and keeps only its rounding error, relative to the
    spread that left; then the window is summed again exactly, in two passes."""
    n = x.shape[0]
    out = np.full(n, np.nan)
    if window < 1 or window > n:
        return out
    mean = 0.0
    m2 = 0.0
    run = 0  # length of the current stretch of identical values
    for i in range(window):
        delta = x[i] - mean
        mean += delta / (i + 1)
        m2 += delta * (x[i] - mean)
        run = run + 1 if i > 0 and x[i] == x[i - 1] else 1
    if run >= window:
        mean = x[window - 1]
        m2 = 0.0
    out[window - 1] = np.sqrt(max(m2, 0.0) / window)
    anchor = m2  # m2 when last summed exactly: the scale of the rounding error carried
    for i in range(window, n):
        old = x[i - window]
        new = x[i]
        run = run + 1 if new == x[i - 1] else 1
        if run >= window:
            mean = new
            m2 = 0.0
            anchor = 0.0
        elif new != old:
            delta = new - old
            new_mean = mean + delta / window
            m2 += delta * (new - new_mean + old - mean)
            mean = new_mean
            if m2 < anchor * 1e-6:
                mean = 0.0
                for j in range(i - window + 1, i + 1):
                    mean += x[j]
                mean /= window
                m2 = 0.0
                for j in range(i - window + 1, i + 1):
                    m2 += (x[j] - mean) * (x[j] - mean)
                anchor = m2
            elif m2 > anchor:
                anchor = m2
        out[i] = np.sqrt(max(m2, 0.0) / window)
    return out


@kernel
def _rolling_extreme_nb(x: np.ndarray, window: int, sign: float) -> np.ndarray:
    """Rolling max of ``sign * x`` times ``sign`` (a monotonic deque, O(n))."""
    n = x.shape[0]
    out = np.full(n, np.nan)
    if window < 1 or window > n:
        return out
    queue = np.empty(n, dtype=np.int64)
    head = 0
    tail = 0
    for i in range(n):
        while tail > head and sign * x[queue[tail - 1]] <= sign * x[i]:
            tail -= 1
        queue[tail] = i
        tail += 1
        if queue[head] <= i - window:
            head += 1
        if i >= window - 1:
            out[i] = x[queue[head]]
    return out


@kernel
def rolling_max_nb(x: np.ndarray, window: int) -> np.ndarray:
    """Highest value of the last ``window`` values."""
    return _rolling_extreme_nb(x, window, 1.0)


@kernel
def rolling_min_nb(x: np.ndarray, window: int) -> np.ndarray:
    """Lowest value of the last ``window`` values."""
    return _rolling_extreme_nb(x, window, -1.0)


@kernel
def zscore_nb(x: np.ndarray, window: int) -> np.ndarray:
    """Rolling z-score ``(x - sma) / std`` (population std); NaN where std is 0."""
    mean = sma_nb(x, window)
    std = rolling_std_nb(x, window)
    out = np.full(x.shape[0], np.nan)
    for i in range(x.shape[0]):
        if std[i] > 0.0:
            out[i] = (x[i] - mean[i]) / std[i]
    return out


@kernel
def bollinger_nb(x: np.ndarray, window: int, k: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bollinger bands: (middle SMA, middle + k*std, middle - k*std), population std."""
    mid = sma_nb(x, window)
    std = rolling_std_nb(x, window)
    return mid, mid + k * std, mid - k * std


@kernel
def donchian_nb(
    high: np.ndarray, low: np.ndarray, window: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Donchian channel over the last ``window`` bars (this bar included):
    (highest high, lowest low, their midpoint)."""
    upper = rolling_max_nb(high, window)
    lower = rolling_min_nb(low, window)
    return upper, lower, (upper + lower) / 2.0


# --------------------------------------------------------------------------
# Signal helpers. Comparisons with NaN are false, so nothing fires while
# either side is still warming up.
# --------------------------------------------------------------------------


@kernel
def crossed_above_nb(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """True at t when ``a[t-1] < b[t-1]`` and ``a[t] > b[t]`` (strict on both sides)."""
    n = a.shape[0]
    out = np.zeros(n, dtype=np.bool_)
    for i in range(1, n):
        out[i] = a[i - 1] < b[i - 1] and a[i] > b[i]
    return out


@kernel
def crossed_below_nb(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """True at t when ``a[t-1] > b[t-1]`` and ``a[t] < b[t]`` (strict on both sides)."""
    n = a.shape[0]
    out = np.zeros(n, dtype=np.bool_)
    for i in range(1, n):
        out[i] = a[i - 1] > b[i - 1] and a[i] < b[i]
    return out


@kernel
def shift_nb(x: np.ndarray, periods: int) -> np.ndarray:
    """``x`` delayed by ``periods`` >= 0 bars (the first ``periods`` values NaN)."""
    n = x.shape[0]
    out = np.full(n, np.nan)
    for i in range(periods, n):
        out[i] = x[i - periods]
    return out
