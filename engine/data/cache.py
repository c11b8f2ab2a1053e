"""The tiered candle cache: L1 in memory, L2 in SQLite, the network for the gaps.

- **L1** (:class:`MemoryCache`): an LRU of ``Bars`` by (series, start, end)
  under a byte budget, process-wide and thread-safe. A range that ended before
  the last closed candle is immutable and lives ``immutable_ttl_s``; a range
  that touches the current candle expires after one interval.
- **L2** (:class:`CandleStore`): a ``candles`` table keyed by
  (source, symbol, interval, open_time) (the primary key is the index range
  queries use), plus a ``coverage`` table of the open-time ranges known to be
  complete, so a stretch where the exchange has no candles is not asked for
  twice. Each fetched page is written in one transaction, with its coverage.
- :class:`TieredCandleCache` serves a request from L1, else computes the gaps
  of L2's coverage, fetches only those, and reads the merged range back.

Hits, misses and bytes go to ``caches.counters("data.l1")`` and ``("data.l2")``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiosqlite
import numpy as np

from engine.data.bars import Bars
from engine.data.timeframes import timeframe_seconds
from engine.errors import DataError, StoreError, quoted
from engine.profile import profiler
from engine.profile.caches import caches
from engine.store import sqlite as sqlite_policy

#: One candle as stored in L2 and passed between fetchers and the cache (open time in ms).
RECORD_DTYPE = np.dtype(
    [("t", "<i8"), ("open", "<f8"), ("high", "<f8"), ("low", "<f8"), ("close", "<f8"), ("volume", "<f8")]
)
SCHEMA_VERSION = 1
MS_PER_DAY = 86_400_000


@dataclass(frozen=True, slots=True)
class SeriesKey:
    """One candle series: a source, a symbol and an interval."""

    source: str
    symbol: str
    interval: str

    def __str__(self) -> str:
        return f"{self.source} {self.symbol} {self.interval}"


def interval_bounds_ms(interval: str) -> tuple[int, int]:
    """Shortest and longest length of one candle in ms (months vary from 28 to 31 days)."""
    if interval.strip().endswith("M"):
        months = timeframe_seconds(interval) // (30 * 86_400)
        return months * 28 * MS_PER_DAY, months * 31 * MS_PER_DAY
    length = timeframe_seconds(interval) * 1000
    return length, length


def closed_before(interval: str, now_ms: int) -> int:
    """Every candle opening before this time has closed by ``now_ms``."""
    return now_ms - interval_bounds_ms(interval)[1]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def missing_ranges(covered: Sequence[tuple[int, int]], start: int, end: int) -> list[tuple[int, int]]:
    """The parts of ``[start, end)`` outside the sorted, disjoint ``covered`` ranges."""
    gaps: list[tuple[int, int]] = []
    cursor = start
    for lo, hi in covered:
        if hi <= cursor:
            continue
        if lo >= end:
            break
        if lo > cursor:
            gaps.append((cursor, min(lo, end)))
        cursor = max(cursor, hi)
        if cursor >= end:
            break
    if cursor < end:
        gaps.append((cursor, end))
    return gaps


def records_to_bars(records: np.ndarray, key: SeriesKey, meta: dict[str, object]) -> Bars:
    """Candle records (open time in ms) as validated ``Bars``."""
    columns = [records["t"] * 1_000_000] + [
        np.ascontiguousarray(records[name]) for name in ("open", "high", "low", "close", "volume")
    ]
    for column in columns:
        column.flags.writeable = False  # fresh arrays: Bars keeps them instead of copying again
    ts, open_, high, low, close, volume = columns
    with profiler.stage("data.validate"):
        return Bars(
            ts, open_, high, low, close, volume,
            symbol=key.symbol,
            timeframe=key.interval,
            meta=meta,
        )


# --------------------------------------------------------------------------- L1


@dataclass(slots=True)
class _Entry:
    bars: Bars
    start: int
    end: int
    expires: float
    nbytes: int


class MemoryCache:
    """L1: an LRU of ``Bars`` under a byte budget with per-entry TTLs (thread-safe)."""

    def __init__(
        self,
        max_bytes: int = 256 * 1024 * 1024,
        *,
        immutable_ttl_s: float = 24 * 3600.0,
        counters_name: str = "data.l1",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_bytes = int(max_bytes)
        self.immutable_ttl_s = immutable_ttl_s
        self.counters = caches.counters(counters_name)
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[SeriesKey, int, int], _Entry] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def ttl_for(self, key: SeriesKey, end: int, now: int) -> float:
        """Seconds an entry for a range ending at ``end`` may live."""
        if end <= closed_before(key.interval, now):
            return self.immutable_ttl_s
        return interval_bounds_ms(key.interval)[0] / 1000.0

    def get(self, key: SeriesKey, start: int, end: int, *, count_miss: bool = True) -> Bars | None:
        """The bars of ``[start, end)``: an exact entry, else a slice of one that covers it."""
        with self._lock:
            now = self._clock()
            exact = (key, start, end)
            entry = self._entries.get(exact)
            if entry is not None and entry.expires <= now:
                self._drop(exact)
                self._publish()
                entry = None
            if entry is not None:
                self._entries.move_to_end(exact)
                self.counters.hits += 1
                return entry.bars
            cover = self._covering(key, start, end, now)
            if cover is not None:
                outer = self._entries[cover].bars
                lo, hi = (int(i) for i in np.searchsorted(outer.ts, [start * 1_000_000, end * 1_000_000]))
                if hi > lo:
                    self._entries.move_to_end(cover)
                    self.counters.hits += 1
                    return outer if (lo, hi) == (0, len(outer)) else outer.slice(lo, hi)
            if count_miss:
                self.counters.misses += 1
            return None

    def _covering(self, key: SeriesKey, start: int, end: int, now: float) -> tuple[SeriesKey, int, int] | None:
        for entry_key, entry in self._entries.items():
            if entry_key[0] == key and entry.start <= start and entry.end >= end and entry.expires > now:
                return entry_key
        return None

    def put(self, key: SeriesKey, start: int, end: int, bars: Bars, *, now: int | None = None) -> None:
        """Keep ``bars`` for ``[start, end)``, evicting least recently used entries over budget."""
        nbytes = bars.nbytes
        if nbytes > self.max_bytes:
            return
        ttl = self.ttl_for(key, end, now_ms() if now is None else now)
        with self._lock:
            clock = self._clock()
            # Ranges ending "now" get a new key on every call: drop the expired ones here.
            for stale in [k for k, e in self._entries.items() if e.expires <= clock]:
                self._drop(stale)
            entry_key = (key, start, end)
            if entry_key in self._entries:
                self._drop(entry_key)
            self._entries[entry_key] = _Entry(bars, start, end, clock + ttl, nbytes)
            self._bytes += nbytes
            while self._bytes > self.max_bytes and self._entries:
                self._drop(next(iter(self._entries)))
                self.counters.evictions += 1
            self._publish()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0
            self._publish()

    def _drop(self, entry_key: tuple[SeriesKey, int, int]) -> None:
        entry = self._entries.pop(entry_key)
        self._bytes -= entry.nbytes

    def _publish(self) -> None:
        self.counters.bytes = self._bytes
        self.counters.entries = len(self._entries)


# --------------------------------------------------------------------------- L2

#: Our tables and their columns: a file holding anything else is not ours.
_TABLES = {
    "candles": ("source", "symbol", "interval", "open_time", "bar"),
    "coverage": ("source", "symbol", "interval", "start_ms", "end_ms"),
}
_SCHEMA = """
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


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    """What L2 holds of one series."""

    key: SeriesKey
    candles: int
    first_ms: int | None
    last_ms: int | None
    covered: tuple[tuple[int, int], ...]


class CandleStore:
    """L2: candles in SQLite (WAL) through aiosqlite; one connection, serialized writes.

    ``bar`` holds the record's 48 bytes (open time and five float64 values, little
    endian): a range read is one blob per candle, which is what lets a 100,000
    candle read stay well under 100 ms.
    """

    def __init__(self, path: Path | str, *, counters_name: str = "data.l2") -> None:
        self.path = Path(path)
        self.counters = caches.counters(counters_name)
        self._conn: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()
        self._open_lock = asyncio.Lock()

    async def open(self) -> CandleStore:
        """Open (creating if needed) the database; a foreign or corrupt file is a ``StoreError``."""
        async with self._open_lock:
            if self._conn is None:
                await self._open()
        return self

    async def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Checked before anything is written (WAL mode included): another
            # application's database is refused untouched.
            conn = await sqlite_policy.connect(self.path, check=self._check_ours)
        except (OSError, sqlite3.Error) as error:
            raise StoreError(f"{self.path}: cannot open the candle cache: {error}") from None
        try:
            await conn.executescript(_SCHEMA)
            await conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.DatabaseError as error:
            await conn.close()
            raise StoreError(f"{self.path}: not a usable candle cache ({error})") from None
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        await self._publish_size()

    async def _check_ours(self, conn: aiosqlite.Connection) -> None:
        """Refuse a database that holds tables or a schema version that are not ours."""
        row = await (await conn.execute("PRAGMA user_version")).fetchone()
        version = row[0] if row is not None else 0  # (the pragma always answers one row)
        if version not in (0, SCHEMA_VERSION):
            raise StoreError(f"{self.path}: candle cache schema version {version}, expected {SCHEMA_VERSION}")
        rows = await conn.execute_fetchall(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
        )
        for (name,) in rows:
            columns: tuple[str, ...] = ()
            if name in _TABLES:
                info = await conn.execute_fetchall(f"PRAGMA table_info({name})")
                columns = tuple(str(row[1]) for row in info)
            if columns != _TABLES.get(name):
                raise StoreError(
                    f"{self.path}: not a Genesis candle cache (it holds a table {quoted(str(name))} "
                    "of another application); refused, the file is left untouched"
                )

    async def count(self) -> int:
        """Candles stored (a full index scan: for ``data ls``, not the hot path)."""
        rows = await self.conn.execute_fetchall("SELECT count(*) FROM candles")
        self.counters.entries = int(next(iter(rows))[0])
        return self.counters.entries

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    async def __aenter__(self) -> CandleStore:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def conn(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise StoreError(f"{self.path}: the candle cache is not open")
        return self._conn

    async def coverage(self, key: SeriesKey) -> list[tuple[int, int]]:
        """The sorted, disjoint ranges of open times known to be complete."""
        rows = await self.conn.execute_fetchall(
            "SELECT start_ms, end_ms FROM coverage WHERE source = ? AND symbol = ? AND interval = ?"
            " ORDER BY start_ms",
            (key.source, key.symbol, key.interval),
        )
        return [(int(lo), int(hi)) for lo, hi in rows]

    async def read(self, key: SeriesKey, start: int, end: int) -> np.ndarray:
        """The stored candles with open time in ``[start, end)``, as ``RECORD_DTYPE`` records."""
        began = time.perf_counter()
        # SQLite concatenates the 48-byte rows itself: one blob crosses into Python
        # instead of one object per candle, which halves the time of a large read.
        rows = await self.conn.execute_fetchall(
            "SELECT CAST(group_concat(bar, '') AS BLOB), count(*) FROM ("
            "SELECT bar FROM candles WHERE source = ? AND symbol = ? AND interval = ?"
            " AND open_time >= ? AND open_time < ? ORDER BY open_time)",
            (key.source, key.symbol, key.interval, start, end),
        )
        blob, count = next(iter(rows))
        blob = blob or b""
        profiler.record("data.cache.l2_read", time.perf_counter() - began)
        if len(blob) != int(count) * RECORD_DTYPE.itemsize:
            raise StoreError(f"{self.path}: corrupt candle rows for {key}")
        records = np.frombuffer(blob, dtype=RECORD_DTYPE)
        if records.shape[0] > 1 and not bool(np.all(np.diff(records["t"]) > 0)):
            # group_concat's order follows the sorted subquery in practice; never rely on it blindly.
            records = np.sort(records, order="t")
        return records

    async def write(self, key: SeriesKey, records: np.ndarray, covered: tuple[int, int] | None) -> None:
        """Upsert ``records`` and merge ``covered`` into the coverage, in one transaction."""
        records = np.ascontiguousarray(records, dtype=RECORD_DTYPE)
        blob = records.tobytes()
        size = RECORD_DTYPE.itemsize
        ident = (key.source, key.symbol, key.interval)
        rows = [
            (*ident, int(t), blob[i * size:(i + 1) * size]) for i, t in enumerate(records["t"].tolist())
        ]
        conn = self.conn
        async with self._write_lock:
            await conn.execute("BEGIN IMMEDIATE")
            try:
                existing = 0
                if rows:
                    found = await conn.execute_fetchall(
                        "SELECT count(*) FROM candles WHERE source = ? AND symbol = ? AND interval = ?"
                        " AND open_time >= ? AND open_time <= ?",
                        (*ident, rows[0][3], rows[-1][3]),
                    )
                    existing = int(next(iter(found))[0])
                    await conn.executemany(
                        "INSERT INTO candles (source, symbol, interval, open_time, bar) VALUES (?, ?, ?, ?, ?)"
                        " ON CONFLICT (source, symbol, interval, open_time) DO UPDATE SET bar = excluded.bar",
                        rows,
                    )
                if covered is not None and covered[1] > covered[0]:
                    await self._merge_coverage(ident, *covered)
                await conn.execute("COMMIT")
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
        self.counters.entries += max(0, len(rows) - existing)
        await self._publish_size()

    async def _merge_coverage(self, ident: tuple[str, str, str], lo: int, hi: int) -> None:
        conn = self.conn
        touching = await conn.execute_fetchall(
            "SELECT start_ms, end_ms FROM coverage WHERE source = ? AND symbol = ? AND interval = ?"
            " AND start_ms <= ? AND end_ms >= ?",
            (*ident, hi, lo),
        )
        for start_ms, end_ms in touching:
            lo, hi = min(lo, int(start_ms)), max(hi, int(end_ms))
        await conn.execute(
            "DELETE FROM coverage WHERE source = ? AND symbol = ? AND interval = ? AND start_ms <= ? AND end_ms >= ?",
            (*ident, hi, lo),
        )
        await conn.execute(
            "INSERT INTO coverage (source, symbol, interval, start_ms, end_ms) VALUES (?, ?, ?, ?, ?)",
            (*ident, lo, hi),
        )

    async def series(self, source: str | None = None) -> list[SeriesInfo]:
        """Every cached series (optionally of one source) with its row count and coverage."""
        where, params = ("WHERE source = ?", (source,)) if source else ("", ())
        stats = await self.conn.execute_fetchall(
            "SELECT source, symbol, interval, count(*), min(open_time), max(open_time) FROM candles "
            f"{where} GROUP BY source, symbol, interval",
            params,
        )
        spans = await self.conn.execute_fetchall(
            f"SELECT source, symbol, interval, start_ms, end_ms FROM coverage {where} ORDER BY start_ms", params
        )
        covered: dict[SeriesKey, list[tuple[int, int]]] = {}
        for src, symbol, interval, lo, hi in spans:
            covered.setdefault(SeriesKey(src, symbol, interval), []).append((int(lo), int(hi)))
        infos: dict[SeriesKey, SeriesInfo] = {}
        for src, symbol, interval, count, first, last in stats:
            key = SeriesKey(src, symbol, interval)
            infos[key] = SeriesInfo(key, int(count), first, last, tuple(covered.get(key, ())))
        for key, spans_of_key in covered.items():
            infos.setdefault(key, SeriesInfo(key, 0, None, None, tuple(spans_of_key)))
        return [infos[k] for k in sorted(infos, key=lambda k: (k.source, k.symbol, k.interval))]

    async def delete(self, source: str, symbol: str | None = None, interval: str | None = None) -> int:
        """Remove the candles and coverage of matching series; returns the candles removed."""
        clauses = ["source = ?"]
        params: list[str] = [source]
        if symbol is not None:
            clauses.append("symbol = ?")
            params.append(symbol)
        if interval is not None:
            clauses.append("interval = ?")
            params.append(interval)
        where = " AND ".join(clauses)
        conn = self.conn
        async with self._write_lock:
            await conn.execute("BEGIN IMMEDIATE")
            try:
                cursor = await conn.execute(f"DELETE FROM candles WHERE {where}", params)
                removed = cursor.rowcount
                await conn.execute(f"DELETE FROM coverage WHERE {where}", params)
                await conn.execute("COMMIT")
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
        self.counters.entries = max(0, self.counters.entries - max(0, removed))
        await self._publish_size()
        return max(0, removed)

    async def _publish_size(self) -> None:
        rows = await self.conn.execute_fetchall(
            "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()"
        )
        self.counters.bytes = int(next(iter(rows))[0])


# --------------------------------------------------------------------------- tiers

#: Writes one fetched page to L2: (records, covered_start, covered_end).
PageSink = Callable[[np.ndarray, int, int], Awaitable[None]]
#: Fetches ``[start, end)`` of one series page by page into the sink; returns its counts.
Fetcher = Callable[[int, int, PageSink], Awaitable["FetchReport"]]


@dataclass(slots=True)
class FetchReport:
    """What fetching one or more ranges did: pages, candles kept, candles dropped."""

    requests: int = 0
    candles: int = 0
    dropped_inf: int = 0
    dropped_nan: int = 0

    def add(self, other: FetchReport) -> None:
        self.requests += other.requests
        self.candles += other.candles
        self.dropped_inf += other.dropped_inf
        self.dropped_nan += other.dropped_nan


@dataclass(slots=True)
class TierCounts:
    """How the requests of one ``TieredCandleCache`` were served."""

    l1: int = 0
    l2: int = 0
    network: int = 0
    gaps: list[tuple[int, int]] = field(default_factory=list)


class TieredCandleCache:
    """Serve candle ranges from L1, else L2 plus a network fetch of only the missing gaps."""

    def __init__(self, store: CandleStore, memory: MemoryCache | None = None) -> None:
        self.store = store
        self.memory = memory
        self.served = TierCounts()
        self._locks: dict[SeriesKey, asyncio.Lock] = {}

    async def get(
        self, key: SeriesKey, start: int, end: int, fetch: Fetcher, *, now: int | None = None
    ) -> Bars:
        """The candles of ``key`` with open time in ``[start, end)`` (ms) as ``Bars``."""
        if end <= start:
            raise DataError(f"{key}: empty range: start {start} is not before end {end}")
        if self.memory is not None:
            bars = self.memory.get(key, start, end)
            if bars is not None:
                self.served.l1 += 1
                return bars
        await self.store.open()
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:  # one fetch per series at a time: concurrent twins wait, then hit
            if self.memory is not None:
                bars = self.memory.get(key, start, end, count_miss=False)
                if bars is not None:
                    self.served.l1 += 1
                    return bars
            moment = now_ms() if now is None else now
            horizon = closed_before(key.interval, moment)
            gaps = missing_ranges(await self.store.coverage(key), start, end)
            report = FetchReport()
            if gaps:
                self.store.counters.misses += 1
                self.served.network += 1
                self.served.gaps.extend(gaps)

                async def sink(records: np.ndarray, lo: int, hi: int) -> None:
                    # The current (open) candle is stored but never marked complete.
                    await self.store.write(key, records, (lo, min(hi, horizon)))

                for lo, hi in gaps:
                    report.add(await fetch(lo, hi, sink))
            else:
                self.store.counters.hits += 1
                self.served.l2 += 1
            records = await self.store.read(key, start, end)
            if records.shape[0] == 0:
                raise DataError(f"{key}: no candles between {_iso(start)} and {_iso(end)}")
            meta: dict[str, object] = {
                "source": key.source,
                "start_ms": start,
                "end_ms": end,
                "fetched_requests": report.requests,
                "fetched_candles": report.candles,
                "dropped_inf": report.dropped_inf,
                "dropped_nan": report.dropped_nan,
                "dropped_rows": report.dropped_inf + report.dropped_nan,
                "spec": f"{key.source}:{key.symbol},interval={key.interval}",
            }
            bars = records_to_bars(records, key, meta)
            if self.memory is not None:
                self.memory.put(key, start, end, bars, now=moment)
            return bars


def _iso(ms: int) -> str:
    return str(np.datetime64(int(ms), "ms"))


# --------------------------------------------------------------------------- warming


class CacheWarmer:
    """Loads a configured list of symbols in the background (at start-up, say).

    ``load`` fetches one symbol; failures are collected in the result, never raised.
    """

    def __init__(
        self, symbols: Iterable[str], load: Callable[[str], Awaitable[object]], *, concurrency: int = 2
    ) -> None:
        self.symbols = list(dict.fromkeys(symbols))
        self._load = load
        self.concurrency = concurrency
        self.task: asyncio.Task | None = None

    def start(self) -> asyncio.Task:
        """Start warming on the running loop; returns the task (its result is a ``MultiLoadResult``)."""
        from engine.data.multi import load_many

        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(
                load_many(self.symbols, self._load, concurrency=self.concurrency), name="genesis-cache-warm"
            )
        return self.task

    async def stop(self) -> None:
        """Cancel warming if it is still running."""
        task, self.task = self.task, None
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
