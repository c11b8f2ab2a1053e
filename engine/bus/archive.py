"""Persist chosen bus topics to SQLite, in batched transactions, with retention.

The archive subscribes to its topic patterns as a *batch* subscriber whose
handler only appends the events to a pending list, so the dispatcher never
waits for disk. A writer task encodes payloads as JSON (msgspec; never pickle)
and inserts each batch with one ``executemany`` in one short transaction. A
retention task deletes events older than ``retention_days``, or moves them
into ``bus_events_archive`` as zlib-compressed JSON chunks. The tables can
live in the optimizer's store file: WAL, a busy timeout and short transactions
let both writers and a reading console share it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
import msgspec

from engine.bus.bus import EventBus, Subscription
from engine.bus.config import ArchiveConfig
from engine.bus.events import Event, Lane
from engine.bus.topics import matches
from engine.errors import StoreError
from engine.profile import profiler
from engine.store import sqlite as sqlite_policy

NS_PER_DAY = 86_400 * 10**9
CHUNK_ROWS = 5_000  # rows per retention transaction

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


@dataclass(frozen=True, slots=True)
class ArchivedEvent:
    """One event as stored: Unix time (ns), sequence, lane, topic and JSON-decoded payload."""

    ts_ns: int
    seq: int
    lane: Lane
    topic: str
    payload: Any


@dataclass(frozen=True, slots=True)
class ArchiveStats:
    written: int
    batches: int
    dropped: int
    pending: int
    deleted: int
    compressed: int
    chunks: int
    errors: int
    last_error: str


def _enc_hook(value: Any) -> Any:
    """JSON for what msgspec does not know: numpy values, sets, everything else as text."""
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    return repr(value)


_ENCODER = msgspec.json.Encoder(enc_hook=_enc_hook)


def _encode(payload: Any) -> str:
    """A payload as JSON text; what JSON cannot hold (a 100-digit int, a cycle) as its repr."""
    try:
        return _ENCODER.encode(payload).decode()
    except (TypeError, ValueError, OverflowError, RecursionError):
        return _ENCODER.encode(repr(payload)).decode()


_DECODER = msgspec.json.Decoder()


class EventArchive:
    """Writes the events of chosen topics to ``path`` and applies retention."""

    def __init__(self, path: str | Path, config: ArchiveConfig | None = None) -> None:
        self.path = Path(path)
        self.config = (config or ArchiveConfig()).validate()
        self._db: aiosqlite.Connection | None = None
        self._bus: EventBus | None = None
        self._subs: list[Subscription] = []
        self._pending: list[tuple[int, Event]] = []
        self._owner: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._retainer: asyncio.Task[None] | None = None
        self._closing = False
        self._write_lock = asyncio.Lock()
        self.written = self.batches = self.dropped = 0
        self.deleted = self.compressed = self.chunks = 0
        self.errors = 0
        self.last_error = ""

    # ------------------------------------------------------------- lifecycle
    async def open(self) -> EventArchive:
        """Open (and create) the database and start the writer and retention tasks."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = await sqlite_policy.connect(self.path)
            await self._db.executescript(SCHEMA)
        except Exception as error:  # sqlite3.DatabaseError, OSError
            if self._db is not None:
                await self._db.close()
                self._db = None
            raise StoreError(f"{self.path}: cannot open the event archive: {error}") from None
        self._writer = asyncio.create_task(self._write_loop(), name="genesis-bus-archive-writer")
        if self.config.retention_days > 0:
            self._retainer = asyncio.create_task(
                self._retain_loop(), name="genesis-bus-archive-retention"
            )
        return self

    def attach(self, bus: EventBus) -> None:
        """Subscribe to the configured topics on ``bus``."""
        self._bus = bus
        for index, pattern in enumerate(self.config.topics):
            self._subs.append(
                bus.subscribe(
                    pattern,
                    functools.partial(self._on_batch, index),
                    batch_size=self.config.batch_size,
                    flush_interval_s=self.config.flush_interval_s,
                    name=f"archive:{pattern}",
                )
            )

    def detach(self) -> None:
        """Unsubscribe (pending batches are handed over first)."""
        if self._bus is not None:
            for sub in self._subs:
                self._bus.unsubscribe(sub)
        self._subs.clear()

    async def close(self) -> None:
        """Detach, write everything pending, stop the tasks and close the database."""
        self.detach()
        self._closing = True
        self._wake.set()
        for task in (self._writer, self._retainer):
            if task is None:
                continue
            if task is self._retainer:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.flush()
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def __aenter__(self) -> EventArchive:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---------------------------------------------------------------- writing
    def _on_batch(self, index: int, batch: tuple[Event, ...]) -> None:
        # Runs on the dispatcher: bookkeeping only, never I/O or encoding. An event
        # that matches several archived patterns is kept by the first one only.
        if len(self._subs) > 1:
            first = self._first_pattern
            batch = tuple(ev for ev in batch if first(ev.topic) == index)
        offset = self._bus._wall_offset if self._bus is not None else 0
        self.add(batch, offset)

    def _first_pattern(self, topic: str) -> int:
        index = self._owner.get(topic)
        if index is None:
            index = next(i for i, p in enumerate(self.config.topics) if matches(p, topic))
            if len(self._owner) > 4_096:
                self._owner.clear()
            self._owner[topic] = index
        return index

    def add(self, events: Iterable[Event], wall_offset_ns: int = 0) -> None:
        """Queue events for writing (``wall_offset_ns`` turns their ``ts_ns`` into Unix ns)."""
        events = tuple(events)
        room = self.config.max_pending - len(self._pending)
        if room < len(events):
            self.dropped += len(events) - max(room, 0)
            events = events[: max(room, 0)]
        self._pending.extend((wall_offset_ns, ev) for ev in events)
        self._wake.set()

    async def flush(self) -> int:
        """Write every pending event now; returns how many were written."""
        if self._db is None or not self._pending:
            return 0
        async with self._write_lock:
            pending, self._pending = self._pending, []
            rows = [
                (
                    offset + ev.ts_ns,
                    ev.seq,
                    int(ev.lane),
                    ev.topic,
                    _encode(ev.payload),
                )
                for offset, ev in pending
            ]
            with profiler.stage("bus.archive_write"):
                try:
                    await self._db.execute("BEGIN IMMEDIATE")
                    await self._db.executemany(
                        "INSERT INTO bus_events (ts_ns, seq, lane, topic, payload) VALUES (?, ?, ?, ?, ?)",
                        rows,
                    )
                    await self._db.execute("COMMIT")
                except Exception as error:
                    with contextlib.suppress(Exception):
                        await self._db.execute("ROLLBACK")
                    self.errors += 1
                    self.dropped += len(rows)
                    self.last_error = f"{type(error).__name__}: {error}"
                    return 0
            self.written += len(rows)
            self.batches += 1
            return len(rows)

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except Exception as error:  # keep writing later batches whatever one did
                self.errors += 1
                self.last_error = f"writer: {type(error).__name__}: {error}"
            if self._closing:
                return

    # -------------------------------------------------------------- retention
    async def _retain_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.retention_interval_s)
            try:
                await self.retain()
            except Exception as error:
                self.errors += 1
                self.last_error = f"retention: {type(error).__name__}: {error}"

    async def retain(self, now_ns: int | None = None) -> tuple[int, int]:
        """Apply retention once: returns (rows deleted, rows moved to the compressed table)."""
        if self._db is None or self.config.retention_days <= 0:
            return 0, 0
        now = time.time_ns() if now_ns is None else now_ns
        cutoff = now - int(self.config.retention_days * NS_PER_DAY)
        deleted = moved = 0
        db = self._db
        while True:
            async with self._write_lock:
                await db.execute("BEGIN IMMEDIATE")
                try:
                    if self.config.retention_mode == "delete":
                        cursor = await db.execute(
                            "DELETE FROM bus_events WHERE id IN "
                            "(SELECT id FROM bus_events WHERE ts_ns < ? ORDER BY id LIMIT ?)",
                            (cutoff, CHUNK_ROWS),
                        )
                        n = cursor.rowcount
                        deleted += n
                    else:
                        cursor = await db.execute(
                            "SELECT id, ts_ns, seq, lane, topic, payload FROM bus_events "
                            "WHERE ts_ns < ? ORDER BY id LIMIT ?",
                            (cutoff, CHUNK_ROWS),
                        )
                        rows = list(await cursor.fetchall())
                        n = len(rows)
                        if n:
                            doc = [
                                [r[1], r[2], r[3], r[4], msgspec.Raw(r[5].encode())] for r in rows
                            ]
                            blob = zlib.compress(msgspec.json.encode(doc), 6)
                            ts = [r[1] for r in rows]
                            await db.execute(
                                "INSERT INTO bus_events_archive (first_ts_ns, last_ts_ns, rows, codec, blob) "
                                "VALUES (?, ?, ?, 'zlib+json', ?)",
                                (min(ts), max(ts), n, blob),
                            )
                            await db.execute(
                                "DELETE FROM bus_events WHERE id <= ? AND ts_ns < ?",
                                (rows[-1][0], cutoff),
                            )
                            moved += n
                            self.chunks += 1
                    await db.execute("COMMIT")
                except BaseException:
                    await db.execute("ROLLBACK")
                    raise
            if n < CHUNK_ROWS:
                break
        self.deleted += deleted
        self.compressed += moved
        return deleted, moved

    # ---------------------------------------------------------------- reading
    async def query(
        self,
        pattern: str | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        limit: int = 10_000,
    ) -> list[ArchivedEvent]:
        """Recent (uncompressed) events, oldest first, filtered by topic pattern and time."""
        db = self._require_db()
        sql = "SELECT ts_ns, seq, lane, topic, payload FROM bus_events WHERE ts_ns >= ? AND ts_ns < ? ORDER BY id"
        cursor = await db.execute(
            sql, (since_ns or 0, until_ns if until_ns is not None else 1 << 62)
        )
        out: list[ArchivedEvent] = []
        for ts_ns, seq, lane, topic, payload in await cursor.fetchall():
            if pattern is None or matches(pattern, topic):
                out.append(ArchivedEvent(ts_ns, seq, Lane(lane), topic, _DECODER.decode(payload)))
                if len(out) >= limit:
                    break
        return out

    async def query_compressed(self, pattern: str | None = None) -> list[ArchivedEvent]:
        """Events moved to the compressed table, oldest chunk first."""
        db = self._require_db()
        cursor = await db.execute("SELECT codec, blob FROM bus_events_archive ORDER BY id")
        out: list[ArchivedEvent] = []
        for codec, blob in await cursor.fetchall():
            if codec != "zlib+json":
                raise StoreError(f"{self.path}: bus_events_archive: unknown codec {codec!r}")
            for ts_ns, seq, lane, topic, payload in _DECODER.decode(zlib.decompress(blob)):
                if pattern is None or matches(pattern, topic):
                    out.append(ArchivedEvent(ts_ns, seq, Lane(lane), topic, payload))
        return out

    async def counts(self) -> tuple[int, int]:
        """(rows in bus_events, rows inside compressed chunks)."""
        db = self._require_db()
        # An aggregate without GROUP BY always gives exactly one row.
        live = await (await db.execute("SELECT COUNT(*) FROM bus_events")).fetchone()
        packed = await (await db.execute("SELECT COALESCE(SUM(rows), 0) FROM bus_events_archive")).fetchone()
        assert live is not None and packed is not None
        return int(live[0]), int(packed[0])

    def stats(self) -> ArchiveStats:
        return ArchiveStats(
            written=self.written,
            batches=self.batches,
            dropped=self.dropped,
            pending=len(self._pending),
            deleted=self.deleted,
            compressed=self.compressed,
            chunks=self.chunks,
            errors=self.errors,
            last_error=self.last_error,
        )

    def _require_db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError(f"{self.path}: the event archive is not open")
        return self._db
