"""A multi-row sparkline drawn with block characters, one styled segment per row.

Textual's ``Sparkline`` styles every cell on its own (thousands of segments on a
tall box), which made pane switches and refreshes the console's main cost. This
one builds each row as a single string, shaded from the bottom colour to the top
colour, and caches the rows until the data, size or theme change.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

from genesis_tui.widgets._theme import theme_color

BLOCKS = " ▁▂▃▄▅▆▇█"


def bucket_max(values: Sequence[float], width: int) -> list[float]:
    """``values`` squeezed into ``width`` columns, each the largest value of its bucket."""
    n = len(values)
    if n <= width:
        return [float(v) for v in values]
    edges = [round(i * n / width) for i in range(width + 1)]
    return [max(values[edges[i] : max(edges[i] + 1, edges[i + 1])]) for i in range(width)]


def spark_rows(
    values: Sequence[float], width: int, height: int, *, low: float | None = None, high: float | None = None
) -> list[str]:
    """The rows (top first) of a ``height``-row sparkline of ``values``, right-aligned in ``width``.

    The scale runs from ``low`` (the baseline) to ``high`` (the top of the
    box); either one left out follows the data. Non-finite values are skipped.
    """
    if width <= 0 or height <= 0:
        return []
    columns = bucket_max([v for v in values if math.isfinite(v)], width)
    if not columns:
        return [" " * width for _ in range(height)]
    low = min(columns) if low is None else min(low, min(columns))
    high = max(columns) if high is None else max(high, max(columns))
    span = high - low
    # eighths of a cell: at least one eighth so the minimum still shows
    levels = [1 + round((v - low) / span * (height * 8 - 1)) if span > 0 else height * 4 for v in columns]
    pad = " " * (width - len(columns))
    rows = []
    for row in range(height - 1, -1, -1):
        base = row * 8
        rows.append(pad + "".join(BLOCKS[min(8, max(0, level - base))] for level in levels))
    return rows


class Spark(Widget):
    """A sparkline of the last values (``data``), as tall and wide as its box."""

    DEFAULT_CSS = """
    Spark {
        height: 1fr;
        min-height: 1;
    }
    """

    def __init__(
        self,
        *,
        low: float | None = None,
        high: float | None = None,
        colors: tuple[str, str] = ("chart-1", "chart-2"),
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        """``low``/``high``: a fixed scale (0 and 100 for a percentage), else the data's range;
        ``colors``: theme variables for the bottom and the top rows."""
        super().__init__(id=id, classes=classes)
        self._low, self._high = low, high
        self._colors = colors
        self._data: tuple[float, ...] = ()
        self._cache_key: object = None
        self._strips: list[Strip] = []

    @property
    def data(self) -> tuple[float, ...]:
        return self._data

    @data.setter
    def data(self, values: Sequence[float]) -> None:
        values = tuple(float(v) for v in values)
        if values != self._data:
            self._data = values
            self.refresh()

    def _row_styles(self, height: int) -> list[Style]:
        bottom, top = (theme_color(self, name) for name in self._colors)
        background = self.background_colors[1]  # a DOM walk: once per rebuild, not per line
        styles = []
        for row in range(height):  # top first
            blend = 1.0 if height == 1 else 1 - row / (height - 1)
            styles.append(Style(color=bottom.blend(top, blend).rich_color, bgcolor=background.rich_color))
        return styles

    def _build(self) -> list[Strip]:
        width, height = self.size
        rows = spark_rows(self._data, width, height, low=self._low, high=self._high)
        styles = self._row_styles(height)
        return [Strip([Segment(text, style)], width) for text, style in zip(rows, styles, strict=True)]

    def render_line(self, y: int) -> Strip:
        key = (self.size, self._data, self.app.theme)
        if key != self._cache_key:
            self._strips = self._build()
            self._cache_key = key
        if 0 <= y < len(self._strips):
            return self._strips[y]
        return Strip.blank(self.size.width)
