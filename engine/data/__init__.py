"""Market data: the ``Bars`` container, its sources and caches."""

from __future__ import annotations

from engine.data.bars import Bars, BarsValidationError
from engine.data.basket import Basket, align
from engine.data.load import dropped_rows_note, load, load_basket, load_market
from engine.data.spec import DataSpec, parse_spec
from engine.data.timeframes import periods_per_year, timeframe_ns, timeframe_seconds

__all__ = [
    "Bars",
    "BarsValidationError",
    "Basket",
    "DataSpec",
    "align",
    "dropped_rows_note",
    "load",
    "load_basket",
    "load_market",
    "parse_spec",
    "periods_per_year",
    "timeframe_ns",
    "timeframe_seconds",
]
