"""A fake Binance REST API on 127.0.0.1 for the ccxt source: just the endpoints ccxt calls.

ccxt's ``binance`` loads markets from ``/api/v3/exchangeInfo`` (spot),
``/fapi/v1/exchangeInfo`` (USD-M) and ``/dapi/v1/exchangeInfo`` (coin-M, empty
here), then pages ``/api/v3/klines`` or ``/fapi/v1/klines`` and
``/fapi/v1/fundingRate``. Candles come from :func:`tests.data_remote.server.candle`
(deterministic per symbol, interval and open time) between ``listed_ms`` and the
clock's ``now_ms``; every request is counted by path.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from aiohttp import web

from tests.data_remote.server import JAN_2024_MS, candle, interval_ms

FUNDING_STEP_MS = 8 * 3_600_000
#: The most klines one request returns (Binance's spot cap is 1000; smaller pages more paging).
PAGE = 1000


def _spot(symbol: str, base: str, quote: str) -> dict[str, Any]:
    return {
        "symbol": symbol, "status": "TRADING", "baseAsset": base, "quoteAsset": quote,
        "baseAssetPrecision": 8, "quotePrecision": 8, "quoteAssetPrecision": 8,
        "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
        "orderTypes": ["LIMIT", "MARKET"], "permissions": ["SPOT"], "filters": [],
    }  # fmt: skip


def _perp(symbol: str, base: str, quote: str) -> dict[str, Any]:
    return {
        "symbol": symbol, "pair": symbol, "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
        "onboardDate": JAN_2024_MS, "status": "TRADING", "baseAsset": base, "quoteAsset": quote,
        "marginAsset": quote, "pricePrecision": 2, "quantityPrecision": 3, "baseAssetPrecision": 8,
        "quotePrecision": 8, "underlyingType": "COIN", "orderTypes": ["LIMIT", "MARKET"], "filters": [],
    }  # fmt: skip


def funding_rate(symbol: str, t: int) -> float:
    """The funding rate of the event at ``t`` (alternating sign, so both directions are exercised)."""
    k = t // FUNDING_STEP_MS
    return round((1 if k % 3 else -1) * (0.0001 + 0.00001 * (k % 5)) + len(symbol) * 1e-7, 10)


class FakeExchange:
    """The fake API; ``start()`` serves it on an ephemeral port of 127.0.0.1."""

    def __init__(self, *, listed_ms: int = JAN_2024_MS, now_ms: int = JAN_2024_MS + 120 * 86_400_000) -> None:
        self.listed_ms = listed_ms
        self.now_ms = now_ms
        self.requests: Counter[str] = Counter()
        self.kline_starts: list[int] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/api/v3/exchangeInfo", self._spot_info)
        app.router.add_get("/fapi/v1/exchangeInfo", self._perp_info)
        app.router.add_get("/dapi/v1/exchangeInfo", self._empty_info)
        app.router.add_get("/api/v3/klines", self._klines)
        app.router.add_get("/fapi/v1/klines", self._klines)
        app.router.add_get("/fapi/v1/fundingRate", self._funding)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def data_requests(self) -> int:
        """Requests for candles or funding (market loading aside)."""
        return sum(n for path, n in self.requests.items() if not path.endswith("exchangeInfo"))

    async def _spot_info(self, request: web.Request) -> web.Response:
        self.requests[request.path] += 1
        symbols = [_spot("BTCUSDT", "BTC", "USDT"), _spot("ETHUSDT", "ETH", "USDT")]
        return web.json_response({"timezone": "UTC", "serverTime": self.now_ms, "symbols": symbols})

    async def _perp_info(self, request: web.Request) -> web.Response:
        self.requests[request.path] += 1
        return web.json_response({"timezone": "UTC", "serverTime": self.now_ms, "symbols": [_perp("BTCUSDT", "BTC", "USDT")]})

    async def _empty_info(self, request: web.Request) -> web.Response:
        self.requests[request.path] += 1
        return web.json_response({"timezone": "UTC", "serverTime": self.now_ms, "symbols": []})

    async def _klines(self, request: web.Request) -> web.Response:
        self.requests[request.path] += 1
        query = request.query
        step = interval_ms(query["interval"])
        limit = min(int(query.get("limit", 500)), PAGE)
        start = max(int(query.get("startTime", self.listed_ms)), self.listed_ms)
        start = -(-start // step) * step
        self.kline_starts.append(start)
        end = min(int(query.get("endTime", self.now_ms)), self.now_ms - step)
        rows = []
        t = start
        while t <= end and len(rows) < limit:
            c = candle(query["symbol"], query["interval"], t)
            rows.append([t, c["o"], c["h"], c["l"], c["c"], c["v"], t + step - 1, "0", 1, "0", "0", "0"])
            t += step
        return web.json_response(rows)

    async def _funding(self, request: web.Request) -> web.Response:
        self.requests[request.path] += 1
        query = request.query
        limit = min(int(query.get("limit", 100)), 1000)
        start = max(int(query.get("startTime", self.listed_ms)), self.listed_ms)
        t = -(-start // FUNDING_STEP_MS) * FUNDING_STEP_MS
        rows = []
        while t < self.now_ms and len(rows) < limit:
            rows.append({"symbol": query["symbol"], "fundingTime": t, "fundingRate": repr(funding_rate(query["symbol"], t)), "markPrice": "1"})
            t += FUNDING_STEP_MS
        return web.json_response(rows)
