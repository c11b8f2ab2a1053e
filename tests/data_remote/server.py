"""A real aiohttp server on 127.0.0.1 that speaks Hyperliquid's candleSnapshot.

Candles are generated deterministically from (coin, interval, open time), so
any test can compute what a range must hold with :func:`expected_records`.
The server counts requests, remembers which client connections it saw, can
leave stretches without candles (``gaps``) and can be told to fail in each
way a real server fails (:class:`Fault`), optionally for one coin only.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from aiohttp import web

from engine.data.timeframes import timeframe_seconds
from engine.store.candles import RECORD_DTYPE

JAN_2024_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z


def interval_ms(interval: str) -> int:
    return timeframe_seconds(interval) * 1000


def price(coin: str, k: int) -> float:
    """The close of candle number ``k`` (open time / interval) of ``coin``."""
    base = 50.0 + zlib.crc32(coin.encode()) % 1000
    return round(base * (1.0 + 0.05 * math.sin(k / 37.0)) + 0.01 * (k % 13), 6)


def candle(coin: str, interval: str, t: int) -> dict[str, object]:
    """The candle opening at ``t`` as the exchange sends it (prices as strings)."""
    step = interval_ms(interval)
    k = t // step
    open_, close = price(coin, k - 1), price(coin, k)
    high, low = round(max(open_, close) * 1.001, 6), round(min(open_, close) * 0.999, 6)
    return {
        "t": t,
        "T": t + step - 1,
        "s": coin,
        "i": interval,
        "o": repr(open_),
        "c": repr(close),
        "h": repr(high),
        "l": repr(low),
        "v": repr(float(1 + k % 17)),
        "n": int(k % 50),
    }


def expected_records(
    coin: str, interval: str, start: int, end: int, gaps: list[tuple[int, int]] = ()  # type: ignore[assignment]
) -> np.ndarray:
    """What a correct client must hold for ``[start, end)``: the slow, obvious reference."""
    step = interval_ms(interval)
    first = -(-start // step) * step
    rows = []
    for t in range(first, end, step):
        if any(lo <= t < hi for lo, hi in gaps):
            continue
        c = candle(coin, interval, t)
        rows.append((t, float(c["o"]), float(c["h"]), float(c["l"]), float(c["c"]), float(c["v"])))
    return np.array(rows, dtype=RECORD_DTYPE)


def funding_rate(t: int) -> float:
    """The funding rate of the event at ``t`` (ms), positive and negative in turn."""
    return round(0.00001 * ((t // 3_600_000) % 5 - 2), 8)


@dataclass
class Fault:
    """One way to fail, used for the next ``times`` matching requests.

    kind: ``status`` (answer ``status`` with an optional ``Retry-After``),
    ``slow`` (wait ``delay_s`` then answer normally), ``truncate`` (promise a
    longer body than sent, then drop the connection), ``malformed`` (a cut-off
    JSON body with a correct length), ``oversize`` (a valid body of ``size``
    bytes, with a Content-Length), ``oversize_chunked`` (the same, chunked, no
    length), ``mutate`` (pass the candle list through ``mutate``).
    """

    kind: str
    times: int = 1
    coin: str | None = None
    status: int = 500
    retry_after: str | None = None
    delay_s: float = 0.0
    size: int = 0
    mutate: Callable[[list[dict[str, object]]], list[dict[str, object]]] | None = None


@dataclass
class Request:
    coin: str
    interval: str
    start: int
    end: int
    returned: int
    at: float
    peer: tuple[str, int] | None


@dataclass
class CandleServer:
    """The server; ``await start()`` gives its base URL."""

    max_per_response: int = 5000
    available: tuple[int, int] = (JAN_2024_MS, JAN_2024_MS + 400 * 86_400_000)
    gaps: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    funding_requests: list[tuple[str, int, int]] = field(default_factory=list)
    peers: set[tuple[str, int]] = field(default_factory=set)
    active: int = 0
    max_active: int = 0
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail(self, kind: str, **kwargs: object) -> Fault:
        fault = Fault(kind, **kwargs)  # type: ignore[arg-type]
        self.faults.append(fault)
        return fault

    def _take_fault(self, coin: str) -> Fault | None:
        for fault in self.faults:
            if fault.times > 0 and (fault.coin is None or fault.coin == coin):
                fault.times -= 1
                if fault.times == 0:
                    self.faults.remove(fault)
                return fault
        return None

    def _funding(self, coin: str, start: int, end: int) -> web.Response:
        """fundingHistory: hourly events in ``[start, end]`` (at most 500), rates as strings."""
        self.funding_requests.append((coin, start, end))
        hour = 3_600_000
        lo, hi = max(start, self.available[0]), min(end, self.available[1] - 1)
        rows = [
            {"coin": coin, "fundingRate": repr(funding_rate(t)), "premium": "0.0", "time": t}
            for t in range(-(-lo // hour) * hour, hi + 1, hour)
        ][:500]
        return web.json_response(rows)

    def candles(self, coin: str, interval: str, start: int, end: int) -> list[dict[str, object]]:
        step = interval_ms(interval)
        lo = max(start, self.available[0])
        hi = min(end, self.available[1] - 1)
        first = -(-lo // step) * step
        out: list[dict[str, object]] = []
        for t in range(first, hi + 1, step):
            if any(a <= t < b for a, b in self.gaps.get(coin, ())):
                continue
            out.append(candle(coin, interval, t))
            if len(out) >= self.max_per_response:
                break
        return out

    async def handle(self, request: web.Request) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if peer:
            self.peers.add(tuple(peer[:2]))
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            return await self._answer(request, peer)
        finally:
            self.active -= 1

    async def _answer(self, request: web.Request, peer: object) -> web.StreamResponse:
        try:
            payload = json.loads(await request.read())
            if payload.get("type") == "fundingHistory":
                return self._funding(str(payload["coin"]), int(payload["startTime"]), int(payload["endTime"]))
            req = payload["req"]
            coin, interval = str(req["coin"]), str(req["interval"])
            start, end = int(req["startTime"]), int(req["endTime"])
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": "bad request"}, status=400)
        if payload.get("type") != "candleSnapshot":
            return web.json_response({"error": "unknown type"}, status=400)
        fault = self._take_fault(coin)
        rows = [] if fault is not None and fault.kind == "status" else self.candles(coin, interval, start, end)
        self.requests.append(Request(coin, interval, start, end, len(rows), time.monotonic(), peer))  # type: ignore[arg-type]
        if fault is None:
            return web.json_response(rows)
        if fault.kind == "status":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            return web.json_response({"error": f"status {fault.status}"}, status=fault.status, headers=headers)
        if fault.kind == "slow":
            await asyncio.sleep(fault.delay_s)
            return web.json_response(rows)
        if fault.kind == "mutate":
            assert fault.mutate is not None
            return web.json_response(fault.mutate(rows))
        body = json.dumps(rows).encode()
        if fault.kind == "malformed":
            cut = body[: max(1, len(body) // 2)]
            return web.Response(body=cut, content_type="application/json")
        if fault.kind == "truncate":
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            response.content_length = len(body)
            await response.prepare(request)
            await response.write(body[: len(body) // 2])
            request.transport.close()  # type: ignore[union-attr]
            return response
        if fault.kind in ("oversize", "oversize_chunked"):
            padded = b" " * max(0, fault.size - len(body)) + body
            if fault.kind == "oversize":
                return web.Response(body=padded, content_type="application/json")
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            for i in range(0, len(padded), 65536):
                await response.write(padded[i:i + 65536])
            await response.write_eof()
            return response
        raise AssertionError(f"unknown fault {fault.kind}")

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/info", self.handle)
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


class ThreadedCandleServer:
    """The same server on its own event loop in a thread (for CLI tests in a subprocess)."""

    def __init__(self, server: CandleServer | None = None) -> None:
        self.server = server or CandleServer()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="candle-server", daemon=True)

    def __enter__(self) -> CandleServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(timeout=10)
        return self.server

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
