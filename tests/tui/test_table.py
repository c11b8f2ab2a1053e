"""RowTable: its row layout against a slow reference, and the widget's keys, clicks and scrolling."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from textual import events
from textual.app import App, ComposeResult
from textual.color import Color
from textual.content import Content

from genesis_tui.widgets import RowTable
from genesis_tui.widgets._table import GAP, column_widths, layout_row, row_width

CELL = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=12)


def reference_line(cells: list[str], widths: list[int], right: set[int]) -> str:
    """One space, the cells padded (or cut with an ellipsis) to their widths, GAP apart, one space."""
    out = []
    for i, width in enumerate(widths):
        text = cells[i] if i < len(cells) else ""
        if len(text) > width:
            text = text[: width - 1] + "…"
        out.append(text.rjust(width) if i in right else text.ljust(width))
    return " " + (" " * GAP).join(out) + " "


@given(
    st.lists(st.lists(CELL, min_size=1, max_size=5), min_size=1, max_size=8),
    st.lists(st.integers(1, 10), min_size=1, max_size=5),
    st.sets(st.integers(0, 4)),
)
def test_a_row_is_laid_out_as_the_reference_lays_it_out(
    rows: list[list[str]], widths: list[int], right: set[int]
) -> None:
    for cells in rows:
        line = layout_row(cells, widths, right)
        assert line.plain == reference_line(cells, widths, right)
        assert line.cell_length == row_width(widths)


@given(st.lists(st.lists(CELL, min_size=3, max_size=3), max_size=8), st.lists(st.integers(0, 20), max_size=3))
def test_column_widths_fit_every_cell_and_never_shrink_below_the_floor(rows: list[list[str]], floor: list[int]) -> None:
    header = ["a", "bb", "ccc"]
    widths = column_widths(header, rows, floor)
    for i in range(3):
        expected = max([len(header[i])] + [len(r[i]) for r in rows] + ([floor[i]] if i < len(floor) else []))
        assert widths[i] == expected


class TableApp(App[None]):
    def __init__(self, table: RowTable) -> None:
        super().__init__()
        self.table = table
        self.messages: list[object] = []

    def compose(self) -> ComposeResult:
        yield self.table

    def on_row_table_row_selected(self, event: RowTable.RowSelected) -> None:
        self.messages.append(("row", event.index, event.key))

    def on_row_table_header_selected(self, event: RowTable.HeaderSelected) -> None:
        self.messages.append(("header", event.column))


def lines(table: RowTable) -> list[str]:
    return [table.render_line(y).text.rstrip() for y in range(table.size.height)]


ROWS = [(f"row{i}", f"{i * 1.5:.1f}") for i in range(30)]
KEYS = [f"k{i}" for i in range(30)]


async def test_the_header_stays_put_while_rows_scroll_under_it() -> None:
    table = RowTable("name", "value", right=("value",))
    table.styles.max_height = 6
    app = TableApp(table)
    async with app.run_test(size=(40, 10)) as pilot:
        table.set_rows(ROWS)
        await pilot.pause()
        header = lines(table)[0]
        assert header.startswith(" name   value") and header.endswith(" 1-5 of 30")  # which rows show
        assert lines(table)[1:3] == [" row0     0.0", " row1     1.5"]
        table.focus()
        await pilot.press("down", "down", "down")  # no cursor: the keys scroll
        await pilot.pause()
        assert lines(table)[0].endswith(" 4-8 of 30") and lines(table)[1] == " row3     4.5"
        table.post_message(events.MouseScrollDown(table, 2, 2, 0, 1, 0, False, False, False))  # the wheel
        await pilot.pause()
        assert lines(table)[1] == " row6     9.0"
        await pilot.press("end")
        await pilot.pause()
        assert lines(table)[0].endswith(" 26-30 of 30") and lines(table)[-1] == " row29   43.5"


async def test_the_widest_column_is_cut_to_the_width() -> None:
    table = RowTable("name", "message", "time")
    app = TableApp(table)
    async with app.run_test(size=(24, 6)) as pilot:
        table.set_rows([("a", "a message far too long for twenty cells", "12 ms")])
        await pilot.pause()
        assert lines(table)[1] == " a     a messag…  12 ms"  # the message, not the time, gives way
        assert len(table.render_line(1).text) == 24


async def test_the_row_range_never_hides_a_column_name() -> None:
    table = RowTable("stage", "count", "p99", right=("count", "p99"))
    table.styles.max_height = 4
    app = TableApp(table)
    async with app.run_test(size=(40, 8)) as pilot:
        table.set_rows([(f"a-rather-long-stage-name-{i}", f"{i}", "1 ms") for i in range(9)])
        await pilot.pause()
        header, first = lines(table)[:2]
        assert header.endswith(" 1-3 of 9") and "p99" in header  # the widest column gave way
        assert first.endswith("1 ms") and len(table.render_line(1).text) == 40
        assert header.index("p99") + 3 == first.index("1 ms") + 4  # still aligned with the rows


async def test_the_cursor_moves_clamps_and_enter_names_the_row() -> None:
    table = RowTable("name", "value", cursor=True)
    table.styles.max_height = 6
    app = TableApp(table)
    async with app.run_test(size=(40, 10)) as pilot:
        table.set_rows(ROWS, keys=KEYS)
        await pilot.pause()
        table.focus()
        await pilot.press("down", "down", "enter")
        await pilot.pause()
        assert app.messages == [("row", 2, "k2")]
        await pilot.press("end")
        await pilot.pause()
        assert table.cursor_row == 29 and table.cursor_key == "k29"
        assert lines(table)[-1].startswith(" row29")  # scrolled so the cursor row shows
        await pilot.press("home")
        await pilot.pause()
        assert table.cursor_row == 0 and lines(table)[1].strip().startswith("row0")
        table.move_cursor(20)
        table.set_rows(ROWS[:5], keys=KEYS[:5])  # fewer rows: the cursor stays on the last one
        assert table.cursor_row == 4 and table.cursor_key == "k4"


async def test_clicks_select_a_row_or_a_column() -> None:
    table = RowTable("name", "value", "note", cursor=True)
    app = TableApp(table)
    async with app.run_test(size=(40, 10)) as pilot:
        table.set_rows(ROWS[:4], keys=KEYS[:4])
        await pilot.pause()
        # columns: 1 space, "name" (x 1-4), 2 spaces, "value" (x 7-11), 2 spaces, "note"
        await pilot.click(table, offset=(9, 0))
        await pilot.click(table, offset=(2, 3))
        await pilot.pause()
        assert app.messages == [("header", "value"), ("row", 2, "k2")]
        assert table.cursor_row == 2


async def test_columns_only_widen_and_styled_cells_take_theme_colours() -> None:
    table = RowTable("name", "state")
    app = TableApp(table)
    async with app.run_test(size=(40, 10)) as pilot:
        table.set_rows([("a-long-name", Content.styled("WARN", "$warning"))])
        await pilot.pause()
        table.set_rows([("b", "ok")])
        await pilot.pause()
        assert lines(table)[1] == " b            ok"  # "name" stays 11 wide
        table.set_rows([("c", Content.styled("WARN", "$warning"))])
        await pilot.pause()
        segments = [s for s in table.render_line(1) if s.text == "WARN"]
        warning = Color.parse(app.theme_variables["warning"]).rich_color
        assert segments and segments[0].style is not None and segments[0].style.color == warning


async def test_unchanged_rows_are_not_laid_out_again(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from genesis_tui.widgets import _table

    laid_out: list[object] = []

    def counting(cells, widths, right):  # type: ignore[no-untyped-def]
        laid_out.append(cells[0])
        return layout_row(cells, widths, right)

    monkeypatch.setattr(_table, "layout_row", counting)
    table = RowTable("name", "value", zebra=False)
    app = TableApp(table)
    async with app.run_test(size=(40, 10)) as pilot:
        table.set_rows(ROWS[:3])
        await pilot.pause()
        assert sorted(laid_out) == ["name", "row0", "row1", "row2"]
        laid_out.clear()
        table.set_rows([tuple(r) for r in ROWS[:3]])  # equal rows, new tuples
        table.set_rows([("new", "1.0"), *ROWS[:3]])  # one new row on top, the rest move down
        await pilot.pause()
        assert laid_out == ["new"]
        assert lines(table)[1:3] == [" new   1.0", " row0  0.0"]


async def test_a_kept_key_column_is_never_cut_and_optional_columns_go_first() -> None:
    # the Profiler's stages: names that share a prefix are told apart only by their ends
    table = RowTable(
        "stage", "count", "mean", "p50", "max",
        right=("count", "mean", "p50", "max"), keep=("stage",), optional=("mean", "p50"),
    )
    app = TableApp(table)
    async with app.run_test(size=(44, 6)) as pilot:
        table.set_rows([("optimize.artifact_encode", "12", "1.00 ms", "0.90 ms", "3.00 ms"),
                        ("optimize.store_write", "3", "2.00 ms", "1.90 ms", "4.00 ms")])
        await pilot.pause()
        shown = lines(table)
        # p50 (named last) is left out first, then mean; the stage names stay whole
        assert shown[0].split() == ["stage", "count", "max"]
        assert shown[1].split() == ["optimize.artifact_encode", "12", "3.00", "ms"]
        assert shown[2].split()[0] == "optimize.store_write"
        table.styles.width = 56
        await pilot.pause()
        assert lines(table)[0].split() == ["stage", "count", "mean", "max"]  # room for one optional column


async def test_without_optional_columns_the_widest_column_not_kept_is_cut() -> None:
    table = RowTable("stage", "note", keep=("stage",))
    app = TableApp(table)
    async with app.run_test(size=(30, 4)) as pilot:
        table.set_rows([("optimize.artifact_encode", "a long note")])
        await pilot.pause()
        assert lines(table)[1] == " optimize.artifact_encode  a…"


async def test_columns_equally_wide_give_way_together() -> None:
    table = RowTable("", "alpha", "beta", keep=("",))
    app = TableApp(table)
    async with app.run_test(size=(40, 4)) as pilot:
        table.set_rows([("best params", "fast=12, slow=140, stop=0.02", "fast=14, slow=150, stop=0.05")])
        await pilot.pause()
        line = lines(table)[1]
        assert line.startswith(" best params  ")  # the kept label column is whole
        cells = line[len(" best params  "):].split("  ")
        assert len(cells) == 2 and abs(len(cells[0].rstrip()) - len(cells[1].rstrip())) <= 1  # both cut alike
        assert cells[0].startswith("fast=1") and cells[1].startswith("fast=1")
