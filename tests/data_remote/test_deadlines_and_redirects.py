"""Deadlines and redirects against real aiohttp servers on 127.0.0.1.

A server that trickles one byte at a time never trips the per-read timeout; the
total deadline of a request (``request_timeout_s``) and of a whole fetch
(``fetch_timeout_s``) end it with one clear line. A redirect is followed only
within the same scheme, host and port; any other is refused, not retried.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import msgspec
import pytest
from aiohttp import web

from engine.data.cache import MemoryCache
from engine.data.http import (
    MAX_REDIRECTS,
    DeadlineError,
    HttpConfig,
    HttpService,
    RedirectRefusedError,
)
from engine.data.hyperliquid import HyperliquidConfig, HyperliquidSource
from engine.errors import NetworkError
from tests.data_remote.conftest import FAST
from tests.data_remote.server import JAN_2024_MS, ThreadedCandleServer

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class TinyServer:
    """One aiohttp app on an ephemeral port of 127.0.0.1 with the given POST/GET routes."""

    def __init__(self, routes: dict[str, Handler]) -> None:
        self.routes = routes
        self.hits: list[str] = []
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> str:
        app = web.Application()
        for path, handler in self.routes.items():
            app.router.add_route("*", path, self._counted(path, handler))
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _counted(self, path: str, handler: Handler) -> Handler:
        async def counted(request: web.Request) -> web.StreamResponse:
            self.hits.append(f"{request.method} {path}")
            return await handler(request)

        return counted


async def trickle(request: web.Request) -> web.StreamResponse:
    """A 200 whose JSON body never ends: one byte every 50 ms, far under any read timeout."""
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    await response.write(b"[")
    while True:  # until the client gives up (the write fails) or the server stops
        await asyncio.sleep(0.05)
        await response.write(b" ")


async def empty_list(request: web.Request) -> web.StreamResponse:
    return web.json_response([])


def redirect_to(location: Callable[[], str], status: int = 307) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, headers={"Location": location()})

    return handler


@pytest.fixture
async def tiny() -> AsyncIterator[Callable[[dict[str, Handler]], Awaitable[TinyServer]]]:
    started: list[TinyServer] = []

    async def make(routes: dict[str, Handler]) -> TinyServer:
        server = TinyServer(routes)
        await server.start()
        started.append(server)
        return server

    yield make
    for server in started:
        await server.stop()


def _source(url: str, tmp_path: Path, **overrides: object) -> HyperliquidSource:
    config = msgspec.convert({"url": url, **FAST, **overrides}, HyperliquidConfig)
    return HyperliquidSource(config, memory=MemoryCache(), cache_path=tmp_path / "candles.db")


RANGE = (JAN_2024_MS, JAN_2024_MS + 10 * 3_600_000)


async def test_trickling_server_hits_the_request_deadline(tiny, tmp_path: Path) -> None:
    server = await tiny({"/info": trickle})
    async with _source(server.url, tmp_path, request_timeout_s=0.5, retries=1) as source:
        with pytest.raises(DeadlineError) as error:
            await asyncio.wait_for(source.fetch_candles("BTC", "1h", *RANGE), timeout=60)
    assert str(error.value) == (
        "hyperliquid BTC 1h: no complete answer within 0.5s (request deadline), after 2 attempts"
    )
    assert server.hits == ["POST /info", "POST /info"]  # a deadline is retried like a read timeout


async def test_trickling_server_hits_the_fetch_deadline(tiny, tmp_path: Path) -> None:
    server = await tiny({"/info": trickle})
    async with _source(server.url, tmp_path, request_timeout_s=30.0, fetch_timeout_s=0.5, retries=4) as source:
        with pytest.raises(DeadlineError) as error:
            await asyncio.wait_for(source.fetch_candles("BTC", "1h", *RANGE), timeout=60)
    message = str(error.value)
    assert message.startswith("hyperliquid BTC 1h: not finished within the fetch deadline of 0.5s")
    assert "fetch_timeout_s" in message and "\n" not in message
    assert len(server.hits) == 1  # stopped, not retried past the deadline


async def test_backoff_never_sleeps_past_the_fetch_deadline(tiny, tmp_path: Path) -> None:
    async def unavailable(request: web.Request) -> web.StreamResponse:
        return web.Response(status=503, headers={"Retry-After": "30"})

    server = await tiny({"/info": unavailable})
    async with _source(server.url, tmp_path, fetch_timeout_s=5.0, max_retry_after_s=60.0) as source:
        with pytest.raises(DeadlineError, match=r"fetch deadline of 5s .*\(last: HTTP 503\)"):
            await asyncio.wait_for(source.fetch_candles("BTC", "1h", *RANGE), timeout=60)
    assert server.hits == ["POST /info"]  # a 30 s wait would end past the deadline: not taken


async def test_cross_origin_redirect_is_refused(tiny, tmp_path: Path) -> None:
    elsewhere = await tiny({"/info": empty_list})
    server = await tiny({"/info": redirect_to(lambda: f"{elsewhere.url}/info")})
    async with _source(server.url, tmp_path) as source:
        with pytest.raises(RedirectRefusedError) as error:
            await source.fetch_candles("BTC", "1h", *RANGE)
    assert str(error.value) == (
        f"hyperliquid BTC 1h: HTTP 307 redirect from {server.url} to {elsewhere.url} refused "
        "(only redirects within the same scheme, host and port are followed)"
    )
    assert isinstance(error.value, NetworkError) and error.value.exit_code == 1
    assert server.hits == ["POST /info"]  # not retried
    assert elsewhere.hits == []  # never contacted


async def test_same_origin_redirect_is_followed(tiny) -> None:
    holder: list[TinyServer] = []
    server = await tiny({"/info": redirect_to(lambda: "/v2/info", 308), "/v2/info": empty_list})
    holder.append(server)
    async with HttpService(HttpConfig(retries=0)) as http:
        body = await http.post_json(f"{server.url}/info", {"type": "candleSnapshot"}, what="probe")
    assert body == b"[]"
    assert server.hits == ["POST /info", "POST /v2/info"]  # 308 keeps the method


async def test_redirect_loop_is_refused(tiny) -> None:
    server = await tiny({"/info": redirect_to(lambda: "/info")})
    async with HttpService(HttpConfig(retries=0)) as http:
        with pytest.raises(RedirectRefusedError, match=f"probe: more than {MAX_REDIRECTS} redirects"):
            await http.post_json(f"{server.url}/info", {}, what="probe")
    assert len(server.hits) == MAX_REDIRECTS + 1


def test_data_fetch_against_a_trickling_server_exits_1_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[hyperliquid]\nrequest_timeout_s = 0.5\nretries = 0\n")
    with ThreadedCandleServer(TinyServer({"/info": trickle})) as server:  # type: ignore[arg-type]
        env = dict(os.environ, GENESIS_HYPERLIQUID_URL=server.url, GENESIS_CONFIG=str(config))
        result = subprocess.run(
            [sys.executable, "-m", "genesis_tui.cli", "data", "fetch", "hyperliquid:BTC,interval=1h",
             "--cache", str(tmp_path / "c.db")],
            capture_output=True, text=True, env=env, timeout=120, check=False,
        )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "genesis: hyperliquid:BTC,interval=1h: hyperliquid BTC 1h: "
        "no complete answer within 0.5s (request deadline), after 1 attempt"
    ]


async def test_redirect_to_an_invalid_location_is_refused(tiny) -> None:
    server = await tiny({"/info": redirect_to(lambda: "http://[bad")})
    async with HttpService(HttpConfig(retries=0)) as http:
        with pytest.raises(RedirectRefusedError, match="to an invalid Location refused"):
            await http.post_json(f"{server.url}/info", {}, what="probe")
