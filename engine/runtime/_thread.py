"""The engine on its own thread: :class:`EngineThread` runs an :class:`Engine` on a private event loop.

The console's event loop paints frames; the engine's runs the bus, the paper
loop, the monitor, study orchestration and the store's reader. Two things
cross between the threads, and only these:

- **snapshots**: :meth:`EngineThread.telemetry` returns the last
  :class:`~engine.telemetry.Telemetry` built *on the engine's thread* and
  published by one reference assignment (atomic under the GIL); each call asks
  the engine thread for the next one, so snapshots are built at the console's
  polling rate and are at most one poll old;
- **commands**: :meth:`EngineThread.submit` schedules an engine coroutine on the
  engine's loop and returns a :class:`concurrent.futures.Future`; the ``async``
  methods (``pause``, ``stop``, ...) wrap it for the caller's loop. A command
  publishes a fresh snapshot before its future resolves, so the console shows
  its effect at once.

A failure in the engine thread never hangs the console: an error nothing
handled is recorded in ``Telemetry.faults``; a thread that dies checkpoints the
study, fails every pending command with :class:`EngineStopped` and ends.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import logging
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from engine.errors import GenesisError
from engine.telemetry import StudyComparison, Telemetry, TrialDetail

if TYPE_CHECKING:
    from engine.backtest.inspect import TradeInspection
    from engine.runtime._engine import Engine

log = logging.getLogger("engine.runtime")

T = TypeVar("T")

#: The interpreter's switch interval while an engine thread runs. A thread that
#: wants the GIL waits up to one interval for the holder to drop it; CPython's
#: default (5 ms) let each frame the console paints delay a bus event by 5 ms or
#: more (measured in ``benchmarks/console.py``: ``gil``).
SWITCH_INTERVAL_S = 0.0005
THREAD_NAME = "genesis-engine"


class EngineStopped(GenesisError):
    """The engine's thread has ended: commands can no longer run."""


def engine_threads() -> list[threading.Thread]:
    """The engine threads alive in this process (tests and shutdown checks)."""
    return [t for t in threading.enumerate() if t.name.startswith(THREAD_NAME)]


class EngineThread:
    """Runs ``engine`` on its own asyncio loop in a thread; the console's ``TelemetrySource``."""

    def __init__(self, engine: Engine, *, switch_interval_s: float | None = SWITCH_INTERVAL_S) -> None:
        self.engine = engine
        self._switch_interval_s = switch_interval_s
        self._saved_switch_interval: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._finished: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._pending: set[concurrent.futures.Future[Any]] = set()
        self._pending_lock = threading.Lock()
        self._latest = Telemetry(seq=0, taken_at=time.time(), workspace=engine.workspace, notes=("engine: starting",))
        self._publish_asked = False
        self._faults: tuple[str, ...] = ()
        self._closing = False

    # ------------------------------------------------------------------ thread
    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The engine's event loop (None before :meth:`start_thread`)."""
        return self._loop

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._finished.done()

    @property
    def faults(self) -> tuple[str, ...]:
        return self._faults

    def start_thread(self) -> None:
        """Start the thread and its loop (idempotent); returns once the loop runs."""
        if self._thread is not None:
            return
        if self._switch_interval_s is not None and sys.getswitchinterval() > self._switch_interval_s:
            self._saved_switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(self._switch_interval_s)
        self._thread = threading.Thread(target=self._main, name=THREAD_NAME, daemon=True)
        self._thread.start()
        self._ready.wait()

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        loop.set_exception_handler(self._unhandled)
        loop.call_soon(self._ready.set)
        try:
            loop.run_forever()
        except BaseException as error:  # SystemExit from a user strategy, say: checkpoint, then end
            self._fault(f"engine thread stopped: {type(error).__name__}: {error}")
            with contextlib.suppress(BaseException):
                loop.run_until_complete(self.engine.close())
        finally:
            self._ready.set()
            with contextlib.suppress(BaseException):
                self._finish_loop(loop)
            self._fail_pending()
            self._restore_switch_interval()
            with contextlib.suppress(concurrent.futures.InvalidStateError):
                self._finished.set_result(None)

    @staticmethod
    def _finish_loop(loop: asyncio.AbstractEventLoop) -> None:
        tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()

    def _fail_pending(self) -> None:
        with self._pending_lock:
            pending, self._pending = self._pending, set()
        for future in pending:
            with contextlib.suppress(concurrent.futures.InvalidStateError):
                if not future.done():
                    future.set_exception(EngineStopped(self._stopped_reason()))

    def _restore_switch_interval(self) -> None:
        if self._saved_switch_interval is not None:
            sys.setswitchinterval(self._saved_switch_interval)
            self._saved_switch_interval = None

    def _stopped_reason(self) -> str:
        return self._faults[-1] if self._faults else "the engine has stopped"

    def _unhandled(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        message = context.get("message", "unhandled error")
        text = f"{message}: {type(error).__name__}: {error}" if error is not None else str(message)
        self._fault(text)

    def _fault(self, text: str) -> None:
        log.error("engine thread: %s", text)
        self._faults = (*self._faults, text)
        self._latest = dataclasses.replace(self._latest, faults=self._faults)

    # ---------------------------------------------------------------- commands
    def submit(self, make: Callable[[], Awaitable[T]]) -> concurrent.futures.Future[T]:
        """Run ``make()`` on the engine's loop; its future (failed with :class:`EngineStopped` if the thread ends)."""
        loop = self._loop
        if loop is None or self._finished.done() or loop.is_closed():
            failed: concurrent.futures.Future[T] = concurrent.futures.Future()
            failed.set_exception(EngineStopped(self._stopped_reason()))
            return failed
        try:
            future = asyncio.run_coroutine_threadsafe(self._command(make), loop)
        except RuntimeError:  # the loop closed between the check and the call
            failed = concurrent.futures.Future()
            failed.set_exception(EngineStopped(self._stopped_reason()))
            return failed
        with self._pending_lock:
            self._pending.add(future)
        future.add_done_callback(self._forget)
        if self._finished.done():  # ended while we registered: fail it here, nobody else will
            self._fail_pending()
        return future

    def _forget(self, future: concurrent.futures.Future[Any]) -> None:
        with self._pending_lock:
            self._pending.discard(future)

    async def _command(self, make: Callable[[], Awaitable[T]]) -> T:
        try:
            return await make()
        finally:
            self._publish(fresh=True)

    async def call(self, make: Callable[[], Awaitable[T]]) -> T:
        """Run ``make()`` on the engine's loop and await it from the caller's loop."""
        return await asyncio.wrap_future(self.submit(make))

    # --------------------------------------------------------------- telemetry
    def telemetry(self) -> Telemetry:
        """The latest snapshot (built on the engine's thread); asks for the next one."""
        loop = self._loop
        if loop is not None and not self._publish_asked and not self._finished.done():
            self._publish_asked = True
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._publish)
        return self._latest

    def _publish(self, *, fresh: bool = False) -> None:
        """Build a snapshot on the engine's thread and hand it over (one reference assignment)."""
        self._publish_asked = False
        try:
            snapshot = self.engine.telemetry(fresh=fresh)
        except Exception as error:
            self._fault(f"telemetry failed: {type(error).__name__}: {error}")
            return
        if self._faults:
            snapshot = dataclasses.replace(snapshot, faults=self._faults)
        self._latest = snapshot

    # ------------------------------------------------------- the engine's API
    async def start(self, startup: Callable[[], Awaitable[object]] | None = None) -> None:
        """Start the thread, then the engine on it (``startup``, e.g. the demo's, instead of ``Engine.start``)."""
        self.start_thread()
        await self.call(startup or self.engine.start)

    async def start_study(self, path: str) -> str:
        return await self.call(lambda: self.engine.start_study(path))

    async def pause(self) -> str:
        return await self.call(self.engine.pause)

    async def resume(self) -> str:
        return await self.call(self.engine.resume)

    async def stop(self) -> str:
        return await self.call(self.engine.stop)

    async def capture_profile(self, seconds: float = 5.0) -> str:
        return await self.call(lambda: self.engine.capture_profile(seconds))

    async def toggle_paper(self) -> str:
        return await self.call(self.engine.toggle_paper)

    async def kill_switch(self) -> str:
        return await self.call(self.engine.kill_switch)

    async def open_trial(self, number: int) -> TrialDetail:
        return await self.call(lambda: self.engine.open_trial(number))

    async def cycle_heatmap(self) -> str:
        return await self.call(self.engine.cycle_heatmap)

    async def inspect_trial(self, number: int) -> TradeInspection:
        return await self.call(lambda: self.engine.inspect_trial(number))

    async def backtest_strategy(self, name: str) -> TradeInspection:
        return await self.call(lambda: self.engine.backtest_strategy(name))

    async def compare_studies(self, names: tuple[str, ...]) -> StudyComparison:
        return await self.call(lambda: self.engine.compare_studies(names))

    # ---------------------------------------------------------------- shutdown
    async def close(self) -> None:
        """Stop the engine (checkpointing its study), then its loop and thread."""
        if self._thread is None:
            return
        self._closing = True
        with contextlib.suppress(EngineStopped):
            await self.call(self.engine.close)
        self._stop_loop()
        await asyncio.wrap_future(self._finished)
        self._thread.join()

    def close_sync(self, timeout_s: float | None = None) -> bool:
        """:meth:`close` for code outside an event loop (after the console crashed); True once the thread ended."""
        if self._thread is None:
            return True
        self._closing = True
        with contextlib.suppress(EngineStopped, concurrent.futures.TimeoutError):
            self.submit(self.engine.close).result(timeout_s)
        self._stop_loop()
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _stop_loop(self) -> None:
        loop = self._loop
        if loop is not None and not self._finished.done():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(loop.stop)
