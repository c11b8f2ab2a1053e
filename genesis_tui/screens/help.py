"""The ``?`` help screen: every key binding and the palette's commands."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

PALETTE_HELP = (
    ("Run study from file…", "start a study TOML (checkpoints the running one)"),
    ("Pause / Resume / Stop study", "pause: workers finish trials in hand"),
    ("Take profile capture", "cProfile + tracemalloc for a few seconds"),
    ("Toggle paper loop", "start or pause the paper-trading loop"),
    ("Kill switch", "halt paper trading and flatten positions"),
    ("Theme: NAME", "switch theme (remembered for the next start)"),
    ("Open trial #N", "params, metrics, equity and trades of one trial"),
    ("Compare studies…", "studies of the store side by side (genesis compare)"),
    ("Go to PANE", "switch to a pane"),
)


class HelpScreen(ModalScreen[None]):
    """Key bindings and palette commands; any of escape, q or ? closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss", "Close"),
    ]

    def __init__(self, bindings: list[tuple[str, str]]) -> None:
        super().__init__()
        self._key_rows = bindings  # not `_bindings`: that name is Textual's own BindingsMap

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body") as body:
            body.border_title = "Genesis: keys and commands"
            body.border_subtitle = "escape to close"
            yield Static(self._text(), id="help-text")

    def _text(self) -> Content:
        parts: list[str | tuple[str, str]] = [("Keys\n", "bold $accent")]
        for key, description in self._key_rows:
            parts += [(f"  {key:<12}", "bold $primary"), f"{description}\n"]
        parts.append(("\nCommand palette (ctrl+p)\n", "bold $accent"))
        for name, description in PALETTE_HELP:
            parts += [(f"  {name:<30}", "bold $primary"), f"{description}\n"]
        parts.append(
            ("\nThe console polls the engine's telemetry a few times a second; studies run in worker "
             "processes, so keys stay responsive while every core is busy. q checkpoints the study "
             "before quitting.", "$text-muted")
        )
        return Content.assemble(*parts)
