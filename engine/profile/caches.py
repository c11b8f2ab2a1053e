"""One registry where every cache reports hits, misses, evictions and bytes.

A cache owns a :class:`CacheCounters` and bumps its fields; the registry turns
all of them into immutable :class:`CacheStats` for reports and the console.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: Bounds of the indicator cache's default budget (``engine.strategy.cache``). They live here,
#: beside the cache registry, so code that sizes memory (the demo's alert) reads them without
#: importing numba.
INDICATOR_CACHE_MIN_BYTES = 256 * 1024 * 1024
INDICATOR_CACHE_CAP_BYTES = 2 * 1024 * 1024 * 1024


@functools.cache
def indicator_cache_budget() -> int:
    """Bytes one indicator cache may hold by default in this process: a quarter of the memory
    available at first use, shared by one cache per core, between 256 MiB and 2 GiB.

    A grid's moving averages must fit, or every chunk computes them again: 226 slow windows
    on 200,000 bars are 362 MB, and a 256 MiB cache recomputed them 23,555 times (9.9 of the
    study's 20 CPU-s)."""
    import psutil

    share = psutil.virtual_memory().available // (4 * (os.cpu_count() or 1))
    return int(min(max(share, INDICATOR_CACHE_MIN_BYTES), INDICATOR_CACHE_CAP_BYTES))


@dataclass(frozen=True, slots=True)
class CacheStats:
    """One cache's counters at one moment."""

    name: str
    hits: int
    misses: int
    evictions: int
    bytes: int
    entries: int

    @property
    def hit_ratio(self) -> float:
        """Hits over lookups (0.0 before the first lookup)."""
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0

    @property
    def lookups(self) -> int:
        return self.hits + self.misses

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON- and pickle-safe), with the hit ratio."""
        return {
            "name": self.name,
            "hits": self.hits,
            "misses": self.misses,
            "evictions": self.evictions,
            "bytes": self.bytes,
            "entries": self.entries,
            "hit_ratio": self.hit_ratio,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CacheStats:
        return cls(
            name=str(data["name"]),
            hits=int(data.get("hits", 0)),
            misses=int(data.get("misses", 0)),
            evictions=int(data.get("evictions", 0)),
            bytes=int(data.get("bytes", 0)),
            entries=int(data.get("entries", 0)),
        )


class CacheCounters:
    """Mutable counters owned by one cache (plain attribute increments: cheap)."""

    __slots__ = ("bytes", "entries", "evictions", "hits", "misses", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self.bytes = 0
        self.entries = 0

    def snapshot(self) -> CacheStats:
        return CacheStats(self.name, self.hits, self.misses, self.evictions, self.bytes, self.entries)

    def add(self, stats: CacheStats) -> None:
        """Fold in counts measured elsewhere (a worker process's cache, say)."""
        self.hits += stats.hits
        self.misses += stats.misses
        self.evictions += stats.evictions
        self.bytes = max(self.bytes, stats.bytes)
        self.entries = max(self.entries, stats.entries)

    def clear_counts(self) -> None:
        """Zero the event counts (hits, misses, evictions); ``bytes`` and
        ``entries`` are levels, not counts, and stay."""
        self.hits = self.misses = self.evictions = 0


class CacheRegistry:
    """Counters of every cache in this process, by name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, CacheCounters] = {}

    def counters(self, name: str) -> CacheCounters:
        """The counters registered under ``name``, created on first use."""
        with self._lock:
            counters = self._counters.get(name)
            if counters is None:
                counters = self._counters[name] = CacheCounters(name)
            return counters

    def snapshot(self) -> list[CacheStats]:
        """Every cache's stats, by name."""
        with self._lock:
            return [self._counters[name].snapshot() for name in sorted(self._counters)]

    def reset(self) -> None:
        with self._lock:
            self._counters.clear()

    def clear_counts(self) -> None:
        """Zero every cache's hits, misses and evictions (levels stay)."""
        with self._lock:
            for counters in self._counters.values():
                counters.clear_counts()

    def export(self, *, reset: bool = False) -> list[dict[str, Any]]:
        """Every cache's stats as plain dicts; ``reset`` zeroes the counts
        afterwards, so successive exports from a worker are deltas."""
        with self._lock:
            counters = [self._counters[name] for name in sorted(self._counters)]
            exported = [c.snapshot().to_dict() for c in counters]
            if reset:
                for c in counters:
                    c.clear_counts()
        return exported

    def merge(self, exported: Iterable[Mapping[str, Any]]) -> None:
        """Fold in another process's :meth:`export` (hits, misses and evictions
        add up; bytes and entries keep the largest level seen)."""
        for data in exported:
            stats = CacheStats.from_dict(data)
            self.counters(stats.name).add(stats)


#: The process-wide cache registry.
caches = CacheRegistry()
