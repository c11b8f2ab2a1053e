"""The shared tick loop: a fixed schedule, missed ticks skipped rather than burst, errors end it."""

from __future__ import annotations

import asyncio

import pytest

from engine.monitor import ticker


class _Stop(Exception):
    pass


async def test_ticks_keep_a_fixed_schedule_and_skip_the_missed_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    # A fake clock: each tick takes the time listed for it, each sleep advances the clock.
    loop = asyncio.get_running_loop()
    now = [100.0]
    durations = iter([0.25, 2.5, 0.0, 0.0])  # the second tick overruns two whole intervals
    sleeps: list[float] = []

    async def tick() -> None:
        try:
            now[0] += next(durations)
        except StopIteration:
            raise _Stop from None

    async def fake_sleep(delay: float) -> None:
        sleeps.append(round(delay, 9))
        now[0] += delay

    monkeypatch.setattr(ticker.asyncio, "sleep", fake_sleep)
    monkeypatch.setattr(loop, "time", lambda: now[0])
    try:
        with pytest.raises(_Stop):
            await ticker.tick_every(1.0, tick)
    finally:
        monkeypatch.undo()
    # on schedule after a short tick; no wait and no burst after the long one, then on schedule again
    assert sleeps == [0.75, 0.0, 1.0, 1.0]
