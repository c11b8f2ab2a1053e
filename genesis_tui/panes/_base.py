"""What every pane shares: pick its part of a snapshot, skip unchanged parts,
say honestly when the part is not running."""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.scrollbar import ScrollBar, ScrollBarRender
from textual.widget import Widget
from textual.widgets import Static

from engine.telemetry import Telemetry

_UNSET = object()


class WholeCellScrollBarRender(ScrollBarRender):
    """A scrollbar thumb of whole cells: the stock one ends in eighth-block glyphs
    (``▂``, ``▅``) that, beside a box's right border, read as stray marks."""

    VERTICAL_BARS: ClassVar[list[str]] = [" "] * len(ScrollBarRender.VERTICAL_BARS)


class Pane(VerticalScroll):
    """Base of the panes: ``compose_body`` builds the widgets, ``render_part`` fills them."""

    TITLE: ClassVar[str] = ""
    PART: ClassVar[str] = ""  # attribute of Telemetry this pane renders; "" for the whole snapshot
    NOT_RUNNING: ClassVar[str] = "not running"

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._last: Any = _UNSET
        self.telemetry: Telemetry | None = None

    @property
    def vertical_scrollbar(self) -> ScrollBar:
        bar = super().vertical_scrollbar
        # per instance, as textual's ScrollBar documents; the class attribute is textual's for every app
        bar.renderer = WholeCellScrollBarRender  # type: ignore[misc]
        return bar

    def compose(self) -> ComposeResult:
        yield Static("", classes="not-running")
        with Vertical(classes="pane-body"):
            yield from self.compose_body()

    def compose_body(self) -> ComposeResult:
        yield from ()

    def select(self, telemetry: Telemetry) -> Any:
        """The part of the snapshot this pane shows (compared with the last one to skip work)."""
        return getattr(telemetry, self.PART)

    def show(self, telemetry: Telemetry) -> None:
        """Render ``telemetry`` if this pane's part of it changed."""
        self.telemetry = telemetry
        part = self.select(telemetry)
        if part is self._last or (self._last is not _UNSET and part == self._last):
            return
        self._last = part
        running = part is not None
        self.set_class(not running, "-not-running")
        if not running:
            reason = next((n for n in telemetry.notes if n.startswith(f"{self.PART}:")), "")
            detail = reason.partition(":")[2].strip()
            self.query_one(".not-running", Static).update(
                f"{self.TITLE}: {self.NOT_RUNNING}" + (f"\n{detail}" if detail else "")
            )
            return
        self.render_part(part)

    def render_part(self, part: Any) -> None:
        raise NotImplementedError


def set_text(widget: Static, content: object, *, layout: bool = False) -> None:
    """Update ``widget`` only if ``content`` changed; no re-layout unless asked.

    A layout pass reflows the whole screen, so one-line labels whose box is
    fixed by CSS (``width: 1fr; height: 1``) skip it.
    """
    if getattr(widget, "_genesis_text", None) == content:
        return
    widget._genesis_text = content  # type: ignore[attr-defined]
    widget.update(content, layout=layout)  # type: ignore[arg-type]


def set_title(widget: Widget, title: str) -> None:
    """Set a border title only if it changed (setting it repaints the whole box)."""
    if widget.border_title != title:
        widget.border_title = title


def section(title: str, *, id: str | None = None, classes: str = "") -> Vertical:
    """A titled, bordered box for a group of widgets."""
    box = Vertical(id=id, classes=f"section {classes}".strip())
    box.border_title = title
    return box
