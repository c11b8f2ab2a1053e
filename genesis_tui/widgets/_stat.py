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

    def compose(self) -> ComposeResult:
        yield Label(self._title, classes="stat--title")
        yield self._value
        yield self._detail

    def set(self, value: str, detail: str = "", state: str = "") -> None:
        """Show ``value`` and ``detail``; ``state`` is one of ok, warn, bad, off or ''."""
        self._value.update(value)
        self._detail.update(detail)
        for name in self.STATES:
            self.set_class(name == f"-{state}", name)
