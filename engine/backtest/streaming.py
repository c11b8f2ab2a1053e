"""Streaming twins of the indicator kernels in ``nb.py``: one bar in, one value out.

Each indicator keeps a small state (a float64 array of ``NSLOTS`` slots) and a
ring of past inputs, and updates them in O(1) per bar (the rolling extremes'
monotonic deque pops at most O(window) on one bar, O(1) amortised). Every twin
repeats its batch kernel's floating-point operations in the same order (the
SMA's running sum ``total += x[i] - x[i - w]``, the sliding Welford update of
the rolling std with its re-anchoring on flat windows, Wilder's smoothing), so
its values are bit-for-bit those of the batch kernel over the same prefix, not
merely close: crossovers are strict comparisons and must decide identically.
``tests/live/test_streaming.py`` pins each twin to its kernel.

Two ways in:

- one indicator at a time: ``SMA(20).update(x)``, ``ATR(14).update(h, l, c)``,
  ``Bollinger(20, 2.0).update(x) -> (mid, upper, lower)``, ...;
- a strategy's indicators together: :class:`IndicatorBank` (indicators named as
  in :data:`engine.backtest.indicators.INDICATORS`) and :func:`rule_step_nb`,
  which feeds the new bars to every indicator and evaluates a kernel rule
  (``nb.rule_nb``) at the last one, in a single compiled call per bar.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# ``_rsi_value`` is package-private to engine.backtest: the twin shares the batch
# kernel's formula rather than restating it.
from engine.backtest.nb import _rsi_value, kernel, rule_nb
from engine.errors import InputError

# Indicator codes (slot S_CODE).
SMA_CODE = 0
EMA_CODE = 1
RSI_CODE = 2
ATR_CODE = 3
STD_CODE = 4
MAX_CODE = 5
MIN_CODE = 6
ZSCORE_CODE = 7
BOLLINGER_CODE = 8
DONCHIAN_CODE = 9

# Which bar column a one-input indicator reads (slot S_INPUT).
IN_CLOSE = 0
IN_HIGH = 1
IN_LOW = 2

# State slots.
S_CODE = 0
S_WINDOW = 1
S_INPUT = 2
S_K = 3  # Bollinger's width in standard deviations
S_COUNT = 4  # values seen
S_VALUE = 5  # the output at the last value seen (NaN while warming up)
S_PREV = 6  # the output one value earlier
S_OUT1 = 7  # second output (Bollinger upper, Donchian lower)
S_OUT2 = 8  # third output (Bollinger lower, Donchian midpoint)
S_LAST = 9  # the previous input (the previous close for ATR)
S_TOTAL = 10  # running sum (SMA, the EMA and ATR seeds)
S_MEAN = 11  # Welford mean
S_M2 = 12  # Welford sum of squared deviations
S_RUN = 13  # length of the current stretch of identical values
S_GAIN = 14  # Wilder average gain
S_LOSS = 15  # Wilder average loss
S_HEAD = 16  # deque bounds (absolute positions; the ring holds them modulo its capacity)
S_TAIL = 17
S_HEAD2 = 18
S_TAIL2 = 19
S_ANCHOR = 20  # m2 when last summed exactly (rolling std: see rolling_std_nb)
NSLOTS = 21


# --------------------------------------------------------------------------
# Kernels. ``i`` is the index of the value being added (the count before it),
# ``w`` the window; each step returns the indicator at ``i`` (NaN while warming up).
# --------------------------------------------------------------------------


@kernel
def _sum_step_nb(state: np.ndarray, i: int, w: int, x: float, old: float) -> float:
    """SMA with ``sma_nb``'s arithmetic; ``old`` is x[i - w] (unused before the window fills)."""
    if i < w:
        total = state[S_TOTAL] + x
        state[S_TOTAL] = total
        return total / w if i == w - 1 else np.nan
    total = state[S_TOTAL] + (x - old)
    state[S_TOTAL] = total
    return total / w


@kernel
def _ema_step_nb(state: np.ndarray, i: int, w: int, x: float) -> float:
    """EMA with ``ema_nb``'s arithmetic (seeded with the SMA of the first w values)."""
    if i < w:
        total = state[S_TOTAL] + x
        state[S_TOTAL] = total
        return total / w if i == w - 1 else np.nan
    value = state[S_VALUE]
    alpha = 2.0 / (w + 1.0)
    return value + alpha * (x - value)


@kernel
def _rsi_step_nb(state: np.ndarray, i: int, w: int, x: float, last: float) -> float:
    """Wilder's RSI with ``rsi_nb``'s arithmetic (defined from index w)."""
    if i == 0:
        return np.nan
    change = x - last
    if i <= w:
        if change > 0.0:
            state[S_GAIN] += change
        else:
            state[S_LOSS] -= change
        if i < w:
            return np.nan
        gain = state[S_GAIN] / w
        loss = state[S_LOSS] / w
    else:
        up = change if change > 0.0 else 0.0
        down = -change if change < 0.0 else 0.0
        gain = (state[S_GAIN] * (w - 1) + up) / w
        loss = (state[S_LOSS] * (w - 1) + down) / w
    state[S_GAIN] = gain
    state[S_LOSS] = loss
    return _rsi_value(gain, loss)


@kernel
def _atr_step_nb(
    state: np.ndarray, i: int, w: int, high: float, low: float, close: float, last_close: float
) -> float:
    """Wilder's ATR with ``atr_nb``'s arithmetic (true range ``high - low`` on bar 0)."""
    tr = high - low if i == 0 else max(high - low, abs(high - last_close), abs(low - last_close))
    if i < w:
        total = state[S_TOTAL] + tr
        state[S_TOTAL] = total
        return total / w if i == w - 1 else np.nan
    return (state[S_VALUE] * (w - 1) + tr) / w


@kernel
def _std_step_nb(state: np.ndarray, ring: np.ndarray, i: int, w: int, x: float, old: float, last: float) -> float:
    """Population std with ``rolling_std_nb``'s sliding Welford update and exact re-sums;
    ``old`` is x[i - w], ``last`` x[i - 1]; ``ring`` already holds x[i - w + 1 .. i]."""
    if i < w:
        mean = state[S_MEAN]
        delta = x - mean
        mean += delta / (i + 1)
        state[S_M2] += delta * (x - mean)
        state[S_MEAN] = mean
        run = state[S_RUN] + 1.0 if i > 0 and x == last else 1.0
        state[S_RUN] = run
        if i < w - 1:
            return np.nan
        if run >= w:
            state[S_MEAN] = x
            state[S_M2] = 0.0
        state[S_ANCHOR] = state[S_M2]
        return np.sqrt(max(state[S_M2], 0.0) / w)
    run = state[S_RUN] + 1.0 if x == last else 1.0
    state[S_RUN] = run
    if run >= w:
        state[S_MEAN] = x
        state[S_M2] = 0.0
        state[S_ANCHOR] = 0.0
    elif x != old:
        mean = state[S_MEAN]
        delta = x - old
        new_mean = mean + delta / w
        m2 = state[S_M2] + delta * (x - new_mean + old - mean)
        if m2 < state[S_ANCHOR] * 1e-6:
            # The batch kernel's exact re-sum, in the same order (oldest value first).
            total = 0.0
            for k in range(1, w + 1):
                total += ring[(i - w + k) % w]
            new_mean = total / w
            m2 = 0.0
            for k in range(1, w + 1):
                value = ring[(i - w + k) % w]
                m2 += (value - new_mean) * (value - new_mean)
            state[S_ANCHOR] = m2
        elif m2 > state[S_ANCHOR]:
            state[S_ANCHOR] = m2
        state[S_M2] = m2
        state[S_MEAN] = new_mean
    return np.sqrt(max(state[S_M2], 0.0) / w)


@kernel
def _extreme_step_nb(
    state: np.ndarray,
    ring: np.ndarray,
    offset: int,
    head_slot: int,
    i: int,
    w: int,
    x: float,
    sign: float,
) -> float:
    """Rolling max of ``sign * x`` times ``sign``: ``_rolling_extreme_nb``'s monotonic
    deque in a circular buffer of ``w + 1`` (index, value) pairs at ``ring[offset:]``."""
    cap = w + 1
    values = offset + cap
    head = int(state[head_slot])
    tail = int(state[head_slot + 1])
    while tail > head and sign * ring[values + (tail - 1) % cap] <= sign * x:
        tail -= 1
    ring[offset + tail % cap] = i
    ring[values + tail % cap] = x
    tail += 1
    if ring[offset + head % cap] <= i - w:
        head += 1
    state[head_slot] = head
    state[head_slot + 1] = tail
    return ring[values + head % cap] if i >= w - 1 else np.nan


@kernel
def update_nb(state: np.ndarray, ring: np.ndarray, high: float, low: float, close: float) -> float:
    """Feed one bar to the indicator in ``state``/``ring``; returns its (first) output.

    One-input indicators read the column named by ``state[S_INPUT]``; ATR reads
    all three, Donchian high and low."""
    code = int(state[S_CODE])
    w = int(state[S_WINDOW])
    i = int(state[S_COUNT])
    source = int(state[S_INPUT])
    x = close if source == IN_CLOSE else (high if source == IN_HIGH else low)
    last = state[S_LAST]
    state[S_PREV] = state[S_VALUE]
    if code == SMA_CODE:
        slot = i % w
        value = _sum_step_nb(state, i, w, x, ring[slot])
        ring[slot] = x
    elif code == EMA_CODE:
        value = _ema_step_nb(state, i, w, x)
    elif code == RSI_CODE:
        value = _rsi_step_nb(state, i, w, x, last)
    elif code == ATR_CODE:
        value = _atr_step_nb(state, i, w, high, low, close, last)
        x = close
    elif code == STD_CODE:
        slot = i % w
        old = ring[slot]
        ring[slot] = x
        value = _std_step_nb(state, ring, i, w, x, old, last)
    elif code == MAX_CODE:
        value = _extreme_step_nb(state, ring, 0, S_HEAD, i, w, x, 1.0)
    elif code == MIN_CODE:
        value = _extreme_step_nb(state, ring, 0, S_HEAD, i, w, x, -1.0)
    elif code in (ZSCORE_CODE, BOLLINGER_CODE):
        slot = i % w
        old = ring[slot]
        ring[slot] = x
        std = _std_step_nb(state, ring, i, w, x, old, last)
        mid = _sum_step_nb(state, i, w, x, old)
        if code == ZSCORE_CODE:
            value = (x - mid) / std if std > 0.0 else np.nan
        else:
            k = state[S_K]
            value = mid
            state[S_OUT1] = mid + k * std
            state[S_OUT2] = mid - k * std
    else:  # DONCHIAN_CODE
        upper = _extreme_step_nb(state, ring, 0, S_HEAD, i, w, high, 1.0)
        lower = _extreme_step_nb(state, ring, 2 * (w + 1), S_HEAD2, i, w, low, -1.0)
        value = upper
        state[S_OUT1] = lower
        state[S_OUT2] = (upper + lower) / 2.0
        x = close
    state[S_VALUE] = value
    state[S_LAST] = x
    state[S_COUNT] = i + 1
    return value


# A bank: several indicators and a signal rule in one flat float64 array (one
# array argument per call: numba unboxes a 1-D array in tens of nanoseconds, a
# 2-D one in hundreds). Header, then each row's offset, then the rows (NSLOTS
# state slots followed by the row's ring).
H_ROWS = 0  # number of indicator rows
H_KIND = 1  # the rule (enums.KIND_*)
H_A = 2  # offset of the row the rule reads as ``a``
H_B = 3  # ... as ``b``
H_P0 = 4  # the rule's levels
H_P1 = 5
H_SIZE = 6


@kernel
def feed_nb(
    bank: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray, start: int, stop: int
) -> None:
    """Feed bars ``start`` to ``stop - 1`` of the arrays to every row of ``bank``."""
    rows = int(bank[H_ROWS])
    end = bank.shape[0]
    for i in range(start, stop):
        h = high[i]
        lo = low[i]
        c = close[i]
        for r in range(rows):
            offset = int(bank[H_SIZE + r])
            after = int(bank[H_SIZE + r + 1]) if r + 1 < rows else end
            update_nb(bank[offset : offset + NSLOTS], bank[offset + NSLOTS : after], h, lo, c)


@kernel
def rule_step_nb(
    bank: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray, start: int, stop: int
) -> tuple[bool, bool]:
    """Feed bars ``start`` to ``stop - 1`` to the bank, then (entry, exit) of its
    rule at bar ``stop - 1``, exactly as ``simulate_nb`` evaluates it over the
    batch arrays (the indicators at that bar and the one before, and the closes)."""
    feed_nb(bank, high, low, close, start, stop)
    if stop < 2:
        return False, False
    a = int(bank[H_A])
    b = int(bank[H_B])
    return rule_nb(
        int(bank[H_KIND]),
        bank[a + S_PREV],
        bank[a + S_VALUE],
        bank[b + S_PREV],
        bank[b + S_VALUE],
        close[stop - 2],
        close[stop - 1],
        bank[H_P0],
        bank[H_P1],
    )


# --------------------------------------------------------------------------
# Python side.
# --------------------------------------------------------------------------


def _window(window: int) -> int:
    if isinstance(window, bool) or int(window) != window or window < 1:
        raise InputError(f"indicator window must be an integer >= 1, got {window!r}")
    return int(window)


def ring_size(code: int, window: int) -> int:
    """Ring length an indicator needs: the last ``window`` inputs, or one or two
    deques of ``window + 1`` (index, value) pairs."""
    if code in (SMA_CODE, STD_CODE, ZSCORE_CODE, BOLLINGER_CODE):
        return window
    if code in (MAX_CODE, MIN_CODE):
        return 2 * (window + 1)
    if code == DONCHIAN_CODE:
        return 4 * (window + 1)
    return 1


def init_state(state: np.ndarray, code: int, window: int, source: int = IN_CLOSE, k: float = 0.0) -> None:
    """Reset ``state`` (``NSLOTS`` floats) to an indicator that has seen nothing."""
    state[:] = 0.0
    state[S_CODE] = code
    state[S_WINDOW] = window
    state[S_INPUT] = source
    state[S_K] = k
    state[S_VALUE] = state[S_PREV] = state[S_OUT1] = state[S_OUT2] = np.nan


#: Indicator names of ``engine.backtest.indicators`` (the ``IndicatorCache`` keys
#: strategies ask for) -> (code, input column).
NAMED: dict[str, tuple[int, int]] = {
    "sma": (SMA_CODE, IN_CLOSE),
    "ema": (EMA_CODE, IN_CLOSE),
    "rsi": (RSI_CODE, IN_CLOSE),
    "atr": (ATR_CODE, IN_CLOSE),
    "std": (STD_CODE, IN_CLOSE),
    "highest": (MAX_CODE, IN_HIGH),
    "lowest": (MIN_CODE, IN_LOW),
    "zscore": (ZSCORE_CODE, IN_CLOSE),
}


class StreamingIndicator:
    """One indicator fed value by value (see the subclasses for each one's inputs)."""

    code = SMA_CODE
    source = IN_CLOSE

    __slots__ = ("k", "ring", "state", "window")

    def __init__(self, window: int, k: float = 0.0) -> None:
        self.window = _window(window)
        self.k = float(k)
        self.state = np.empty(NSLOTS)
        self.ring = np.zeros(ring_size(self.code, self.window))
        self.reset()

    def reset(self) -> None:
        """Forget every value seen."""
        init_state(self.state, self.code, self.window, self.source, self.k)
        self.ring[:] = 0.0

    @property
    def value(self) -> float:
        """The output at the last value seen (NaN while warming up)."""
        return float(self.state[S_VALUE])

    @property
    def count(self) -> int:
        """Values seen so far."""
        return int(self.state[S_COUNT])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.window}): {self.value!r} after {self.count}"


class _OneInput(StreamingIndicator):
    __slots__ = ()

    def update(self, x: float) -> float:
        """Feed one value; returns the indicator at it."""
        x = float(x)
        return update_nb(self.state, self.ring, x, x, x)


class SMA(_OneInput):
    """Simple moving average (``nb.sma_nb``)."""

    __slots__ = ()
    code = SMA_CODE


class EMA(_OneInput):
    """Exponential moving average seeded with the first SMA (``nb.ema_nb``)."""

    __slots__ = ()
    code = EMA_CODE


class RSI(_OneInput):
    """Wilder's RSI of a close series (``nb.rsi_nb``)."""

    __slots__ = ()
    code = RSI_CODE


class RollingStd(_OneInput):
    """Rolling population standard deviation (``nb.rolling_std_nb``)."""

    __slots__ = ()
    code = STD_CODE


class RollingMax(_OneInput):
    """Highest of the last ``window`` values (``nb.rolling_max_nb``)."""

    __slots__ = ()
    code = MAX_CODE


class RollingMin(_OneInput):
    """Lowest of the last ``window`` values (``nb.rolling_min_nb``)."""

    __slots__ = ()
    code = MIN_CODE


class ZScore(_OneInput):
    """Rolling z-score against the SMA and population std (``nb.zscore_nb``)."""

    __slots__ = ()
    code = ZSCORE_CODE


class ATR(StreamingIndicator):
    """Wilder's average true range (``nb.atr_nb``)."""

    __slots__ = ()
    code = ATR_CODE

    def update(self, high: float, low: float, close: float) -> float:
        """Feed one bar; returns the ATR at it."""
        return update_nb(self.state, self.ring, float(high), float(low), float(close))


class Bollinger(StreamingIndicator):
    """Bollinger bands (``nb.bollinger_nb``): SMA and SMA +/- k * population std."""

    __slots__ = ()
    code = BOLLINGER_CODE

    def __init__(self, window: int, k: float = 2.0) -> None:
        super().__init__(window, k)

    def update(self, x: float) -> tuple[float, float, float]:
        """Feed one value; returns (middle, upper, lower)."""
        x = float(x)
        mid = update_nb(self.state, self.ring, x, x, x)
        return mid, float(self.state[S_OUT1]), float(self.state[S_OUT2])


class Donchian(StreamingIndicator):
    """Donchian channel over the last ``window`` bars, this one included (``nb.donchian_nb``)."""

    __slots__ = ()
    code = DONCHIAN_CODE

    def update(self, high: float, low: float) -> tuple[float, float, float]:
        """Feed one bar's high and low; returns (highest high, lowest low, midpoint)."""
        h = float(high)
        lo = float(low)
        upper = update_nb(self.state, self.ring, h, lo, lo)
        return upper, float(self.state[S_OUT1]), float(self.state[S_OUT2])


class IndicatorBank:
    """Indicators named as in ``engine.backtest.indicators`` (``"sma"``,
    ``"highest"``, ...) fed together one bar at a time, and optionally a kernel
    signal rule over two of them (:meth:`set_rule`, :func:`rule_step_nb`).

    Everything lives in one flat float64 array, ``bank`` (see ``H_*``). A
    request for the same ``(name, window)`` twice shares one row.
    """

    def __init__(self, specs: Sequence[tuple[str, int]]) -> None:
        self.rows: dict[tuple[str, int], int] = {}
        for name, window in specs:
            if name not in NAMED:
                raise InputError(
                    f"indicator {name!r} has no streaming version (known: {', '.join(sorted(NAMED))})"
                )
            self.rows.setdefault((name, _window(window)), len(self.rows))
        if not self.rows:
            raise InputError("an indicator bank needs at least one indicator")
        self._offsets: list[int] = []
        offset = H_SIZE + len(self.rows)
        for name, window in self.rows:
            self._offsets.append(offset)
            offset += NSLOTS + ring_size(NAMED[name][0], window)
        self.bank = np.zeros(offset)
        self.bank[H_ROWS] = len(self.rows)
        self.bank[H_SIZE : H_SIZE + len(self.rows)] = self._offsets
        self.bank[H_A] = self.bank[H_B] = self._offsets[0]
        self.reset()

    def reset(self) -> None:
        """Forget every bar seen (the rule stays)."""
        for ((name, window), row), offset in zip(self.rows.items(), self._offsets, strict=True):
            code, source = NAMED[name]
            init_state(self.bank[offset : offset + NSLOTS], code, window, source)
            end = self._offsets[row + 1] if row + 1 < len(self._offsets) else self.bank.shape[0]
            self.bank[offset + NSLOTS : end] = 0.0

    def offset(self, name: str, window: int) -> int:
        """Where the state of ``name`` over ``window`` starts in ``bank``."""
        return self._offsets[self.rows[name, int(window)]]

    def value(self, name: str, window: int) -> float:
        """``name`` over ``window`` at the last bar fed (NaN while warming up)."""
        return float(self.bank[self.offset(name, window) + S_VALUE])

    def feed(self, high: np.ndarray, low: np.ndarray, close: np.ndarray, start: int = 0) -> None:
        """Feed bars ``start`` to the end of the arrays to every row."""
        feed_nb(self.bank, high, low, close, int(start), close.shape[0])

    def set_rule(self, kind: int, a: tuple[str, int], b: tuple[str, int], p0: float, p1: float) -> None:
        """The rule :func:`rule_step_nb` evaluates: ``kind`` (``enums.KIND_*``)
        over indicators ``a`` and ``b`` with levels ``p0``, ``p1``."""
        bank = self.bank
        bank[H_KIND] = kind
        bank[H_A] = self.offset(*a)
        bank[H_B] = self.offset(*b)
        bank[H_P0] = p0
        bank[H_P1] = p1
