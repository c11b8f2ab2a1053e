"""The paper host: runs the paper-trading loop on the engine's bus, replaying it when asked."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from engine.errors import InputError
from engine.telemetry import TradingTelemetry
from engine.telemetry_map import trading_from_state

if TYPE_CHECKING:
    from engine.bus import EventBus
    from engine.live.control import PaperLoop

log = logging.getLogger("engine.runtime")


class PaperHost:
    """Runs a paper loop (one symbol's :class:`~engine.live.loop.PaperTradingLoop` or a
    :class:`~engine.live.basket.BasketPaperLoop`) on the engine's bus.

    ``make_loop(bus)`` builds a fresh loop; with ``repeat`` a replay that
    reaches its end starts again (the demo's endless market), unless it was
    stopped or killed.
    """

    def __init__(
        self, make_loop: Callable[[EventBus], PaperLoop], bus: EventBus, *, repeat: bool = True
    ) -> None:
        self._make_loop = make_loop
        self._bus = bus
        self._repeat = repeat
        self.loop: PaperLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.replays = 0

    async def start(self) -> None:
        self.loop = self._make_loop(self._bus)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="paper-loop")

    async def _run(self) -> None:
        while True:
            assert self.loop is not None  # made by start() before this task
            try:
                result = await self.loop.run()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("paper loop failed")
                return
            self.replays += 1
            log.info(
                "paper replay %d finished: %d bars, %d trades, equity %.2f",
                self.replays, result.bars, len(result.trades), result.final_equity,
            )
            if self._stopping or not self._repeat or result.state.risk.kill_switch:
                return
            self.loop = self._make_loop(self._bus)

    @property
    def running(self) -> bool:
        if self.loop is None:
            return False
        state = self.loop.state()
        return state.running and not state.paused

    async def toggle(self) -> bool:
        """Pause a running loop or resume a paused one; the new running state."""
        if self.loop is None or self._task is None or self._task.done():
            raise InputError("the paper loop has ended")
        state = self.loop.state()
        if state.paused:
            self.loop.resume()
        else:
            self.loop.pause()
        await asyncio.sleep(0.05)  # the control event goes through the bus's CRITICAL lane
        return self.running

    async def kill(self) -> None:
        if self.loop is None:
            raise InputError("the paper loop is not running")
        self.loop.kill("kill switch (console)")
        await asyncio.sleep(0.05)

    async def stop(self) -> None:
        self._stopping = True
        task, self._task = self._task, None
        if task is None or task.done():
            return
        with contextlib.suppress(Exception):
            assert self.loop is not None  # a task runs only after start() made the loop
            if self.loop.state().paused:
                self.loop.resume()
            self.loop.stop()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=2.0)
        except Exception:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def telemetry(self) -> TradingTelemetry | None:
        if self.loop is None:
            return None
        return trading_from_state(self.loop.state())
