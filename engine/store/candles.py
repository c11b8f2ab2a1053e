"""The candle cache's L2 in SQLite: the ``candles`` and ``coverage`` tables of the cache file.

``candle_chunks`` holds one row per series and UTC day: the day's candles as
one blob of ``RECORD_DTYPE`` records (little endian), sorted by open time, so a
year of one-minute bars is 365 rows read with ``np.frombuffer``. ``coverage``
holds the open-time ranges known to be complete, so a stretch where the
exchange has no candles is not asked for twice. Each fetched page is merged
into its days (last write wins per open time) in one transaction, with its
coverage. A cache of the first layout (one ``candles`` row per candle) is
migrated in place, in one transaction, the first time it is opened.
The tiers around it (L1 in memory, the network for the gaps) are
:mod:`engine.data.cache`'s.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import aiosqlite
import numpy as np

from engine.errors import StoreError, quoted
from engine.profile import profiler
from engine.profile.caches import caches
from engine.store import sqlite as sqlite_policy
from engine.store.schema import REGISTRY_DDL, Schema

#: One candle as stored in L2 and passed between fetchers and the cache (open time in ms).
RECORD_DTYPE = np.dtype(
    [("t", "<i8"), ("open", "<f8"), ("high", "<f8"), ("low", "<f8"), ("close", "<f8"), ("volume", "<f8")]
)
SCHEMA_COMPONENT = "candles"
SCHEMA_VERSION = 2
#: The span of one stored chunk: a UTC day (1,440 one-minute candles, 24 hourly ones).
CHUNK_MS = 86_400_000

log = logging.getLogger("engine.store.candles")


@dataclass(frozen=True, slots=True)
class SeriesKey:
    """One candle series: a source, a symbol and an interval."""

    source: str
    symbol: str
    interval: str

    def __str__(self) -> str:
        return f"{self.source} {self.symbol} {self.interval}"


#: Our tables and their columns: a file holding anything else is not ours.
_TABLES = {
    "candle_chunks": ("source", "symbol", "interval", "chunk_ms", "n", "first_ms", "last_ms", "data"),
    "coverage": ("source", "symbol", "interval", "start_ms", "end_ms"),
}
#: Version 1's one row per candle: migrated to chunks when found.
_LEGACY_CANDLES = ("source", "symbol", "interval", "open_time", "bar")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS candle_chunks (
    source TEXT NOT NULL,
    symbol TEXT NOT NULL,
    interval TEXT NOT NULL,
    chunk_ms INTEGER NOT NULL,
    n INTEGER NOT NULL,
    first_ms INTEGER NOT NULL,
    last_ms INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (source, symbol, interval, chunk_ms)
);
CREATE TABLE IF NOT EXISTS coverage (
    source TEXT NOT NULL,
    symbol TEXT NOT NULL,
    interval TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL,
    PRIMARY KEY (source, symbol, interval, start_ms)
) WITHOUT ROWID;
"""
_UPSERT_CHUNK = (
    "INSERT OR REPLACE INTO candle_chunks (source, symbol, interval, chunk_ms, n, first_ms, last_ms, data)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
# Caches written before the registry kept their version in ``user_version`` and
# no ``schema_versions``: such a file is adopted (after the chunk migration).
CANDLE_SCHEMA = Schema(SCHEMA_COMPONENT, SCHEMA_VERSION, frozenset(_TABLES), _SCHEMA, unregistered=True)


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    """What L2 holds of one series."""

    key: SeriesKey
    candles: int
    first_ms: int | None
    last_ms: int | None
    covered: tuple[tuple[int, int], ...]


def last_wins(records: np.ndarray) -> np.ndarray:
    """``records`` sorted by open time with one record per time: the last one given wins."""
    if records.shape[0] < 2:
        return records
    merged = records[np.argsort(records["t"], kind="stable")]
    times = merged["t"]
    keep = np.ones(merged.shape[0], dtype=bool)
    keep[:-1] = times[1:] != times[:-1]
    return merged if bool(keep.all()) else merged[keep]


def chunk_rows(ident: tuple[str, str, str], records: np.ndarray) -> list[tuple[object, ...]]:
    """The ``candle_chunks`` rows of sorted, unique ``records``: one per UTC day they touch."""
    if records.shape[0] == 0:
        return []
    times = records["t"]
    days = times // CHUNK_MS
    cuts = [0, *(np.flatnonzero(days[1:] != days[:-1]) + 1).tolist(), records.shape[0]]
    rows: list[tuple[object, ...]] = []
    for lo, hi in pairwise(cuts):
        rows.append(
            (*ident, int(days[lo]) * CHUNK_MS, hi - lo, int(times[lo]), int(times[hi - 1]), records[lo:hi].tobytes())
        )
    return rows


class CandleStore:
    """L2: candles in SQLite (WAL) through aiosqlite; one connection, serialized writes.

    A range read is one blob per UTC day of the range, joined and viewed with
    ``np.frombuffer``: no object per candle crosses from SQLite into Python.
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
            conn = await sqlite_policy.connect(self.path, schema=CANDLE_SCHEMA, check=self._check_ours)
        except (OSError, sqlite3.Error) as error:
            raise StoreError(f"{self.path}: cannot open the candle cache: {error}") from None
        self._conn = conn
        await self._publish_size()

    async def _check_ours(self, conn: aiosqlite.Connection) -> None:
        """Refuse a database that holds tables (or a version in ``user_version``, as caches once kept it)
        not ours; migrate one of the first layout."""
        row = await (await conn.execute("PRAGMA user_version")).fetchone()
        version = row[0] if row is not None else 0  # (the pragma always answers one row)
        if version not in (0, 1):
            raise StoreError(f"{self.path}: candle cache schema version {version}, expected {SCHEMA_VERSION}")
        legacy = False
        for name, columns in (await self._tables(conn)).items():
            if name == "schema_versions":  # the registry: needs_create checks it next
                continue
            if name == "candles" and columns == _LEGACY_CANDLES:
                legacy = True
            elif columns != _TABLES.get(name):
                raise StoreError(
                    f"{self.path}: not a Genesis candle cache (it holds a table {quoted(str(name))} "
                    "of another application); refused, the file is left untouched"
                )
        if legacy:
            await self._migrate(conn)

    @staticmethod
    async def _tables(conn: aiosqlite.Connection) -> dict[str, tuple[str, ...]]:
        """The file's tables, with the columns of those whose names are ours (or version 1's)."""
        rows = await conn.execute_fetchall(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
        )
        tables: dict[str, tuple[str, ...]] = {}
        for (name,) in rows:
            columns: tuple[str, ...] = ()
            if name in _TABLES or name == "candles":
                info = await conn.execute_fetchall(f"PRAGMA table_info({name})")
                columns = tuple(str(row[1]) for row in info)
            tables[str(name)] = columns
        return tables

    async def _migrate(self, conn: aiosqlite.Connection) -> None:
        """Version 1 (one row per candle) to day chunks, in one transaction; coverage is kept as it is.

        A cache, but one that may hold years of downloads: migrated rather than
        dropped. Another process migrating the same file first leaves nothing to do.
        """
        await conn.execute("BEGIN IMMEDIATE")
        try:
            if (await self._tables(conn)).get("candles") != _LEGACY_CANDLES:
                await conn.execute("ROLLBACK")
                return
            # One statement at a time: ``executescript`` would commit the open transaction first.
            for statement in (REGISTRY_DDL + _SCHEMA).split(";"):
                if statement.strip():
                    await conn.execute(statement)
            keys = list(await conn.execute_fetchall("SELECT DISTINCT source, symbol, interval FROM candles"))
            moved = 0
            for source, symbol, interval in keys:
                rows = await conn.execute_fetchall(
                    "SELECT CAST(group_concat(bar, '') AS BLOB) FROM (SELECT bar FROM candles"
                    " WHERE source = ? AND symbol = ? AND interval = ? ORDER BY open_time)",
                    (source, symbol, interval),
                )
                blob = next(iter(rows))[0] or b""
                if len(blob) % RECORD_DTYPE.itemsize:
                    raise StoreError(f"{self.path}: corrupt candle rows for {source} {symbol} {interval}")
                records = last_wins(np.frombuffer(blob, dtype=RECORD_DTYPE))
                await conn.executemany(_UPSERT_CHUNK, chunk_rows((source, symbol, interval), records))
                moved += records.shape[0]
            await conn.execute("DROP TABLE candles")
            await conn.execute(
                "INSERT OR REPLACE INTO schema_versions (component, version) VALUES (?, ?)",
                (SCHEMA_COMPONENT, SCHEMA_VERSION),
            )
            await conn.execute("COMMIT")
        except BaseException:
            await conn.execute("ROLLBACK")
            raise
        log.info("%s: candle cache migrated to day chunks (%d candles, %d series)", self.path, moved, len(keys))

    async def count(self) -> int:
        """Candles stored (a sum over the chunks: for ``data ls``, not the hot path)."""
        rows = await self.conn.execute_fetchall("SELECT coalesce(sum(n), 0) FROM candle_chunks")
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
        rows = await self.conn.execute_fetchall(
            "SELECT n, data FROM candle_chunks WHERE source = ? AND symbol = ? AND interval = ?"
            " AND chunk_ms >= ? AND chunk_ms < ? AND last_ms >= ? ORDER BY chunk_ms",
            (key.source, key.symbol, key.interval, (start // CHUNK_MS) * CHUNK_MS, end, start),
        )
        count = sum(int(n) for n, _ in rows)
        blob = b"".join(data for _, data in rows)
        if len(blob) != count * RECORD_DTYPE.itemsize:
            raise StoreError(f"{self.path}: corrupt candle chunks for {key}")
        records = np.frombuffer(blob, dtype=RECORD_DTYPE)
        if records.shape[0] > 1 and not bool(np.all(np.diff(records["t"]) > 0)):
            records = np.sort(records, order="t")  # chunks are written sorted; a damaged file still reads in order
        lo, hi = np.searchsorted(records["t"], [start, end])
        profiler.record("data.cache.l2_read", time.perf_counter() - began)
        return records[int(lo):int(hi)]

    async def write(self, key: SeriesKey, records: np.ndarray, covered: tuple[int, int] | None) -> None:
        """Merge ``records`` into their days (last write wins per open time) and ``covered`` into the
        coverage, in one transaction."""
        records = last_wins(np.ascontiguousarray(records, dtype=RECORD_DTYPE))
        ident = (key.source, key.symbol, key.interval)
        conn = self.conn
        added = 0
        async with self._write_lock:
            await conn.execute("BEGIN IMMEDIATE")
            try:
                if records.shape[0]:
                    days = set((records["t"] // CHUNK_MS).tolist())
                    found = await conn.execute_fetchall(
                        "SELECT chunk_ms, n, data FROM candle_chunks WHERE source = ? AND symbol = ? AND interval = ?"
                        " AND chunk_ms >= ? AND chunk_ms <= ?",
                        (*ident, min(days) * CHUNK_MS, max(days) * CHUNK_MS),
                    )
                    touched = [(int(n), data) for chunk, n, data in found if int(chunk) // CHUNK_MS in days]
                    if touched:
                        before = sum(n for n, _ in touched)
                        old = np.frombuffer(b"".join(data for _, data in touched), dtype=RECORD_DTYPE)
                        records = last_wins(np.concatenate([old, records]))
                        added = records.shape[0] - before
                    else:
                        added = records.shape[0]
                    await conn.executemany(_UPSERT_CHUNK, chunk_rows(ident, records))
                if covered is not None and covered[1] > covered[0]:
                    await self._merge_coverage(ident, *covered)
                await conn.execute("COMMIT")
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
        self.counters.entries += max(0, added)
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
        """Every cached series (optionally of one source) with its candle count and coverage."""
        where, params = ("WHERE source = ?", (source,)) if source else ("", ())
        stats = await self.conn.execute_fetchall(
            "SELECT source, symbol, interval, sum(n), min(first_ms), max(last_ms) FROM candle_chunks "
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
                rows = await conn.execute_fetchall(
                    f"SELECT coalesce(sum(n), 0) FROM candle_chunks WHERE {where}", params
                )
                removed = int(next(iter(rows))[0])
                await conn.execute(f"DELETE FROM candle_chunks WHERE {where}", params)
                await conn.execute(f"DELETE FROM coverage WHERE {where}", params)
                await conn.execute("COMMIT")
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
        self.counters.entries = max(0, self.counters.entries - removed)
        await self._publish_size()
        return removed

    async def _publish_size(self) -> None:
        rows = await self.conn.execute_fetchall(
            "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()"
        )
        self.counters.bytes = int(next(iter(rows))[0])
