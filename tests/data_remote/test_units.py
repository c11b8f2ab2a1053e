"""The parts on their own: gap arithmetic, Retry-After, the rate limiter, L1, parallel loads, options."""

from __future__ import annotations

import asyncio
import itertools
import types
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.data import http as http_module
from engine.data.bars import Bars
from engine.data.cache import MemoryCache, missing_ranges
from engine.data.http import WeightedRateLimiter, parse_retry_after
from engine.data.hyperliquid import load_config, parse_candles, parse_options
from engine.data.multi import load_many
from engine.errors import ConfigError, DataError, NetworkError
from engine.store.candles import SeriesKey

# ---------------------------------------------------------------- gaps


def _covered_ranges(draw_ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, disjoint, non-adjacent ranges from arbitrary ones (as coverage is stored)."""
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted((min(a, b), max(a, b) + 1) for a, b in draw_ranges):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 60), st.integers(0, 60)), max_size=6),
    st.integers(0, 60),
    st.integers(1, 30),
)
def test_missing_ranges_match_a_point_by_point_reference(ranges, start, length) -> None:
    covered = _covered_ranges(ranges)
    end = start + length
    gaps = missing_ranges(covered, start, end)
    points = {p for lo, hi in gaps for p in range(lo, hi)}
    reference = {p for p in range(start, end) if not any(lo <= p < hi for lo, hi in covered)}
    assert points == reference
    # gaps are sorted, disjoint, non-empty and maximal (never two touching)
    assert all(lo < hi for lo, hi in gaps)
    assert all(a[1] < b[0] for a, b in itertools.pairwise(gaps))


# ---------------------------------------------------------------- http helpers


def test_retry_after_seconds_and_http_dates() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(" 0.25 ") == 0.25
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = 1_700_000_000.0
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:30 GMT", now=now) == pytest.approx(10.0)
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:00 GMT", now=now) == 0.0


async def test_rate_limiter_waits_only_beyond_its_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    # The limiter's clock moves only when it sleeps: the refill it waits for is exact on any machine.
    now = [0.0]

    async def sleep(delay: float) -> None:
        now[0] += delay + 1e-9  # a sleep ends at its deadline or just after, never before
        await asyncio.sleep(0)

    monkeypatch.setattr(http_module, "time", types.SimpleNamespace(monotonic=lambda: now[0]))
    monkeypatch.setattr(http_module, "asyncio", types.SimpleNamespace(sleep=sleep, Lock=asyncio.Lock))
    limiter = WeightedRateLimiter(weight_per_minute=6_000)  # 100 per second
    for _ in range(6):
        await limiter.acquire(1_000)  # the burst: a minute's worth at once
    assert limiter.waited_s == 0.0
    await limiter.acquire(80)  # over budget: waits for 0.8 s of refill
    assert limiter.waited_s == pytest.approx(0.8)
    limiter.charge(50)  # weight reported after the fact delays the next caller
    await limiter.acquire(1)  # 51 tokens short: 0.51 s more
    assert limiter.waited_s == pytest.approx(0.8 + 0.51)


# ---------------------------------------------------------------- L1


def _bars(n: int, start_ms: int = 0, step_ms: int = 60_000) -> Bars:
    ts = (start_ms + step_ms * np.arange(n, dtype=np.int64)) * 1_000_000
    close = 100.0 + np.arange(n, dtype=np.float64)
    return Bars(ts, close, close + 1, close - 1, close, np.ones(n))


def test_memory_cache_is_lru_under_a_byte_budget() -> None:
    one = _bars(100)
    cache = MemoryCache(max_bytes=one.nbytes * 2 + 10, counters_name="test.l1.lru")
    keys = [SeriesKey("x", f"S{i}", "1m") for i in range(3)]
    cache.put(keys[0], 0, 6_000_000, one, now=10**13)
    cache.put(keys[1], 0, 6_000_000, one, now=10**13)
    assert cache.get(keys[0], 0, 6_000_000) is one  # keys[0] is now the most recent
    cache.put(keys[2], 0, 6_000_000, one, now=10**13)
    assert cache.get(keys[1], 0, 6_000_000) is None  # the least recent went
    assert cache.get(keys[0], 0, 6_000_000) is one
    assert len(cache) == 2 and cache.nbytes == 2 * one.nbytes
    stats = cache.counters.snapshot()
    assert (stats.hits, stats.misses, stats.evictions, stats.entries) == (2, 1, 1, 2)
    assert stats.bytes == 2 * one.nbytes


def test_memory_cache_ttl_depends_on_recency() -> None:
    clock = [0.0]
    cache = MemoryCache(immutable_ttl_s=1_000.0, clock=lambda: clock[0], counters_name="test.l1.ttl")
    key = SeriesKey("x", "S", "1m")
    now_ms = 10**12
    past, live = _bars(10, now_ms - 3_600_000), _bars(10, now_ms - 9 * 60_000)
    cache.put(key, now_ms - 3_600_000, now_ms - 3_000_000, past, now=now_ms)  # ended long ago
    cache.put(key, now_ms - 9 * 60_000, now_ms + 60_000, live, now=now_ms)  # touches the current candle
    clock[0] = 61.0  # one interval later
    assert cache.get(key, now_ms - 9 * 60_000, now_ms + 60_000) is None
    assert cache.get(key, now_ms - 3_600_000, now_ms - 3_000_000) is past
    clock[0] = 1_001.0
    assert cache.get(key, now_ms - 3_600_000, now_ms - 3_000_000) is None
    assert len(cache) == 0


def test_memory_cache_serves_a_slice_of_a_covering_entry() -> None:
    cache = MemoryCache(counters_name="test.l1.slice")
    key = SeriesKey("x", "S", "1m")
    bars = _bars(100)
    cache.put(key, 0, 100 * 60_000, bars, now=10**13)
    inner = cache.get(key, 10 * 60_000, 20 * 60_000)
    assert inner is not None and len(inner) == 10
    np.testing.assert_array_equal(inner.close, bars.close[10:20])
    assert cache.get(key, 50 * 60_000, 200 * 60_000) is None  # not covered


# ---------------------------------------------------------------- parallel loads


async def test_load_many_bounds_concurrency_and_isolates_failures() -> None:
    running = 0
    peak = 0
    full = asyncio.Event()  # held until three loads run at once: a slow loop cannot finish one early

    async def load(key: str) -> str:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        if running == 3:
            full.set()
        await asyncio.wait_for(full.wait(), timeout=60)
        running -= 1
        if key.startswith("bad"):
            raise NetworkError(f"{key}: HTTP 500 after 3 attempts")
        if key == "worse":
            raise ValueError("boom")
        return key.lower()

    keys = ["A", "bad1", "B", "worse", "C", "D", "bad2", "E"]
    result = await load_many(keys, load, concurrency=3)
    assert peak == 3
    assert list(result.loaded) == ["A", "B", "C", "D", "E"]
    assert result.loaded["C"] == "c"
    assert list(result.failed) == ["bad1", "worse", "bad2"]
    assert result.failed["bad1"].error_type == "NetworkError" and result.failed["bad1"].exit_code == 1
    assert result.failed["worse"].message == "boom"
    assert not result.ok
    assert result.summary().startswith("5 loaded, 3 failed: bad1: bad1: HTTP 500")
    with pytest.raises(NetworkError.__mro__[1], match="bad1: HTTP 500"):
        result.raise_for_failures()


async def test_load_many_is_cancelled_as_a_whole() -> None:
    started = asyncio.Event()

    async def load(key: str) -> str:
        started.set()
        await asyncio.sleep(10)
        return key

    task = asyncio.ensure_future(load_many(["a", "b"], load))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# ---------------------------------------------------------------- options and config


def test_spec_options_are_checked() -> None:
    assert parse_options("BTC", {"interval": "4h", "start": "2024-01-01", "end": "1704153600000"}) == (
        "BTC", "4h", 1_704_067_200_000, 1_704_153_600_000
    )
    assert parse_options("ETH", {}) == ("ETH", "", None, None)
    with pytest.raises(DataError, match=r"data spec 'hyperliquid:BTC': interval '7m': expected one of 1m, 3m"):
        parse_options("BTC", {"interval": "7m"})
    with pytest.raises(DataError, match=r"unknown option 'limit'"):
        parse_options("BTC", {"limit": "5"})
    with pytest.raises(DataError, match=r"option start: expected an ISO date"):
        parse_options("BTC", {"start": "yesterday"})
    with pytest.raises(DataError, match=r"start '2024-02-01' must be before end '2024-01-01'"):
        parse_options("BTC", {"start": "2024-02-01", "end": "2024-01-01"})


def test_config_file_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[hyperliquid]\nurl = "http://127.0.0.1:9"\nretries = 1\nwarm = ["BTC", "ETH"]\n')
    monkeypatch.setenv("GENESIS_CONFIG", str(config))
    monkeypatch.delenv("GENESIS_HYPERLIQUID_URL", raising=False)
    loaded = load_config()
    assert (loaded.url, loaded.retries, loaded.warm) == ("http://127.0.0.1:9", 1, ["BTC", "ETH"])
    monkeypatch.setenv("GENESIS_HYPERLIQUID_URL", "http://127.0.0.1:10")
    assert load_config().url == "http://127.0.0.1:10"  # the environment wins
    monkeypatch.setenv("GENESIS_HYPERLIQUID_URL", "ftp://example")
    with pytest.raises(ConfigError, match=r"GENESIS_HYPERLIQUID_URL: expected an http:// or https:// URL"):
        load_config()
    monkeypatch.delenv("GENESIS_HYPERLIQUID_URL")
    config.write_text("[hyperliquid]\nretrys = 1\n")
    with pytest.raises(ConfigError, match=r"retrys: unknown key"):
        load_config()


def test_parse_candles_converts_in_one_pass() -> None:
    body = (
        b'[{"t":0,"T":59999,"s":"BTC","i":"1m","o":"10","c":"11","h":"12","l":"9","v":"1.5","n":3},'
        b'{"t":60000,"o":11,"c":"Infinity","h":"12","l":"9","v":"1"},'
        b'{"t":120000,"o":"11","c":"10.5","h":"11.5","l":"10","v":"2"}]'
    )
    records, dropped_inf, dropped_nan = parse_candles(body, "BTC", "1m")
    assert (dropped_inf, dropped_nan) == (1, 0)
    assert records["t"].tolist() == [0, 120_000]
    assert records["close"].tolist() == [11.0, 10.5]
    with pytest.raises(NetworkError, match=r"hyperliquid BTC 1m: malformed JSON in response \(5 bytes\)"):
        parse_candles(b'[{"t"', "BTC", "1m")
    assert parse_candles(b"[]", "BTC", "1m")[0].shape == (0,)
