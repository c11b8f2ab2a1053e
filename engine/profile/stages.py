"""Named stage timers: ``with profiler.stage("data.load"): ...``.

Each stage keeps a count, total, max and a fixed-memory histogram of its
durations. A disabled profiler hands out a shared no-op context manager, so
instrumented code costs one attribute lookup and one call when profiling is off.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter_ns
from typing import ParamSpec, TypeVar

from engine.histogram import LogHistogram

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class StageStats:
    """One stage's timings, in seconds."""

    name: str
    count: int
    total_s: float
    mean_s: float
    p50_s: float
    p95_s: float
    p99_s: float
    max_s: float


class _NullStage:
    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NULL_STAGE = _NullStage()


class _Stage:
    """The timer of one named stage; re-entrant through a stack of start times."""

    __slots__ = ("_starts", "histogram", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.histogram = LogHistogram()
        self._starts: list[int] = []

    def __enter__(self) -> None:
        self._starts.append(perf_counter_ns())

    def __exit__(self, *exc: object) -> None:
        self.histogram.record(perf_counter_ns() - self._starts.pop())

    def stats(self) -> StageStats:
        h = self.histogram
        ns = 1e-9
        return StageStats(
            name=self.name,
            count=h.count,
            total_s=h.total * ns,
            mean_s=(h.total / h.count * ns) if h.count else 0.0,
            p50_s=h.percentile(50) * ns,
            p95_s=h.percentile(95) * ns,
            p99_s=h.percentile(99) * ns,
            max_s=h.max * ns,
        )


class Profiler:
    """A set of named stage timers that can be switched on and off."""

    def __init__(self, enabled: bool = False) -> None:
        self.enabled = enabled
        self._stages: dict[str, _Stage] = {}

    def stage(self, name: str) -> _Stage | _NullStage:
        """A context manager that times one pass through stage ``name``."""
        if not self.enabled:
            return _NULL_STAGE
        timer = self._stages.get(name)
        if timer is None:
            timer = self._stages[name] = _Stage(name)
        return timer

    def timed(self, name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Decorator form of :meth:`stage`."""

        def decorate(function: Callable[P, R]) -> Callable[P, R]:
            @functools.wraps(function)
            def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
                with self.stage(name):
                    return function(*args, **kwargs)

            return wrapper

        return decorate

    def record(self, name: str, seconds: float) -> None:
        """Add one externally measured duration (from a worker, say) to a stage."""
        if not self.enabled:
            return
        timer = self._stages.get(name)
        if timer is None:
            timer = self._stages[name] = _Stage(name)
        timer.histogram.record(int(seconds * 1e9))

    def stats(self) -> list[StageStats]:
        """Every stage's timings, by name."""
        return [self._stages[name].stats() for name in sorted(self._stages)]

    def reset(self) -> None:
        """Forget all timings."""
        self._stages.clear()


#: The process-wide profiler the engine's own stages report to.
profiler = Profiler()

