"""One registry where every cache reports hits, misses, evictions and bytes.

A cache owns a :class:`CacheCounters` and bumps its fields; the registry turns
all of them into immutable :class:`CacheStats` for reports and the console.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


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


#: The process-wide cache registry.
caches = CacheRegistry()
