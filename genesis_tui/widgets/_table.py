"""A table drawn line by line from cached strips: a fixed header, zebra rows, an optional row cursor.

Textual's ``DataTable`` renders every cell through Rich on each refill, which
made pane switches cost 8-17 ms per table while a study runs (the console
refills its tables a few times a second). Here a row is one ``Content`` turned
into one strip, cached by what it shows, so a refill that moves rows up or down
only pays for the rows that are new.

It scrolls itself (keys, wheel) and says which rows it shows in its header
instead of using scrollbars: a scrollbar that comes and goes as rows arrive
costs Textual one more layout and frame each time.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import ClassVar

from rich.cells import cell_len
from rich.segment import Segment
from textual import events
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.geometry import Size
from textual.message import Message
from textual.strip import Strip
from textual.style import Style as VisualStyle
from textual.widget import Widget

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
            length = cell.cell_length if isinstance(cell, Content) else cell_len(cell)
            if length > widths[i]:
                widths[i] = length
    return widths


def row_width(widths: Sequence[int]) -> int:
    """Cells in a laid-out row: the columns shown (width > 0), the gaps between them and one space at each end."""
    shown = [w for w in widths if w > 0]
    return sum(shown) + GAP * max(0, len(shown) - 1) + 2


def layout_row(cells: Sequence[Cell], widths: Sequence[int], right: Collection[int]) -> Content:
    """One line: each cell padded to its column (right-aligned where asked), columns ``GAP`` apart;
    a column of width 0 is left out."""
    padded: list[Content] = []
    for i, width in enumerate(widths):
        if width == 0:
            continue
        cell = cells[i] if i < len(cells) else ""
        content = (cell if isinstance(cell, Content) else Content(cell)).truncate(width, ellipsis=True)
        pad = width - content.cell_length
        padded.append(content.pad_left(pad) if i in right else content.pad_right(pad))
    return Content(" ") + Content(" " * GAP).join(padded) + Content(" ")


class RowTable(Widget, can_focus=True):
    """Rows of figures under a header that stays put; ``set_rows`` replaces them.

    With ``cursor=True`` a row cursor moves with the arrow keys and the mouse;
    enter or a click posts :class:`RowSelected`. A click on the header posts
    :class:`HeaderSelected`. Rows that do not fit scroll (arrow keys, page keys,
    the wheel). When a row is wider than the table, the ``optional`` columns are
    left out (last named first), then the widest columns not in ``keep`` are cut
    to one common width.
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "row-table--header",
        "row-table--odd",
        "row-table--cursor",
        "row-table--more",
    }

    DEFAULT_CSS = """
    RowTable {
        height: auto;
        max-height: 14;
        background: $surface;
    }
    RowTable > .row-table--header {
        text-style: bold;
        color: $text-accent;
        background: $panel;
    }
    RowTable > .row-table--more {
        text-style: not bold;
        color: $text-muted;
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
        Binding("up", "move(-1)", "Up", show=False),
        Binding("down", "move(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "move(-1000000000)", "First", show=False),
        Binding("end", "move(1000000000)", "Last", show=False),
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

    def __init__(
        self,
        *columns: str,
        right: Collection[str] = (),
        cursor: bool = False,
        zebra: bool = True,
        keep: Collection[str] = (),
        optional: Sequence[str] = (),
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        """``columns``: the header; ``right``: the columns aligned right (figures);
        ``cursor``: show and move a row cursor; ``zebra``: shade every other row;
        ``keep``: columns never cut (a key column whose names share prefixes);
        ``optional``: columns left out, last first, before any column is cut."""
        super().__init__(id=id, classes=classes)
        self.columns = tuple(columns)
        self._right = frozenset(i for i, name in enumerate(columns) if name in right)
        self._keep = frozenset(i for i, name in enumerate(columns) if name in keep)
        self._optional = tuple(columns.index(name) for name in reversed(optional))
        self.show_cursor = cursor
        self.zebra = zebra
        self.rows: tuple[tuple[Cell, ...], ...] = ()
        self.keys: tuple[str, ...] | None = None
        self.cursor_row = 0
        self.top = 0  # the first row shown
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
        return self.keys[self.cursor_row]

    def set_optional(self, optional: Sequence[str]) -> None:
        """Change which columns are left out first when the table is narrow (last first)."""
        indices = tuple(self.columns.index(name) for name in reversed(optional))
        if indices != self._optional:
            self._optional = indices
            self._strips.clear()
            self.refresh()

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
        if len(self._strips) > CACHE_ROWS:
            self._strips.clear()
        self.cursor_row = max(0, min(self.cursor_row, len(self.rows) - 1))
        self.top = max(0, min(self.top, len(self.rows) - self.visible_rows))
        self.refresh(layout=resized)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self.rows) + 1

    def get_content_width(self, container: Size, viewport: Size) -> int:
        return row_width(self._widths)

    @property
    def visible_rows(self) -> int:
        """Rows that fit under the header."""
        return max(1, self.size.height - 1)

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

    def _on_resize(self, event: events.Resize) -> None:
        self.top = max(0, min(self.top, len(self.rows) - self.visible_rows))

    def _fitted_widths(self, width: int) -> list[int]:
        """The column widths fitted to ``width``: optional columns left out (width 0) first,
        then the widest columns not kept (parameters, a message) cut to a common width."""
        widths = list(self._widths)
        for index in self._optional:
            if row_width(widths) <= width:
                break
            widths[index] = 0
        excess = row_width(widths) - width
        cuttable = [i for i, w in enumerate(widths) if i not in self._keep and w > 0]
        if excess > 0 and cuttable:
            # the widest columns are cut to one common width, so no column gives way alone
            # while another as wide stays whole (two studies side by side, say)
            cap = max(widths[i] for i in cuttable)
            while cap > 1 and sum(max(0, widths[i] - cap) for i in cuttable) < excess:
                cap -= 1
            for i in cuttable:
                widths[i] = min(widths[i], cap)
        return widths

    def _overflows(self) -> bool:
        return len(self.rows) > self.visible_rows

    def _columns_width(self, width: int) -> int:
        """The cells the columns may use: all of ``width``, less room for the row range
        ("12-24 of 40") at the header's right end when the rows overflow and would reach it."""
        if not self._overflows():
            return width
        n = len(self.rows)
        room = len(f" {n}-{n} of {n} ")
        return width if row_width(self._widths) + room <= width else max(1, width - room)

    def _header_strip(self, width: int) -> Strip:
        more = ""
        if self._overflows():
            last = min(len(self.rows), self.top + self.visible_rows)
            more = f" {self.top + 1}-{last} of {len(self.rows)} "
        key = ("header", more, width)
        strip = self._strips.get(key)
        if strip is None:
            base = self.get_visual_style("row-table--header")
            line = layout_row(self.columns, self._fitted_widths(self._columns_width(width)), self._right)
            strip = self._to_strip(line, base, width)
            if more:  # the row range over the header's right end
                note = self._to_strip(Content(more), self.get_visual_style("row-table--header", "row-table--more"), len(more))
                strip = Strip.join([strip.crop(0, max(0, width - len(more))), note]).crop(0, width)
            self._strips[key] = strip
        return strip

    def _row_strip(self, index: int, width: int) -> Strip:
        cursor = self.show_cursor and index == self.cursor_row
        odd = self.zebra and index % 2 == 1
        row = self.rows[index]
        columns_width = self._columns_width(width)
        key = (row, odd, cursor, width, columns_width)
        strip = self._strips.get(key)
        if strip is None:
            component = ("row-table--odd",) * odd + ("row-table--cursor",) * cursor
            line = layout_row(row, self._fitted_widths(columns_width), self._right)
            strip = self._to_strip(line, self.get_visual_style(*component), width)
            self._strips[key] = strip
        return strip

    def _to_strip(self, line: Content, base: VisualStyle, width: int) -> Strip:
        segments = [
            Segment(text, style.rich_style if style else None)
            for text, style in line.render(base, end="", parse_style=self.app.stylesheet.parse_style)
        ]
        return Strip(segments).crop_extend(0, width, base.rich_style)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if y == 0:
            return self._header_strip(width)
        index = self.top + y - 1
        if index >= len(self.rows):
            return Strip.blank(width, self.rich_style)
        return self._row_strip(index, width)

    # ------------------------------------------------------ cursor, scrolling
    def scroll_rows(self, step: int) -> None:
        """Move the rows shown by ``step`` (the cursor, if any, stays where it is)."""
        top = max(0, min(self.top + step, len(self.rows) - self.visible_rows))
        if top != self.top:
            self.top = top
            self.refresh()

    def move_cursor(self, row: int) -> None:
        """Put the cursor on ``row`` (clamped to the rows there are), scrolling it into view."""
        if not self.rows:
            return
        row = max(0, min(len(self.rows) - 1, row))
        if row < self.top:
            self.top = row
        elif row >= self.top + self.visible_rows:
            self.top = row - self.visible_rows + 1
        if row != self.cursor_row:
            self.cursor_row = row
        self.refresh()

    def action_move(self, step: int) -> None:
        if self.show_cursor:
            self.move_cursor(self.cursor_row + step)
        else:
            self.scroll_rows(step)

    def action_page(self, direction: int) -> None:
        self.action_move(direction * self.visible_rows)

    def action_select(self) -> None:
        if self.show_cursor and self.rows:
            self.post_message(self.RowSelected(self, self.cursor_row, self.cursor_key))

    def _on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        if len(self.rows) > self.visible_rows:
            event.stop()
            self.scroll_rows(3)

    def _on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        if len(self.rows) > self.visible_rows:
            event.stop()
            self.scroll_rows(-3)

    async def _on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        if offset.y == 0:
            edge = 1
            for name, width in zip(self.columns, self._fitted_widths(self._columns_width(self.size.width)), strict=True):
                if width == 0:
                    continue
                if offset.x < edge + width + GAP // 2:
                    self.post_message(self.HeaderSelected(self, name))
                    return
                edge += width + GAP
            return
        row = self.top + offset.y - 1
        if self.show_cursor and 0 <= row < len(self.rows):
            self.move_cursor(row)
            self.post_message(self.RowSelected(self, row, self.cursor_key))
