"""The fixed-rate tick loop the system sampler and the monitor share."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def tick_every(interval_s: float, tick: Callable[[], Awaitable[object]]) -> None:
    """Await ``tick()`` now and then every ``interval_s`` seconds until cancelled.

    The schedule is fixed (a tick's own duration does not push the next one back);
    a tick that overruns skips the missed ticks instead of firing them in a burst.
    An exception from ``tick`` ends the loop: callers that must survive one catch it.
    """
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    while True:
        await tick()
        next_at += interval_s
        delay = next_at - loop.time()
        if delay < 0:  # fell behind (a slow tick): skip the missed ones
            next_at, delay = loop.time(), 0.0
        await asyncio.sleep(delay)
