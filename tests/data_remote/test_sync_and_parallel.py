"""``engine.data.load("hyperliquid:...")``, parallel loads of several coins, and cache warming."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

import engine.data.hyperliquid as hyperliquid
from engine.data import load
from engine.errors import DataError
from engine.paths import cache_dir
from tests.data_remote.conftest import assert_matches
from tests.data_remote.server import (
    JAN_2024_MS,
    CandleServer,
    ThreadedCandleServer,
    expected_records,
)

HOUR = 3_600_000


@pytest.fixture
def threaded_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[CandleServer]:
    """A candle server on its own thread, named by GENESIS_HYPERLIQUID_URL, and a fresh L1."""
    monkeypatch.setattr(hyperliquid, "_SHARED_MEMORY", None)
    with ThreadedCandleServer() as server:
        monkeypatch.setenv("GENESIS_HYPERLIQUID_URL", server.url)
        yield server


def test_load_dispatches_to_the_exchange_and_caches(threaded_server: CandleServer) -> None:
    spec = "hyperliquid:BTC,interval=1h,start=2024-01-01,end=2024-01-11"
    bars = load(spec)
    start, end = JAN_2024_MS, JAN_2024_MS + 240 * HOUR
    assert_matches(bars, expected_records("BTC", "1h", start, end))
    assert len(threaded_server.requests) == 1
    assert (cache_dir() / "candles.db").exists()
    assert load(spec) is bars  # L1, no loop, no request
    hyperliquid._SHARED_MEMORY = None
    again = load(spec)  # L2 in a fresh process memory
    assert again is not bars and len(threaded_server.requests) == 1
    assert_matches(again, expected_records("BTC", "1h", start, end))


def test_load_from_inside_a_running_loop(threaded_server: CandleServer) -> None:
    async def inside() -> int:
        return len(load("hyperliquid:ETH,interval=4h,start=2024-01-01,end=2024-01-05"))

    assert asyncio.run(inside()) == 24


def test_bad_spec_is_one_line(threaded_server: CandleServer) -> None:
    with pytest.raises(DataError, match=r"^data spec 'hyperliquid:BTC': interval '2m': expected one of"):
        load("hyperliquid:BTC,interval=2m")
    assert threaded_server.requests == []


async def test_fetch_many_reports_which_failed_and_why(server, make_source) -> None:
    source = make_source(concurrency=3)
    server.fail("status", status=500, coin="BAD", times=100)
    server.fail("mutate", coin="UGLY", mutate=lambda rows: rows[::-1])
    start, end = JAN_2024_MS, JAN_2024_MS + 24 * HOUR
    coins = ["BTC", "BAD", "ETH", "UGLY", "SOL"]
    result = await source.fetch_many(coins, "1h", start, end)
    assert list(result.loaded) == ["BTC", "ETH", "SOL"]
    for coin in result.loaded:
        assert_matches(result.loaded[coin], expected_records(coin, "1h", start, end))
    assert result.failed["BAD"].error_type == "NetworkError"
    assert result.failed["BAD"].message == "hyperliquid BAD 1h: HTTP 500 ({\"error\": \"status 500\"}), after 3 attempts"
    assert result.failed["UGLY"].error_type == "DataError"
    assert "candles out of order" in result.failed["UGLY"].message
    assert result.failed["UGLY"].exit_code == 2


async def test_cache_warming_runs_in_the_background(server, make_source) -> None:
    now = time.time_ns() // 1_000_000
    server.available = (now - 100 * 86_400_000, now)
    source = make_source(warm=["BTC", "ETH"], warm_interval="1d", warm_candles=30)
    task = source.start_warming()
    result = await task
    assert result.ok and sorted(result.loaded) == ["BTC", "ETH"]
    assert {r.coin for r in server.requests} == {"BTC", "ETH"}
    assert all(r.interval == "1d" for r in server.requests)
    assert all(len(bars) in (29, 30) for bars in result.loaded.values())
