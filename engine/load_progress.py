"""Download progress of a data load: one frozen record every remote source reports, and its text.

A remote source (the Binance archive's files, Hyperliquid's and ccxt's pages)
calls a :data:`ProgressCallback` with a fresh :class:`LoadProgress` each time a
file or page is done or bytes arrive; local sources report nothing. The same
record reaches ``genesis data fetch``'s progress bar, the study's telemetry (the
console's Optimizer pane) and the headless runner's stderr line. Stdlib only:
the console imports it before its first frame.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, TextIO

Unit = Literal["files", "pages"]


@dataclass(frozen=True, slots=True)
class LoadProgress:
    """How far one series' download is: files or pages done of ``total`` (``None``: not known
    yet), bytes received and seconds since it began."""

    series: str  # the source's label of what is fetched, e.g. "binance um BTCUSDT 1h" (unique per fetch)
    symbol: str
    unit: Unit = "files"
    done: int = 0
    total: int | None = None
    bytes: int = 0
    elapsed_s: float = 0.0

    @property
    def rate(self) -> float:
        """Bytes per second since the download began."""
        return self.bytes / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the current pace of files or pages (``None`` before the first one or without a total)."""
        if not self.done or self.total is None:
            return None
        return self.elapsed_s / self.done * max(0, self.total - self.done)

    def text(self) -> str:
        """``BTCUSDT 14/36 files, 52 MB, 3.1 MB/s`` (``14 pages`` when the total is not known)."""
        count = f"{self.done}/{self.total}" if self.total is not None else f"{self.done}"
        return f"{self.symbol} {count} {self.unit}, {self.bytes / 1e6:.0f} MB, {self.rate / 1e6:.1f} MB/s"


ProgressCallback = Callable[[LoadProgress], None]


class ProgressCounter:
    """The mutable counts of one download; every change reports a fresh :class:`LoadProgress`."""

    def __init__(
        self, callback: ProgressCallback | None, series: str, symbol: str, *, unit: Unit = "files",
        total: int | None = None,
    ) -> None:
        self.callback = callback
        self.series, self.symbol, self.unit = series, symbol, unit
        self.done, self.total, self.bytes = 0, total, 0
        self.began = time.monotonic()
        self.report()

    def add(self, *, done: int = 0, size: int = 0) -> None:
        """Count ``done`` more files or pages and ``size`` more bytes, and report."""
        self.done += done
        self.bytes += size
        if self.total is not None and self.done > self.total:
            self.total = self.done  # an estimate fell short
        self.report()

    def finish(self) -> None:
        """The download ended: whatever total was estimated, done is the total now."""
        self.total = self.done
        self.report()

    def snapshot(self) -> LoadProgress:
        return LoadProgress(
            self.series, self.symbol, self.unit, self.done, self.total, self.bytes, time.monotonic() - self.began
        )

    def report(self) -> None:
        if self.callback is not None:
            self.callback(self.snapshot())


def combined(reports: Iterable[LoadProgress]) -> LoadProgress | None:
    """Several series' reports as one (a basket, or candles and funding): counts and bytes added up,
    the symbol of the last one still running (else the last one); ``None`` for none."""
    reports = list(reports)
    if not reports:
        return None
    running = [r for r in reports if r.total is None or r.done < r.total]
    last = (running or reports)[-1]
    totals = [r.total for r in reports]
    units = {r.unit for r in reports}
    return LoadProgress(
        series=last.series if len(reports) == 1 else f"{len(reports)} series",
        symbol=last.symbol,
        unit=last.unit if len(units) == 1 else "files",
        done=sum(r.done for r in reports),
        total=None if None in totals else sum(t for t in totals if t is not None),
        bytes=sum(r.bytes for r in reports),
        elapsed_s=max(r.elapsed_s for r in reports),
    )


class LoadProgressBoard:
    """The latest report of every series of one load (thread-safe: sources of a basket report from
    several threads); :meth:`current` is them combined."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reports: dict[str, LoadProgress] = {}

    def __call__(self, progress: LoadProgress) -> None:
        with self._lock:
            self._reports[progress.series] = progress

    def current(self) -> LoadProgress | None:
        with self._lock:
            return combined(self._reports.values())

    def clear(self) -> None:
        with self._lock:
            self._reports.clear()


def format_progress(done: int, total: int | None, size: int, rate: float, eta_s: float | None, width: int = 24,
                    unit: str = "files") -> str:  # fmt: skip
    """``[#########...............] 12/30 files  14.2 MB  3.1 MB/s  ETA 6s``."""
    if total is None:
        return f"{done} {unit}  {size / 1e6:.1f} MB  {rate / 1e6:.1f} MB/s"
    filled = width * done // total if total else width
    eta = "" if eta_s is None or done >= total else f"  ETA {eta_s:.0f}s"
    return (
        f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {unit}  {size / 1e6:.1f} MB  "
        f"{rate / 1e6:.1f} MB/s{eta}"
    )


class ProgressLine(LoadProgressBoard):
    """One line on ``stream``, rewritten in place: files done, bytes, rate and ETA over every
    download in flight (``genesis data fetch`` and the headless runner on a terminal)."""

    def __init__(self, stream: TextIO, *, prefix: str = "") -> None:
        super().__init__()
        self.stream = stream
        self.prefix = prefix
        self._shown = False

    def __call__(self, progress: LoadProgress) -> None:
        super().__call__(progress)
        text = self.render()
        with self._lock:
            self.stream.write("\r" + self.prefix + text + "\x1b[K")
            self.stream.flush()
            self._shown = True

    def render(self) -> str:
        now = self.current()
        if now is None:
            return ""
        return format_progress(now.done, now.total, now.bytes, now.rate, now.eta_s, unit=now.unit)

    def close(self) -> None:
        """End the line (once something was shown)."""
        with self._lock:
            if self._shown:
                self.stream.write("\n")
                self.stream.flush()
                self._shown = False
