"""The Hyperliquid source against a real candle server: paging, caching, gaps."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from engine.data.cache import MemoryCache
from engine.errors import DataError
from engine.profile.caches import caches
from tests.data_remote.conftest import assert_matches, key, l2_snapshot
from tests.data_remote.server import JAN_2024_MS, expected_records
from tests.waiting import until

MINUTE = 60_000
HOUR = 3_600_000


async def test_pages_across_many_pages(server, make_source) -> None:
    server.max_per_response = 500
    source = make_source()
    start, end = JAN_2024_MS, JAN_2024_MS + 5_250 * MINUTE
    bars = await source.fetch_candles("BTC", "1m", start, end)
    assert_matches(bars, expected_records("BTC", "1m", start, end))
    assert len(server.requests) == 11  # ten full pages and a last one of 250
    assert server.requests[0].start == start
    for before, after in zip(server.requests, server.requests[1:], strict=False):
        # each page starts just past the last candle of the one before
        first_open = -(-before.start // MINUTE) * MINUTE
        assert after.start == first_open + (before.returned - 1) * MINUTE + 1
        assert after.end == end - 1
    assert bars.symbol == "BTC" and bars.timeframe == "1m"
    assert bars.meta["fetched_requests"] == 11 and bars.meta["fetched_candles"] == 5_250


async def test_second_identical_load_makes_no_request(server, make_source) -> None:
    start, end = JAN_2024_MS, JAN_2024_MS + 300 * HOUR
    first = await make_source().fetch_candles("ETH", "1h", start, end)
    assert len(server.requests) == 1
    l2 = caches.counters("data.l2")
    hits_before = l2.hits
    # A new source with an empty memory cache: served by L2 alone.
    second = await make_source().fetch_candles("ETH", "1h", start, end)
    assert len(server.requests) == 1
    assert l2.hits == hits_before + 1
    assert_matches(second, expected_records("ETH", "1h", start, end))
    # The same source again: an L1 hit hands back the very same bars.
    memory = MemoryCache()
    source = make_source(memory=memory)
    third = await source.fetch_candles("ETH", "1h", start, end)
    again = await source.fetch_candles("ETH", "1h", start, end)
    assert again is third and source.cache.served.l1 == 1
    assert len(server.requests) == 1
    np.testing.assert_array_equal(first.close, third.close)


async def test_sub_range_of_an_l1_entry_is_a_slice(server, make_source) -> None:
    source = make_source()
    start, end = JAN_2024_MS, JAN_2024_MS + 100 * HOUR
    await source.fetch_candles("SOL", "1h", start, end)
    inner = await source.fetch_candles("SOL", "1h", start + 10 * HOUR, start + 20 * HOUR)
    assert source.cache.served.l1 == 1 and len(server.requests) == 1
    assert_matches(inner, expected_records("SOL", "1h", start + 10 * HOUR, start + 20 * HOUR))


async def test_partially_cached_range_fetches_only_its_gap(server, make_source) -> None:
    start = JAN_2024_MS + 100 * HOUR
    middle, end = start + 200 * HOUR, start + 500 * HOUR
    await make_source().fetch_candles("BTC", "1h", start, middle)
    assert [(r.start, r.end) for r in server.requests] == [(start, middle - 1)]
    bars = await make_source().fetch_candles("BTC", "1h", start, end)
    assert [(r.start, r.end) for r in server.requests[1:]] == [(middle, end - 1)]
    assert_matches(bars, expected_records("BTC", "1h", start, end))
    # A range around the cached one fetches both sides and nothing in between.
    server.requests.clear()
    wider = await make_source().fetch_candles("BTC", "1h", start - 50 * HOUR, end + 50 * HOUR)
    assert sorted((r.start, r.end) for r in server.requests) == [
        (start - 50 * HOUR, start - 1),
        (end, end + 50 * HOUR - 1),
    ]
    assert_matches(wider, expected_records("BTC", "1h", start - 50 * HOUR, end + 50 * HOUR))


async def test_mid_range_gap_is_remembered(server, make_source) -> None:
    start, end = JAN_2024_MS, JAN_2024_MS + 2_000 * MINUTE
    gap = (JAN_2024_MS + 700 * MINUTE, JAN_2024_MS + 1_100 * MINUTE)
    server.gaps["BTC"] = [gap]
    server.max_per_response = 500
    bars = await make_source().fetch_candles("BTC", "1m", start, end)
    assert_matches(bars, expected_records("BTC", "1m", start, end, [gap]))
    ts_ms = bars.ts // 1_000_000
    assert not np.any((ts_ms >= gap[0]) & (ts_ms < gap[1]))
    fetched = len(server.requests)
    # The stretch without candles is known to be empty: no second look.
    again = await make_source().fetch_candles("BTC", "1m", start, end)
    assert len(server.requests) == fetched
    assert len(again) == len(bars)
    source = await make_source().open()
    assert await source.store.coverage(key("BTC", "1m")) == [(start, end)]


async def test_range_past_the_server_history_ends_on_an_empty_page(server, make_source) -> None:
    last = server.available[1]
    start, end = last - 10 * HOUR, last + 10 * HOUR
    bars = await make_source().fetch_candles("BTC", "1h", start, end)
    assert_matches(bars, expected_records("BTC", "1h", start, last))
    assert [r.returned for r in server.requests] == [10, 0]
    await make_source().fetch_candles("BTC", "1h", start, end)
    assert len(server.requests) == 2


async def test_current_candle_is_never_marked_complete(server, make_source) -> None:
    start = JAN_2024_MS
    now = start + 100 * HOUR + HOUR // 2  # the candle opened at +100h is still open
    source = make_source()
    bars = await source.fetch_candles("BTC", "1h", start, now, now=now)
    assert len(bars) == 101
    coverage = await source.store.coverage(key("BTC", "1h"))
    assert coverage == [(start, now - HOUR)]
    # Later the range is asked for again: only the open tail is fetched.
    server.requests.clear()
    await make_source().fetch_candles("BTC", "1h", start, now + HOUR, now=now + HOUR)
    assert [(r.start, r.end) for r in server.requests] == [(now - HOUR, now + HOUR - 1)]


async def test_nonfinite_values_are_dropped_and_counted(server, make_source) -> None:
    def poison(rows):
        rows[3]["c"] = "inf"
        rows[5]["o"] = "NaN"
        rows[7]["v"] = "-Infinity"
        return rows

    server.fail("mutate", mutate=poison)
    start, end = JAN_2024_MS, JAN_2024_MS + 20 * HOUR
    bars = await make_source().fetch_candles("BTC", "1h", start, end)
    expected = expected_records("BTC", "1h", start, end)
    keep = np.ones(expected.shape[0], dtype=bool)
    keep[[3, 5, 7]] = False
    assert_matches(bars, expected[keep])
    assert bars.meta["dropped_inf"] == 2 and bars.meta["dropped_nan"] == 1
    assert bars.meta["dropped_rows"] == 3


async def test_hundred_concurrent_loads_share_one_pool(server, make_source) -> None:
    import psutil

    source = make_source(max_connections=4)
    start, end = JAN_2024_MS, JAN_2024_MS + 48 * HOUR
    coins = [f"C{i:03d}" for i in range(100)]
    results = await asyncio.gather(*(source.fetch_candles(coin, "1h", start, end) for coin in coins))
    for coin, bars in zip(coins, results, strict=True):
        assert bars.symbol == coin and len(bars) == 48
    assert len(server.requests) == 100
    assert server.max_active <= 4
    assert 1 <= len(server.peers) <= 4  # every request went over one of four pooled connections
    connector = source.http.connector
    assert connector is not None and connector.limit == 4
    # The same hundred loads again from L1, and a hundred twins of one new range: one fetch.
    await asyncio.gather(*(source.fetch_candles(coin, "1h", start, end) for coin in coins))
    await asyncio.gather(*(source.fetch_candles("TWIN", "1h", start, end) for _ in range(100)))
    assert len(server.requests) == 101
    await source.close()
    assert connector.closed and source.http.connector is None

    def established() -> list[object]:
        return [
            c for c in psutil.Process().net_connections(kind="tcp")
            if c.raddr and c.raddr.port == server.port and c.status == psutil.CONN_ESTABLISHED
        ]

    # The sockets close on the loop's next turns; a leaked one stays established past the deadline.
    await until(lambda: not established(), "the pooled connections to close", limit_s=30)


async def test_failed_page_keeps_the_pages_before_it(server, make_source) -> None:
    server.max_per_response = 100
    start, end = JAN_2024_MS, JAN_2024_MS + 450 * HOUR
    calls = {"n": 0}

    def third_page_breaks(rows):
        calls["n"] += 1
        if calls["n"] == 1:
            rows[10]["h"] = "abc"
        return rows

    # Two good pages, then a bad one.
    server.faults.clear()
    server.requests.clear()
    source = make_source()
    original = server._take_fault

    def take(coin):
        if len(server.requests) == 2:
            server.fail("mutate", mutate=third_page_breaks)
        return original(coin)

    server._take_fault = take  # type: ignore[method-assign]
    try:
        with pytest.raises(DataError) as failed:
            await source.fetch_candles("BTC", "1h", start, end)
    finally:
        server._take_fault = original  # type: ignore[method-assign]
    assert type(failed.value) is DataError  # bad data from the server, not a network error or a crash
    message = str(failed.value)
    assert "hyperliquid BTC 1h" in message and "'h'" in message and "abc" in message
    candles, coverage = await l2_snapshot(source)
    assert len(candles) == 200
    assert [(row[3], row[4]) for row in coverage] == [(start, start + 199 * HOUR + 1)]
    # The next load asks only for what is missing.
    server.requests.clear()
    bars = await make_source().fetch_candles("BTC", "1h", start, end)
    assert server.requests[0].start == start + 199 * HOUR + 1
    assert_matches(bars, expected_records("BTC", "1h", start, end))
