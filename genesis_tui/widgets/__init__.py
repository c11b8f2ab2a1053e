"""Reusable console widgets (one per private module)."""

from __future__ import annotations

from genesis_tui.widgets._candles import CandleChart
from genesis_tui.widgets._chart import LineChart
from genesis_tui.widgets._heatmap import HeatmapView
from genesis_tui.widgets._spark import Spark
from genesis_tui.widgets._stat import Stat
from genesis_tui.widgets._table import RowTable

__all__ = ["CandleChart", "HeatmapView", "LineChart", "RowTable", "Spark", "Stat"]
