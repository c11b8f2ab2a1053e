"""Bus configuration: the ``[bus]`` table of the global config (lanes, bookkeeping)
and its ``[bus.archive]`` sub-table."""

from __future__ import annotations

from typing import Literal

import msgspec

from engine.bus.events import Lane
from engine.bus.topics import validate_topic
from engine.errors import ConfigError

Policy = Literal["block", "block_timeout", "drop_oldest", "drop_newest"]
DROP_POLICIES = ("drop_oldest", "drop_newest")


class ArchiveConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The ``[bus.archive]`` settings."""

    topics: list[str] = msgspec.field(default_factory=list)  # patterns to persist
    batch_size: int = 500
    flush_interval_s: float = 0.5
    max_pending: int = 200_000  # rows held while the disk is slow; beyond: dropped, counted
    retention_days: float = 0.0  # 0: keep forever
    retention_mode: Literal["delete", "compress"] = "compress"
    retention_interval_s: float = 3_600.0

    def validate(self, where: str = "bus.archive") -> ArchiveConfig:
        for pattern in self.topics:
            try:
                validate_topic(pattern, pattern=True)
            except ValueError as error:
                raise ConfigError(f"{where}.topics: {error}") from None
        checks = [
            ("batch_size", self.batch_size >= 1),
            ("flush_interval_s", self.flush_interval_s > 0),
            ("max_pending", self.max_pending >= 1),
            ("retention_days", self.retention_days >= 0),
            ("retention_interval_s", self.retention_interval_s > 0),
        ]
        for key, ok in checks:
            if not ok:
                raise ConfigError(
                    f"{where}.{key}: expected a positive value, got {getattr(self, key)!r}"
                )
        return self


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
    archive: ArchiveConfig = msgspec.field(default_factory=lambda: ArchiveConfig())

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


def load_bus_config() -> BusConfig:
    """The ``[bus]`` table of the global config (defaults when absent), validated."""
    from engine.config import config_path, config_section

    config = config_section("bus", BusConfig)
    where = f"{config_path()}: [bus]"
    config.validate(where)
    config.archive.validate(f"{where}.archive")
    return config
