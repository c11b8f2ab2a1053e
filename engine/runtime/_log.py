"""The engine's log buffer: the last records of the ``engine`` loggers, for the console's log pane."""

from __future__ import annotations

import logging
from collections import deque

from engine.telemetry import LogLine


class LogBuffer(logging.Handler):
    """Keeps the last records of the ``engine`` loggers as :class:`LogLine` s."""

    def __init__(self, capacity: int = 300) -> None:
        super().__init__(level=logging.INFO)
        self._lines: deque[LogLine] = deque(maxlen=capacity)
        self._frozen: tuple[LogLine, ...] = ()
        self._dirty = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not break logging
            message = str(record.msg)
        source = record.name.removeprefix("engine.").split(".")[0]
        self._lines.append(LogLine(record.created, record.levelname, source, message.splitlines()[0] if message else ""))
        self._dirty = True

    def lines(self) -> tuple[LogLine, ...]:
        if self._dirty:
            self._frozen = tuple(self._lines)
            self._dirty = False
        return self._frozen
