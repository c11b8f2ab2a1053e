"""Candle cache benchmark: a cold load over HTTP against an L2 (SQLite) hit and an L1 (memory) hit.

A local aiohttp server on 127.0.0.1 answers candleSnapshot for 100,000
one-minute candles (20 pages of 5,000). Goals: an L1 hit under 5 ms and an L2
hit under 100 ms; the cold load, measured in the same run, is the reference.

Run: ``nice python -m benchmarks.data_cache [--quick]``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

CANDLES = 100_000
START_MS = 1_704_067_200_000  # 2024-01-01
MINUTE_MS = 60_000
L1_GOAL_S = 0.005
L2_GOAL_S = 0.100


def _page(coin: str, start: int, end: int, limit: int = 5000) -> bytes:
    """One candleSnapshot answer: the candles opening in [start, end] of the benchmark's history."""
    first = max(-(-start // MINUTE_MS) * MINUTE_MS, START_MS)
    last = min(end, START_MS + (CANDLES - 1) * MINUTE_MS)
    rows = []
    for t in range(first, last + 1, MINUTE_MS):
        k = (t - START_MS) // MINUTE_MS
        close = 100.0 + (k % 500) * 0.01
        open_ = 100.0 + ((k - 1) % 500) * 0.01
        rows.append({
            "t": t, "T": t + MINUTE_MS - 1, "s": coin, "i": "1m", "o": f"{open_:.2f}", "c": f"{close:.2f}",
            "h": f"{max(open_, close) + 0.05:.2f}", "l": f"{min(open_, close) - 0.05:.2f}", "v": "1.0", "n": 1,
        })
        if len(rows) >= limit:
            break
    return json.dumps(rows).encode()


class _Server:
    """The local exchange, on an event loop of its own thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.requests = 0
        self.runner: Any = None
        self.url = ""

    async def _start(self) -> None:
        from aiohttp import web

        async def info(request: web.Request) -> web.Response:
            req = (await request.json())["req"]
            self.requests += 1
            body = _page(req["coin"], int(req["startTime"]), int(req["endTime"]))
            return web.Response(body=body, content_type="application/json")

        app = web.Application()
        app.router.add_post("/info", info)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    def __enter__(self) -> _Server:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


async def _measure(url: str, db: Path, repeats: int) -> dict[str, Any]:
    from engine.data.cache import MemoryCache
    from engine.data.hyperliquid import HyperliquidConfig, HyperliquidSource
    from engine.histogram import LogHistogram

    config = HyperliquidConfig(url=url, weight_per_minute=1e9, retries=0)
    start, end = START_MS, START_MS + CANDLES * MINUTE_MS

    async with HyperliquidSource(config, memory=MemoryCache(), cache_path=db) as source:
        began = time.perf_counter()
        bars = await source.fetch_candles("BENCH", "1m", start, end)
        cold_s = time.perf_counter() - began
        pages = source.http.stats.requests
    assert len(bars) == CANDLES, len(bars)

    l2 = LogHistogram()
    for _ in range(repeats):
        async with HyperliquidSource(config, memory=MemoryCache(), cache_path=db) as source:
            began = time.perf_counter_ns()
            again = await source.fetch_candles("BENCH", "1m", start, end)
            l2.record(time.perf_counter_ns() - began)
            assert len(again) == CANDLES and source.http.stats.requests == 0

    l1 = LogHistogram()
    async with HyperliquidSource(config, memory=MemoryCache(), cache_path=db) as source:
        await source.fetch_candles("BENCH", "1m", start, end)
        for _ in range(repeats * 20):
            began = time.perf_counter_ns()
            await source.fetch_candles("BENCH", "1m", start, end)
            l1.record(time.perf_counter_ns() - began)
        assert source.cache.served.l1 == repeats * 20

    l2_p50, l1_p50 = l2.percentile(50) / 1e9, l1.percentile(50) / 1e9
    return {
        "candles": CANDLES,
        "pages": pages,
        "cold_s": cold_s,
        "l2_hit_p50_s": l2_p50,
        "l2_hit_p99_s": l2.percentile(99) / 1e9,
        "l1_hit_p50_s": l1_p50,
        "l1_hit_p99_s": l1.percentile(99) / 1e9,
        "cold_over_l2": cold_s / l2_p50 if l2_p50 else float("inf"),
        "cold_over_l1": cold_s / l1_p50 if l1_p50 else float("inf"),
        "l2_goal_s": L2_GOAL_S,
        "l1_goal_s": L1_GOAL_S,
        "l2_ok": l2_p50 < L2_GOAL_S,
        "l1_ok": l1_p50 < L1_GOAL_S,
        "db_bytes": db.stat().st_size,
    }


def run(quick: bool = False) -> dict[str, Any]:
    """Cold, L2 and L1 loads of 100,000 one-minute candles; figures in seconds, ratios against cold."""
    repeats = 3 if quick else 10
    with tempfile.TemporaryDirectory(prefix="genesis-bench-") as tmp, _Server() as server:
        figures = asyncio.run(_measure(server.url, Path(tmp) / "candles.db", repeats))
        figures["server_requests"] = server.requests
    figures["repeats"] = repeats
    return figures


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    figures = run(quick="--quick" in args)
    if "--json" in args:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"candles {figures['candles']:,} in {figures['pages']} pages")
    print(f"cold (HTTP + validate + SQLite write): {figures['cold_s'] * 1e3:9.1f} ms")
    print(
        f"L2 hit (SQLite):  p50 {figures['l2_hit_p50_s'] * 1e3:8.2f} ms  p99 {figures['l2_hit_p99_s'] * 1e3:8.2f} ms"
        f"  goal < {L2_GOAL_S * 1e3:.0f} ms  {'ok' if figures['l2_ok'] else 'MISSED'}"
        f"  ({figures['cold_over_l2']:.0f}x faster than cold)"
    )
    print(
        f"L1 hit (memory):  p50 {figures['l1_hit_p50_s'] * 1e3:8.3f} ms  p99 {figures['l1_hit_p99_s'] * 1e3:8.3f} ms"
        f"  goal < {L1_GOAL_S * 1e3:.0f} ms  {'ok' if figures['l1_ok'] else 'MISSED'}"
        f"  ({figures['cold_over_l1']:.0f}x faster than cold)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
