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
    #: Each symbol's own bars (what its strategy signals are computed on).
    members: tuple[Bars, ...] = ()

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

    def slice(self, start: int, stop: int) -> Basket:
        """The basket over timeline rows ``start:stop`` (each symbol keeps its bars in that span).

        Raises ``DataError`` when a symbol has no bar there.
        """
        start, stop, _ = slice(start, stop).indices(len(self))
        members, rows = [], []
        for k, bars in enumerate(self.members):
            lo, hi = np.searchsorted(self.rows[k], (start, stop))
            if hi <= lo:
                raise DataError(f"basket: symbol {bars.symbol} has no bar in timeline rows {start}:{stop}")
            members.append(bars.slice(int(lo), int(hi)))
            rows.append(_readonly(self.rows[k][lo:hi] - start))
        columns = {name: _readonly(np.asfortranarray(getattr(self, name)[start:stop])) for name in _COLUMNS_2D}
        return Basket(ts=self.ts[start:stop], symbols=self.symbols, timeframe=self.timeframe, rows=tuple(rows),
                      members=tuple(members), **columns)  # fmt: skip

    @classmethod
    def from_columns(
        cls, ts: np.ndarray, columns: dict[str, np.ndarray], rows: Sequence[np.ndarray], symbols: Sequence[str],
        timeframe: str,
    ) -> Basket:
        """A basket over already aligned 2-D columns (e.g. views of shared memory); members are rebuilt
        from them (views where a symbol has a bar at every timestamp)."""
        members = []
        n = ts.shape[0]
        for k, symbol in enumerate(symbols):
            own = rows[k]
            full = own.shape[0] == n
            o, h, lo, c, v = (columns[name][:, k] if full else columns[name][own, k] for name in _COLUMNS_2D)
            members.append(Bars(ts if full else ts[own], o, h, lo, c, v, symbol=symbol, timeframe=timeframe))
        return cls(ts=ts, symbols=tuple(symbols), timeframe=timeframe, rows=tuple(rows), members=tuple(members),
                   **columns)  # fmt: skip


_COLUMNS_2D = (*PRICE_COLUMNS, "volume")


def _readonly(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def check_members(bars: Sequence[Bars], sources: Sequence[str] | None = None) -> None:
    """Raise ``DataError`` (one line naming the symbol and, given ``sources``, where it came from) for
    an empty basket, a repeated symbol, a symbol of another timeframe, or one whose bars do not overlap
    the span of the others."""
    bars = list(bars)
    if not bars:
        raise DataError("basket: no symbols")

    def named(k: int) -> str:
        return f"symbol {bars[k].symbol}" + (f" ({sources[k]})" if sources else "")

    first = bars[0]
    seen: dict[str, int] = {}
    for k, b in enumerate(bars):
        if b.symbol in seen:
            raise DataError(f"basket: {named(k)} appears twice (also {named(seen[b.symbol])})")
        seen[b.symbol] = k
        if b.timeframe != first.timeframe:
            raise DataError(f"basket: {named(k)} has timeframe {b.timeframe}, {named(0)} has {first.timeframe}")
    if len(bars) > 1:
        starts = np.array([int(b.ts[0]) for b in bars])
        ends = np.array([int(b.ts[-1]) for b in bars])
        for k in range(len(bars)):
            others = np.arange(len(bars)) != k
            if ends[k] < starts[others].min() or starts[k] > ends[others].max():
                raise DataError(f"basket: {named(k)} has no bar within the span of the other symbols")


def align(bars: Sequence[Bars]) -> Basket:
    """Align ``bars`` (one per symbol, same timeframe) on the union of their timestamps.

    Raises ``DataError`` (one line naming the symbol) for an empty basket, a
    repeated symbol, a symbol of another timeframe, or a symbol whose bars do
    not overlap the span of the others.
    """
    bars = list(bars)
    check_members(bars)
    first = bars[0]
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
    return Basket(ts=ts, symbols=tuple(b.symbol for b in bars), timeframe=first.timeframe, rows=rows,
                  members=tuple(bars), **columns)  # fmt: skip
