"""Lane configuration and the bounded queue state of one lane.

Each lane is a ``collections.deque`` with a capacity and an overflow policy:

- ``block``: publishers wait for room (``publish`` awaits; ``publish_nowait``
  raises :class:`LaneFullError`). CRITICAL must use it: it never drops.
- ``block_timeout``: publishers wait up to ``timeout_s``, then
  :class:`LaneFullError` is raised (HIGH's default).
- ``drop_oldest`` / ``drop_newest``: the oldest queued event (or the new one)
  is dropped and counted (NORMAL's and LOW's defaults).
"""

from __future__ import annotations

import asyncio
from collections import deque

from engine.bus.config import DROP_POLICIES, BusConfig, LaneConfig, Policy
from engine.bus.events import Event, Lane
from engine.errors import GenesisError
from engine.histogram import LogHistogram


class LaneFullError(GenesisError):
    """A lane had no room for an event within the publisher's allowance."""


class BusClosedError(GenesisError):
    """The bus is stopping or stopped and accepts no more events."""


class RateWindow:
    """Events per second over the last ``seconds`` whole seconds (one counter per second)."""

    __slots__ = ("counts", "first", "seconds", "secs")

    def __init__(self, seconds: int) -> None:
        self.seconds = seconds
        self.counts = [0] * (seconds + 1)
        self.secs = [-1] * (seconds + 1)
        self.first = -1

    def add(self, sec: int, n: int) -> None:
        """Count ``n`` events in second ``sec``."""
        i = sec % len(self.counts)
        if self.secs[i] != sec:
            self.secs[i] = sec
            self.counts[i] = 0
            if self.first < 0:
                self.first = sec
        self.counts[i] += n

    def rate(self, now_sec: int, start_sec: int | None = None) -> float:
        """Mean events/s over the complete seconds ``[now_sec - seconds, now_sec)``,
        counted from ``start_sec`` (when the counting began) if that is later."""
        begin = now_sec - self.seconds
        origin = self.first if start_sec is None else start_sec
        if origin >= 0:
            begin = max(begin, origin)
        span = now_sec - begin
        if span <= 0:
            return 0.0
        total = sum(c for c, s in zip(self.counts, self.secs, strict=True) if begin <= s < now_sec)
        return total / span


class LaneState:
    """The queue and counters of one lane (the bus mutates it; read it via snapshots)."""

    __slots__ = (
        "capacity",
        "delivered",
        "dropped",
        "errors",
        "hist",
        "hwm",
        "lane",
        "policy",
        "published",
        "putters",
        "queue",
        "rate",
        "rejected",
        "timeout_s",
        "weight",
    )

    def __init__(self, lane: Lane, cfg: LaneConfig, rate_window_s: int) -> None:
        self.lane = lane
        self.capacity = cfg.capacity
        self.policy = cfg.policy
        self.weight = cfg.weight
        self.timeout_s = cfg.timeout_s
        self.queue: deque[Event] = deque()
        self.putters: deque[asyncio.Future[None]] = deque()
        self.published = 0
        self.delivered = 0
        self.dropped = 0
        self.rejected = 0
        self.errors = 0
        self.hwm = 0
        self.hist = LogHistogram()
        self.rate = RateWindow(rate_window_s)

    def wake_putters(self) -> None:
        """Let as many waiting publishers go as there is room."""
        room = self.capacity - len(self.queue)
        putters = self.putters
        while putters and room > 0:
            fut = putters.popleft()
            if not fut.done():
                fut.set_result(None)
                room -= 1

    def fail_putters(self, error: BaseException) -> None:
        while self.putters:
            fut = self.putters.popleft()
            if not fut.done():
                fut.set_exception(error)


__all__ = [
    "DROP_POLICIES",
    "BusClosedError",
    "BusConfig",
    "LaneConfig",
    "LaneFullError",
    "LaneState",
    "Policy",
    "RateWindow",
]
