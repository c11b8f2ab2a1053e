"""The prioritised in-process event bus: lanes, metrics and the event archive."""

from __future__ import annotations

from engine.bus.bus import EventBus, Subscription
from engine.bus.config import ArchiveConfig, load_bus_config
from engine.bus.events import CRITICAL, HIGH, LANES, LOW, NORMAL, Event, Lane, make_event
from engine.bus.lanes import BusClosedError, BusConfig, LaneConfig, LaneFullError, RateWindow
from engine.bus.metrics import BusMetrics, DeadLetter, LaneMetrics, StopReport
from engine.bus.topics import is_pattern, matches, validate_topic

__all__ = [
    "CRITICAL",
    "HIGH",
    "LANES",
    "LOW",
    "NORMAL",
    "ArchiveConfig",
    "BusClosedError",
    "BusConfig",
    "BusMetrics",
    "DeadLetter",
    "Event",
    "EventBus",
    "Lane",
    "LaneConfig",
    "LaneFullError",
    "LaneMetrics",
    "RateWindow",
    "StopReport",
    "Subscription",
    "is_pattern",
    "load_bus_config",
    "make_event",
    "matches",
    "validate_topic",
]
