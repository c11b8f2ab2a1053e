"""Fixtures for the event-bus tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from engine.bus import BusConfig, EventBus, LaneConfig


def small_config(**lanes: LaneConfig) -> BusConfig:
    """Default lanes, with some replaced."""
    return BusConfig(**lanes)


async def wait_until(predicate: Callable[[], bool], *, limit_s: float = 5.0) -> None:
    """Yield to the loop until ``predicate()`` holds (a safety limit, not a timing assertion)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit_s
    while not predicate():
        if loop.time() > end:
            raise AssertionError("condition never became true")
        await asyncio.sleep(0.001)


@pytest.fixture
async def bus() -> EventBus:
    b = EventBus()
    yield b
    if b.running:
        await b.stop(drain=False)
