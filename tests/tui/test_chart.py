"""The braille line chart: dots against a slow reference, ticks, layout, throttling, themes."""

from __future__ import annotations

import itertools
import math
import time
import types

import pytest
from hypothesis import given
from hypothesis import strategies as st
from textual.app import App, ComposeResult
from textual.color import Color
from textual.theme import Theme

from genesis_tui.widgets import LineChart
from genesis_tui.widgets import _chart as chart_module
from genesis_tui.widgets._chart import (
    MUTED,
    TITLE,
    braille_rows,
    chart_lines,
    choose_ticks,
    format_ticks,
    plot_runs,
    tick_row,
)

# Unicode braille: dots 1-2-3-7 run down the left column, 4-5-6-8 down the right one;
# dot k is bit k-1 of the offset from U+2800
LEFT_DOTS, RIGHT_DOTS = (1, 2, 3, 7), (4, 5, 6, 8)

finite = st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False)


def half_up(x: float) -> int:
    return math.floor(x + 0.5)


def reference_grid(
    values: list[float], columns: int, dots: int, lo: float, hi: float, n: int
) -> list[list[bool]]:
    """grid[dot row from the bottom][dot column], by plain loops: a column lights every dot
    between the lowest and highest value the polyline takes over its width, which are
    among the points inside the column and the places the polyline crosses its edges."""
    step = (columns - 1) / (n - 1) if n > 1 else 0.0
    points = [(i * step, (v - lo) / (hi - lo) * (dots - 1)) for i, v in enumerate(values) if math.isfinite(v)]
    grid = [[False] * columns for _ in range(dots)]
    for c in range(columns):
        left, right = c - 0.5, c + 0.5
        ys = [y for x, y in points if left <= x <= right]
        for (xa, ya), (xb, yb) in itertools.pairwise(points):
            for edge in (left, right):
                if xa < edge < xb:
                    ys.append(ya + (yb - ya) / (xb - xa) * (edge - xa))
        if ys:
            bottom = min(max(half_up(min(ys)), 0), dots - 1)
            top = min(max(half_up(max(ys)), 0), dots - 1)
            for d in range(bottom, top + 1):
                grid[d][c] = True
    return grid


def grid_to_braille(grid: list[list[bool]], width: int, height: int) -> list[str]:
    """The cell rows (top first) that draw ``grid``, one dot at a time."""
    dots = height * 4
    rows = []
    for r in range(height):
        line = ""
        for cell in range(width):
            code = 0
            for sub in range(4):
                for side, numbers in ((0, LEFT_DOTS), (1, RIGHT_DOTS)):
                    if grid[dots - 1 - (r * 4 + sub)][cell * 2 + side]:
                        code |= 1 << (numbers[sub] - 1)
            line += chr(0x2800 + code) if code else " "
        rows.append(line)
    return rows


def lit(runs: list[tuple[int, int] | None], column: int, dot: int) -> bool:
    run = runs[column]
    return run is not None and run[0] <= dot <= run[1]


def text(line: list[tuple[str, int]]) -> str:
    return "".join(t for t, _ in line)


# ------------------------------------------------------------------- geometry


@given(
    st.lists(st.one_of(finite, st.sampled_from([math.nan, math.inf])), min_size=1, max_size=400),
    st.integers(1, 60),
    st.integers(1, 12),
)
def test_braille_dots_match_a_slow_reference(values: list[float], width: int, height: int) -> None:
    clean = [v for v in values if math.isfinite(v)]
    if not clean:
        return
    lo, hi = min(clean), max(clean)
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    columns, dots, n = width * 2, height * 4, len(values)
    runs = plot_runs([values], columns, dots, lo, hi, n)
    rows, owners = braille_rows(runs, width, height)
    expected = grid_to_braille(reference_grid(values, columns, dots, lo, hi, n), width, height)
    assert rows == expected
    for row, owner in zip(rows, owners, strict=True):
        assert [o == 0 for o in owner] == [ch != " " for ch in row]


@given(st.lists(finite, min_size=2, max_size=500), st.integers(2, 80), st.integers(1, 10))
def test_every_point_is_drawn_and_columns_connect(values: list[float], columns: int, height: int) -> None:
    lo, hi = min(values), max(values)
    if lo == hi:
        return
    dots, n = height * 4, len(values)
    (runs,) = plot_runs([values], columns, dots, lo, hi, n)
    step = (columns - 1) / (n - 1)
    for i, v in enumerate(values):  # bucketing keeps every extreme: each point's own dot is lit
        assert lit(runs, half_up(i * step), half_up((v - lo) / (hi - lo) * (dots - 1)))
    assert runs[0] is not None and runs[-1] is not None
    for a, b in itertools.pairwise(runs):  # no gaps: neighbouring runs overlap or touch
        assert a is not None and b is not None
        assert a[0] <= b[1] + 1 and b[0] <= a[1] + 1
    assert min(r[0] for r in runs if r) == 0 and max(r[1] for r in runs if r) == dots - 1


def test_min_on_the_bottom_dot_row_max_on_the_top_one() -> None:
    values = [3.0, 1.0, 4.0, 1.5, 9.0, 2.0, 6.0]
    (runs,) = plot_runs([values], 14, 12, 1.0, 9.0, len(values))
    # x = index * 13/6: the minimum (index 1) in column 2, the maximum (index 4) in column 9
    assert runs[2] is not None and runs[2][0] == 0
    assert runs[9] is not None and runs[9][1] == 11
    assert all(r is not None and 0 <= r[0] <= r[1] <= 11 for r in runs)
    rows, _ = braille_rows([runs], 7, 3)
    assert rows == grid_to_braille(reference_grid(values, 14, 12, 1.0, 9.0, 7), 7, 3)
    # the bottom-left dot of cell 1 (dot 7) and the top-right dot of cell 4 (dot 4)
    assert (ord(rows[2][1]) - 0x2800) & 0x40
    assert (ord(rows[0][4]) - 0x2800) & 0x08


def test_a_steep_jump_is_one_connected_vertical_line() -> None:
    (runs,) = plot_runs([[0.0, 0.0, 100.0, 100.0]], 40, 20, 0.0, 100.0, 4)
    # the jump from column 13 to column 26 climbs every dot row without a gap
    climbing = [r for r in runs[13:27] if r is not None]
    assert len(climbing) == 14
    covered = {d for r in climbing for d in range(r[0], r[1] + 1)}
    assert covered == set(range(20))
    (runs,) = plot_runs([[0.0, 100.0, 0.0]], 2, 20, 0.0, 100.0, 3)
    assert runs == [(0, 19), (0, 19)]  # a spike up and back within a column is drawn in full


def test_extremes_survive_bucketing() -> None:
    values = [0.0] * 5000
    values[2717], values[2718] = 1.0, -1.0
    (runs,) = plot_runs([values], 10, 8, -1.0, 1.0, len(values))
    spike = round(2717 * 9 / 4999)
    assert runs[spike] == (0, 7)
    assert all(r == (4, 4) for i, r in enumerate(runs) if i != spike)  # flat elsewhere: 0 is row 3.5 -> 4


def test_non_finite_values_are_skipped_and_their_neighbours_joined() -> None:
    (runs,) = plot_runs([[0.0, math.nan, math.inf, 3.0]], 4, 4, 0.0, 3.0, 4)
    # the line from (0, 0) to (3, 3) over columns -0.5..0.5, 0.5..1.5, ... (halves round up)
    assert runs == [(0, 1), (1, 2), (2, 3), (3, 3)]


# ---------------------------------------------------------------------- ticks


@given(
    st.floats(-1e9, 1e9, allow_nan=False, allow_subnormal=False),
    st.floats(-1e9, 1e9, allow_nan=False, allow_subnormal=False),
    st.integers(1, 40),
    st.integers(1, 5),
)
def test_ticks_are_round_increasing_within_range_and_on_distinct_rows(
    a: float, b: float, rows: int, most: int
) -> None:
    lo, hi = min(a, b), max(a, b)
    if not lo < hi:
        return
    ticks, step = choose_ticks(lo, hi, most, rows=rows)
    assert 1 <= len(ticks) <= max(most, 1)
    assert all(lo <= t <= hi for t in ticks)
    assert ticks == sorted(set(ticks))
    assert len({tick_row(t, lo, hi, rows) for t in ticks}) == len(ticks)
    if most >= 2 and rows >= 2:
        assert len(ticks) >= 2
    mantissa = float(f"{step:e}".split("e")[0])
    assert any(math.isclose(mantissa, m) for m in (1, 2, 2.5, 5))
    assert all(math.isclose(t / step, round(t / step), abs_tol=1e-6) for t in ticks)
    labels = format_ticks(ticks, step)
    assert len(set(labels)) == len(labels) and all(labels)


def test_ticks_and_labels_read_naturally() -> None:
    assert format_ticks(*choose_ticks(9950, 10100, 4, rows=7)) == ["9,950", "10,000", "10,050", "10,100"]
    assert format_ticks(*choose_ticks(0.0121, 0.013, 5, rows=20)) == ["0.0122", "0.0124", "0.0126", "0.0128", "0.0130"]
    assert format_ticks(*choose_ticks(0.0121, 0.013, 2, rows=3)) == ["0.0125", "0.0130"]
    assert format_ticks(*choose_ticks(-5.03, -4.1, 5, rows=20)) == ["-5.0", "-4.8", "-4.6", "-4.4", "-4.2"]
    assert format_ticks(*choose_ticks(1e6, 2.6e6, 4, rows=7)) == ["1.0M", "1.5M", "2.0M", "2.5M"]
    assert format_ticks(*choose_ticks(-1.0, 1.0, 3, rows=7)) == ["-1", "0", "1"]
    assert format_ticks(*choose_ticks(2e-9, 7e-9, 3, rows=7)) == ["2e-09", "4e-09", "6e-09"]
    assert choose_ticks(0, 499, 5, integer=True)[0] == [0, 100, 200, 300, 400]
    assert choose_ticks(0, 1, 8, integer=True)[0] == [0, 1]


# --------------------------------------------------------------------- layout


def test_chart_layout_title_axes_and_legend() -> None:
    values = [float(v) for v in range(100)]
    lines = chart_lines([values, values[::-1]], 40, 10, title="equity", labels=("a", "b"))
    assert len(lines) == 10 and all(len(text(line)) == 40 for line in lines)
    assert lines[0][:3] == [("equity", TITLE), ("  ● a", 0), ("  ● b", 1)]
    plot = [text(line) for line in lines[1:8]]
    assert [row[:3] for row in plot] == ["  │", "75┤", "  │", "50┤", "  │", "25┤", " 0┤"]
    assert text(lines[8]) == "  └┬──────┬──────┬───────┬──────┬───────"
    assert text(lines[9]).rstrip() == "   0     20     40      60     80"
    # the plot area is exactly the braille geometry, each cell in its series' colour
    runs = plot_runs([values, values[::-1]], 37 * 2, 28, 0.0, 99.0, 100)
    cells, owners = braille_rows(runs, 37, 7)
    assert [row[3:] for row in plot] == cells
    for line, owner in zip(lines[1:8], owners, strict=True):
        roles = [role for chunk, role in line for _ in chunk][3:]
        assert [role for role, o in zip(roles, owner, strict=True) if o >= 0] == [o for o in owner if o >= 0]
    assert {o for row in owners for o in row} == {-1, 0, 1}


def test_empty_one_point_and_non_finite_series_show_the_empty_text() -> None:
    for series in ([], [[]], [[1.0]], [[math.nan, 2.0, math.inf]], [[1.0], [2.0]]):
        lines = chart_lines(series, 20, 6, title="equity", empty="waiting")
        assert [text(line).rstrip() for line in lines] == ["equity", "waiting", "", "", "", ""]
        assert lines[1] == [("waiting" + " " * 13, MUTED)]
    assert text(chart_lines([[1.0]], 20, 6)[0]).rstrip() == "no data yet"


def test_a_flat_series_is_drawn_across_the_middle() -> None:
    for value in (0.0, 10_000.0, -3.5, 1e-300):
        lines = chart_lines([[value] * 50], 30, 8)  # 6 plot rows: dot rows 0..23, the middle 11.5 -> 12
        plot = [text(line) for line in lines[:6]]
        drawn = [r for r, row in enumerate(plot) if any("\u2800" < ch <= "\u28ff" for ch in row)]
        assert drawn == [2]
        assert all(ch in "⣀" for ch in plot[2].split("┤")[-1].split("│")[-1])  # the bottom dots of row 2


def test_huge_and_tiny_values_do_not_break_the_layout() -> None:
    for series in ([1e308, -1e308, 1e308], [1.79e308] * 3, [5e-324, 0.0, 5e-324], [1.0, 1.0 + 2**-52]):
        for width, height in ((30, 6), (3, 3), (12, 1), (150, 40)):
            lines = chart_lines([series], width, height, title="t")
            assert len(lines) == height and all(len(text(line)) == width for line in lines)


@given(st.lists(st.lists(finite, max_size=60), max_size=3), st.integers(1, 160), st.integers(1, 45))
def test_every_line_has_the_width_and_there_are_height_lines(
    series: list[list[float]], width: int, height: int
) -> None:
    lines = chart_lines(series, width, height, title="equity", labels=("a", "b"))
    assert len(lines) == height
    assert all(len(text(line)) == width for line in lines)


# --------------------------------------------------------------------- widget


class ChartApp(App[None]):
    def __init__(self, chart: LineChart) -> None:
        super().__init__()
        self.chart = chart

    def on_mount(self) -> None:
        self.register_theme(Theme(name="one", primary="#102030", dark=True, variables={"chart-1": "#FF0000"}))
        self.register_theme(Theme(name="two", primary="#102030", dark=True, variables={"chart-1": "#00FF00"}))
        self.theme = "one"

    def compose(self) -> ComposeResult:
        yield self.chart


def plot_text(chart: LineChart) -> str:
    return "\n".join(chart.render_line(y).text for y in range(chart.size.height))


async def test_set_series_takes_new_data_at_most_once_per_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    # The chart's clock stands still: a stalled machine cannot make two calls an interval apart.
    monkeypatch.setattr(chart_module, "time", types.SimpleNamespace(monotonic=lambda: 1_000.0))
    chart = LineChart("equity", colors=("chart-1",), min_interval_s=0.5)
    app = ChartApp(chart)
    async with app.run_test(size=(40, 10)) as pilot:
        await pilot.pause()
        assert "no data yet" in plot_text(chart)
        chart.set_series([1.0, 2.0, 3.0])  # the first data with two points: at once
        rising = plot_text(chart)
        assert "no data yet" not in rising
        chart.set_series([3.0, 2.0, 1.0])
        chart.set_series([3.0, 1.0, 2.0])  # the latest wins
        assert plot_text(chart) == rising
        deadline = time.monotonic() + 60  # the held data comes with the interval's timer
        while plot_text(chart) == rising:
            assert time.monotonic() < deadline, "the held series was never applied"
            await pilot.pause(0.05)
        assert plot_text(chart) == "\n".join(
            text(line) for line in chart_lines([[3.0, 1.0, 2.0]], 40, 10, title="equity")
        )


async def test_a_theme_change_rebuilds_the_strips() -> None:
    chart = LineChart(colors=("chart-1", "chart-9"), min_interval_s=0)
    app = ChartApp(chart)
    async with app.run_test(size=(40, 10)) as pilot:
        chart.set_series([1.0, 2.0, 3.0], [3.0, 2.0, 1.0])
        await pilot.pause()

        def series_colours() -> set[Color]:
            colours = set()
            for y in range(chart.size.height):
                for segment in chart.render_line(y):
                    if segment.style and segment.style.color and any("\u2800" < ch <= "\u28ff" for ch in segment.text):
                        colours.add(Color.from_rich_color(segment.style.color))
            return colours

        assert series_colours() == {Color.parse("#FF0000"), Color.parse("#102030")}  # chart-9: primary
        app.theme = "two"
        await pilot.pause()
        assert series_colours() == {Color.parse("#00FF00"), Color.parse("#102030")}
