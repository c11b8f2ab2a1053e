"""Output fit for cron: plain lines, ``--quiet``, ``--json``, a rotating log file.

Rules:

- Never colour or progress bars when stdout is not a terminal (cron mails what
  a job prints; escape codes make that mail unreadable). Headless output is
  plain lines even on a terminal.
- ``--quiet``: nothing on stdout; warnings and errors still go to stderr, so
  cron mails only when something failed.
- ``--json``: stdout carries exactly one JSON object (the run summary) and
  nothing else; progress lines move to stderr unless ``--quiet``.
- Every message also goes to a log file (``logging.handlers.RotatingFileHandler``)
  with timestamps, so the morning after you can read what each night did.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import math
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from engine.errors import ConfigError
from engine.load_progress import LoadProgress, ProgressLine

LOGGER = "engine.headless"
STUDY_LOGGER = "engine.optimize.study"
LOG_MAX_BYTES = 5 * 1024 * 1024
LOG_BACKUPS = 5
PROGRESS_INTERVAL_S = 5.0
_FILE_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(process)d] %(message)s"

log = logging.getLogger(LOGGER)


class _PlainConsole(logging.Handler):
    """Messages as plain lines: INFO to ``info_stream``, WARNING and up to stderr."""

    def __init__(self, info_stream: TextIO | None, *, err_stream: TextIO | None = None) -> None:
        super().__init__(level=logging.INFO)
        self.info_stream = info_stream
        self.err_stream = err_stream

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        if record.levelno >= logging.WARNING:
            stream = self.err_stream or sys.stderr
            prefix = "genesis: " if record.levelno >= logging.ERROR else "genesis: warning: "
            line = prefix + message
        else:
            stream = self.info_stream
            line = message
        if stream is None:
            return
        try:
            print(line, file=stream, flush=True)
        except (BrokenPipeError, ValueError):  # a closed pipe must not fail the run
            pass


class Output:
    """Where a headless run's messages go; one per run (``close()`` detaches the handlers)."""

    def __init__(
        self,
        *,
        quiet: bool = False,
        json_summary: bool = False,
        log_file: str | Path | None = None,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
        progress_interval_s: float = PROGRESS_INTERVAL_S,
    ) -> None:
        self.quiet = quiet
        self.json_summary = json_summary
        self.stdout = stdout or sys.stdout
        self.progress_interval_s = progress_interval_s
        self.log_file = Path(log_file) if log_file is not None else None
        self._last_progress = 0.0
        self._pending: Any = None
        err = stderr or sys.stderr
        # The data download's line is for a person watching; a cron log gets none of it.
        self._loading = ProgressLine(err, prefix="loading data: ") if not quiet and err.isatty() else None
        info: TextIO | None = None
        if not quiet:
            info = sys.stderr if json_summary else self.stdout
        self._console = _PlainConsole(info)
        self._file: logging.Handler | None = None
        if self.log_file is not None:
            try:
                self.log_file.parent.mkdir(parents=True, exist_ok=True)
                handler = logging.handlers.RotatingFileHandler(
                    self.log_file, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
                )
            except OSError as error:
                raise ConfigError(f"--log-file {self.log_file}: cannot open: {error.strerror}") from None
            handler.setFormatter(logging.Formatter(_FILE_FORMAT))
            handler.setLevel(logging.INFO)
            self._file = handler
        self._attached: list[tuple[logging.Logger, logging.Handler]] = []
        self._levels: dict[str, int] = {}

    # ------------------------------------------------------------ handlers
    def attach(self) -> Output:
        """Route ``engine.headless`` to the console and ``engine.*`` to the log file."""
        headless = logging.getLogger(LOGGER)
        headless.propagate = False  # our console handler prints it; no double lines
        self._set_level(headless, logging.INFO)
        self._add(headless, self._console)
        # A study's own warnings (a user strategy that looks ahead) are for the person who runs it.
        study = logging.getLogger(STUDY_LOGGER)
        study.propagate = False
        self._set_level(study, logging.WARNING)
        self._add(study, self._console)
        if self._file is not None:
            self._add(study, self._file)
            self._add(headless, self._file)
            engine_logger = logging.getLogger("engine")
            self._set_level(engine_logger, logging.INFO)
            self._add(engine_logger, self._file)
        return self

    def _set_level(self, logger: logging.Logger, level: int) -> None:
        self._levels.setdefault(logger.name, logger.level)
        if logger.level == logging.NOTSET or logger.level > level:
            logger.setLevel(level)

    def _add(self, logger: logging.Logger, handler: logging.Handler) -> None:
        logger.addHandler(handler)
        self._attached.append((logger, handler))

    def close(self) -> None:
        self.end_loading()
        for logger, handler in self._attached:
            logger.removeHandler(handler)
        self._attached.clear()
        for name, level in self._levels.items():
            logging.getLogger(name).setLevel(level)
        if self._file is not None:
            self._file.close()

    def __enter__(self) -> Output:
        return self.attach()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ messages
    def file_only(self, level: int, message: str) -> None:
        """A line for the log file alone (the CLI prints the same error itself)."""
        if self._file is not None:
            self._file.handle(logging.LogRecord(LOGGER, level, __file__, 0, "%s", (message,), None))

    def data_progress(self, report: LoadProgress) -> None:
        """The study's data download, one line rewritten in place on stderr (a terminal only)."""
        if self._loading is not None:
            self._loading(report)

    def end_loading(self) -> None:
        """End the download's line (the trials' lines follow it)."""
        if self._loading is not None:
            self._loading.close()

    def progress(self, snapshot: Any) -> None:
        """A progress line every ``progress_interval_s`` (the first one at once)."""
        self.end_loading()  # the study reports trials once its data is in
        now = time.monotonic()
        if self._last_progress and now - self._last_progress < self.progress_interval_s:
            self._pending = snapshot
            return
        self._last_progress = now
        self._pending = None
        self._emit_progress(snapshot)

    def final_progress(self) -> None:
        """The last progress line held back by the interval, if any."""
        if self._pending is not None:
            snapshot, self._pending = self._pending, None
            self._emit_progress(snapshot)

    def _emit_progress(self, snapshot: Any) -> None:
        from engine.optimize.progress import progress_line

        log.info("%s", progress_line(snapshot))

    def summary(self, payload: dict[str, Any], line: str, *, plain: bool = True) -> None:
        """The run's last word: one JSON object with ``--json``, else one plain line (unless ``plain=False``)."""
        if self._file is not None:
            self.file_only(logging.INFO, f"summary: {line}")
        if self.json_summary:
            print(json.dumps(json_safe(payload), default=str, allow_nan=False), file=self.stdout, flush=True)
        elif plain and not self.quiet:
            print(line, file=self.stdout, flush=True)


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by ``None`` (strict JSON for scripts and webhooks)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
