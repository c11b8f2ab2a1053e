"""Every way the server can fail: retried or not, one clear error, an intact cache."""

from __future__ import annotations

import pytest

from engine.errors import DataError, NetworkError
from tests.data_remote.conftest import assert_matches, l2_snapshot
from tests.data_remote.server import JAN_2024_MS, expected_records

HOUR = 3_600_000
CACHED = (JAN_2024_MS, JAN_2024_MS + 48 * HOUR)
WANTED = (JAN_2024_MS + 100 * HOUR, JAN_2024_MS + 160 * HOUR)


async def _with_cached_range(server, make_source, **overrides):
    """A source whose cache already holds CACHED, and a snapshot of that cache."""
    source = make_source(**overrides)
    await source.fetch_candles("BTC", "1h", *CACHED)
    snapshot = await l2_snapshot(source)
    server.requests.clear()
    return source, snapshot


async def _assert_cache_intact(server, make_source, source, snapshot) -> None:
    assert await l2_snapshot(source) == snapshot
    requests = len(server.requests)
    bars = await make_source().fetch_candles("BTC", "1h", *CACHED)
    assert len(server.requests) == requests
    assert_matches(bars, expected_records("BTC", "1h", *CACHED))


async def test_429_with_retry_after_is_honoured(server, make_source) -> None:
    # A huge backoff would stall the test: only Retry-After can make it wait briefly.
    source = make_source(backoff_base_s=30.0, backoff_max_s=30.0)
    server.fail("status", status=429, retry_after="0.2", times=2)
    bars = await source.fetch_candles("BTC", "1h", *WANTED)
    assert_matches(bars, expected_records("BTC", "1h", *WANTED))
    assert len(server.requests) == 3
    gaps = [b.at - a.at for a, b in zip(server.requests, server.requests[1:], strict=False)]
    assert all(gap >= 0.19 for gap in gaps)
    assert source.http.stats.retries == 2


async def test_429_asking_too_long_fails_at_once(server, make_source) -> None:
    source, snapshot = await _with_cached_range(server, make_source, max_retry_after_s=5.0)
    server.fail("status", status=429, retry_after="3600", times=10)
    with pytest.raises(NetworkError, match=r"hyperliquid BTC 1h: HTTP 429: server asks to retry after 3600s"):
        await source.fetch_candles("BTC", "1h", *WANTED)
    assert len(server.requests) == 1
    await _assert_cache_intact(server, make_source, source, snapshot)


async def test_500_then_success(server, make_source) -> None:
    source = make_source()
    server.fail("status", status=500)
    bars = await source.fetch_candles("BTC", "1h", *WANTED)
    assert_matches(bars, expected_records("BTC", "1h", *WANTED))
    assert len(server.requests) == 2


async def test_500_forever_gives_up_after_the_retries(server, make_source) -> None:
    source, snapshot = await _with_cached_range(server, make_source)
    server.fail("status", status=503, times=100)
    with pytest.raises(NetworkError) as caught:
        await source.fetch_candles("BTC", "1h", *WANTED)
    message = str(caught.value)
    assert message.startswith("hyperliquid BTC 1h: HTTP 503")
    assert message.endswith("after 3 attempts") and "\n" not in message
    assert len(server.requests) == 3
    await _assert_cache_intact(server, make_source, source, snapshot)


async def test_other_4xx_is_not_retried(server, make_source) -> None:
    source, snapshot = await _with_cached_range(server, make_source)
    server.fail("status", status=422, times=10)
    with pytest.raises(DataError, match=r"hyperliquid BTC 1h: HTTP 422 .* \(is 'BTC' a Hyperliquid coin"):
        await source.fetch_candles("BTC", "1h", *WANTED)
    assert len(server.requests) == 1
    server.faults.clear()
    server.fail("status", status=403, times=10)
    with pytest.raises(NetworkError, match=r"HTTP 403"):
        await source.fetch_candles("BTC", "1h", *WANTED)
    assert len(server.requests) == 2
    await _assert_cache_intact(server, make_source, source, snapshot)


# A read timeout long enough for a healthy answer on a loaded machine, and a slow answer far beyond it.
READ_TIMEOUT_S = 2.0
SLOW_S = 120.0  # the server thread's stop cancels the waiting handler


async def test_slow_response_past_the_read_timeout(server, make_source) -> None:
    source, snapshot = await _with_cached_range(server, make_source, read_timeout_s=READ_TIMEOUT_S, retries=1)
    server.fail("slow", delay_s=SLOW_S, times=2)
    with pytest.raises(NetworkError, match=r"hyperliquid BTC 1h: no answer within 2s \(read timeout\), after 2 attempts"):
        await source.fetch_candles("BTC", "1h", *WANTED)
    assert len(server.requests) == 2
    await _assert_cache_intact(server, make_source, source, snapshot)


async def test_slow_once_then_fast_succeeds(server, make_source) -> None:
    source = make_source(read_timeout_s=READ_TIMEOUT_S)
    server.fail("slow", delay_s=SLOW_S)
    bars = await source.fetch_candles("BTC", "1h", *WANTED)
    assert_matches(bars, expected_records("BTC", "1h", *WANTED))
    assert len(server.requests) == 2


async def test_truncated_body(server, make_source) -> None:
    source, snapshot = await _with_cached_range(server, make_source)
    server.fail("truncate", times=3)
    with pytest.raises(NetworkError, match=r"hyperliquid BTC 1h: truncated response .*after 3 attempts"):
        await source.fetch_candles("BTC", "1h", *WANTED)
    await _assert_cache_intact(server, make_source, source, snapshot)
    # A truncated body once is retried like a dropped connection.
    server.fail("truncate")
    bars = await source.fetch_candles("BTC", "1h", *WANTED)
    assert_matches(bars, expected_records("BTC", "1h", *WANTED))


async def test_malformed_json(server, make_source) -> None:
    source, snapshot = await _with_cached_range(server, make_source)
    server.fail("malformed")
    with pytest.raises(NetworkError, match=r"hyperliquid BTC 1h: malformed JSON in response"):
        await source.fetch_candles("BTC", "1h", *WANTED)
    assert len(server.requests) == 1
    await _assert_cache_intact(server, make_source, source, snapshot)


@pytest.mark.parametrize("kind", ["oversize", "oversize_chunked"])
async def test_oversized_body(server, make_source, kind: str) -> None:
    source, snapshot = await _with_cached_range(server, make_source, max_response_mb=0.05)
    server.fail(kind, size=200_000)
    with pytest.raises(NetworkError, match=r"hyperliquid BTC 1h: response .*exceeds the cap of 52428 bytes"):
        await source.fetch_candles("BTC", "1h", *WANTED)
    assert len(server.requests) == 1
    await _assert_cache_intact(server, make_source, source, snapshot)


def _drop_field(rows):
    del rows[4]["c"]
    return rows


def _non_numeric(rows):
    rows[2]["l"] = "12.3.4"
    return rows


def _out_of_order(rows):
    rows[5], rows[6] = rows[6], rows[5]
    return rows


def _high_below_close(rows):
    rows[1]["h"] = "1.0"
    return rows


def _not_a_list(rows):
    return {"candles": rows}


@pytest.mark.parametrize(
    ("mutate", "pattern"),
    [
        (_drop_field, r"hyperliquid BTC 1h: unexpected candle data: object missing required field `c` at \$\[4\]"),
        (_non_numeric, r"hyperliquid BTC 1h: candle 2 \(t=\d+\): field 'l': expected a number, got '12.3.4'"),
        (_out_of_order, r"hyperliquid BTC 1h: candles out of order: candle 6 opens at t=\d+, not after t=\d+"),
        (_high_below_close, r"hyperliquid BTC 1h: candle t=\d+: high must be >= max\(open, close\)"),
        (_not_a_list, r"hyperliquid BTC 1h: unexpected candle data: expected `array`, got `object`"),
    ],
)
async def test_bad_candles_are_one_clear_data_error(server, make_source, mutate, pattern: str) -> None:
    source, snapshot = await _with_cached_range(server, make_source)
    server.fail("mutate", mutate=mutate)
    with pytest.raises(DataError, match=pattern) as caught:
        await source.fetch_candles("BTC", "1h", *WANTED)
    assert "\n" not in str(caught.value)
    assert len(server.requests) == 1
    await _assert_cache_intact(server, make_source, source, snapshot)


async def test_connection_refused_is_a_network_error(make_source, server) -> None:
    port = server.port
    await server.stop()
    source = make_source(url=f"http://127.0.0.1:{port}", retries=1)
    with pytest.raises(NetworkError, match=r"hyperliquid BTC 1h: connection failed .*after 2 attempts"):
        await source.fetch_candles("BTC", "1h", *WANTED)
