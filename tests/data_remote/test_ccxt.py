"""The ``ccxt:`` source against a fake Binance API on 127.0.0.1 (needs the ``ccxt`` extra)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import msgspec
import numpy as np
import pytest

pytest.importorskip("ccxt", reason="the ccxt source's tests need the ccxt extra: pip install -e '.[ccxt]'")

from engine.data.cache import MemoryCache
from engine.data.ccxt_source import CcxtConfig, CcxtSource, is_perpetual, redirect_urls
from engine.errors import DataError
from tests.data_remote.fake_exchange import FUNDING_STEP_MS, FakeExchange, funding_rate
from tests.data_remote.server import JAN_2024_MS, expected_records, interval_ms

DAY = 86_400_000


@pytest.fixture
async def exchange() -> AsyncIterator[FakeExchange]:
    fake = FakeExchange()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def make_source(exchange: FakeExchange, tmp_path: Path) -> AsyncIterator[Callable[[], CcxtSource]]:
    made: list[CcxtSource] = []

    def build() -> CcxtSource:
        config = msgspec.convert({"api_url": exchange.url}, CcxtConfig)
        source = CcxtSource("binance", config, memory=MemoryCache(), cache_path=tmp_path / "candles.db")
        made.append(source)
        return source

    yield build
    for source in made:
        await source.close()


async def test_pages_a_long_range_then_serves_it_from_the_cache(
    exchange: FakeExchange, make_source: Callable[[], CcxtSource]
) -> None:
    start, end = JAN_2024_MS, JAN_2024_MS + 90 * DAY  # 2160 hourly candles: three pages of 1000
    bars = await make_source().fetch_candles("BTC/USDT", "1h", start, end, now=exchange.now_ms)
    expected = expected_records("BTCUSDT", "1h", start, end)
    assert len(bars) == 2160 == expected.shape[0]
    np.testing.assert_array_equal(bars.ts, expected["t"] * 1_000_000)
    np.testing.assert_array_equal(bars.close, expected["close"])
    # Paged forward from start, each page right after the last candle of the one before.
    assert exchange.kline_starts == [start, start + 1000 * interval_ms("1h"), start + 2000 * interval_ms("1h")]
    assert "funding" not in bars.meta  # spot: no funding

    before = exchange.data_requests()
    again = await make_source().fetch_candles("BTC/USDT", "1h", start, end, now=exchange.now_ms)  # fresh L1
    assert exchange.data_requests() == before
    assert exchange.requests["/api/v3/exchangeInfo"] == 1  # a cache hit does not even load markets
    np.testing.assert_array_equal(again.close, bars.close)

    longer = await make_source().fetch_candles("BTC/USDT", "1h", start, end + 10 * DAY, now=exchange.now_ms)
    assert len(longer) == 2400
    assert exchange.kline_starts[-1] == end  # only the missing tail was asked for


async def test_a_perpetual_carries_its_funding(exchange: FakeExchange, make_source: Callable[[], CcxtSource]) -> None:
    start, end = JAN_2024_MS + 5 * DAY, JAN_2024_MS + 65 * DAY
    bars = await make_source().fetch_candles("BTC/USDT:USDT", "4h", start, end, now=exchange.now_ms)
    assert len(bars) == 60 * 6
    funding = bars.meta["funding"]
    times = np.arange(start, end, FUNDING_STEP_MS)
    np.testing.assert_array_equal(funding.ts, times * 1_000_000)  # type: ignore[attr-defined]
    np.testing.assert_allclose(funding.rate, [funding_rate("BTCUSDT", int(t)) for t in times])  # type: ignore[attr-defined]
    assert exchange.requests["/fapi/v1/fundingRate"] >= 2  # 180 events: pages of 100

    before = exchange.data_requests()
    again = await make_source().fetch_candles("BTC/USDT:USDT", "4h", start, end, now=exchange.now_ms)
    assert exchange.data_requests() == before
    np.testing.assert_array_equal(again.meta["funding"].rate, funding.rate)  # type: ignore[attr-defined]


async def test_bad_symbol_and_interval_are_one_line_errors(make_source: Callable[[], CcxtSource]) -> None:
    source = make_source()
    with pytest.raises(DataError, match=r"DOGE/USDT: unknown symbol on binance"):
        await source.fetch_candles("DOGE/USDT", "1h", JAN_2024_MS, JAN_2024_MS + DAY)
    with pytest.raises(DataError, match=r"interval '7m' not offered"):
        await source.fetch_candles("BTC/USDT", "7m", JAN_2024_MS, JAN_2024_MS + DAY)
    with pytest.raises(DataError, match=r"unknown exchange 'nosuchx'"):
        CcxtSource("nosuchx")
    without = CcxtSource("coinspot", CcxtConfig(api_url="http://127.0.0.1:9"), memory=MemoryCache(), cache_path=source.store.path)
    try:
        with pytest.raises(DataError, match=r"exchange coinspot has no OHLCV history"):
            await without.fetch_candles("BTC/AUD", "1h", JAN_2024_MS, JAN_2024_MS + DAY)
    finally:
        await without.close()


def test_helpers() -> None:
    assert is_perpetual("BTC/USDT:USDT") and not is_perpetual("BTC/USDT") and not is_perpetual("BTC/USD:BTC-250328")
    urls = {"public": "https://api.binance.com/api/v3", "list": ["https://fapi.binance.com/fapi/v1"]}
    assert redirect_urls(urls, "http://127.0.0.1:9") == {
        "public": "http://127.0.0.1:9/api/v3", "list": ["http://127.0.0.1:9/fapi/v1"],
    }  # fmt: skip


def test_backtest_cli_against_the_fake_exchange(tmp_path: Path) -> None:
    """``genesis backtest --data ccxt:...`` in a subprocess; bad specs exit 2 in one line."""
    fake = FakeExchange()
    loop = asyncio.new_event_loop()
    import threading

    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(fake.start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait()
    try:
        env = {
            **os.environ, "GENESIS_CCXT_API_URL": fake.url, "XDG_CACHE_HOME": str(tmp_path / "cache"),
            "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_DATA_HOME": str(tmp_path / "data"),
        }  # fmt: skip

        def genesis(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "genesis_tui.cli", *args], env=env, capture_output=True, text=True, timeout=240
            )

        spec = "ccxt:binance:BTC/USDT,interval=1h,start=2024-01-01,end=2024-01-15"
        ok = genesis("data", "fetch", spec)
        assert ok.returncode == 0, ok.stderr
        served = fake.data_requests()
        assert served == 1
        again = genesis("data", "fetch", spec)
        assert again.returncode == 0, again.stderr
        assert fake.data_requests() == served  # the second process read the SQLite cache
        backtest = genesis("backtest", "--strategy", "sma_cross", "--data", spec)
        assert backtest.returncode == 0, backtest.stderr
        assert fake.data_requests() == served

        eth = "ccxt:binance:ETH/USDT,interval=1d,start=2024-01-01,end=2024-03-01"
        warmed = genesis("data", "warm", eth, "--json", "--progress")
        assert warmed.returncode == 0, warmed.stderr
        assert json.loads(warmed.stdout)["downloaded"] == 2
        assert "2/2 pieces" in warmed.stderr
        served = fake.data_requests()
        fetched = genesis("data", "fetch", eth)
        assert fetched.returncode == 0 and fake.data_requests() == served
        bad_warm = genesis("data", "warm", "ccxt:binance")
        assert bad_warm.returncode == 2 and len(bad_warm.stderr.strip().splitlines()) == 1
        for bad, words in (
            ("ccxt:nosuchx:BTC/USDT", "unknown exchange 'nosuchx'"),
            ("ccxt:binance:DOGE/USDT,start=2024-01-01,end=2024-01-02", "unknown symbol on binance"),
            ("ccxt:binance", "expected ccxt:EXCHANGE:SYMBOL"),
            ("ccxt:coinspot:BTC/AUD,start=2024-01-01,end=2024-01-02", "exchange coinspot has no OHLCV history"),
        ):
            result = genesis("backtest", "--strategy", "sma_cross", "--data", bad)
            assert result.returncode == 2, result.stderr
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and words in lines[0], result.stderr
    finally:
        asyncio.run_coroutine_threadsafe(fake.stop(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()


async def test_warming_a_ccxt_spec_fills_the_cache_most_recent_first(
    exchange: FakeExchange, make_source: Callable[[], CcxtSource], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.data.warm import WarmConfig, Warmer

    monkeypatch.setenv("GENESIS_CCXT_API_URL", exchange.url)
    warmer = Warmer(WarmConfig(chunk_days=30), cache_path=tmp_path / "candles.db")
    warmer.add(["ccxt:binance:BTC/USDT:USDT,interval=4h,start=2024-01-01,end=2024-03-01"])
    progress = await warmer.run()
    assert progress.failed == {} and progress.downloaded == 2
    assert exchange.kline_starts[0] == JAN_2024_MS + 30 * DAY  # the recent piece first
    assert JAN_2024_MS in exchange.kline_starts
    sent = exchange.data_requests()
    bars = await make_source().fetch_candles("BTC/USDT:USDT", "4h", JAN_2024_MS, JAN_2024_MS + 60 * DAY)
    assert len(bars) == 60 * 6 and len(bars.meta["funding"]) == 60 * 3  # type: ignore[arg-type]
    assert exchange.data_requests() == sent  # candles and funding were both warmed


async def test_paging_reports_progress_per_page(exchange: FakeExchange, tmp_path: Path) -> None:
    from engine.load_progress import LoadProgress

    reports: list[LoadProgress] = []
    config = msgspec.convert({"api_url": exchange.url}, CcxtConfig)
    source = CcxtSource("binance", config, memory=MemoryCache(), cache_path=tmp_path / "c.db", progress=reports.append)
    try:
        await source.fetch_candles("BTC/USDT", "1h", JAN_2024_MS, JAN_2024_MS + 90 * DAY, now=exchange.now_ms)
    finally:
        await source.close()
    assert [r.done for r in reports] == [0, 1, 2, 3, 3]  # the start, each page, the end
    assert reports[-1].total == 3 == len(exchange.kline_starts)
    assert {(r.symbol, r.unit) for r in reports} == {("BTC/USDT", "pages")}
