"""The ``Bars`` container: columnar OHLCV arrays validated on construction."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.data.timeframes import timeframe_seconds
from engine.errors import DataError

PRICE_COLUMNS = ("open", "high", "low", "close")
#: Prices and volumes must lie within these bounds: beyond them the backtest's
#: arithmetic (cash / price, sums and squares over a window) overflows to inf or 0
#: and the metrics come out as 0 and a drawdown of 1.0 instead of an error.
MIN_PRICE = 1e-100
MAX_PRICE = 1e100
MAX_VOLUME = 1e100
COLUMNS = ("ts", *PRICE_COLUMNS, "volume")


class BarsValidationError(DataError):
    """A bar breaks one of the rules; ``row`` is the first offending row (0-based)."""

    def __init__(self, row: int, rule: str, detail: str) -> None:
        self.row = row
        self.rule = rule
        self.detail = detail
        super().__init__(f"row {row}: {rule} ({detail})")


def _readonly(values: object, dtype: type) -> np.ndarray:
    array: np.ndarray = np.ascontiguousarray(values, dtype=dtype)
    if array.ndim != 1:
        raise DataError(f"bars: expected one-dimensional columns, got shape {array.shape}")
    if array.flags.writeable:
        # Copy so that freezing never changes the caller's own array.
        array = array.copy()
        array.flags.writeable = False
    return array


@dataclass(frozen=True, slots=True, eq=False)
class Bars:
    """OHLCV bars as read-only numpy columns.

    ``ts`` is int64 nanoseconds since the epoch (UTC), strictly increasing;
    prices are finite and positive float64 within ``[MIN_PRICE, MAX_PRICE]`` with
    ``high >= max(open, close)`` and ``low <= min(open, close)``; ``volume`` is
    finite, non-negative and at most ``MAX_VOLUME``. A
    violation raises :class:`BarsValidationError` naming the first bad row.
    """

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    symbol: str = "SYNTH"
    timeframe: str = "1m"
    meta: dict[str, object] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ts", _readonly(self.ts, np.int64))
        for name in (*PRICE_COLUMNS, "volume"):
            object.__setattr__(self, name, _readonly(getattr(self, name), np.float64))
        timeframe_seconds(self.timeframe)  # raises on a malformed timeframe
        validate_columns(self.ts, self.open, self.high, self.low, self.close, self.volume)

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    @property
    def nbytes(self) -> int:
        """Bytes held by the six columns."""
        return sum(getattr(self, name).nbytes for name in COLUMNS)

    def slice(self, start: int, stop: int) -> Bars:
        """Bars ``start:stop`` (views, not copies; validation holds for any slice)."""
        return Bars(
            self.ts[start:stop],
            self.open[start:stop],
            self.high[start:stop],
            self.low[start:stop],
            self.close[start:stop],
            self.volume[start:stop],
            symbol=self.symbol,
            timeframe=self.timeframe,
            meta=dict(self.meta),
        )

    def columns(self) -> dict[str, np.ndarray]:
        """The six columns by name."""
        return {name: getattr(self, name) for name in COLUMNS}


def _first(mask: np.ndarray) -> int:
    """Index of the first True in ``mask``, or -1."""
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else -1


def validate_columns(
    ts: np.ndarray,
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
) -> None:
    """Check the bar rules over whole columns; raise on the earliest bad row."""
    n = ts.shape[0]
    for name, column in zip((*PRICE_COLUMNS, "volume"), (open_, high, low, close, volume), strict=True):
        if column.shape[0] != n:
            raise DataError(f"bars: column {name} has {column.shape[0]} rows, ts has {n}")
    if n == 0:
        raise DataError("bars: no rows")

    # Each check yields the first bad row for one rule; the earliest row wins.
    failures: list[tuple[int, str, str]] = []
    if n > 1:
        row = _first(np.diff(ts) <= 0)
        if row >= 0:
            failures.append(
                (row + 1, "timestamps must be strictly increasing",
                 f"ts {int(ts[row + 1])} after {int(ts[row])}")
            )
    for name, column in zip(PRICE_COLUMNS, (open_, high, low, close), strict=True):
        row = _first(~np.isfinite(column))
        if row >= 0:
            failures.append((row, "prices must be finite", f"{name} is {column[row]}"))
        row = _first(column <= 0.0)
        if row >= 0:
            failures.append((row, "prices must be positive", f"{name} is {column[row]}"))
        row = _first((column > 0.0) & ((column < MIN_PRICE) | (column > MAX_PRICE)))
        if row >= 0:
            failures.append(
                (row, f"prices must lie between {MIN_PRICE:g} and {MAX_PRICE:g} (beyond, the arithmetic overflows)",
                 f"{name} is {column[row]:g}")
            )
    row = _first(~np.isfinite(volume) | (volume < 0.0))
    if row >= 0:
        failures.append((row, "volume must be finite and non-negative", f"volume is {volume[row]}"))
    row = _first(np.isfinite(volume) & (volume > MAX_VOLUME))
    if row >= 0:
        failures.append(
            (row, f"volume must be at most {MAX_VOLUME:g} (beyond, the arithmetic overflows)",
             f"volume is {volume[row]:g}")
        )
    row = _first(high < np.maximum(open_, close))
    if row >= 0:
        failures.append(
            (row, "high must be >= max(open, close)",
             f"high {high[row]} < max({open_[row]}, {close[row]})")
        )
    row = _first(low > np.minimum(open_, close))
    if row >= 0:
        failures.append(
            (row, "low must be <= min(open, close)",
             f"low {low[row]} > min({open_[row]}, {close[row]})")
        )
    if failures:
        row, rule, detail = min(failures, key=lambda failure: failure[0])
        raise BarsValidationError(row, rule, detail)


def tiny_bars(n: int = 256) -> Bars:
    """A few valid synthetic bars to run kernels on (warm-ups: the fork server's, an inline study's)."""
    close = 100.0 + np.cumsum(np.sin(np.arange(n)))
    return Bars(
        ts=np.arange(n, dtype=np.int64) * 60_000_000_000,
        open=close, high=close + 1.0, low=close - 1.0, close=close, volume=np.ones(n),
    )
