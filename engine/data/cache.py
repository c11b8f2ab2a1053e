"""The tiered candle cache: L1 in memory, L2 in the store, the network for the gaps.

- **L1** (:class:`MemoryCache`): an LRU of ``Bars`` by (series, start, end)
  under a byte budget, process-wide and thread-safe. A range that ended before
  the last closed candle is immutable and lives ``immutable_ttl_s``; a range
  that touches the current candle expires after one interval.
- **L2** (:class:`~engine.store.candles.CandleStore`): candles in SQLite
  with the ranges known to be complete (its coverage).
- :class:`TieredCandleCache` serves a request from L1, else computes the gaps
  of L2's coverage, fetches only those, and reads the merged range back.

Hits, misses and bytes go to ``caches.counters("data.l1")`` and ``("data.l2")``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from engine.data.bars import Bars
from engine.data.timeframes import timeframe_seconds
from engine.errors import DataError
from engine.profile import profiler
from engine.profile.caches import caches
from engine.store.candles import CandleStore, SeriesKey

MS_PER_DAY = 86_400_000


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
