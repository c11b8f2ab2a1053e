"""The candle cache's L2 in SQLite: the ``candles`` and ``coverage`` tables of the cache file.

``candles`` is keyed by (source, symbol, interval, open_time) (the primary key
is the index range queries use); ``coverage`` holds the open-time ranges known
to be complete, so a stretch where the exchange has no candles is not asked
for twice. Each fetched page is written in one transaction, with its coverage.
The tiers around it (L1 in memory, the network for the gaps) are
:mod:`engine.data.cache`'s.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import aiosqlite
import numpy as np

from engine.errors import StoreError, quoted
from engine.profile import profiler
from engine.profile.caches import caches
from engine.store import sqlite as sqlite_policy
from engine.store.schema import Schema

#: One candle as stored in L2 and passed between fetchers and the cache (open time in ms).
RECORD_DTYPE = np.dtype(
    [("t", "<i8"), ("open", "<f8"), ("high", "<f8"), ("low", "<f8"), ("close", "<f8"), ("volume", "<f8")]
)
SCHEMA_COMPONENT = "candles"
SCHEMA_VERSION = 1


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
# Caches written before the registry kept their version in ``user_version`` and
# no ``schema_versions``: such a file is adopted as it is.
CANDLE_SCHEMA = Schema(SCHEMA_COMPONENT, SCHEMA_VERSION, frozenset(_TABLES), _SCHEMA, unregistered=True)


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
            conn = await sqlite_policy.connect(self.path, schema=CANDLE_SCHEMA, check=self._check_ours)
        except (OSError, sqlite3.Error) as error:
            raise StoreError(f"{self.path}: cannot open the candle cache: {error}") from None
        self._conn = conn
        await self._publish_size()

    async def _check_ours(self, conn: aiosqlite.Connection) -> None:
        """Refuse a database that holds tables (or a version in ``user_version``, as caches once kept it) not ours."""
        row = await (await conn.execute("PRAGMA user_version")).fetchone()
        version = row[0] if row is not None else 0  # (the pragma always answers one row)
        if version not in (0, SCHEMA_VERSION):
            raise StoreError(f"{self.path}: candle cache schema version {version}, expected {SCHEMA_VERSION}")
        rows = await conn.execute_fetchall(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
        )
        for (name,) in rows:
            if name == "schema_versions":  # the registry: needs_create checks it next
                continue
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
