"""Market data: the ``Bars`` container, its sources and caches."""

from __future__ import annotations

from engine.data.bars import Bars, BarsValidationError
from engine.data.timeframes import periods_per_year, timeframe_ns, timeframe_seconds

__all__ = ["Bars", "BarsValidationError", "periods_per_year", "timeframe_ns", "timeframe_seconds"]
