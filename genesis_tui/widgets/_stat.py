"""A labelled figure: a small card with a title, a big value and a detail line."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widget import Widget
from textual.widgets import Label


class Stat(Widget):
    """A key figure. ``set`` updates it; the ``state`` class colours it (ok, warn, bad, off)."""

    DEFAULT_CSS = """
    Stat {
        height: auto;
        width: 1fr;
        padding: 0 1;
    }
    Stat > Label { width: 100%; height: 1; text-wrap: nowrap; text-overflow: ellipsis; }
    Stat > .stat--title { color: $text-muted; }
    Stat > .stat--value { text-style: bold; }
    Stat > .stat--detail { color: $text-muted; }
    Stat.-ok > .stat--value { color: $success; }
    Stat.-warn > .stat--value { color: $warning; }
    Stat.-bad > .stat--value { color: $error; }
    Stat.-off > .stat--value { color: $text-disabled; }
    """

    STATES = ("-ok", "-warn", "-bad", "-off")

    def __init__(self, title: str, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._title = title
        self._value = Label("—", classes="stat--value")
        self._detail = Label("", classes="stat--detail")
        self._shown: tuple[str, str, str] | None = None

    def compose(self) -> ComposeResult:
        yield Label(self._title, classes="stat--title")
        yield self._value
        yield self._detail

    def set(self, value: str, detail: str = "", state: str = "") -> None:
        """Show ``value`` and ``detail``; ``state`` is one of ok, warn, bad, off or ''."""
        shown = (value, detail, state)
        if shown == self._shown:
            return
        self._shown = shown
        # The labels' boxes are fixed (one line, full width): no re-layout needed.
        self._value.update(value, layout=False)
        self._detail.update(detail, layout=False)
        for name in self.STATES:
            self.set_class(name == f"-{state}", name)
