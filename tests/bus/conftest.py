"""Fixtures for the event-bus tests."""

from __future__ import annotations

import pytest

from engine.bus import BusConfig, EventBus, LaneConfig


def small_config(**lanes: LaneConfig) -> BusConfig:
    """Default lanes, with some replaced."""
    return BusConfig(**lanes)


@pytest.fixture
async def bus() -> EventBus:
    b = EventBus()
    yield b
    if b.running:
        await b.stop(drain=False)
