"""A table drawn line by line from cached strips: a fixed header, zebra rows, an optional row cursor.

Textual's ``DataTable`` renders every cell through Rich on each refill, which
made pane switches cost 8-17 ms per table while a study runs (the console
refills its tables a few times a second). Here a row is one ``Content`` turned
into one strip, cached by what it shows, so a refill that moves rows up or down
only pays for the rows that are new.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import ClassVar

from rich.segment import Segment
from textual import events
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

Cell = str | Content
#: Cells between columns.
GAP = 2
#: Cached row strips kept per table (rows shown plus what scrolled by recently).
CACHE_ROWS = 512


def column_widths(header: Sequence[str], rows: Sequence[Sequence[Cell]], floor: Sequence[int] = ()) -> list[int]:
    """The width of each column: its widest cell or header, never narrower than ``floor``."""
    widths = [max(len(name), floor[i] if i < len(floor) else 0) for i, name in enumerate(header)]
    for row in rows:
        for i, cell in enumerate(row[: len(widths)]):
            length = cell.cell_length if isinstance(cell, Content) else Content(cell).cell_length
            if length > widths[i]:
                widths[i] = length
    return widths


def row_width(widths: Sequence[int]) -> int:
    """Cells in a laid-out row: the columns, the gaps between them and one space at each end."""
    return sum(widths) + GAP * max(0, len(widths) - 1) + 2


def layout_row(cells: Sequence[Cell], widths: Sequence[int], right: Collection[int]) -> Content:
    """One line: each cell padded to its column (right-aligned where asked), columns ``GAP`` apart."""
    padded: list[Content] = []
    for i, width in enumerate(widths):
        cell = cells[i] if i < len(cells) else ""
        content = (cell if isinstance(cell, Content) else Content(cell)).truncate(width, ellipsis=True)
        pad = width - content.cell_length
        padded.append(content.pad_left(pad) if i in right else content.pad_right(pad))
    return Content(" ") + Content(" " * GAP).join(padded) + Content(" ")


class RowTable(ScrollView, can_focus=True):
    """Rows of figures under a header that stays put; ``set_rows`` replaces them.

    With ``cursor=True`` a row cursor moves with the arrow keys and the mouse;
    enter or a click posts :class:`RowSelected`. A click on the header posts
    :class:`HeaderSelected`.
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "row-table--header",
        "row-table--odd",
        "row-table--cursor",
    }

    DEFAULT_CSS = """
    RowTable {
        height: auto;
        max-height: 14;
        background: $surface;
        scrollbar-size: 1 1;
    }
    RowTable > .row-table--header {
        text-style: bold;
        color: $text-accent;
        background: $panel;
    }
    RowTable > .row-table--odd {
        background: $surface-lighten-1;
    }
    RowTable > .row-table--cursor {
        background: $block-cursor-blurred-background;
        color: $block-cursor-blurred-foreground;
    }
    RowTable:focus > .row-table--cursor {
        background: $block-cursor-background;
        color: $block-cursor-foreground;
        text-style: bold;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "cursor(-10)", "Page up", show=False),
        Binding("pagedown", "cursor(10)", "Page down", show=False),
        Binding("home", "cursor(-1000000)", "First", show=False),
        Binding("end", "cursor(1000000)", "Last", show=False),
        Binding("enter", "select", "Open", show=False),
    ]

    class RowSelected(Message):
        """Enter or a click on a row."""

        def __init__(self, table: RowTable, index: int, key: str | None) -> None:
            super().__init__()
            self.table = table
            self.index = index
            self.key = key

        @property
        def control(self) -> RowTable:
            return self.table

    class HeaderSelected(Message):
        """A click on a column's header."""

        def __init__(self, table: RowTable, column: str) -> None:
            super().__init__()
            self.table = table
            self.column = column

        @property
        def control(self) -> RowTable:
            return self.table

    cursor_row: reactive[int] = reactive(0, always_update=False, repaint=False)

    def __init__(
        self,
        *columns: str,
        right: Collection[str] = (),
        cursor: bool = False,
        zebra: bool = True,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        """``columns``: the header; ``right``: the columns aligned right (figures);
        ``cursor``: show and move a row cursor; ``zebra``: shade every other row."""
        super().__init__(id=id, classes=classes)
        self.columns = tuple(columns)
        self._right = frozenset(i for i, name in enumerate(columns) if name in right)
        self.show_cursor = cursor
        self.zebra = zebra
        self.rows: tuple[tuple[Cell, ...], ...] = ()
        self.keys: tuple[str, ...] | None = None
        self._widths = column_widths(self.columns, ())
        self._strips: dict[tuple[object, ...], Strip] = {}

    # ------------------------------------------------------------------ data
    @property
    def row_count(self) -> int:
        return len(self.rows)

    @property
    def cursor_key(self) -> str | None:
        """The key of the row under the cursor (None with no rows or no keys)."""
        if self.keys is None or not self.rows:
            return None
        return self.keys[min(self.cursor_row, len(self.rows) - 1)]

    def set_rows(self, rows: Sequence[Sequence[Cell]], keys: Sequence[str] | None = None) -> None:
        """Show ``rows`` (with ``keys`` to tell them apart); the cursor keeps its place.

        Columns only ever widen, so a live table does not jitter as figures change.
        """
        new_rows = tuple(tuple(row) for row in rows)
        new_keys = None if keys is None else tuple(keys)
        if new_rows == self.rows and new_keys == self.keys:
            return
        resized = len(new_rows) != len(self.rows)
        self.rows, self.keys = new_rows, new_keys
        widths = column_widths(self.columns, new_rows, self._widths)
        if widths != self._widths:
            self._widths = widths
            self._strips.clear()
            resized = True
        if len(self._strips) > CACHE_ROWS:
            self._strips.clear()
        if self.rows and self.cursor_row >= len(self.rows):
            self.cursor_row = len(self.rows) - 1
        self.virtual_size = Size(row_width(widths), len(self.rows) + 1)
        self.refresh(layout=resized)

    # ------------------------------------------------------------- rendering
    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()  # theme or focus changed the component styles

    def _on_focus(self, event: events.Focus) -> None:
        self._strips.clear()
        self.refresh()

    def _on_blur(self, event: events.Blur) -> None:
        self._strips.clear()
        self.refresh()

    def _row_strip(self, index: int) -> Strip:
        cursor = self.show_cursor and index == self.cursor_row
        odd = self.zebra and index % 2 == 1
        row = self.columns if index < 0 else self.rows[index]
        width = max(self.virtual_size.width, self.size.width)
        key = (row, index < 0, odd, cursor, width)
        strip = self._strips.get(key)
        if strip is None:
            if index < 0:
                component = ("row-table--header",)
            else:
                component = ("row-table--odd",) * odd + ("row-table--cursor",) * cursor
            base = self.get_visual_style(*component)
            line = layout_row(row, self._widths, self._right)
            segments = [
                Segment(text, style.rich_style if style else None)
                for text, style in line.render(base, end="", parse_style=self.app.stylesheet.parse_style)
            ]
            strip = Strip(segments).extend_cell_length(width, base.rich_style)
            self._strips[key] = strip
        return strip

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        scroll_x, scroll_y = self.scroll_offset
        index = -1 if y == 0 else scroll_y + y - 1
        if index >= len(self.rows):
            return Strip.blank(width, self.rich_style)
        strip = self._row_strip(index)
        return strip.crop_extend(scroll_x, scroll_x + width, self.get_visual_style().rich_style)

    # ---------------------------------------------------------------- cursor
    def watch_cursor_row(self, old: int, new: int) -> None:
        if self.show_cursor:
            self._scroll_to_row(new)
            self.refresh()

    def _scroll_to_row(self, row: int) -> None:
        visible = max(1, self.size.height - 1 - (1 if self.show_horizontal_scrollbar else 0))
        top = self.scroll_offset.y
        if row < top:
            self.scroll_to(y=row, animate=False)
        elif row >= top + visible:
            self.scroll_to(y=row - visible + 1, animate=False)

    def move_cursor(self, row: int) -> None:
        """Put the cursor on ``row`` (clamped to the rows there are)."""
        if self.rows:
            self.cursor_row = max(0, min(len(self.rows) - 1, row))

    def action_cursor(self, step: int) -> None:
        if self.show_cursor:
            self.move_cursor(self.cursor_row + step)
        else:
            self.scroll_to(y=self.scroll_offset.y + step, animate=False)

    def action_select(self) -> None:
        if self.show_cursor and self.rows:
            self.post_message(self.RowSelected(self, self.cursor_row, self.cursor_key))

    def _on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        x, y = offset.x + self.scroll_offset.x, offset.y
        if y == 0:
            edge = 1
            for name, width in zip(self.columns, self._widths, strict=True):
                if x < edge + width + GAP // 2:
                    self.post_message(self.HeaderSelected(self, name))
                    return
                edge += width + GAP
            return
        row = self.scroll_offset.y + y - 1
        if self.show_cursor and 0 <= row < len(self.rows):
            self.move_cursor(row)
            self.post_message(self.RowSelected(self, row, self.cursor_key))
