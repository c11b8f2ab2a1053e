"""Fixtures of the remote market-data tests: a live candle server and sources pointed at it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from engine.data.cache import MemoryCache
from engine.data.hyperliquid import HyperliquidConfig, HyperliquidSource
from engine.store.candles import RECORD_DTYPE, CandleStore, SeriesKey
from tests.data_remote.server import CandleServer, ThreadedCandleServer

FAST = {
    "retries": 2,
    "backoff_base_s": 0.01,
    "backoff_max_s": 0.02,
    "connect_timeout_s": 2.0,
    "read_timeout_s": 5.0,
    "weight_per_minute": 1e9,
    "max_connections": 4,
}


@pytest.fixture
async def server() -> AsyncIterator[CandleServer]:
    """A candle server on an ephemeral port of 127.0.0.1."""
    candle_server = CandleServer()
    await candle_server.start()
    yield candle_server
    await candle_server.stop()


@pytest.fixture
def cache_path(tmp_path: Path) -> Path:
    return tmp_path / "candles.db"


@pytest.fixture
async def make_source(
    server: CandleServer, cache_path: Path
) -> AsyncIterator[Callable[..., HyperliquidSource]]:
    """Build sources on the server and one cache file; all are closed at the end."""
    made: list[HyperliquidSource] = []

    def build(*, memory: MemoryCache | None = None, **overrides: Any) -> HyperliquidSource:
        config = msgspec.convert({"url": server.url, **FAST, **overrides}, HyperliquidConfig)
        source = HyperliquidSource(config, memory=memory or MemoryCache(), cache_path=cache_path)
        made.append(source)
        return source

    yield build
    for source in made:
        await source.close()


async def candle_rows(store: CandleStore) -> list[tuple[str, str, str, int, bytes]]:
    """Every stored candle, one tuple each (series, open time, record bytes), in key order."""
    chunks = await store.conn.execute_fetchall(
        "SELECT source, symbol, interval, data FROM candle_chunks ORDER BY source, symbol, interval, chunk_ms"
    )
    return [
        (source, symbol, interval, int(record["t"]), record.tobytes())
        for source, symbol, interval, data in chunks
        for record in np.frombuffer(data, dtype=RECORD_DTYPE)
    ]


async def l2_snapshot(source: HyperliquidSource) -> tuple[list[Any], list[Any]]:
    """Every stored candle row and coverage row, to prove a failure changed nothing."""
    await source.open()
    conn = source.store.conn
    candles = await candle_rows(source.store)
    coverage = await conn.execute_fetchall("SELECT * FROM coverage ORDER BY source, symbol, interval, start_ms")
    return list(candles), list(coverage)


def assert_matches(bars: Any, expected: np.ndarray) -> None:
    """``bars`` hold exactly the expected records."""
    assert len(bars) == expected.shape[0]
    np.testing.assert_array_equal(bars.ts, expected["t"] * 1_000_000)
    for name in ("open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(getattr(bars, name), expected[name])


def key(coin: str = "BTC", interval: str = "1m") -> SeriesKey:
    return SeriesKey("hyperliquid", coin, interval)


@pytest.fixture
def live() -> Iterator[CandleServer]:
    """A candle server on a thread of its own, for commands run in a subprocess."""
    with ThreadedCandleServer() as candle_server:
        yield candle_server


def genesis(server: CandleServer, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the ``genesis`` command in a subprocess pointed at ``server``."""
    env = dict(os.environ, GENESIS_HYPERLIQUID_URL=server.url)
    return subprocess.run(
        [sys.executable, "-m", "genesis_tui.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
