"""Studies of one store side by side: the rows ``genesis compare`` prints, one column per study."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label

from engine.telemetry import StudyComparison
from genesis_tui.widgets import RowTable


class CompareScreen(ModalScreen[None]):
    """The comparison of two or more studies; the arrow and page keys scroll it, escape closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q", "dismiss", "Close")]

    def __init__(self, comparison: StudyComparison) -> None:
        super().__init__()
        self.comparison = comparison

    def compose(self) -> ComposeResult:
        c = self.comparison
        with Vertical(id="compare-body") as body:
            body.border_title = "Compare · " + " · ".join(c.studies)
            body.border_subtitle = "↑↓ scroll · escape to close"
            # the row labels are the key column: never cut, whatever the width
            yield RowTable("", *c.studies, keep=("",), id="compare-table")
            for note in c.notes:
                yield Label(f"note: {note}", classes="compare-note")

    def on_mount(self) -> None:
        table = self.query_one("#compare-table", RowTable)
        table.set_rows([(label, *cells) for label, cells in self.comparison.rows])
        table.focus()
