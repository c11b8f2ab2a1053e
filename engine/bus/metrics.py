"""Immutable snapshots of the bus's health: per-lane counters, latency and dead letters."""

from __future__ import annotations

from dataclasses import dataclass

from engine.bus.events import Event, Lane
from engine.histogram import HistogramSnapshot


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event a handler failed on, with the failure."""

    event: Event
    subscriber: str
    error_type: str
    error: str
    traceback: str
    wall_ns: int


@dataclass(frozen=True, slots=True)
class LaneMetrics:
    """One lane at one moment. ``published == delivered + dropped + depth`` always holds;
    ``rejected`` counts publishes refused with an error (full lane past its timeout,
    or a closed bus), which were never published."""

    lane: str
    capacity: int
    policy: str
    weight: int
    published: int
    delivered: int
    dropped: int
    rejected: int
    errors: int
    depth: int
    high_water: int
    throughput: float  # delivered events/s over the sliding window
    latency_ns: HistogramSnapshot  # publish to handler

    @property
    def p50_us(self) -> float:
        return self.latency_ns.p50 / 1e3

    @property
    def p99_us(self) -> float:
        return self.latency_ns.p99 / 1e3

    @property
    def p999_us(self) -> float:
        return self.latency_ns.p999 / 1e3


@dataclass(frozen=True, slots=True)
class BusMetrics:
    """The whole bus at one moment (what the console and reports render)."""

    lanes: tuple[LaneMetrics, ...]
    running: bool
    uptime_s: float
    subscribers: int
    dead_letter_count: int
    dead_letters: tuple[DeadLetter, ...]
    route_cache_hits: int
    route_cache_misses: int
    window_s: int

    def lane(self, lane: Lane | str | int) -> LaneMetrics:
        """The metrics of one lane."""
        return self.lanes[Lane.parse(lane)]

    @property
    def published(self) -> int:
        return sum(m.published for m in self.lanes)

    @property
    def delivered(self) -> int:
        return sum(m.delivered for m in self.lanes)

    @property
    def dropped(self) -> int:
        return sum(m.dropped for m in self.lanes)

    @property
    def errors(self) -> int:
        return sum(m.errors for m in self.lanes)

    @property
    def depth(self) -> int:
        return sum(m.depth for m in self.lanes)

    @property
    def throughput(self) -> float:
        return sum(m.throughput for m in self.lanes)


@dataclass(frozen=True, slots=True)
class StopReport:
    """What :meth:`EventBus.stop` left behind: events never delivered, per lane."""

    drained: bool
    undelivered: tuple[int, ...]  # per lane, CRITICAL first

    @property
    def total_undelivered(self) -> int:
        return sum(self.undelivered)
