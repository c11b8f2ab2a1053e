"""A candlestick chart drawn with half-block glyphs: zoom, scroll, overlays, trade markers."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding, BindingType
from textual.color import Color
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

from genesis_tui.widgets._theme import theme_color

MIN_SPAN = 8  # bars: the closest zoom
GUTTER = 10  # the price labels on the right
MARKER_BARS_PER_COLUMN = 8  # entry/exit markers are drawn up to this many bars per column
OVERLAY_COLORS = ("chart-1", "chart-2", "chart-3")

# Each cell holds two vertical halves; each half is empty, wick or body.
_EMPTY, _WICK, _BODY = 0, 1, 2
_GLYPHS = {
    (_BODY, _BODY): "█",
    (_BODY, _WICK): "▀",
    (_BODY, _EMPTY): "▀",
    (_WICK, _BODY): "▄",
    (_EMPTY, _BODY): "▄",
    (_WICK, _WICK): "│",
    (_WICK, _EMPTY): "╵",
    (_EMPTY, _WICK): "╷",
}


@dataclass(frozen=True, slots=True)
class Slot:
    """One column: the bars ``[first, last]`` it aggregates (``first < 0``: a gap between candles)."""

    first: int
    last: int


def layout_slots(start: int, span: int, columns: int) -> list[Slot]:
    """The columns of ``span`` bars from ``start``: several bars per column when they do not
    fit, else as many columns per bar as fit (a candle, then a one-column gap)."""
    if columns <= 0 or span <= 0:
        return []
    if span >= columns:
        edges = [start + c * span // columns for c in range(columns + 1)]
        return [Slot(edges[c], max(edges[c], edges[c + 1] - 1)) for c in range(columns)]
    per = columns // span
    slots: list[Slot] = []
    for i in range(start, start + span):
        slots.extend([Slot(i, i)] * max(1, per - 1))
        if per > 1:
            slots.append(Slot(-1, -1))
    return slots


def half_index(value: float, lo: float, hi: float, halves: int) -> int:
    """The half-row (0 at the bottom) of ``value`` on a scale of ``halves`` half-rows."""
    if hi <= lo:
        return halves // 2
    return max(0, min(halves - 1, round((value - lo) / (hi - lo) * (halves - 1))))


def price_label(value: float, width: int) -> str:
    """A price in at most ``width`` characters (fewer decimals as it grows)."""
    for digits in (2, 1, 0):
        text = f"{value:,.{digits}f}"
        if len(text) <= width:
            return text
    return f"{value:.3g}"[:width]


def time_label(ts_ns: int) -> str:
    return str(np.datetime64(int(ts_ns), "ns").astype("datetime64[m]")).replace("T", " ")


class CandleChart(Widget, can_focus=True):
    """Candles of OHLC bars over time, with indicator lines and entry/exit markers.

    The view opens with one bar per column; ``+``/``-`` zoom around the centre, ``left``/``right`` scroll a quarter of the
    view, ``home``/``end`` go to the first/last bars; :meth:`show_range` brings a
    span of bars (a trade) into view and highlights it.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("plus,equals_sign", "zoom(0.5)", "Zoom in"),
        Binding("minus", "zoom(2)", "Zoom out"),
        Binding("left", "scroll_bars(-1)", "Earlier", show=False),
        Binding("right", "scroll_bars(1)", "Later", show=False),
        Binding("home", "to_edge(-1)", "First", show=False),
        Binding("end", "to_edge(1)", "Last", show=False),
    ]

    DEFAULT_CSS = """
    CandleChart {
        width: 1fr;
        height: 1fr;
        min-height: 6;
    }
    """

    class Moved(Message):
        """The view changed (zoom or scroll): bars ``[start, end)`` are shown."""

        def __init__(self, chart: CandleChart, start: int, end: int) -> None:
            super().__init__()
            self.chart = chart
            self.start = start
            self.end = end

        @property
        def control(self) -> CandleChart:
            return self.chart

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        """The view opens on the last bars, one per column, until a key zooms it."""
        super().__init__(id=id, classes=classes)
        empty = np.empty(0)
        self.ts: np.ndarray = np.empty(0, dtype=np.int64)
        self.open = self.high = self.low = self.close = empty
        self.overlays: tuple[tuple[str, np.ndarray], ...] = ()
        self.entries: tuple[int, ...] = ()
        self.exits: tuple[int, ...] = ()
        self._entry_set = self._exit_set = np.empty(0, dtype=np.int64)
        self.selected: tuple[int, int] | None = None
        self.span = MIN_SPAN
        self.fit = True  # one bar per column (follows the width) until zoomed
        self.end = 0  # one past the last bar shown
        self._cache_key: object = None
        self._strips: list[Strip] = []

    # ------------------------------------------------------------------ data
    def set_bars(
        self,
        ts: np.ndarray,
        open_: np.ndarray,
        high: np.ndarray,
        low: np.ndarray,
        close: np.ndarray,
        *,
        overlays: Sequence[tuple[str, np.ndarray]] = (),
        entries: Sequence[int] = (),
        exits: Sequence[int] = (),
    ) -> None:
        """Show these bars (the view opens on the last ones)."""
        self.ts, self.open, self.high, self.low, self.close = ts, open_, high, low, close
        self.overlays = tuple(overlays)
        self.entries, self.exits = tuple(sorted(entries)), tuple(sorted(exits))
        self._entry_set = np.asarray(self.entries, dtype=np.int64)
        self._exit_set = np.asarray(self.exits, dtype=np.int64)
        self.selected = None
        self.fit = True
        self.end = len(ts)
        self._fit_width()
        self._changed()

    def _fit_width(self) -> None:
        if self.fit and self.size.width > GUTTER:
            self.span = self.size.width - GUTTER

    def on_resize(self) -> None:
        if self.fit:
            end = self.end
            self._fit_width()
            self.end = end
            self._changed()

    @property
    def n(self) -> int:
        return len(self.ts)

    @property
    def start(self) -> int:
        return self.end - self.span

    def _clamp(self) -> None:
        n = self.n
        self.span = max(min(MIN_SPAN, n), min(self.span, n))
        self.end = max(self.span, min(self.end, n))

    def _changed(self) -> None:
        self._clamp()
        self.refresh()
        self.post_message(self.Moved(self, self.start, self.end))

    # --------------------------------------------------------------- actions
    def action_zoom(self, factor: float) -> None:
        self.fit = False
        centre = self.end - self.span / 2
        self.span = max(MIN_SPAN, round(self.span * factor))
        self.span = min(self.span, self.n)
        self.end = round(centre + self.span / 2)
        self._changed()

    def action_scroll_bars(self, direction: int) -> None:
        self.end += direction * max(1, self.span // 4)
        self._changed()

    def action_to_edge(self, side: int) -> None:
        self.end = self.n if side > 0 else self.span
        self._changed()

    def show_range(self, first: int, last: int) -> None:
        """Bring bars ``[first, last]`` into view, centred, and highlight them: zoomed out if
        they do not fit, zoomed in if the view is so wide that markers are not drawn."""
        self.selected = (first, last)
        width = last - first + 1
        wanted = max(MIN_SPAN, width * 2, self.size.width - GUTTER)
        if width * 3 // 2 > self.span or self.span > wanted * MARKER_BARS_PER_COLUMN:
            self.fit = False
            self.span = max(MIN_SPAN, width * 2) if width * 3 // 2 > self.span else wanted
        self.end = round((first + last + 1) / 2 + self.span / 2)
        self._changed()

    # ------------------------------------------------------------- rendering
    def _styles(self) -> dict[str, Style]:
        bg = self.background_colors[1]
        variables = self.app.theme_variables
        foreground = Color.parse(variables.get("foreground") or "white")
        muted = bg.blend(foreground, 0.6)
        styles = {
            "up": Style(color=theme_color(self, "success").rich_color, bgcolor=bg.rich_color),
            "down": Style(color=theme_color(self, "error").rich_color, bgcolor=bg.rich_color),
            "muted": Style(color=muted.rich_color, bgcolor=bg.rich_color),
            "blank": Style(bgcolor=bg.rich_color),
            "entry": Style(color=theme_color(self, "accent").rich_color, bgcolor=bg.rich_color, bold=True),
            "exit": Style(color=theme_color(self, "warning").rich_color, bgcolor=bg.rich_color, bold=True),
            "select": Style(color=theme_color(self, "accent").rich_color, bgcolor=bg.rich_color, bold=True),
        }
        for i, name in enumerate(OVERLAY_COLORS):
            styles[f"overlay{i}"] = Style(color=theme_color(self, name).rich_color, bgcolor=bg.rich_color)
        return styles

    def _build(self) -> list[Strip]:
        width, height = self.size
        styles = self._styles()
        if self.n == 0 or width <= GUTTER + 2 or height < 3:
            return [Strip([Segment("no bars", styles["muted"])]).adjust_cell_length(width, styles["blank"])]
        rows = height - 1  # the last row is the time axis
        columns = width - GUTTER
        slots = layout_slots(self.start, self.span, columns)
        lo_i, hi_i = self.start, self.end
        lo = float(np.nanmin(self.low[lo_i:hi_i]))
        hi = float(np.nanmax(self.high[lo_i:hi_i]))
        for _, series in self.overlays:
            part = series[lo_i:hi_i]
            finite = part[np.isfinite(part)]
            if finite.size:
                lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
        pad = (hi - lo) * 0.04 or abs(hi) * 0.01 or 1.0
        lo, hi = lo - pad, hi + pad
        halves = rows * 2
        grid: list[list[tuple[str, str]]] = [[(" ", "blank")] * len(slots) for _ in range(rows)]
        # Zoomed far out, a marker on every column would hide the candles: markers come back on zooming in.
        markers = self.span <= columns * MARKER_BARS_PER_COLUMN

        def put(half: int, col: int, glyph: str, style: str, only_empty: bool = False) -> None:
            row = rows - 1 - half // 2
            if 0 <= row < rows and (not only_empty or grid[row][col][0] == " "):
                grid[row][col] = (glyph, style)

        for col, slot in enumerate(slots):
            if slot.first < 0:
                continue
            a, b = slot.first, slot.last + 1
            o, c = float(self.open[a]), float(self.close[b - 1])
            h, low = float(np.max(self.high[a:b])), float(np.min(self.low[a:b]))
            style = "up" if c >= o else "down"
            w0, w1 = half_index(low, lo, hi, halves), half_index(h, lo, hi, halves)
            b0, b1 = half_index(min(o, c), lo, hi, halves), half_index(max(o, c), lo, hi, halves)
            for row in range(rows):
                top, bottom = (rows - 1 - row) * 2 + 1, (rows - 1 - row) * 2
                kinds = tuple(_BODY if b0 <= k <= b1 else _WICK if w0 <= k <= w1 else _EMPTY for k in (top, bottom))
                glyph = _GLYPHS.get((kinds[0], kinds[1]))
                if glyph:
                    grid[row][col] = (glyph, style)
            for i, (_, series) in enumerate(self.overlays):
                v = float(series[b - 1])
                if math.isfinite(v):
                    put(half_index(v, lo, hi, halves), col, "─", f"overlay{i % len(OVERLAY_COLORS)}", only_empty=True)
            if not markers:
                continue
            if self._has(self._entry_set, a, b):
                put(w0 - 2, col, "▲", "entry")
            if self._has(self._exit_set, a, b):
                put(w1 + 2, col, "▼", "exit")
        labels = {0: price_label(hi, GUTTER - 1), rows // 2: price_label((hi + lo) / 2, GUTTER - 1),
                  rows - 1: price_label(lo, GUTTER - 1)}  # fmt: skip
        strips = []
        for row in range(rows):
            segments = [Segment(glyph, styles[style]) for glyph, style in grid[row]]
            segments.append(Segment(" " * (columns - len(slots)), styles["blank"]))
            label = labels.get(row, "")
            segments.append(Segment(" " + label.rjust(GUTTER - 1), styles["muted"]))
            strips.append(Strip(segments).adjust_cell_length(width, styles["blank"]))
        strips.append(self._axis(slots, columns, width, styles))
        return strips

    @staticmethod
    def _has(marks: np.ndarray, a: int, b: int) -> bool:
        if marks.size == 0:
            return False
        i = int(np.searchsorted(marks, a))
        return i < marks.size and marks[i] < b

    def _axis(self, slots: list[Slot], columns: int, width: int, styles: dict[str, Style]) -> Strip:
        """The time axis: the first and last bars' times and the selected trade underlined."""
        cells: list[tuple[str, str]] = [(" ", "muted")] * columns
        first, last = time_label(int(self.ts[self.start])), time_label(int(self.ts[self.end - 1]))
        if len(first) + len(last) + 1 <= columns:
            cells[: len(first)] = [(ch, "muted") for ch in first]
            cells[columns - len(last) :] = [(ch, "muted") for ch in last]
        if self.selected is not None:
            a, b = self.selected
            for col, slot in enumerate(slots):
                if slot.first >= 0 and slot.last >= a and slot.first <= b:
                    cells[col] = ("━", "select")
        segments = [Segment(ch, styles[style]) for ch, style in cells]
        span = f"{self.span:,} bars"
        segments.append(Segment(" " + span[: GUTTER - 1].rjust(GUTTER - 1), styles["muted"]))
        return Strip(segments).adjust_cell_length(width, styles["blank"])

    def render_line(self, y: int) -> Strip:
        key = (self.size, self.start, self.end, self.selected, self.app.theme, id(self.ts))
        if key != self._cache_key:
            self._strips = self._build()
            self._cache_key = key
        if 0 <= y < len(self._strips):
            return self._strips[y]
        return Strip.blank(self.size.width)
