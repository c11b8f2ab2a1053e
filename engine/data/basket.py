"""Several symbols' ``Bars`` aligned on one timeline: the ``Basket`` a portfolio backtest runs over."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.data.bars import PRICE_COLUMNS, Bars
from engine.errors import DataError


@dataclass(frozen=True, slots=True, eq=False)
class Basket:
    """Bars of several symbols on the union of their timestamps.

    ``ts`` (int64 ns, strictly increasing) is the timeline; ``open``, ``high``,
    ``low``, ``close`` and ``volume`` are read-only float64 arrays of shape
    (timestamps, symbols) in column-major order (each symbol's column is
    contiguous), NaN where a symbol has no bar. ``rows[k]`` holds the timeline
    rows of symbol ``k``'s own bars.
    """

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    symbols: tuple[str, ...]
    timeframe: str
    rows: tuple[np.ndarray, ...]

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    @property
    def n_symbols(self) -> int:
        return len(self.symbols)

    @property
    def has_bar(self) -> np.ndarray:
        """(timestamps, symbols) booleans: does the symbol have a bar there."""
        return ~np.isnan(self.close)

    def scatter(self, k: int, values: np.ndarray, fill: float | bool = np.nan) -> np.ndarray:
        """A column on the timeline from one value per own bar of symbol ``k`` (``fill`` elsewhere)."""
        values = np.asarray(values)
        out = np.full(len(self), fill, dtype=values.dtype)
        out[self.rows[k]] = values
        return out


def align(bars: Sequence[Bars]) -> Basket:
    """Align ``bars`` (one per symbol, same timeframe) on the union of their timestamps.

    Raises ``DataError`` (one line naming the symbol) for an empty basket, a
    repeated symbol, a symbol of another timeframe, or a symbol whose bars do
    not overlap the span of the others.
    """
    bars = list(bars)
    if not bars:
        raise DataError("basket: no symbols")
    first = bars[0]
    seen: set[str] = set()
    for b in bars:
        if b.symbol in seen:
            raise DataError(f"basket: symbol {b.symbol} appears twice")
        seen.add(b.symbol)
        if b.timeframe != first.timeframe:
            raise DataError(
                f"basket: symbol {b.symbol} has timeframe {b.timeframe}, {first.symbol} has {first.timeframe}"
            )
    if len(bars) > 1:
        starts = np.array([int(b.ts[0]) for b in bars])
        ends = np.array([int(b.ts[-1]) for b in bars])
        for k, b in enumerate(bars):
            others = np.arange(len(bars)) != k
            if ends[k] < starts[others].min() or starts[k] > ends[others].max():
                raise DataError(f"basket: symbol {b.symbol} has no bar within the span of the other symbols")
    ts = np.unique(np.concatenate([b.ts for b in bars]))
    rows = tuple(np.searchsorted(ts, b.ts) for b in bars)
    n, m = ts.shape[0], len(bars)
    columns = {}
    for name in (*PRICE_COLUMNS, "volume"):
        array = np.full((n, m), np.nan, order="F")
        for k, b in enumerate(bars):
            array[rows[k], k] = getattr(b, name)
        array.flags.writeable = False
        columns[name] = array
    ts.flags.writeable = False
    for r in rows:
        r.flags.writeable = False
    return Basket(ts=ts, symbols=tuple(b.symbol for b in bars), timeframe=first.timeframe, rows=rows, **columns)
