"""The candle cache's day chunks: random overlapping writes read back as a dict of last
writes would, and a cache of the first layout (one row per candle) is migrated in place."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.store import candles
from engine.store.candles import CHUNK_MS, RECORD_DTYPE, CandleStore, SeriesKey

#: Version 1's tables, as caches written before the chunks hold them.
V1_SCHEMA = """
CREATE TABLE IF NOT EXISTS candles (
    source TEXT NOT NULL,
    symbol TEXT NOT NULL,
    interval TEXT NOT NULL,
    open_time INTEGER NOT NULL,
    bar BLOB NOT NULL,
    PRIMARY KEY (source, symbol, interval, open_time)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS coverage (
    source TEXT NOT NULL,
    symbol TEXT NOT NULL,
    interval TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL,
    PRIMARY KEY (source, symbol, interval, start_ms)
) WITHOUT ROWID;
"""

KEY = SeriesKey("test", "BTC", "1m")
MINUTE = 60_000


def _records(times: list[int], tag: float) -> np.ndarray:
    records = np.zeros(len(times), dtype=RECORD_DTYPE)
    records["t"] = times
    records["open"] = tag
    records["close"] = tag + np.arange(len(times))  # every record of every write is told apart
    records["volume"] = np.arange(len(times), dtype=np.float64)
    return records


# Minutes from a day before the epoch to four days after it: writes straddle day
# boundaries (and the sign of the open time, where floor and truncation differ).
_minute = st.integers(min_value=-1_500, max_value=4 * 1_440)
_write = st.one_of(
    st.lists(_minute, max_size=40),  # scattered, unsorted, with repeats inside one write
    st.tuples(_minute, st.integers(0, 3_000)).map(lambda p: list(range(p[0], p[0] + p[1]))),  # a page
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    writes=st.lists(_write, min_size=1, max_size=6),
    windows=st.lists(st.tuples(_minute, _minute), min_size=1, max_size=4),
)
def test_random_overlapping_writes_read_as_the_last_write_per_open_time(
    writes: list[list[int]], windows: list[tuple[int, int]]
) -> None:
    reference: dict[int, np.void] = {}
    for number, minutes in enumerate(writes):
        for record in _records([m * MINUTE for m in minutes], 1e6 * (number + 1)):
            reference[int(record["t"])] = record

    async def scenario(path: Path) -> None:
        async with CandleStore(path) as store:
            for number, minutes in enumerate(writes):
                await store.write(KEY, _records([m * MINUTE for m in minutes], 1e6 * (number + 1)), None)
            every = await store.read(KEY, -10 * CHUNK_MS, 10 * CHUNK_MS)
            assert every.tobytes() == _expected(reference, -10 * CHUNK_MS, 10 * CHUNK_MS).tobytes()
            for a, b in windows:
                lo, hi = min(a, b) * MINUTE, (max(a, b) + 1) * MINUTE
                assert (await store.read(KEY, lo, hi)).tobytes() == _expected(reference, lo, hi).tobytes()
            assert await store.count() == len(reference)
            infos = await store.series()
            if reference:
                assert [(i.candles, i.first_ms, i.last_ms) for i in infos] == [
                    (len(reference), min(reference), max(reference))
                ]
            else:
                assert infos == []
        async with CandleStore(path) as again:  # what was committed, not what one connection remembers
            assert (await again.read(KEY, -10 * CHUNK_MS, 10 * CHUNK_MS)).tobytes() == every.tobytes()

    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(scenario(Path(tmp) / "candles.db"))


def _expected(reference: dict[int, np.void], lo: int, hi: int) -> np.ndarray:
    kept = [reference[t] for t in sorted(reference) if lo <= t < hi]
    return np.array(kept, dtype=RECORD_DTYPE) if kept else np.zeros(0, dtype=RECORD_DTYPE)


def _v1_cache(path: Path, rows: dict[SeriesKey, np.ndarray], coverage: list[tuple[SeriesKey, int, int]]) -> None:
    """A registered version-1 cache: one row per candle."""
    conn = sqlite3.connect(path)
    conn.executescript(
        V1_SCHEMA
        + "CREATE TABLE schema_versions (component TEXT PRIMARY KEY, version INTEGER NOT NULL);"
        + "INSERT INTO schema_versions VALUES ('candles', 1);"
    )
    for key, records in rows.items():
        conn.executemany(
            "INSERT INTO candles VALUES (?, ?, ?, ?, ?)",
            [(key.source, key.symbol, key.interval, int(r["t"]), r.tobytes()) for r in records],
        )
    conn.executemany(
        "INSERT INTO coverage VALUES (?, ?, ?, ?, ?)",
        [(k.source, k.symbol, k.interval, lo, hi) for k, lo, hi in coverage],
    )
    conn.commit()
    conn.close()


async def test_a_version_1_cache_is_migrated_in_place_with_its_candles_and_coverage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "candles.db"
    minutes = SeriesKey("binance-um", "ETHUSDT", "1m")
    hours = SeriesKey("hyperliquid", "BTC", "1h")
    rows = {
        minutes: _records(list(range(0, 3 * 1_440 * MINUTE, MINUTE)), 5.0),
        hours: _records(list(range(-CHUNK_MS, 40 * CHUNK_MS, 3_600_000)), 7.0),
    }
    coverage = [(minutes, 0, 3 * CHUNK_MS), (hours, -CHUNK_MS, 40 * CHUNK_MS), (hours, 50 * CHUNK_MS, 51 * CHUNK_MS)]
    _v1_cache(path, rows, coverage)
    with caplog.at_level(logging.INFO, logger="engine.store.candles"):
        async with CandleStore(path) as store:
            for key, records in rows.items():
                assert (await store.read(key, -10 * CHUNK_MS, 60 * CHUNK_MS)).tobytes() == records.tobytes()
                assert (await store.read(key, 60_000, 2 * CHUNK_MS + 1)).tobytes() == records[
                    (records["t"] >= 60_000) & (records["t"] < 2 * CHUNK_MS + 1)
                ].tobytes()
            assert await store.coverage(hours) == [(-CHUNK_MS, 40 * CHUNK_MS), (50 * CHUNK_MS, 51 * CHUNK_MS)]
            assert await store.count() == sum(r.shape[0] for r in rows.values())
    assert any("migrated to day chunks" in r.getMessage() and "2 series" in r.getMessage() for r in caplog.records)
    conn = sqlite3.connect(path)
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    version = conn.execute("SELECT version FROM schema_versions WHERE component = 'candles'").fetchone()
    chunks = conn.execute("SELECT count(*) FROM candle_chunks").fetchone()
    conn.close()
    assert "candles" not in tables and version == (candles.SCHEMA_VERSION,)
    assert chunks == (3 + 41,)  # one row per series and UTC day, not per candle
    async with CandleStore(path) as store:  # reopened: nothing left to migrate
        assert await store.count() == sum(r.shape[0] for r in rows.values())


async def test_a_newer_cache_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "candles.db"
    async with CandleStore(path):
        pass
    conn = sqlite3.connect(path)
    conn.execute("UPDATE schema_versions SET version = ? WHERE component = 'candles'", (candles.SCHEMA_VERSION + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(candles.StoreError, match="newer than this Genesis supports"):
        await CandleStore(path).open()


def _value_records(first_minute: int, last_minute: int) -> np.ndarray:
    """Candles whose values follow from their open time alone: any write order stores the same."""
    records = _records([m * MINUTE for m in range(first_minute, last_minute)], 0.0)
    records["close"] = records["volume"] = records["t"] / MINUTE
    return records


def _write_pages(path: str, first_minute: int, last_minute: int) -> None:
    """One process's fetch: pages of 500 candles, each with its coverage, into a shared cache."""

    async def run() -> None:
        async with CandleStore(path) as store:
            for lo in range(first_minute, last_minute, 500):
                hi = min(lo + 500, last_minute)
                await store.write(KEY, _value_records(lo, hi), (lo * MINUTE, hi * MINUTE))

    asyncio.run(run())


def _open_and_close(path: str) -> None:
    """One process opening the cache (and migrating it if no one has yet)."""

    async def run() -> None:
        async with CandleStore(path):
            pass

    asyncio.run(run())


def _in_two_processes(target: Callable[..., None], *args: tuple[object, ...]) -> None:
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=target, args=a) for a in args]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
    assert [w.exitcode for w in workers] == [0, 0]


async def test_two_processes_writing_overlapping_pages_leave_one_sorted_copy(tmp_path: Path) -> None:
    path = str(tmp_path / "candles.db")
    async with CandleStore(path):
        pass  # created before the race, as a cache shared by two runs would be
    _in_two_processes(_write_pages, (path, 0, 3_000), (path, 1_500, 4_500))
    async with CandleStore(path) as store:
        read = await store.read(KEY, 0, 4_500 * MINUTE)
        assert read.tobytes() == _value_records(0, 4_500).tobytes()
        assert await store.coverage(KEY) == [(0, 4_500 * MINUTE)]
        assert await store.count() == 4_500


async def test_two_processes_opening_one_version_1_cache_both_open_it_and_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "candles.db"
    records = _value_records(0, 3_000)
    _v1_cache(path, {KEY: records}, [(KEY, 0, 3_000 * MINUTE)])
    _in_two_processes(_open_and_close, (str(path),), (str(path),))
    async with CandleStore(path) as store:
        assert (await store.read(KEY, 0, 3_000 * MINUTE)).tobytes() == records.tobytes()
        assert await store.coverage(KEY) == [(0, 3_000 * MINUTE)]
