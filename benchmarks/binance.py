"""Binance archive benchmark: cold (download, verify, parse, store), L2 hit and L1 hit
of five years of hourly bars and one year of one-minute bars from a local copy of the
archive's layout served on 127.0.0.1, and the kline parser's throughput.

Goals (issue 16): the cold one-minute year under 10 s, its L2 hit under 0.5 s, parsing
at least 1,000,000 candles per second.

The machine is shared, so each hit is also given as a ratio to references timed in
the same run: the series' own cold load (``cold_over_l2``) and the parser's time for
as many candles (``l2_over_parse``, ``l1_over_parse``; the parser does not touch the
cache, so these follow the cache alone).

Run: ``nice python -m benchmarks.binance [--quick] [--json]`` (``--quick``: one
year of hourly bars and three months of one-minute bars).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import tempfile
import threading
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

COLD_1M_GOAL_S = 10.0
L2_1M_GOAL_S = 0.5
PARSE_GOAL_PER_S = 1_000_000.0


def _ms(year: int, month: int) -> int:
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp() * 1000)


def _months(first_year: int, count: int) -> list[tuple[int, int]]:
    return [(first_year + (m // 12), m % 12 + 1) for m in range(count)]


def kline_csv(start: int, end: int, step: int) -> bytes:
    """A headerless twelve-column kline CSV of synthetic candles opening in ``[start, end)``."""
    t = np.arange(start, end, step, dtype=np.int64)
    k = t // step
    close = np.round(20_000.0 * (1.0 + 0.1 * np.sin(k / 500.0)) + (k % 13) * 0.01, 2)
    open_ = np.round(20_000.0 * (1.0 + 0.1 * np.sin((k - 1) / 500.0)) + ((k - 1) % 13) * 0.01, 2)
    high = np.maximum(open_, close) + 1.5
    low = np.minimum(open_, close) - 1.5
    volume = 1.0 + (k % 17)
    lines = [
        f"{a},{o:.2f},{h:.2f},{lo:.2f},{c:.2f},{v:.1f},{a + step - 1},{v * c:.2f},7,{v / 2:.2f},{v * c / 2:.2f},0"
        for a, o, h, lo, c, v in zip(
            t.tolist(), open_.tolist(), high.tolist(), low.tolist(), close.tolist(), volume.tolist(), strict=True
        )
    ]
    return ("\n".join(lines) + "\n").encode()


def build(root: Path, symbol: str, interval: str, step: int, months: list[tuple[int, int]]) -> int:
    """Monthly zips with their checksums; returns the candles written."""
    folder = root / "data" / "futures" / "um" / "monthly" / "klines" / symbol / interval
    folder.mkdir(parents=True, exist_ok=True)
    total = 0
    for year, month in months:
        start = _ms(year, month)
        end = _ms(year + (month == 12), month % 12 + 1)
        name = f"{symbol}-{interval}-{year:04d}-{month:02d}.zip"
        with zipfile.ZipFile(folder / name, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(name[:-4] + ".csv", kline_csv(start, end, step))
        digest = hashlib.sha256((folder / name).read_bytes()).hexdigest()
        (folder / (name + ".CHECKSUM")).write_text(f"{digest}  {name}\n")
        total += (end - start) // step
    return total


class _Server:
    """A static file server for the archive folder, on an event loop of its own thread."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: Any = None
        self.url = ""
        self.requests = 0

    async def _start(self) -> None:
        from aiohttp import web

        async def serve(request: web.Request) -> web.StreamResponse:
            self.requests += 1
            target = self.root / request.match_info["path"]
            if not target.is_file():
                return web.Response(status=404)
            return web.FileResponse(target)

        app = web.Application()
        app.router.add_get("/{path:.*}", serve)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/"

    def __enter__(self) -> _Server:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


async def _measure(url: str, db: Path, symbol: str, interval: str, start: int, end: int, candles: int) -> dict[str, Any]:
    import pandas  # noqa: F401  (the parser's import is a process's one-off, not part of a load)

    from engine.data.binance import BinanceArchive, BinanceConfig
    from engine.data.cache import MemoryCache

    config = BinanceConfig(url=url, retries=0)
    now = end + 40 * 86_400_000  # every month of the range has long been published
    memory = MemoryCache(1 << 30)
    async with BinanceArchive(config, memory=MemoryCache(1 << 30), cache_path=db) as archive:
        began = time.perf_counter()
        bars = await archive.fetch_candles(symbol, "um", interval, start, end, now=now)
        cold = time.perf_counter() - began
        files = archive.files_downloaded
    assert len(bars) == candles, (len(bars), candles)
    async with BinanceArchive(config, memory=memory, cache_path=db) as archive:
        began = time.perf_counter()
        again = await archive.fetch_candles(symbol, "um", interval, start, end, now=now)
        l2 = time.perf_counter() - began
        assert len(again) == candles and archive.files_downloaded == 0
        began = time.perf_counter()
        await archive.fetch_candles(symbol, "um", interval, start, end, now=now)
        l1 = time.perf_counter() - began
    return {"candles": candles, "files": files, "cold_s": cold, "l2_hit_s": l2, "l1_hit_s": l1}


def parse_throughput(repeats: int = 3) -> float:
    """Candles per second of ``parse_klines`` over one month of one-minute bars (best of ``repeats``)."""
    from engine.data.binance import parse_klines

    data = kline_csv(_ms(2024, 1), _ms(2024, 2), 60_000)
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        records = parse_klines(data, "bench")
        best = min(best, time.perf_counter() - began)
    return records.shape[0] / best


def run(quick: bool = False) -> dict[str, Any]:
    """The figures of both series and the parser (seconds; candles per second)."""
    hourly_months = 12 if quick else 60
    minute_months = 3 if quick else 12
    figures: dict[str, Any] = {"quick": quick}
    with tempfile.TemporaryDirectory(prefix="genesis-bench-binance-") as tmp:
        root = Path(tmp) / "archive"
        hourly = build(root, "BTCUSDT", "1h", 3_600_000, _months(2019, hourly_months))
        minute = build(root, "ETHUSDT", "1m", 60_000, _months(2023, minute_months))
        with _Server(root) as server:
            figures["hourly"] = asyncio.run(_measure(
                server.url, Path(tmp) / "candles.db", "BTCUSDT", "1h",
                _ms(2019, 1), _ms(*_months(2019, hourly_months + 1)[-1]), hourly,
            ))  # fmt: skip
            figures["minute"] = asyncio.run(_measure(
                server.url, Path(tmp) / "candles.db", "ETHUSDT", "1m",
                _ms(2023, 1), _ms(*_months(2023, minute_months + 1)[-1]), minute,
            ))  # fmt: skip
    figures["parse_candles_per_s"] = parse_throughput()
    for name in ("hourly", "minute"):
        series = figures[name]
        parse_s = series["candles"] / figures["parse_candles_per_s"]
        series["cold_over_l2"] = series["cold_s"] / series["l2_hit_s"]
        series["l2_over_parse"] = series["l2_hit_s"] / parse_s
        series["l1_over_parse"] = series["l1_hit_s"] / parse_s
    minute_figures = figures["minute"]
    figures["goals"] = {
        "cold_1m_year_s": COLD_1M_GOAL_S,
        "l2_1m_year_s": L2_1M_GOAL_S,
        "parse_candles_per_s": PARSE_GOAL_PER_S,
    }
    figures["ok"] = {
        "cold_1m_year": minute_figures["cold_s"] < COLD_1M_GOAL_S,
        "l2_1m_year": minute_figures["l2_hit_s"] < L2_1M_GOAL_S,
        "parse": figures["parse_candles_per_s"] >= PARSE_GOAL_PER_S,
    }
    return figures


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    figures = run(quick="--quick" in args)
    if "--json" in args:
        print(json.dumps(figures, indent=2))
        return 0
    for name in ("hourly", "minute"):
        f = figures[name]
        print(
            f"{name:7s} {f['candles']:>9,} candles in {f['files']:>3} files: cold {f['cold_s']:7.2f} s"
            f"  L2 hit {f['l2_hit_s'] * 1e3:8.1f} ms  L1 hit {f['l1_hit_s'] * 1e3:7.3f} ms"
            f"  (cold/L2 {f['cold_over_l2']:.1f}, L2/parse {f['l2_over_parse']:.2f}, L1/parse {f['l1_over_parse']:.5f})"
        )
    ok = figures["ok"]
    print(f"parse: {figures['parse_candles_per_s'] / 1e6:.2f} M candles/s (goal >= 1 M: {'ok' if ok['parse'] else 'MISSED'})")
    print(f"goals: cold 1m {'ok' if ok['cold_1m_year'] else 'MISSED'} (< {COLD_1M_GOAL_S:g} s), "
          f"L2 1m {'ok' if ok['l2_1m_year'] else 'MISSED'} (< {L2_1M_GOAL_S:g} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
