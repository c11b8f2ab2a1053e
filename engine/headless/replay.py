"""``ReplaySource``: a telemetry source that plays a recording back.

It stands where the console expects an engine (the
:class:`~engine.telemetry.TelemetrySource` protocol): ``telemetry()`` returns
the recorded frame at the playback position, so every pane renders the
night's run exactly as it was recorded. Playback has a position (seconds
into the recording), a speed and a playing flag; the console's pause/resume
keys pause and play, and the replay screen adds step, jump and speed.
Commands that would change an engine (start a study, capture a profile, the
paper loop) answer with a one-line error: a replay is read-only. Opening a
trial reads it from the store, which holds every trial of the run.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.errors import InputError, StoreError
from engine.headless.recording import Recording
from engine.telemetry import StudyComparison

SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)


def format_clock(seconds: float) -> str:
    """``1:02:03`` or ``02:03``."""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def parse_position(text: str, duration_s: float) -> float:
    """``1:02:03``, ``12:30``, ``95`` (seconds), ``90s``, ``2m``, ``50%`` -> seconds into the recording."""
    value = text.strip().lower()
    try:
        if value.endswith("%"):
            return max(0.0, min(1.0, float(value[:-1]) / 100.0)) * duration_s
        if ":" in value:
            parts = [float(p) for p in value.split(":")]
            if len(parts) > 3:
                raise ValueError
            seconds = 0.0
            for part in parts:
                seconds = seconds * 60 + part
            return seconds
        match = re.fullmatch(r"(\d+(?:\.\d+)?)(h|m|s)?", value)
        if match is None:
            raise ValueError
        return float(match.group(1)) * {"h": 3600.0, "m": 60.0, "s": 1.0, None: 1.0}[match.group(2)]
    except ValueError:
        raise InputError(f"jump to {text!r}: expected a time such as 12:30, 1:02:03, 95s, 2m or 50%") from None


class ReplaySource:
    """Plays ``recording`` at ``speed``; the console polls :meth:`telemetry`."""

    def __init__(
        self,
        recording: Recording,
        *,
        db: str | Path | None = None,
        speed: float = 1.0,
        playing: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.recording = recording
        self.db = Path(db) if db is not None else None
        self.speed = float(speed)
        self._clock = clock
        self._position = 0.0
        self._anchor = clock()
        self._playing = playing and len(recording) > 1

    # ------------------------------------------------------------- playback
    @property
    def duration_s(self) -> float:
        return self.recording.duration_s

    @property
    def playing(self) -> bool:
        self._advance()
        return self._playing

    @property
    def position(self) -> float:
        """Seconds into the recording."""
        self._advance()
        return self._position

    @property
    def index(self) -> int:
        return self.recording.index_at(self.position)

    def _advance(self) -> None:
        now = self._clock()
        if self._playing:
            self._position += (now - self._anchor) * self.speed
            if self._position >= self.duration_s:
                self._position, self._playing = self.duration_s, False
        self._anchor = now

    def play(self) -> None:
        self._advance()
        if self._position >= self.duration_s:
            self._position = 0.0  # play again from the start
        self._playing = len(self.recording) > 1

    def hold(self) -> None:
        """Pause playback (the console's pause key is the coroutine :meth:`pause`)."""
        self._advance()
        self._playing = False

    def toggle(self) -> bool:
        """Play if paused, pause if playing; the new playing state."""
        if self.playing:
            self.hold()
        else:
            self.play()
        return self._playing

    def seek(self, seconds: float) -> None:
        """Jump to ``seconds`` into the recording (clamped)."""
        self._advance()
        self._position = max(0.0, min(float(seconds), self.duration_s))

    def step(self, frames: int = 1) -> int:
        """Pause and move ``frames`` frames (negative: back); the new frame index."""
        self.hold()
        index = max(0, min(len(self.recording) - 1, self.recording.index_at(self._position) + frames))
        self._position = self.recording.times[index]
        return index

    def set_speed(self, speed: float) -> None:
        if not math.isfinite(speed) or speed <= 0:
            raise InputError(f"replay speed: expected a positive number, got {speed!r}")
        self._advance()
        self.speed = float(speed)

    def faster(self) -> float:
        self.set_speed(next((s for s in SPEEDS if s > self.speed), SPEEDS[-1]))
        return self.speed

    def slower(self) -> float:
        self.set_speed(next((s for s in reversed(SPEEDS) if s < self.speed), SPEEDS[0]))
        return self.speed

    def status(self) -> str:
        """``▶ 4x 03:10/45:00 frame 760/10800`` (the console shows it as the workspace)."""
        position = self.position
        mark = "▶" if self._playing else "⏸"
        speed = f"{self.speed:g}x"
        return (f"replay {mark} {speed} {format_clock(position)}/{format_clock(self.duration_s)} "
                f"frame {self.recording.index_at(position) + 1}/{len(self.recording)}")

    # ------------------------------------------------------------ telemetry
    def telemetry(self) -> Any:
        """The recorded frame at the playback position, labelled as a replay."""
        index = self.recording.index_at(self.position)
        frame = self.recording.frame(index)
        return dataclasses.replace(frame, workspace=self.status())

    # ------------------------------------------------- TelemetrySource commands
    async def start_study(self, path: str) -> str:
        raise InputError("a replay is read-only: run studies with `genesis run` or `genesis tui`")

    async def pause(self) -> str:
        self.hold()
        return self.status()

    async def resume(self) -> str:
        self.play()
        return f"playing at {self.speed:g}x"

    async def stop(self) -> str:
        self.hold()
        self.seek(0.0)
        return "replay stopped and rewound"

    async def capture_profile(self, seconds: float = 5.0) -> str:
        raise InputError("a replay is read-only: the recorded profiler figures are shown as they were")

    async def toggle_paper(self) -> str:
        raise InputError("a replay has no paper loop")

    async def kill_switch(self) -> str:
        raise InputError("a replay has no paper loop")

    async def cycle_heatmap(self) -> str:
        raise InputError("a replay is read-only: the recorded heatmap is shown as it was")

    async def compare_studies(self, names: tuple[str, ...]) -> StudyComparison:
        """Studies of the recorded store side by side (``genesis compare``)."""
        from engine.optimize.compare import study_comparison

        if self.db is None:
            raise InputError("this replay has no study store to compare studies from")
        return await study_comparison(self.db, names)

    async def open_trial(self, number: int) -> Any:
        """Trial ``number`` of the recorded study, read from the store."""
        from engine.store.factory import open_study_store
        from engine.telemetry_map import trial_detail

        frame = self.recording.frame(self.recording.index_at(self.position))
        study = frame.study
        if self.db is None or study is None:
            raise InputError("this replay has no study store to read trials from")
        try:
            store = await open_study_store(self.db, readonly=True)
        except StoreError as error:
            raise InputError(str(error)) from None
        try:
            record = await store.require_study(study.name)
            trial = next((t for t in await store.trials(record.id) if t.number == number), None)
            if trial is None:
                raise InputError(f"study {study.name!r}: no trial #{number} in {self.db}")
            arrays = await store.artifacts(record.id, number)
        finally:
            await store.close()
        return trial_detail(study.name, study.objective, trial, arrays)

    async def inspect_trial(self, number: int) -> Any:
        """Trial ``number`` of the recorded study re-run from its store for the trade screen."""
        from engine.optimize.rerun import inspect_trial

        study = self.recording.frame(self.recording.index_at(self.position)).study
        if self.db is None or study is None:
            raise InputError("this replay has no study store to read trials from")
        return await inspect_trial(self.db, study.name, number)

    async def backtest_strategy(self, name: str) -> Any:
        raise InputError("a replay runs no backtests (open the console for that)")

    async def close(self) -> None:
        return None
