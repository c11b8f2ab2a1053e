"""A copy of the Binance archive's layout in a temp dir, served by aiohttp on 127.0.0.1.

:func:`build_archive` writes monthly and daily kline zips with their
``.CHECKSUM`` files (headerless and headered CSVs, ms and µs open times) and
returns the candles they hold, computed independently of the client's parser.
:class:`ArchiveServer` serves the folder, counts the requests per path, answers
404 for what is not there and can send corrupt bytes for a path a given number
of times.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
from aiohttp import web

from engine.data.timeframes import timeframe_seconds
from engine.store.candles import RECORD_DTYPE
from tests.data_remote.server import price

MARKET_PATHS = {"spot": "spot", "um": "futures/um"}
HEADER = "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore"


def ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def candles(symbol: str, interval: str, start: int, end: int) -> np.ndarray:
    """The candles opening in ``[start, end)`` (the reference, from the generator)."""
    step = timeframe_seconds(interval) * 1000
    rows = []
    for t in range(-(-start // step) * step, end, step):
        k = t // step
        open_, close = price(symbol, k - 1), price(symbol, k)
        high, low = round(max(open_, close) * 1.001, 6), round(min(open_, close) * 0.999, 6)
        rows.append((t, open_, high, low, close, float(1 + k % 17)))
    return np.array(rows, dtype=RECORD_DTYPE)


def kline_csv(records: np.ndarray, interval: str, *, header: bool, micro: bool) -> bytes:
    """Records as an archive kline CSV: twelve columns, optional header, ms or µs times."""
    step = timeframe_seconds(interval) * 1000
    scale = 1000 if micro else 1
    lines = [HEADER] if header else []
    for t, o, h, lo, c, v in records.tolist():
        close_time = (t + step) * scale - 1
        lines.append(f"{t * scale},{o!r},{h!r},{lo!r},{c!r},{v!r},{close_time},{v * c!r},7,{v / 2!r},{v * c / 2!r},0")
    return ("\n".join(lines) + "\n").encode()


def write_zip(folder: Path, name: str, payload: bytes, *, bad_checksum: bool = False) -> Path:
    """``name`` (a .zip holding one CSV) and ``name.CHECKSUM`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name.removesuffix(".zip") + ".csv", payload)
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    if bad_checksum:
        digest = hashlib.sha256(b"not this file").hexdigest()
    (folder / (name + ".CHECKSUM")).write_text(f"{digest}  {name}\n")
    return target


@dataclass
class Archive:
    """What :func:`build_archive` wrote: the root and every candle it holds."""

    root: Path
    records: np.ndarray
    files: list[str] = field(default_factory=list)


def build_archive(
    root: Path,
    symbol: str = "BTCUSDT",
    interval: str = "1h",
    *,
    market: str = "um",
    months: list[tuple[int, int]] = (),  # type: ignore[assignment]
    days: list[date] = (),  # type: ignore[assignment]
    headered: set[str] = frozenset(),  # type: ignore[assignment]
    micro: set[str] = frozenset(),  # type: ignore[assignment]
    bad_checksum: set[str] = frozenset(),  # type: ignore[assignment]
) -> Archive:
    """Write monthly files for ``months`` and daily files for ``days``; a file's stamp
    (``2024-01`` or ``2024-01-05``) in ``headered``/``micro``/``bad_checksum`` picks its form."""
    base = root / "data" / MARKET_PATHS[market]
    parts: list[np.ndarray] = []
    archive = Archive(root, np.empty(0, dtype=RECORD_DTYPE))
    for year, month in months:
        first = date(year, month, 1)
        after = date(year + (month == 12), month % 12 + 1, 1)
        stamp = f"{year:04d}-{month:02d}"
        records = candles(symbol, interval, ms(first), ms(after))
        name = f"{symbol}-{interval}-{stamp}.zip"
        payload = kline_csv(records, interval, header=stamp in headered, micro=stamp in micro)
        write_zip(base / "monthly" / "klines" / symbol / interval, name, payload, bad_checksum=stamp in bad_checksum)
        archive.files.append(name)
        parts.append(records)
    for day in days:
        stamp = day.isoformat()
        records = candles(symbol, interval, ms(day), ms(day + timedelta(days=1)))
        name = f"{symbol}-{interval}-{stamp}.zip"
        payload = kline_csv(records, interval, header=stamp in headered, micro=stamp in micro)
        write_zip(base / "daily" / "klines" / symbol / interval, name, payload, bad_checksum=stamp in bad_checksum)
        archive.files.append(name)
        parts.append(records)
    if parts:
        merged = np.concatenate(parts)
        archive.records = merged[np.argsort(merged["t"], kind="stable")]
    return archive


def write_funding(root: Path, symbol: str, months: list[tuple[int, int]]) -> list[tuple[int, float]]:
    """Monthly fundingRate files (headered, events at 00:00, 08:00, 16:00 UTC); the events in ms."""
    folder = root / "data" / "futures" / "um" / "monthly" / "fundingRate" / symbol
    events: list[tuple[int, float]] = []
    for year, month in months:
        first = ms(date(year, month, 1))
        after = ms(date(year + (month == 12), month % 12 + 1, 1))
        rows = [(t, round(0.0001 * ((t // 28_800_000) % 7 - 3), 8)) for t in range(first, after, 28_800_000)]
        lines = ["calc_time,funding_interval_hours,last_funding_rate"]
        lines += [f"{t},8,{rate!r}" for t, rate in rows]
        write_zip(folder, f"{symbol}-fundingRate-{year:04d}-{month:02d}.zip", ("\n".join(lines) + "\n").encode())
        events += rows
    return events


def reference_csv(records: np.ndarray, path: Path) -> Path:
    """The candles as one plain CSV (``timestamp,open,...`` in ms) for the csv source."""
    lines = ["timestamp,open,high,low,close,volume"]
    lines += [f"{t},{o!r},{h!r},{lo!r},{c!r},{v!r}" for t, o, h, lo, c, v in records.tolist()]
    path.write_text("\n".join(lines) + "\n")
    return path


class ArchiveServer:
    """Serves a folder over HTTP on 127.0.0.1; counts requests per path."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: Counter[str] = Counter()
        self.corrupt: dict[str, int] = {}  # path -> answers still to corrupt
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._hold: asyncio.Event | None = None
        self._free_zips = 0

    def hold_zips_after(self, count: int) -> None:
        """Serve ``count`` more zips at once; later ones wait until :meth:`release` (a slow server
        whose pace the test sets, no sleeps)."""
        self._free_zips = count
        self._hold = asyncio.Event()

    def release(self) -> None:
        """Let the held zips go (from any thread)."""
        if self._hold is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._hold.set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def zips(self) -> int:
        """Zip downloads so far (checksum files not counted)."""
        return sum(n for path, n in self.requests.items() if path.endswith(".zip"))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        self.requests[path] += 1
        if self._hold is not None and path.endswith(".zip"):
            if self._free_zips > 0:
                self._free_zips -= 1
            else:
                await self._hold.wait()
        target = (self.root / path).resolve()
        if not target.is_relative_to(self.root.resolve()) or not target.is_file():
            return web.Response(status=404, text="Not Found")
        if self.corrupt.get(path, 0) > 0:
            self.corrupt[path] -= 1
            body = target.read_bytes()
            return web.Response(body=body[: len(body) // 2] + b"\0" * (len(body) - len(body) // 2))
        return web.FileResponse(target)  # streamed from disk, so the server holds no file in memory

    async def start(self) -> str:
        self._loop = asyncio.get_running_loop()
        app = web.Application()
        app.router.add_get("/{path:.*}", self.handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class ThreadedArchiveServer:
    """The archive server on its own loop in a thread (for commands run in a subprocess)."""

    def __init__(self, root: Path) -> None:
        self.server = ArchiveServer(root)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="archive-server", daemon=True)

    def __enter__(self) -> ArchiveServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(timeout=10)
        return self.server

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
