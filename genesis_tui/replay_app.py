"""The console on a recording: :class:`ReplayApp` adds playback keys to :class:`GenesisApp`.

The console already renders whatever telemetry source it is given; a
:class:`~engine.headless.replay.ReplaySource` stands in for the engine, so
every pane shows the recorded frame at the playback position. This class only
adds keys: space play/pause, . and , (or → and ← when no tab has focus) step a frame, [ ] slower/faster, g jump to a
time, home/end.
"""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType

from engine.errors import GenesisError
from engine.headless.replay import ReplaySource, format_clock, parse_position
from genesis_tui.app import GenesisApp
from genesis_tui.screens import PromptScreen


class ReplayApp(GenesisApp):
    """The operator console playing a headless run's recording."""

    TITLE = "Genesis replay"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "toggle_play", "Play/pause"),
        Binding("full_stop,right", "step(1)", "Step", key_display="."),
        Binding("comma,left", "step(-1)", "Back", key_display=","),
        Binding("right_square_bracket", "faster", "Faster", key_display="]"),
        Binding("left_square_bracket", "slower", "Slower", key_display="["),
        Binding("g", "jump", "Jump to"),
        Binding("home", "seek_start", "Start", show=False),
        Binding("end", "seek_end", "End", show=False),
    ]

    def __init__(self, source: ReplaySource, **kwargs: object) -> None:
        super().__init__(source, **kwargs)  # type: ignore[arg-type]
        self.replay = source

    def action_toggle_play(self) -> None:
        playing = self.replay.toggle()
        self.notify(f"{'playing' if playing else 'paused'} at {self.replay.speed:g}x", timeout=2)
        self.refresh_now()

    def action_step(self, frames: int) -> None:
        self.replay.step(frames)
        self.refresh_now()

    def action_faster(self) -> None:
        self.notify(f"speed {self.replay.faster():g}x", timeout=2)
        self.refresh_now()

    def action_slower(self) -> None:
        self.notify(f"speed {self.replay.slower():g}x", timeout=2)
        self.refresh_now()

    def action_seek_start(self) -> None:
        self.replay.seek(0.0)
        self.refresh_now()

    def action_seek_end(self) -> None:
        self.replay.seek(self.replay.duration_s)
        self.refresh_now()

    def action_jump(self) -> None:
        def chosen(text: str | None) -> None:
            if not text:
                return
            try:
                seconds = parse_position(text, self.replay.duration_s)
            except GenesisError as error:
                self.notify(str(error), severity="error")
                return
            self.replay.seek(seconds)
            self.notify(f"at {format_clock(self.replay.position)}", timeout=2)
            self.refresh_now()

        total = format_clock(self.replay.duration_s)
        self.push_screen(PromptScreen(f"Jump to (0:00 … {total})", "12:30, 1:02:03, 95s or 50%"), chosen)
