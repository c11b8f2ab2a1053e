"""Archived bus events in SQLite: the ``bus_events`` table and its compressed ``bus_events_archive``.

The bus side (subscribing, queueing, the writer and retention tasks) is
:mod:`engine.bus.archive`; this module holds the tables and their statements.
Rows are ``(ts_ns, seq, lane, topic, payload JSON text)``; retention either
deletes old rows or moves them into zlib-compressed JSON chunks. The tables
(component ``bus`` in ``schema_versions``) can live in the optimizer's store
file: WAL, the busy timeout and short transactions let both writers and a
reading console share it; another application's database is refused.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import aiosqlite
import msgspec

from engine.errors import StoreError
from engine.store import sqlite as sqlite_policy
from engine.store.schema import Schema

SCHEMA = """
CREATE TABLE IF NOT EXISTS bus_events (
    id INTEGER PRIMARY KEY,
    ts_ns INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    lane INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS bus_events_ts ON bus_events (ts_ns);
CREATE INDEX IF NOT EXISTS bus_events_topic_ts ON bus_events (topic, ts_ns);
CREATE TABLE IF NOT EXISTS bus_events_archive (
    id INTEGER PRIMARY KEY,
    first_ts_ns INTEGER NOT NULL,
    last_ts_ns INTEGER NOT NULL,
    rows INTEGER NOT NULL,
    codec TEXT NOT NULL,
    blob BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS bus_events_archive_ts ON bus_events_archive (first_ts_ns, last_ts_ns);
"""

# Archives written before the registry hold these tables unregistered: adopted as they are.
BUS_SCHEMA = Schema("bus", 1, frozenset({"bus_events", "bus_events_archive"}), SCHEMA, unregistered=True)

CODEC = "zlib+json"

#: One stored event: Unix time (ns), sequence, lane number, topic, payload as JSON text.
EventRow = tuple[int, int, int, str, str]

_DECODER = msgspec.json.Decoder()


class EventTables:
    """The archive's tables in the SQLite file at ``path`` (one connection; the caller serialises writes)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db: aiosqlite.Connection | None = None

    async def open(self) -> EventTables:
        """Open (and create) the file and the tables; a failure is one ``StoreError`` line."""
        if self._db is not None:
            return self
        db = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = await sqlite_policy.connect(self.path, schema=BUS_SCHEMA)
        except StoreError:
            raise
        except Exception as error:  # sqlite3.DatabaseError, OSError
            if db is not None:
                await db.close()
            raise StoreError(f"{self.path}: cannot open the event archive: {error}") from None
        self._db = db
        return self

    async def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            await db.close()

    @property
    def is_open(self) -> bool:
        return self._db is not None

    def _require(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError(f"{self.path}: the event archive is not open")
        return self._db

    async def insert(self, rows: list[EventRow]) -> None:
        """Append ``rows`` in one transaction (rolled back, and the error raised, on failure)."""
        db = self._require()
        await db.execute("BEGIN IMMEDIATE")
        try:
            await db.executemany(
                "INSERT INTO bus_events (ts_ns, seq, lane, topic, payload) VALUES (?, ?, ?, ?, ?)", rows
            )
            await db.execute("COMMIT")
        except BaseException:
            await _rollback(db)
            raise

    async def delete_before(self, cutoff_ns: int, limit: int) -> int:
        """Delete up to ``limit`` of the oldest events before ``cutoff_ns``; returns how many."""
        db = self._require()
        await db.execute("BEGIN IMMEDIATE")
        try:
            cursor = await db.execute(
                "DELETE FROM bus_events WHERE id IN (SELECT id FROM bus_events WHERE ts_ns < ? ORDER BY id LIMIT ?)",
                (cutoff_ns, limit),
            )
            await db.execute("COMMIT")
        except BaseException:
            await _rollback(db)
            raise
        return cursor.rowcount

    async def compress_before(self, cutoff_ns: int, limit: int) -> int:
        """Move up to ``limit`` of the oldest events before ``cutoff_ns`` into one compressed chunk."""
        db = self._require()
        await db.execute("BEGIN IMMEDIATE")
        try:
            cursor = await db.execute(
                "SELECT id, ts_ns, seq, lane, topic, payload FROM bus_events WHERE ts_ns < ? ORDER BY id LIMIT ?",
                (cutoff_ns, limit),
            )
            rows = list(await cursor.fetchall())
            if rows:
                doc = [[r[1], r[2], r[3], r[4], msgspec.Raw(r[5].encode())] for r in rows]
                blob = zlib.compress(msgspec.json.encode(doc), 6)
                ts = [r[1] for r in rows]
                await db.execute(
                    "INSERT INTO bus_events_archive (first_ts_ns, last_ts_ns, rows, codec, blob) VALUES (?, ?, ?, ?, ?)",
                    (min(ts), max(ts), len(rows), CODEC, blob),
                )
                await db.execute("DELETE FROM bus_events WHERE id <= ? AND ts_ns < ?", (rows[-1][0], cutoff_ns))
            await db.execute("COMMIT")
        except BaseException:
            await _rollback(db)
            raise
        return len(rows)

    async def rows(self, since_ns: int, until_ns: int) -> list[EventRow]:
        """Uncompressed events with ``since_ns <= ts_ns < until_ns``, in the order they were written."""
        cursor = await self._require().execute(
            "SELECT ts_ns, seq, lane, topic, payload FROM bus_events WHERE ts_ns >= ? AND ts_ns < ? ORDER BY id",
            (since_ns, until_ns),
        )
        return [tuple(row) for row in await cursor.fetchall()]

    async def compressed_rows(self) -> list[tuple[int, int, int, str, Any]]:
        """Events inside compressed chunks, oldest chunk first (payloads decoded from JSON)."""
        cursor = await self._require().execute("SELECT codec, blob FROM bus_events_archive ORDER BY id")
        out: list[tuple[int, int, int, str, Any]] = []
        for codec, blob in await cursor.fetchall():
            if codec != CODEC:
                raise StoreError(f"{self.path}: bus_events_archive: unknown codec {codec!r}")
            out.extend(tuple(row) for row in _DECODER.decode(zlib.decompress(blob)))
        return out

    async def counts(self) -> tuple[int, int]:
        """(rows in bus_events, rows inside compressed chunks)."""
        db = self._require()
        # An aggregate without GROUP BY always gives exactly one row.
        live = await (await db.execute("SELECT COUNT(*) FROM bus_events")).fetchone()
        packed = await (await db.execute("SELECT COALESCE(SUM(rows), 0) FROM bus_events_archive")).fetchone()
        assert live is not None and packed is not None
        return int(live[0]), int(packed[0])


async def _rollback(db: aiosqlite.Connection) -> None:
    try:
        await db.execute("ROLLBACK")
    except Exception:  # no transaction left to roll back: the original error matters
        pass
