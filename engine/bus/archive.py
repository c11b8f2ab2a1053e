"""Persist chosen bus topics to the store, in batched transactions, with retention.

The archive subscribes to its topic patterns as a *batch* subscriber whose
handler only appends the events to a pending list, so the dispatcher never
waits for disk. A writer task encodes payloads as JSON (msgspec; never pickle)
and inserts each batch in one short transaction. A retention task deletes
events older than ``retention_days``, or moves them into zlib-compressed JSON
chunks. The tables and their statements are :mod:`engine.store.bus_archive`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from engine.bus.bus import EventBus, Subscription
from engine.bus.config import ArchiveConfig
from engine.bus.events import Event, Lane
from engine.bus.topics import matches
from engine.profile import profiler
from engine.store.bus_archive import EventTables

NS_PER_DAY = 86_400 * 10**9
CHUNK_ROWS = 5_000  # rows per retention transaction



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
        self._tables = EventTables(self.path)
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
        await self._tables.open()
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
        await self._tables.close()

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
        if not self._tables.is_open or not self._pending:
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
                    await self._tables.insert(rows)
                except Exception as error:
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
        if not self._tables.is_open or self.config.retention_days <= 0:
            return 0, 0
        now = time.time_ns() if now_ns is None else now_ns
        cutoff = now - int(self.config.retention_days * NS_PER_DAY)
        deleted = moved = 0
        while True:
            async with self._write_lock:
                if self.config.retention_mode == "delete":
                    n = await self._tables.delete_before(cutoff, CHUNK_ROWS)
                    deleted += n
                else:
                    n = await self._tables.compress_before(cutoff, CHUNK_ROWS)
                    if n:
                        moved += n
                        self.chunks += 1
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
        rows = await self._tables.rows(since_ns or 0, until_ns if until_ns is not None else 1 << 62)
        out: list[ArchivedEvent] = []
        for ts_ns, seq, lane, topic, payload in rows:
            if pattern is None or matches(pattern, topic):
                out.append(ArchivedEvent(ts_ns, seq, Lane(lane), topic, _DECODER.decode(payload)))
                if len(out) >= limit:
                    break
        return out

    async def query_compressed(self, pattern: str | None = None) -> list[ArchivedEvent]:
        """Events moved to the compressed table, oldest chunk first."""
        return [
            ArchivedEvent(ts_ns, seq, Lane(lane), topic, payload)
            for ts_ns, seq, lane, topic, payload in await self._tables.compressed_rows()
            if pattern is None or matches(pattern, topic)
        ]

    async def counts(self) -> tuple[int, int]:
        """(rows in bus_events, rows inside compressed chunks)."""
        return await self._tables.counts()

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
