"""A line chart drawn with braille dots (2x4 per cell), its colours from theme variables.

It replaced a textual-plotext chart: plotting there is pure Python and cost tens
of milliseconds on every data change, and turning its ANSI output into strips
cost 3-9 ms on every pane switch. Here plain functions compute the chart as rows
of (text, role) runs; the widget styles them once into strips and keeps those
until the size, data or theme change.

Geometry: the series is a polyline through (index, value), scaled so index 0 is
the first dot column, the last index the last one, the lowest value the bottom
dot row and the highest the top one. Each dot column lights the dots from the
lowest to the highest value the polyline takes over that column's width, so a
steep move stays connected and, when there are more points than columns, every
point's value still shows (a bucket keeps its minimum and its maximum).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from decimal import Decimal

from rich.segment import Segment
from rich.style import Style
from textual.color import Color
from textual.strip import Strip
from textual.widget import Widget

from genesis_tui.widgets._theme import theme_color

TITLE = -2
"""Role of the title's text in a chart line."""
MUTED = -1
"""Role of the axes, their labels, the y label and the empty text; roles >= 0 are series
indices (a blank cell takes whichever role is next to it)."""

Run = tuple[str, int]
"""A piece of a chart line: its text and its role."""

BRAILLE = 0x2800
# the bit of each dot of a braille cell, by [row from the top][column]
DOT_BITS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))
MANTISSAS = (5.0, 2.5, 2.0, 1.0)


def _round(x: float) -> int:
    """Half up (Python's ``round`` goes to even, which would make the geometry wobble)."""
    return math.floor(x + 0.5)


# --------------------------------------------------------------------------- ticks


def nice_steps(span: float) -> Iterator[float]:
    """Round steps (1, 5, 2.5, 2 times a power of ten), from the first at least ``span`` down
    to the smallest float."""
    exponent = min(308, math.ceil(math.log10(span))) if span > 0 else 0
    yield float(f"1e{exponent}")  # from text: exact, and no overflow at the ends of the float range
    while True:
        exponent -= 1
        for mantissa in MANTISSAS:
            step = float(f"{mantissa}e{exponent}")
            if step == 0:
                return
            yield step


def multiples(lo: float, hi: float, step: float) -> list[float]:
    """The multiples of ``step`` within ``[lo, hi]``, increasing (as the floats nearest the
    decimal multiples: 52 x 0.00025 is 0.013, not 0.013000000000000001)."""
    exact = Decimal(repr(step))
    values = (float(k * exact) for k in range(math.ceil(lo / step), math.floor(hi / step) + 1))
    return [v for v in values if lo <= v <= hi]


def choose_ticks(
    lo: float, hi: float, max_count: int, *, integer: bool = False, rows: int = 0
) -> tuple[list[float], float]:
    """Up to ``max_count`` round values within ``[lo, hi]``, increasing, and their step.

    The most multiples of a round step that fit, at least two when ``lo < hi``
    and ``max_count`` allows; with ``rows`` (cell rows of 4 dots spanning
    ``lo``..``hi``) no two ticks share a row. ``integer``: steps of at least 1.
    When no step has two multiples that fit, the two roundest values that do.
    Where ``lo == hi``, just ``[lo]``.
    """
    if not lo < hi:
        return [lo], 0.0
    span = hi - lo
    if not math.isfinite(span):
        return [lo, hi], abs(hi)

    def apart(ticks: list[float]) -> bool:
        return rows <= 0 or len({tick_row(t, lo, hi, rows) for t in ticks}) == len(ticks)

    def steps() -> Iterator[float]:
        for step in nice_steps(span):
            if integer and step < 1:
                return
            if not integer or step == math.floor(step):
                yield step

    best: tuple[list[float], float] = ([], 0.0)
    for step in steps():
        if (math.floor(hi / step) - math.ceil(lo / step) + 1) > max_count:
            break
        ticks = multiples(lo, hi, step)
        if len(ticks) > len(best[0]) and apart(ticks):
            best = (ticks, step)
    want = 1 if max_count < 2 or rows == 1 else 2  # one row holds one tick
    if len(best[0]) >= want:
        return best
    for step in steps():
        if step < span * 1e-9:  # the ends are lo and hi by now
            break
        exact = Decimal(repr(step))
        ends = {float(exact * k) for k in (math.ceil(lo / step), math.floor(hi / step))}
        ticks = sorted(v for v in ends if lo <= v <= hi)[:want]
        if len(ticks) == want and apart(ticks):
            return ticks, step
    return [lo, hi][:want], span


def tick_row(value: float, lo: float, hi: float, rows: int) -> int:
    """The cell row (0 at the top) of ``rows`` where the dot of ``value`` falls."""
    dots = rows * 4
    return (dots - 1 - _clamp(_round(scale(value, lo, hi, dots - 1)), dots - 1)) // 4


def scale(value: float, lo: float, hi: float, top: float) -> float:
    """``value`` on a 0..``top`` scale where ``lo`` is 0 and ``hi`` is ``top``."""
    k = _halving(lo, hi)
    return (value * k - lo * k) / (hi * k - lo * k) * top


def _halving(lo: float, hi: float) -> float:
    """1, or 0.5 where ``hi - lo`` overflows (then the scale works on halves)."""
    return 1.0 if math.isfinite(hi - lo) else 0.5


def _clamp(i: int, top: int) -> int:
    return 0 if i < 0 else top if i > top else i


def _decimals(x: float) -> int:
    """The digits after the point that write ``x`` (a round step) exactly enough."""
    x = abs(x)
    for digits in range(0, 16):
        shifted = x * 10.0**digits
        if abs(shifted - round(shifted)) <= 1e-6 * shifted:
            return digits
    return 15


UNITS = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k"))


def format_ticks(values: Sequence[float], step: float) -> list[str]:
    """``values`` written alike, as short as may be: 9,950 / 10.5k / 2.25M / 0.0125 / 1.5e-08.

    ``step`` is the resolution the labels must show (the ticks' step).
    """
    if not values:
        return []
    magnitude = max(abs(v) for v in values)
    step = abs(step) or magnitude or 1.0
    decimals = _decimals(step)
    candidates = [[f"{v:,.{decimals}f}" for v in values]]
    for unit, suffix in UNITS:
        if magnitude >= unit:
            digits = _decimals(step / unit)
            candidates.append([f"{v / unit:,.{digits}f}{suffix}" if v else "0" for v in values])
            break
    if magnitude > 0:
        exponent = math.floor(math.log10(magnitude))
        digits = _decimals(step / 10.0**exponent) if abs(exponent) < 300 else 3
        candidates.append([f"{v:.{digits}e}" if v else "0" for v in values])
    labels = [_unsigned_zero(s) for s in min(candidates, key=lambda c: max(len(s) for s in c))]
    precision = 1
    # a step finer than 15 decimals show: as many significant digits as tell the ticks apart
    while len(set(labels)) < len(set(values)) and precision <= 17:
        labels = [f"{v:.{precision}g}" for v in values]
        precision += 1
    return labels


def _unsigned_zero(label: str) -> str:
    if label.startswith("-") and not any(ch in "123456789" for ch in label.split("e")[0]):
        return label[1:]
    return label


# ------------------------------------------------------------------- braille dots


def column_spans(
    xs: Sequence[float], ys: Sequence[float], columns: int
) -> list[tuple[float, float] | None]:
    """For each of ``columns`` dot columns, the lowest and highest y the polyline through
    (``xs``, ``ys``) takes over the column's width (x within c-0.5..c+0.5); None where it
    does not reach. ``xs`` increase, in dot columns."""
    lows = [math.inf] * columns
    highs = [-math.inf] * columns
    last_column = columns - 1
    if len(xs) == 1:  # a lone point: a segment of no length
        xs, ys = (xs[0], xs[0]), (ys[0], ys[0])
    for i in range(len(xs) - 1):
        x0, y0, x1, y1 = xs[i], ys[i], xs[i + 1], ys[i + 1]
        first = math.ceil(x0 - 0.5)
        last = math.floor(x1 + 0.5)
        if first < 0:
            first = 0
        if last > last_column:
            last = last_column
        slope = (y1 - y0) / (x1 - x0) if x1 > x0 else 0.0
        for c in range(first, last + 1):
            # the segment clipped to the column (a vertical one keeps both ends); a vertex
            # keeps its own value, so a point on a column edge lands exactly in both columns
            a, b = c - 0.5, c + 0.5
            ya = y0 if a <= x0 else y1 if a >= x1 else y0 + slope * (a - x0)
            yb = y1 if b >= x1 else y0 if b <= x0 else y0 + slope * (b - x0)
            if ya > yb:
                ya, yb = yb, ya
            if ya < lows[c]:
                lows[c] = ya
            if yb > highs[c]:
                highs[c] = yb
    return [None if lows[c] > highs[c] else (lows[c], highs[c]) for c in range(columns)]


def dot_runs(
    spans: Sequence[tuple[float, float] | None], dots: int
) -> list[tuple[int, int] | None]:
    """``column_spans`` rounded to the dot rows (0 the bottom) of a ``dots``-high grid."""
    top = dots - 1
    return [
        None if s is None else (_clamp(_round(s[0]), top), _clamp(_round(s[1]), top)) for s in spans
    ]


def braille_rows(
    runs: Sequence[Sequence[tuple[int, int] | None]], width: int, height: int
) -> tuple[list[str], list[list[int]]]:
    """The cell rows (top first) of a ``width`` x ``height`` braille plot of the dot ``runs``
    of each series (one per dot column, 0 the bottom dot row), and which series owns
    each cell (-1 none; where series meet, the later one)."""
    bits = [[0] * width for _ in range(height)]
    owner = [[-1] * width for _ in range(height)]
    top = height * 4 - 1
    for index, series in enumerate(runs):
        for column, run in enumerate(series):
            if run is None:
                continue
            cell, side = divmod(column, 2)
            for dot in range(run[0], run[1] + 1):
                row, sub = divmod(top - dot, 4)
                bits[row][cell] |= DOT_BITS[sub][side]
                owner[row][cell] = index
    rows = ["".join(chr(BRAILLE + b) if b else " " for b in line) for line in bits]
    return rows, owner


def plot_runs(
    series: Sequence[Sequence[float]], columns: int, dots: int, lo: float, hi: float, n: int
) -> list[list[tuple[int, int] | None]]:
    """Dot runs of each series on a ``columns`` x ``dots`` grid: index 0..``n``-1 across,
    ``lo``..``hi`` up; non-finite values are skipped (their neighbours joined)."""
    x_scale = (columns - 1) / (n - 1) if n > 1 else 0.0
    k = _halving(lo, hi)  # scale(), inlined
    lo_k, span_k, top = lo * k, hi * k - lo * k, dots - 1
    isfinite = math.isfinite
    out: list[list[tuple[int, int] | None]] = []
    for values in series:
        points = [
            (i * x_scale, (v * k - lo_k) / span_k * top) for i, v in enumerate(values) if isfinite(v)
        ]
        if not points:
            out.append([None] * columns)
            continue
        xs, ys = zip(*points, strict=True)
        out.append(dot_runs(column_spans(xs, ys, columns), dots))
    return out


# -------------------------------------------------------------------------- layout


def value_range(series: Sequence[Sequence[float]]) -> tuple[float, float] | None:
    """The lowest and highest finite value, widened around a single value; None without any."""
    finite = [v for values in series for v in values if math.isfinite(v)]
    if not finite:
        return None
    lo, hi = min(finite), max(finite)
    if lo == hi:
        pad = abs(lo) * 0.05
        if lo - pad == lo:  # zero, or too small for 5% to register
            pad = 1.0
        lo, hi = (lo - pad, hi + pad) if math.isfinite(hi + pad) else (lo - 2 * pad, hi)
    return lo, hi


def _merge(runs: list[Run]) -> list[Run]:
    merged: list[Run] = []
    for text, role in runs:
        if merged and merged[-1][1] == role:
            merged[-1] = (merged[-1][0] + text, role)
        elif text:
            merged.append((text, role))
    return merged


def _fit(runs: list[Run], width: int) -> list[Run]:
    """``runs`` cut or padded (muted blanks) to ``width`` characters."""
    out: list[Run] = []
    left = width
    for text, role in runs:
        if left <= 0:
            break
        out.append((text[:left], role))
        left -= len(out[-1][0])
    if left > 0:
        out.append((" " * left, MUTED))
    return _merge(out)


def chart_lines(
    series: Sequence[Sequence[float]],
    width: int,
    height: int,
    *,
    title: str = "",
    y_label: str = "",
    labels: Sequence[str] = (),
    empty: str = "no data yet",
) -> list[list[Run]]:
    """The ``height`` lines of a ``width``-wide chart, each a list of (text, role) runs
    exactly ``width`` characters long: title row, y axis and plot, x axis, x labels."""
    if width <= 0 or height <= 0:
        return []
    header: list[Run] = [(title, TITLE)] if title else []
    if y_label:
        header.append((("  " if header else "") + y_label, MUTED))
    for index, label in enumerate(labels):
        header.append((("  " if header else "") + "● " + label, index))
    blank = [(" " * width, MUTED)]

    if not any(sum(1 for v in values if math.isfinite(v)) > 1 for values in series):
        message = ([_fit([(title, TITLE)], width)] if title else []) + [_fit([(empty, MUTED)], width)]
        return (message + [blank] * height)[:height]

    header_rows = 1 if header and height >= 4 else 0
    rest = height - header_rows
    axis_rows = 2 if rest >= 5 else 1 if rest >= 2 else 0
    rows = rest - axis_rows
    value_span = value_range(series)
    assert value_span is not None
    lo, hi = value_span

    ticks, step = choose_ticks(lo, hi, min(5, max(1, rows // 2 + 1)), rows=rows)
    tick_labels = format_ticks(ticks, step)
    gutter = max(len(s) for s in tick_labels)
    if width - gutter - 1 < 4:
        tick_labels, gutter = [], 0
    plot_width = width - gutter - 1
    if plot_width < 1:
        return [blank] * height
    by_row = {tick_row(t, lo, hi, rows): s for t, s in zip(ticks, tick_labels, strict=False)}

    n = max(len(values) for values in series)
    runs_by_series = plot_runs(series, plot_width * 2, rows * 4, lo, hi, n)
    cells, owners = braille_rows(runs_by_series, plot_width, rows)

    lines: list[list[Run]] = [_fit(header, width)] if header_rows else []
    for r in range(rows):
        tick_label = by_row.get(r)
        edge = tick_label.rjust(gutter) + "┤" if tick_label is not None else " " * gutter + "│"
        runs: list[Run] = [(edge, MUTED)]
        text, owner = cells[r], owners[r]
        # a blank cell shows no colour: it joins the run before it, so a row is few segments
        role, start = MUTED, 0
        for c in range(plot_width):
            if owner[c] >= 0 and owner[c] != role:
                runs.append((text[start:c], role))
                role, start = owner[c], c
        runs.append((text[start:], role))
        lines.append(_merge(runs))
    if axis_rows:
        x_scale = (plot_width * 2 - 1) / (n - 1)
        most = max(2, min(8, plot_width // (len(str(n - 1)) + 3)))
        x_ticks, x_step = choose_ticks(0, n - 1, most, integer=True)
        axis = ["─"] * plot_width
        under = [" "] * plot_width
        end = -2
        for tick, label in zip(x_ticks, format_ticks(x_ticks, x_step), strict=True):
            column = _round(tick * x_scale) // 2
            axis[column] = "┬"
            begin = min(max(0, column - len(label) // 2), plot_width - len(label))
            if begin > end + 1 and begin >= 0:
                under[begin : begin + len(label)] = label
                end = begin + len(label) - 1
        lines.append([(" " * gutter + "└" + "".join(axis), MUTED)])
        if axis_rows == 2:
            lines.append([(" " * (gutter + 1) + "".join(under), MUTED)])
    return lines


# -------------------------------------------------------------------------- widget


class LineChart(Widget):
    """One or more series over their index.

    It takes new data at most once per ``min_interval_s`` (the latest data wins;
    stale data is never queued) and redraws only when its data, size or theme
    changed.
    """

    DEFAULT_CSS = """
    LineChart {
        width: 1fr;
        height: 1fr;
        min-height: 6;
    }
    """

    def __init__(
        self,
        title: str = "",
        *,
        colors: Sequence[str] = ("chart-1", "chart-2", "chart-3"),
        y_label: str = "",
        empty: str = "no data yet",
        min_interval_s: float = 1.0,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        """``colors``: theme variables, one per series (cycled); ``y_label`` shows on the title
        row; ``empty``: what shows while no series has two points."""
        super().__init__(id=id, classes=classes)
        self.min_interval_s = min_interval_s
        self._pending: tuple[tuple[tuple[float, ...], ...], tuple[str, ...]] | None = None
        self._last_set = -1e9
        self._cache_key: object = None
        self._strips: list[Strip] = []
        self._title = title
        self._colors = tuple(colors)
        self._y_label = y_label
        self._empty = empty
        self._series: tuple[tuple[float, ...], ...] = ()
        self._labels: tuple[str, ...] = ()

    def set_series(self, *series: Sequence[float], labels: Sequence[str] = ()) -> None:
        """Replace the plotted series (each a sequence of y values)."""
        data = tuple(tuple(s) for s in series)
        if data == self._series and tuple(labels) == self._labels:
            self._pending = None
            return
        now = time.monotonic()
        if now - self._last_set >= self.min_interval_s or not any(len(s) > 1 for s in self._series):
            self._apply(data, tuple(labels))
            return
        if self._pending is None:
            self.set_timer(self.min_interval_s - (now - self._last_set), self._apply_pending)
        self._pending = (data, tuple(labels))

    def _apply_pending(self) -> None:
        if self._pending is not None:
            data, labels = self._pending
            self._pending = None
            self._apply(data, labels)

    def _apply(self, data: tuple[tuple[float, ...], ...], labels: tuple[str, ...]) -> None:
        self._last_set = time.monotonic()
        self._series = data
        self._labels = labels
        self.refresh()

    def _styles(self) -> dict[int, Style]:
        """The style of each role, from the theme's variables."""
        variables = self.app.theme_variables
        background = self.background_colors[1]  # a DOM walk: once per rebuild, not per line
        foreground = Color.parse(variables.get("foreground") or "white")
        muted_value = variables.get("foreground-muted")
        muted = (
            background + Color.parse(muted_value) if muted_value else background.blend(foreground, 0.6)
        )
        bg = background.rich_color
        styles = {
            TITLE: Style(color=foreground.rich_color, bgcolor=bg, bold=True),
            MUTED: Style(color=muted.rich_color, bgcolor=bg),
        }
        for index in range(max(len(self._series), len(self._labels))):
            name = self._colors[index % len(self._colors)] if self._colors else "primary"
            color = theme_color(self, name)
            styles[index] = Style(color=color.rich_color, bgcolor=bg)
        return styles

    def _build(self) -> list[Strip]:
        width, height = self.size
        lines = chart_lines(
            [[float(v) for v in s] for s in self._series],
            width,
            height,
            title=self._title,
            y_label=self._y_label,
            labels=self._labels,
            empty=self._empty,
        )
        styles = self._styles()
        return [
            Strip([Segment(text, styles[role]) for text, role in line]).adjust_cell_length(
                width, styles[MUTED]
            )
            for line in lines
        ]

    def render_line(self, y: int) -> Strip:
        key = (self.size, self._series, self._labels, self.app.theme)
        if key != self._cache_key:
            self._strips = self._build()
            self._cache_key = key
        if 0 <= y < len(self._strips):
            return self._strips[y]
        return Strip.blank(self.size.width)
