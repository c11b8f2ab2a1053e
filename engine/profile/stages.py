"""Named stage timers: ``with profiler.stage("data.load"): ...``.

Each stage keeps a count, total, max and a fixed-memory histogram of its
durations (:class:`~engine.histogram.LogHistogram`, percentiles within ~6%).
A disabled profiler hands out a shared no-op context manager, so instrumented
code costs one attribute lookup and one call when profiling is off.

Stages nest. A pass through a stage entered while no other stage is active in
the process is *top-level*; each stage keeps the time it spent at top level,
and the profiler keeps the time during which any stage was active
(:meth:`Profiler.covered_s`), so a report can set the stages against the wall
time and show what no stage accounts for. Concurrent asyncio tasks (or
threads) share one activity count: a stage entered while another task's stage
is open counts as nested, and the covered time is the union of the intervals.
When the top-level pass closes while another task's pass is still open, the
covered time from then on is credited to the passes that were open then, as
they close, so the top-level times still add up to the covered time.

Worker processes ship their timings to the parent as plain data:
``payload = profiler.export(reset=True)`` in the worker (a dict of ints and
lists, JSON- and pickle-safe), ``profiler.merge(payload)`` in the parent.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from time import perf_counter_ns
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from engine.histogram import BUCKETS, LogHistogram

if TYPE_CHECKING:
    from engine.profile.caches import CacheRegistry

P = ParamSpec("P")
R = TypeVar("R")

#: Version of the :meth:`Profiler.export` payload.
EXPORT_VERSION = 1

_LAST_BUCKET = BUCKETS - 1


@dataclass(frozen=True, slots=True)
class StageStats:
    """One stage's timings, in seconds; ``top_s`` is the part spent at top level."""

    name: str
    count: int
    total_s: float
    mean_s: float
    p50_s: float
    p95_s: float
    p99_s: float
    max_s: float
    top_s: float = 0.0
    min_s: float = 0.0
    merged: int = 0  # passes folded in from other processes (not in top_s)
    merged_s: float = 0.0  # their total time (part of total_s): worker time, beside the wall
    merged_top_s: float = 0.0  # the part of it the workers spent at their own top level

    def to_dict(self) -> dict[str, Any]:
        """The stats as a JSON-ready dict."""
        return {
            "name": self.name,
            "count": self.count,
            "total_s": self.total_s,
            "mean_s": self.mean_s,
            "p50_s": self.p50_s,
            "p95_s": self.p95_s,
            "p99_s": self.p99_s,
            "max_s": self.max_s,
            "min_s": self.min_s,
            "top_s": self.top_s,
            "merged": self.merged,
            "merged_s": self.merged_s,
            "merged_top_s": self.merged_top_s,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StageStats:
        return cls(
            name=str(data["name"]),
            count=int(data["count"]),
            total_s=float(data["total_s"]),
            mean_s=float(data["mean_s"]),
            p50_s=float(data["p50_s"]),
            p95_s=float(data["p95_s"]),
            p99_s=float(data["p99_s"]),
            max_s=float(data["max_s"]),
            top_s=float(data.get("top_s", 0.0)),
            min_s=float(data.get("min_s", 0.0)),
            merged=int(data.get("merged", 0)),
            merged_s=float(data.get("merged_s", 0.0)),
            merged_top_s=float(data.get("merged_top_s", 0.0)),
        )


class _NullStage:
    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NULL_STAGE = _NullStage()


class _Activity:
    """How many stages are active in this process, and for how long any was.

    Shared by every stage of one profiler. The read-modify-write of ``depth``
    has no call in between, so the GIL keeps it whole across threads.
    """

    __slots__ = ("busy_ns", "busy_start", "depth", "orphan")

    def __init__(self) -> None:
        self.depth = 0
        self.busy_start = 0
        self.busy_ns = 0
        # When the top-level pass closed while passes of other tasks were still open: the
        # covered time from then on has no top-level owner yet (0 while it has one).
        self.orphan = 0


class _Stage:
    """The timer of one named stage; re-entrant through a stack of start times.

    A start is pushed as ``t`` when the pass is top-level and as ``-t`` when it
    is nested, so one list carries both facts (perf_counter_ns is positive).
    """

    __slots__ = (
        "_activity", "_counts", "_starts", "histogram", "merged", "merged_ns", "merged_top_ns", "name", "top_ns",
    )

    def __init__(self, name: str, activity: _Activity) -> None:
        self.name = name
        self.histogram = LogHistogram()
        # The histogram's bucket list, bumped inline in __exit__ (the hot path).
        self._counts: list[int] = self.histogram._counts
        self._starts: list[int] = []
        self._activity = activity
        self.top_ns = 0
        self.merged = 0
        self.merged_ns = 0
        self.merged_top_ns = 0

    def __enter__(self) -> None:
        activity = self._activity
        depth = activity.depth
        activity.depth = depth + 1
        now = perf_counter_ns()
        if depth:
            self._starts.append(-now)
        else:
            activity.busy_start = now
            self._starts.append(now)

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        end = perf_counter_ns()
        start = self._starts.pop()
        activity = self._activity
        depth = activity.depth - 1
        activity.depth = depth
        if start > 0:
            value = end - start
            self.top_ns += value
            if depth > 0:
                activity.orphan = end
        else:
            value = end + start
            orphan = activity.orphan
            if orphan and -start <= orphan:
                # It was open when the top-level pass closed (another task's, or a thread's): the
                # covered time since then is its, so the top-level times still sum to the covered time.
                self.top_ns += end - orphan
                activity.orphan = end
        if depth <= 0:
            activity.depth = 0
            activity.busy_ns += end - activity.busy_start
            activity.orphan = 0
        # _record, inlined: a method call here costs as much as the rest.
        if value < 32:
            index = value if value > 0 else 0
        else:
            shift = value.bit_length() - 5
            index = (shift << 4) + (value >> shift)
            if index > _LAST_BUCKET:
                index = _LAST_BUCKET
        self._counts[index] += 1
        h = self.histogram
        if value > h.max:
            h.max = value
        if value < h.min or h.count == 0:
            h.min = value
        h.count += 1
        h.total += value

    def _record(self, value: int) -> None:
        # LogHistogram.record's bucket layout (also inlined in __exit__).
        if value < 32:
            if value < 0:
                value = 0
            index = value
        else:
            shift = value.bit_length() - 5
            index = (shift << 4) + (value >> shift)
            if index > _LAST_BUCKET:
                index = _LAST_BUCKET
        self._counts[index] += 1
        h = self.histogram
        if h.count == 0 or value < h.min:
            h.min = value
        if value > h.max:
            h.max = value
        h.count += 1
        h.total += value

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
            top_s=self.top_ns * ns,
            min_s=h.min * ns,
            merged=self.merged,
            merged_s=self.merged_ns * ns,
            merged_top_s=self.merged_top_ns * ns,
        )

    def export(self) -> dict[str, Any]:
        h = self.histogram
        return {
            "count": h.count,
            "total_ns": h.total,
            "min_ns": h.min,
            "max_ns": h.max,
            "top_ns": self.top_ns,
            "buckets": [[i, n] for i, n in enumerate(self._counts) if n],
        }

    def merge(self, data: Mapping[str, Any]) -> None:
        # Another process's passes join the distribution but not this process's
        # top-level time: they ran beside it, not inside its wall time.
        count = int(data["count"])
        if count <= 0:
            return
        counts = self._counts
        for index, n in data["buckets"]:
            counts[min(max(int(index), 0), _LAST_BUCKET)] += int(n)
        h = self.histogram
        low, high = int(data["min_ns"]), int(data["max_ns"])
        h.min = low if h.count == 0 else min(h.min, low)
        h.max = max(h.max, high)
        h.count += count
        h.total += int(data["total_ns"])
        self.merged += count
        self.merged_ns += int(data["total_ns"])
        self.merged_top_ns += int(data.get("top_ns", 0))


class Profiler:
    """A set of named stage timers that can be switched on and off."""

    def __init__(self, enabled: bool = False) -> None:
        self.enabled = enabled
        self._stages: dict[str, _Stage] = {}
        self._lock = threading.Lock()
        self._activity = _Activity()

    def _timer(self, name: str) -> _Stage:
        timer = self._stages.get(name)
        if timer is None:
            with self._lock:
                timer = self._stages.get(name)
                if timer is None:
                    timer = self._stages[name] = _Stage(name, self._activity)
        return timer

    def stage(self, name: str) -> _Stage | _NullStage:
        """A context manager that times one pass through stage ``name``."""
        if not self.enabled:
            return _NULL_STAGE
        timer = self._stages.get(name)
        if timer is None:
            timer = self._timer(name)
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

    def record(self, name: str, seconds: float, *, top_level: bool | None = None) -> None:
        """Add one externally measured duration (from a worker, say) to a stage.

        ``top_level`` says whether the pass counts toward the top-level sum;
        ``None`` decides by whether a stage is active here right now.
        """
        if not self.enabled:
            return
        value = max(int(seconds * 1e9), 0)
        timer = self._timer(name)
        timer._record(value)
        if top_level is None:
            top_level = self._activity.depth == 0
        if top_level:
            timer.top_ns += value
            if self._activity.depth == 0:
                self._activity.busy_ns += value

    def depth(self) -> int:
        """How many stage passes are active in this process right now."""
        return self._activity.depth

    def stats(self) -> list[StageStats]:
        """Every stage's timings, by name."""
        return [self._stages[name].stats() for name in sorted(self._stages)]

    def merged_top_level_s(self) -> float:
        """The top-level stage time folded in from other processes (workers' time)."""
        return sum(timer.merged_top_ns for timer in list(self._stages.values())) * 1e-9

    def top_level_s(self) -> float:
        """The sum of every stage's top-level time in this process."""
        return sum(timer.top_ns for timer in list(self._stages.values())) * 1e-9

    def covered_s(self) -> float:
        """Time during which at least one stage was active in this process.

        Equals :meth:`top_level_s` when stages run one after another; under
        concurrent asyncio tasks it is the union of their intervals, so it never
        exceeds the wall time.
        """
        activity = self._activity
        busy = activity.busy_ns
        if activity.depth > 0:
            busy += perf_counter_ns() - activity.busy_start
        return busy * 1e-9

    def reset(self) -> None:
        """Forget all timings."""
        with self._lock:
            self._stages.clear()
            self._activity.busy_ns = 0
            self._activity.orphan = 0

    def export(self, *, reset: bool = False, include_caches: bool = True) -> dict[str, Any]:
        """Stage timings (and the process's cache counters) as plain data.

        With ``reset=True`` the timings and cache counts are cleared after the
        export, so successive exports are deltas that the parent can simply
        :meth:`merge` (the way a worker should ship them).
        """
        from engine.profile.caches import caches

        with self._lock:
            stages = dict(self._stages)
            if reset:
                self._stages.clear()
        payload: dict[str, Any] = {
            "version": EXPORT_VERSION,
            "stages": {name: timer.export() for name, timer in sorted(stages.items())},
        }
        if include_caches:
            payload["caches"] = caches.export(reset=reset)
        return payload

    def merge(self, payload: Mapping[str, Any], *, registry: CacheRegistry | None = None) -> None:
        """Fold in an :meth:`export` from another process (works when disabled too);
        its cache counters go to ``registry`` (the process-wide one by default)."""
        version = payload.get("version")
        if version != EXPORT_VERSION:
            raise ValueError(f"profiler payload: version: expected {EXPORT_VERSION}, got {version!r}")
        for name, data in payload.get("stages", {}).items():
            self._timer(str(name)).merge(data)
        if "caches" in payload:
            from engine.profile.caches import caches

            (registry if registry is not None else caches).merge(payload["caches"])


#: The process-wide profiler the engine's own stages report to.
profiler = Profiler()


def _after_fork_in_child() -> None:
    # A forked worker starts with the parent's timings and cache counts in
    # memory; shipping them back with its first export would count them twice.
    profiler.reset()
    profiler._activity.depth = 0
    from engine.profile.caches import caches

    caches.clear_counts()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
