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
from typing import Literal

import msgspec

from engine.bus.events import Event, Lane
from engine.errors import ConfigError, GenesisError
from engine.histogram import LogHistogram

Policy = Literal["block", "block_timeout", "drop_oldest", "drop_newest"]
DROP_POLICIES = ("drop_oldest", "drop_newest")


class LaneFullError(GenesisError):
    """A lane had no room for an event within the publisher's allowance."""


class BusClosedError(GenesisError):
    """The bus is stopping or stopped and accepts no more events."""


class LaneConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One lane's bound, overflow policy and share of the dispatcher."""

    capacity: int = 10_000
    policy: Policy = "drop_oldest"
    weight: int = 8  # events per weighted round-robin turn (CRITICAL ignores it)
    timeout_s: float = 1.0  # only for block_timeout


class BusConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The ``[bus]`` table: the four lanes and the bus's bookkeeping."""

    critical: LaneConfig = LaneConfig(capacity=4_096, policy="block", weight=1)
    high: LaneConfig = LaneConfig(capacity=16_384, policy="block_timeout", weight=64, timeout_s=1.0)
    normal: LaneConfig = LaneConfig(capacity=65_536, policy="drop_oldest", weight=32)
    low: LaneConfig = LaneConfig(capacity=16_384, policy="drop_oldest", weight=8)
    dead_letters: int = 100  # how many recent dead letters the snapshot keeps
    rate_window_s: int = 5  # sliding window of the throughput figure
    route_cache: int = 4_096  # topics whose subscriber lists are cached
    slice_us: int = 200  # the dispatcher yields to publishers at least this often

    def lane(self, lane: Lane) -> LaneConfig:
        return (self.critical, self.high, self.normal, self.low)[lane]

    def validate(self, where: str = "bus") -> BusConfig:
        """``self`` if consistent, else a one-line ``ConfigError``."""
        for lane in Lane:
            cfg = self.lane(lane)
            key = f"{where}.{lane.name.lower()}"
            if cfg.capacity < 1:
                raise ConfigError(f"{key}.capacity: expected >= 1, got {cfg.capacity}")
            if cfg.weight < 1:
                raise ConfigError(f"{key}.weight: expected >= 1, got {cfg.weight}")
            if cfg.timeout_s < 0:
                raise ConfigError(f"{key}.timeout_s: expected >= 0, got {cfg.timeout_s}")
        if self.critical.policy != "block":
            raise ConfigError(f"{where}.critical.policy: CRITICAL never drops, expected 'block'")
        if (
            self.dead_letters < 0
            or self.rate_window_s < 1
            or self.route_cache < 1
            or self.slice_us < 1
        ):
            raise ConfigError(
                f"{where}: dead_letters >= 0, rate_window_s, route_cache, slice_us >= 1"
            )
        return self


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
