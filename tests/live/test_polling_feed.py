"""The polling feed against a real candle server on 127.0.0.1 (aiohttp)."""

from __future__ import annotations

import json

from aiohttp import web

from engine.backtest import BacktestOptions
from engine.data.hyperliquid import HyperliquidConfig, HyperliquidSource
from engine.live import LoopConfig, PaperTradingLoop, PollingFeed, RegistrySignals

STEP = 60_000  # 1m in ms
T0 = 1_700_000_040_000 // STEP * STEP


def candle(t: int) -> dict[str, object]:
    k = (t - T0) // STEP
    px = 100.0 + (k % 17) - (k % 5) * 0.5
    return {
        "t": t,
        "T": t + STEP - 1,
        "s": "BTC",
        "i": "1m",
        "o": f"{px:.2f}",
        "c": f"{px + 0.25:.2f}",
        "h": f"{px + 1:.2f}",
        "l": f"{px - 1:.2f}",
        "v": "3.5",
        "n": 10,
    }


class Exchange:
    """Answers candleSnapshot with every candle that opened before ``now_ms``."""

    def __init__(self) -> None:
        self.now_ms = T0 + 30 * STEP + 1_000
        self.requests = 0
        self.fail_next = 0

    async def info(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.fail_next:
            self.fail_next -= 1
            return web.Response(status=500, text="upstream hiccup")
        req = (await request.json())["req"]
        start, end = req["startTime"], req["endTime"]
        first = max(T0, -(-start // STEP) * STEP)
        rows = [candle(t) for t in range(first, min(end + 1, self.now_ms), STEP)]
        return web.Response(text=json.dumps(rows), content_type="application/json")


async def start_server(exchange: Exchange) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/info", exchange.info)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


async def test_history_then_new_closed_candles(tmp_path) -> None:
    exchange = Exchange()
    runner, url = await start_server(exchange)
    config = HyperliquidConfig(url=url, retries=0, backoff_base_s=0.0)
    try:
        async with HyperliquidSource(config, cache_path=tmp_path / "candles.db") as source:
            feed = PollingFeed(
                source,
                "BTC",
                "1m",
                history=5,
                poll_s=0.001,
                max_bars=9,
                clock=lambda: exchange.now_ms,
            )
            seen = []
            async for bar in feed:
                seen.append(bar)
                if len(seen) == 5:
                    exchange.fail_next = 1  # one failed poll is retried, not fatal
                    exchange.now_ms += 4 * STEP  # four more candles close
    finally:
        await runner.cleanup()
    ms = [b.ts // 1_000_000 for b in seen]
    assert ms == [T0 + k * STEP for k in range(25, 34)]  # closed candles only, each once, in order
    assert [b.index for b in seen] == list(range(9))
    assert seen[0].close == float(candle(ms[0])["c"]) and seen[0].symbol == "BTC"
    assert feed.errors >= 1 and feed.last_error


async def test_paper_loop_runs_on_the_polling_feed(tmp_path) -> None:
    exchange = Exchange()
    exchange.now_ms = T0 + 80 * STEP + 5
    runner, url = await start_server(exchange)
    try:
        async with HyperliquidSource(
            HyperliquidConfig(url=url), cache_path=tmp_path / "c.db"
        ) as source:
            feed = PollingFeed(
                source,
                "BTC",
                "1m",
                history=60,
                poll_s=0.001,
                max_bars=60,
                clock=lambda: exchange.now_ms,
            )
            loop = PaperTradingLoop(
                feed, RegistrySignals("sma_cross", {"fast": 3, "slow": 8}), LoopConfig(BacktestOptions(fee=0.001))
            )
            result = await loop.run()
    finally:
        await runner.cleanup()
    assert result.bars == 60 and result.state.symbol == "BTC"
    assert len(result.trades) > 0
