"""Waiting for a condition in async tests: a deadline against a hung run, never a speed assertion."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def until(
    condition: Callable[[], bool], what: str = "the condition", *, limit_s: float = 60.0, poll_s: float = 0.01
) -> None:
    """Let the event loop run until ``condition()`` holds; fail naming ``what`` after ``limit_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(poll_s)
