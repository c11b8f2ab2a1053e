"""Cache warming against the local fake servers: it fills L2, most recent first, gives way to
demand loads, counts apart from demand hits, and never holds up the engine's start."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from engine.data.cache import MemoryCache
from engine.data.hyperliquid import HyperliquidConfig, HyperliquidSource
from engine.data.warm import WarmConfig, Warmer, demand, remote_specs, study_file_specs
from engine.profile.caches import caches
from tests.data_remote.conftest import FAST
from tests.data_remote.server import JAN_2024_MS, CandleServer

DAY = 86_400_000
HL_SPEC = "hyperliquid:BTC,interval=1h,start=2024-01-01,end=2024-03-01"  # 60 days: two pieces of 30


@pytest.fixture
async def server(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[CandleServer]:
    candle_server = CandleServer()
    await candle_server.start()
    monkeypatch.setenv("GENESIS_HYPERLIQUID_URL", candle_server.url)
    yield candle_server
    await candle_server.stop()


def demand_source(server: CandleServer, cache_path: Path) -> HyperliquidSource:
    config = msgspec.convert({"url": server.url, **FAST}, HyperliquidConfig)
    return HyperliquidSource(config, memory=MemoryCache(), cache_path=cache_path)


async def test_warming_fills_the_cache_most_recent_first(server: CandleServer, tmp_path: Path) -> None:
    cache = tmp_path / "candles.db"
    l2_before = caches.counters("data.l2").snapshot()
    warmer = Warmer(WarmConfig(chunk_days=30), cache_path=cache)
    warmer.add([HL_SPEC, "csv:prices.csv", "synthetic:bars=100", HL_SPEC])
    progress = await warmer.run()
    assert progress.failed == {}
    assert progress.pieces_total == 2 == progress.downloaded
    starts = [request.start for request in server.requests]
    assert starts[0] == JAN_2024_MS + 30 * DAY  # the recent half first
    assert min(starts) == JAN_2024_MS
    warm = caches.counters("data.warm").snapshot()
    assert warm.misses >= 2 and warm.entries >= 2
    assert "data.warm" in {stats.name for stats in caches.snapshot()}  # the profiler's cache table
    # Warming's lookups are not demand lookups.
    assert caches.counters("data.l2").snapshot().hits == l2_before.hits
    assert caches.counters("data.l2").snapshot().misses == l2_before.misses

    sent = len(server.requests)
    source = demand_source(server, cache)
    try:
        bars = await source.fetch_candles("BTC", "1h", JAN_2024_MS, JAN_2024_MS + 60 * DAY)
    finally:
        await source.close()
    assert len(bars) == 60 * 24
    assert len(server.requests) == sent  # the demand load made no request
    assert source.cache.served.l2 == 1


async def test_a_second_warm_downloads_nothing(server: CandleServer, tmp_path: Path) -> None:
    cache = tmp_path / "candles.db"
    first = Warmer(WarmConfig(chunk_days=30), cache_path=cache)
    first.add([HL_SPEC])
    await first.run()
    sent = len(server.requests)
    hits = caches.counters("data.warm").hits
    second = Warmer(WarmConfig(chunk_days=30), cache_path=cache)
    second.add([HL_SPEC])
    progress = await second.run()
    assert len(server.requests) == sent
    assert progress.downloaded == 0 and progress.pieces_done == 2
    assert caches.counters("data.warm").hits == hits + 2


async def test_warming_waits_while_a_demand_load_runs(server: CandleServer, tmp_path: Path) -> None:
    warmer = Warmer(WarmConfig(chunk_days=30), cache_path=tmp_path / "candles.db")
    with demand():
        task = warmer.start([HL_SPEC])
        await warmer.waited.wait()  # it reached its first piece and gave way
        assert server.requests == []
        assert not task.done()
    progress = await task
    assert progress.downloaded == 2 and len(server.requests) >= 2


async def test_stop_cancels_background_warming(server: CandleServer, tmp_path: Path) -> None:
    warmer = Warmer(WarmConfig(chunk_days=1), cache_path=tmp_path / "candles.db")
    with demand():
        task = warmer.start([HL_SPEC])
        await warmer.waited.wait()
        await warmer.stop()
    assert task.cancelled()
    assert server.requests == []


async def test_engine_start_is_not_blocked_and_warms_the_stored_studies(
    server: CandleServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.runtime import Engine
    from engine.store.factory import open_study_store

    db = tmp_path / "studies.db"
    store = await open_study_store(db)
    try:
        await store.create_study("hl", f'[data]\nspecs = ["{HL_SPEC}", "synthetic:bars=50"]\n')
    finally:
        await store.close()
    monkeypatch.setenv("GENESIS_WARM", "1")
    engine = Engine(db=db, profile=False, monitor=False)
    await engine.start()
    try:
        warmer = engine.warmer
        assert warmer is not None and warmer.task is not None
        # start() returned before warming made a single request.
        assert not warmer.task.done() and server.requests == []
        progress = await warmer.task
        assert progress.failed == {} and progress.downloaded == 2
    finally:
        await engine.close()
    from engine.data.hyperliquid import default_cache_path, load_config

    sent = len(server.requests)
    source = demand_source(server, default_cache_path(load_config()))
    try:
        bars = await source.fetch_candles("BTC", "1h", JAN_2024_MS, JAN_2024_MS + 60 * DAY)
    finally:
        await source.close()
    assert len(server.requests) == sent and len(bars) == 60 * 24


async def test_warming_is_off_when_configured_off(tmp_path: Path) -> None:
    from engine.runtime import Engine

    engine = Engine(db=tmp_path / "studies.db", profile=False, monitor=False)
    await engine.start()  # GENESIS_WARM=0 in every test
    try:
        assert engine.warmer is None
    finally:
        await engine.close()


def test_spec_selection(tmp_path: Path) -> None:
    study = tmp_path / "study.toml"
    study.write_text('[data]\nspecs = ["binance:BTCUSDT", "csv:x.csv"]\n')
    broken = tmp_path / "broken.toml"
    broken.write_text("[data\n")
    assert study_file_specs([study, broken, tmp_path / "missing.toml"]) == ["binance:BTCUSDT", "csv:x.csv"]
    assert remote_specs(["binance:BTCUSDT", "csv:x.csv", "nonsense:", "ccxt:kraken:BTC/USD", "binance:BTCUSDT"]) == [
        "binance:BTCUSDT", "ccxt:kraken:BTC/USD",
    ]  # fmt: skip


async def test_a_finished_warmer_starts_again_for_study_files_queued_later(server: CandleServer, tmp_path: Path) -> None:
    study = tmp_path / "study.toml"
    study.write_text(f'name = "s"\n[data]\nspec = "{HL_SPEC}"\n')
    warmer = Warmer(WarmConfig(chunk_days=30), cache_path=tmp_path / "candles.db")
    first = warmer.start([])
    assert (await first).pieces_total == 0 and server.requests == []
    warmer.extend(study_file_specs([study]))
    assert warmer.task is not None and warmer.task is not first
    progress = await warmer.task
    assert progress.downloaded == 2
    warmer.extend(study_file_specs([study]))  # already queued once: nothing new to do
    assert warmer.task.done()


def test_engine_start_reads_the_hyperliquid_warm_coins_only_when_there_are_some() -> None:
    """The start-up warmer imports the Hyperliquid source (aiohttp: 0.4 s of every start) only when
    ``[hyperliquid] warm`` names coins; the raw peek agrees with the decoded config."""
    from engine.config import config_path
    from engine.data.hyperliquid import load_config
    from engine.data.warm import _hyperliquid_warms

    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    assert not path.exists() and not _hyperliquid_warms()
    for text, coins in (("[hyperliquid]\nwarm = []\n", []), ('[hyperliquid]\nwarm = ["BTC"]\n', ["BTC"]),
                        ("[warm]\non_start = true\n", [])):
        path.write_text(text)
        assert _hyperliquid_warms() is bool(coins) and load_config().warm == coins
