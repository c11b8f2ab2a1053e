"""Numba compilation timing: first-call compile time apart from run time.

Wrap a numba dispatcher once::

    from engine.profile.numba_timing import timed_kernel
    run_nb = timed_kernel(_run_nb, "backtest.kernel")

Each call of ``run_nb(...)`` then records its run time under the stage
``backtest.kernel`` and, when the call had to compile (or load from numba's
disk cache) a new signature, that compile time under ``numba.compile``. With
profiling off, the wrapper adds one attribute check to the call.

How: on a dispatcher's very first call the wrapper types the arguments and
compiles explicitly (``dispatcher.compile(sig)``), timing it apart. Later
new signatures (another dtype, say) compile inside the call; a listener on
numba's ``"numba:compile"`` event measures that part and it is moved from the
run time to ``numba.compile``.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from time import perf_counter_ns
from typing import Any

from engine.profile.stages import Profiler, profiler

COMPILE_STAGE = "numba.compile"


class _CompileClock:
    """Nanoseconds spent in outermost ``numba:compile`` events, per thread."""

    def __init__(self) -> None:
        self._local = threading.local()

    def total_ns(self) -> int:
        return getattr(self._local, "total", 0)

    def on_start(self, _event: Any) -> None:
        local = self._local
        depth = getattr(local, "depth", 0)
        if depth == 0:
            local.start = perf_counter_ns()
        local.depth = depth + 1

    def on_end(self, _event: Any) -> None:
        local = self._local
        local.depth = getattr(local, "depth", 1) - 1
        if local.depth == 0:
            local.total = getattr(local, "total", 0) + perf_counter_ns() - local.start


_clock: _CompileClock | None = None
_clock_lock = threading.Lock()


def compile_clock() -> _CompileClock:
    """The process-wide listener on numba's compile events (registered once)."""
    global _clock
    if _clock is None:
        with _clock_lock:
            if _clock is None:
                from numba.core import event

                clock = _CompileClock()

                class _Listener(event.Listener):
                    def on_start(self, ev: Any) -> None:
                        clock.on_start(ev)

                    def on_end(self, ev: Any) -> None:
                        clock.on_end(ev)

                event.register("numba:compile", _Listener())
                _clock = clock
    return _clock


def timed_kernel(dispatcher: Any, stage: str, *, timer: Profiler | None = None) -> Callable[..., Any]:
    """Wrap a numba dispatcher so its calls are timed under ``stage`` and its
    compilations under ``numba.compile``."""
    prof = timer if timer is not None else profiler
    clock = compile_clock()

    @functools.wraps(dispatcher)
    def call(*args: Any, **kwargs: Any) -> Any:
        if not prof.enabled:
            return dispatcher(*args, **kwargs)
        top = prof.depth() == 0
        compiled_ns = 0
        if not dispatcher.signatures and not kwargs:
            # First call ever: compile (or load from the disk cache) on its own clock.
            signature = tuple(dispatcher.typeof_pyval(a) for a in args)
            start = perf_counter_ns()
            dispatcher.compile(signature)
            compiled_ns = perf_counter_ns() - start
        before = clock.total_ns()
        start = perf_counter_ns()
        result = dispatcher(*args, **kwargs)
        elapsed = perf_counter_ns() - start
        inner = clock.total_ns() - before  # a new signature compiled inside the call
        compiled_ns += inner
        if compiled_ns:
            prof.record(COMPILE_STAGE, compiled_ns * 1e-9, top_level=top)
        prof.record(stage, (elapsed - inner) * 1e-9, top_level=top)
        return result

    call.dispatcher = dispatcher  # type: ignore[attr-defined]
    return call
