"""cProfile and tracemalloc captures, returned as plain frozen records.

A capture runs where the work runs (a worker process profiles its own trial)
and comes back to the parent as data: :class:`CpuCapture`, :class:`MemorySnapshot`
and :class:`MemoryGrowth` are frozen dataclasses of strings and numbers, with
``to_dict()``/``from_dict()`` for JSON, so no code object or ``pstats`` ever
crosses a process boundary.

- ``capture_call(fn, *args)`` profiles one call (a chosen trial) and returns
  ``(result, CpuCapture)``; :func:`run_captured` is the same thing as a
  module-level function to hand to a process pool.
- :class:`CpuRecorder` profiles the current thread from ``start()`` to
  ``stop()``; :func:`capture_cpu_for` profiles N seconds of the running
  asyncio loop (the engine in this process); :class:`ThreadSampler` and
  :func:`sample_threads_for` sample every thread (trials run by the inline
  backend in executor threads, say), which cProfile cannot.
- :class:`MemoryTracer` takes tracemalloc snapshots (top allocation sites) and
  measures growth since a mark.
"""

from __future__ import annotations

import asyncio
import cProfile
import os
import pstats
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

R = TypeVar("R")

#: Rows kept per capture: the union of the top ``limit`` by cumulative and by own time.
DEFAULT_LIMIT = 60


@dataclass(frozen=True, slots=True)
class FunctionStat:
    """One function's line in a cProfile capture (times in seconds)."""

    file: str
    line: int
    function: str
    calls: int
    primitive_calls: int
    own_s: float
    cumulative_s: float

    @property
    def label(self) -> str:
        """``function (file:line)`` with the file shortened to its last two parts."""
        if self.file == "~":  # builtins: pstats names them "<built-in method ...>"
            return self.function
        return f"{self.function} ({_short_path(self.file)}:{self.line})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "function": self.function,
            "calls": self.calls,
            "primitive_calls": self.primitive_calls,
            "own_s": self.own_s,
            "cumulative_s": self.cumulative_s,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FunctionStat:
        return cls(
            file=str(data["file"]),
            line=int(data["line"]),
            function=str(data["function"]),
            calls=int(data["calls"]),
            primitive_calls=int(data["primitive_calls"]),
            own_s=float(data["own_s"]),
            cumulative_s=float(data["cumulative_s"]),
        )


@dataclass(frozen=True, slots=True)
class CpuCapture:
    """A cProfile capture: what ran, for how long, in which process."""

    label: str
    pid: int
    duration_s: float
    total_calls: int
    functions: tuple[FunctionStat, ...]  # sorted by cumulative time, descending
    started_at: float = 0.0  # wall clock (time.time()) when the capture began
    sampled: bool = False  # True: a ThreadSampler's estimate (calls are sample counts)

    def top_cumulative(self, n: int = 15) -> tuple[FunctionStat, ...]:
        """The ``n`` functions with the most time including callees."""
        return tuple(sorted(self.functions, key=lambda f: f.cumulative_s, reverse=True)[:n])

    def top_own(self, n: int = 15) -> tuple[FunctionStat, ...]:
        """The ``n`` functions with the most time in their own body."""
        return tuple(sorted(self.functions, key=lambda f: f.own_s, reverse=True)[:n])

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "pid": self.pid,
            "duration_s": self.duration_s,
            "total_calls": self.total_calls,
            "started_at": self.started_at,
            "sampled": self.sampled,
            "functions": [f.to_dict() for f in self.functions],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CpuCapture:
        return cls(
            label=str(data["label"]),
            pid=int(data["pid"]),
            duration_s=float(data["duration_s"]),
            total_calls=int(data["total_calls"]),
            functions=tuple(FunctionStat.from_dict(f) for f in data["functions"]),
            started_at=float(data.get("started_at", 0.0)),
            sampled=bool(data.get("sampled", False)),
        )


def _short_path(path: str) -> str:
    parts = path.replace("\\", "/").split("/")
    return "/".join(parts[-2:])


_DISABLE = "<method 'disable' of '_lsprof.Profiler' objects>"


def _cpu_capture(
    profile: cProfile.Profile, *, label: str, duration_s: float, started_at: float, limit: int
) -> CpuCapture:
    """Turn a stopped profile into a plain record of its heaviest functions."""
    stats = pstats.Stats(profile)
    rows = []
    for (file, line, function), (primitive, calls, own, cumulative, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if file == __file__ or function == _DISABLE:  # the capture's own machinery
            continue
        rows.append(FunctionStat(file, line, function, calls, primitive, own, cumulative))
    by_cumulative = sorted(rows, key=lambda f: f.cumulative_s, reverse=True)
    by_own = sorted(rows, key=lambda f: f.own_s, reverse=True)
    kept = {id(f): f for f in (*by_cumulative[:limit], *by_own[:limit])}
    functions = tuple(sorted(kept.values(), key=lambda f: f.cumulative_s, reverse=True))
    return CpuCapture(
        label=label,
        pid=os.getpid(),
        duration_s=duration_s,
        total_calls=int(stats.total_calls),  # type: ignore[attr-defined]
        functions=functions,
        started_at=started_at,
    )


class CpuRecorder:
    """cProfile of the current thread between :meth:`start` and :meth:`stop`.

    Only one profiler can be active per thread (a second ``start`` raises
    ``ValueError`` from cProfile). ``expired`` tells a worker loop when a
    capture of ``seconds`` is due to stop.
    """

    def __init__(self, label: str = "capture", *, seconds: float | None = None, limit: int = DEFAULT_LIMIT) -> None:
        self.label = label
        self.seconds = seconds
        self.limit = limit
        self._profile: cProfile.Profile | None = None
        self._start = 0.0
        self._started_at = 0.0
        self.result: CpuCapture | None = None  # set when used as a context manager

    @property
    def running(self) -> bool:
        return self._profile is not None

    @property
    def expired(self) -> bool:
        """True once a capture given ``seconds`` has run that long."""
        return self.running and self.seconds is not None and time.perf_counter() - self._start >= self.seconds

    def start(self) -> CpuRecorder:
        if self._profile is not None:
            raise RuntimeError("cpu capture already running")
        profile = cProfile.Profile()
        self._started_at = time.time()
        self._start = time.perf_counter()
        profile.enable()
        self._profile = profile
        return self

    def stop(self) -> CpuCapture:
        profile = self._profile
        if profile is None:
            raise RuntimeError("cpu capture not running")
        profile.disable()
        duration = time.perf_counter() - self._start
        self._profile = None
        return _cpu_capture(
            profile, label=self.label, duration_s=duration, started_at=self._started_at, limit=self.limit
        )

    def __enter__(self) -> CpuRecorder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self._profile is not None:
            self.result = self.stop()


def capture_call(
    function: Callable[..., R], *args: Any, label: str | None = None, limit: int = DEFAULT_LIMIT, **kwargs: Any
) -> tuple[R, CpuCapture]:
    """Run ``function(*args, **kwargs)`` under cProfile; return its result and the capture."""
    recorder = CpuRecorder(label or str(getattr(function, "__qualname__", "call")), limit=limit)
    recorder.start()
    try:
        result = function(*args, **kwargs)
    finally:
        capture = recorder.stop()
    return result, capture


async def capture_cpu_for(seconds: float, *, label: str | None = None, limit: int = DEFAULT_LIMIT) -> CpuCapture:
    """Profile ``seconds`` of whatever this thread's asyncio loop runs.

    cProfile hooks the thread that enables it, so this sees every task and
    callback of the running loop (the engine's parent-side work), and not the
    worker processes: use :func:`run_captured` for those.
    """
    recorder = CpuRecorder(label or f"engine {seconds:g}s", limit=limit).start()
    try:
        await asyncio.sleep(seconds)
    finally:
        capture = recorder.stop()
    return capture


def merge_cpu_captures(captures: Iterable[CpuCapture], *, label: str = "merged") -> CpuCapture:
    """Sum several captures (one per worker, say) function by function.

    Each capture holds only its heaviest rows, so a function that was light in
    every worker may be missing from the sum; the heavy ones are exact.
    """
    captures = list(captures)
    rows: dict[tuple[str, int, str], list[float]] = {}
    for capture in captures:
        for f in capture.functions:
            row = rows.setdefault((f.file, f.line, f.function), [0, 0, 0.0, 0.0])
            row[0] += f.calls
            row[1] += f.primitive_calls
            row[2] += f.own_s
            row[3] += f.cumulative_s
    functions = tuple(
        sorted(
            (FunctionStat(k[0], k[1], k[2], int(v[0]), int(v[1]), v[2], v[3]) for k, v in rows.items()),
            key=lambda f: f.cumulative_s,
            reverse=True,
        )
    )
    return CpuCapture(
        label=label,
        pid=captures[0].pid if len({c.pid for c in captures}) == 1 else 0,
        duration_s=sum(c.duration_s for c in captures),
        total_calls=sum(c.total_calls for c in captures),
        functions=functions,
        started_at=min((c.started_at for c in captures), default=0.0),
        sampled=any(c.sampled for c in captures),
    )


# --- sampling every thread -----------------------------------------------------


class ThreadSampler:
    """A sampling profiler of every thread of this process (cProfile sees one).

    A background thread reads each thread's stack (``sys._current_frames()``)
    every ``interval_s`` and charges each thread's time since its previous
    look to the function on top of its stack (own time) and once to every
    function on it (cumulative time). Estimates, not counts:
    ``FunctionStat.calls`` holds the number of samples that saw the function.
    Its cost does not depend on how many calls the code makes, so it suits
    "what is the engine doing right now" while trials run in executor threads.

    With ``clock="cpu"`` (the default where ``/proc`` has per-thread times,
    i.e. Linux) the time charged is the thread's CPU time, so threads blocked
    in ``select``, a queue or a lock (even inside C, where no Python frame
    says so) weigh nothing. CPU times tick at 1/``SC_CLK_TCK`` s (10 ms), so
    a capture needs a second or so to mean much. ``clock="wall"`` charges
    elapsed time and drops samples whose top frame is a well-known wait.
    """

    _IDLE = frozenset({"select", "wait", "poll", "_worker", "get", "acquire", "sleep", "epoll"})

    def __init__(
        self, label: str = "threads", *, interval_s: float = 0.002, limit: int = DEFAULT_LIMIT, clock: str = "auto"
    ) -> None:
        if clock not in ("auto", "cpu", "wall"):
            raise ValueError(f"thread sampler clock: expected auto, cpu or wall, got {clock!r}")
        if clock == "auto":
            clock = "cpu" if _thread_cpu_ticks(threading.get_native_id()) is not None else "wall"
        self.label = label
        self.interval_s = interval_s
        self.limit = limit
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._own: dict[tuple[str, int, str], float] = {}
        self._cumulative: dict[tuple[str, int, str], float] = {}
        self._seen: dict[tuple[str, int, str], int] = {}
        self._samples = 0
        self._start = 0.0
        self._started_at = 0.0

    def start(self) -> ThreadSampler:
        if self._thread is not None:
            raise RuntimeError("thread sampler already running")
        self._stop.clear()
        self._started_at = time.time()
        self._start = time.perf_counter()
        self._thread = threading.Thread(target=self._run, name="genesis-thread-sampler", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        me = threading.get_ident()
        last = time.perf_counter()
        ticks: dict[int, int] = {}
        tick_s = 1.0 / os.sysconf("SC_CLK_TCK") if self.clock == "cpu" else 0.0
        while not self._stop.wait(self.interval_s):
            now = time.perf_counter()
            elapsed, last = now - last, now
            frames = sys._current_frames()
            native = {t.ident: t.native_id for t in threading.enumerate()} if tick_s else {}
            for ident, frame in frames.items():
                if ident == me:
                    continue
                if not tick_s:
                    if frame.f_code.co_name not in self._IDLE:
                        self._charge(frame, elapsed)
                    continue
                tid = native.get(ident)
                now_ticks = _thread_cpu_ticks(tid) if tid is not None else None
                if now_ticks is None:
                    continue
                before = ticks.get(ident)
                ticks[ident] = now_ticks
                if before is not None and now_ticks > before:
                    self._charge(frame, (now_ticks - before) * tick_s)

    def _charge(self, frame: Any, weight: float) -> None:
        top = frame.f_code
        self._samples += 1
        key = (top.co_filename, top.co_firstlineno, top.co_name)
        self._own[key] = self._own.get(key, 0.0) + weight
        on_stack = set()
        while frame is not None:
            code = frame.f_code
            on_stack.add((code.co_filename, code.co_firstlineno, code.co_name))
            frame = frame.f_back
        for key in on_stack:
            self._cumulative[key] = self._cumulative.get(key, 0.0) + weight
            self._seen[key] = self._seen.get(key, 0) + 1

    def stop(self) -> CpuCapture:
        thread, self._thread = self._thread, None
        if thread is None:
            raise RuntimeError("thread sampler not running")
        self._stop.set()
        thread.join()
        rows = [
            FunctionStat(k[0], k[1], k[2], self._seen[k], self._seen[k], self._own.get(k, 0.0), cumulative)
            for k, cumulative in self._cumulative.items()
            if k[0] != __file__ and k[0] != threading.__file__
        ]
        by_cumulative = sorted(rows, key=lambda f: f.cumulative_s, reverse=True)
        by_own = sorted(rows, key=lambda f: f.own_s, reverse=True)
        kept = {id(f): f for f in (*by_cumulative[: self.limit], *by_own[: self.limit])}
        return CpuCapture(
            label=self.label,
            pid=os.getpid(),
            duration_s=time.perf_counter() - self._start,
            total_calls=self._samples,
            functions=tuple(sorted(kept.values(), key=lambda f: f.cumulative_s, reverse=True)),
            started_at=self._started_at,
            sampled=True,
        )


def _thread_cpu_ticks(native_id: int) -> int | None:
    """User + system CPU clock ticks of one thread of this process (Linux), or None."""
    try:
        with open(f"/proc/self/task/{native_id}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()
    try:
        return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    except (IndexError, ValueError):
        return None


async def sample_threads_for(seconds: float, *, label: str | None = None, interval_s: float = 0.002) -> CpuCapture:
    """Sample every thread of this process for ``seconds`` (see :class:`ThreadSampler`)."""
    sampler = ThreadSampler(label or f"threads {seconds:g}s", interval_s=interval_s).start()
    try:
        await asyncio.sleep(seconds)
    finally:
        capture = sampler.stop()
    return capture


# --- tracemalloc -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AllocationSite:
    """Memory allocated at one source line and still alive (or its growth)."""

    file: str
    line: int
    size_bytes: int
    count: int

    @property
    def label(self) -> str:
        return f"{_short_path(self.file)}:{self.line}"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "size_bytes": self.size_bytes, "count": self.count}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AllocationSite:
        return cls(str(data["file"]), int(data["line"]), int(data["size_bytes"]), int(data["count"]))


@dataclass(frozen=True, slots=True)
class MemorySnapshot:
    """Top allocation sites traced by tracemalloc at one moment."""

    label: str
    pid: int
    taken_at: float
    traced_bytes: int
    peak_bytes: int
    sites: tuple[AllocationSite, ...]  # largest first

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "pid": self.pid,
            "taken_at": self.taken_at,
            "traced_bytes": self.traced_bytes,
            "peak_bytes": self.peak_bytes,
            "sites": [s.to_dict() for s in self.sites],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MemorySnapshot:
        return cls(
            label=str(data["label"]),
            pid=int(data["pid"]),
            taken_at=float(data["taken_at"]),
            traced_bytes=int(data["traced_bytes"]),
            peak_bytes=int(data["peak_bytes"]),
            sites=tuple(AllocationSite.from_dict(s) for s in data["sites"]),
        )


@dataclass(frozen=True, slots=True)
class MemoryGrowth:
    """Growth between two tracemalloc snapshots: the sites that grew most."""

    label: str
    pid: int
    seconds: float
    total_growth_bytes: int
    sites: tuple[AllocationSite, ...] = field(default=())  # size/count are the deltas, largest growth first

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "pid": self.pid,
            "seconds": self.seconds,
            "total_growth_bytes": self.total_growth_bytes,
            "sites": [s.to_dict() for s in self.sites],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MemoryGrowth:
        return cls(
            label=str(data["label"]),
            pid=int(data["pid"]),
            seconds=float(data["seconds"]),
            total_growth_bytes=int(data["total_growth_bytes"]),
            sites=tuple(AllocationSite.from_dict(s) for s in data["sites"]),
        )


_OWN_FILES = (tracemalloc.__file__,)


class MemoryTracer:
    """tracemalloc in this process: snapshots of the top sites, growth since a mark.

    Starting the tracer starts tracemalloc if it is off (and :meth:`close`
    stops it again only then). Tracing slows allocation-heavy Python code
    noticeably, so it is on only while a capture wants it.
    """

    def __init__(self, *, frames: int = 1, top: int = 25) -> None:
        self.frames = frames
        self.top = top
        self._started_here = False
        self._mark: tracemalloc.Snapshot | None = None
        self._mark_time = 0.0

    def start(self) -> MemoryTracer:
        if not tracemalloc.is_tracing():
            tracemalloc.start(self.frames)
            self._started_here = True
        return self

    def close(self) -> None:
        self._mark = None
        if self._started_here and tracemalloc.is_tracing():
            tracemalloc.stop()
        self._started_here = False

    def __enter__(self) -> MemoryTracer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _raw(self) -> tracemalloc.Snapshot:
        if not tracemalloc.is_tracing():
            raise RuntimeError("memory tracer not started")
        snapshot = tracemalloc.take_snapshot()
        return snapshot.filter_traces([tracemalloc.Filter(False, f) for f in _OWN_FILES])

    def snapshot(self, label: str = "snapshot") -> MemorySnapshot:
        """The ``top`` sites holding the most traced memory right now."""
        raw = self._raw()
        current, peak = tracemalloc.get_traced_memory()
        sites = tuple(
            AllocationSite(stat.traceback[0].filename, stat.traceback[0].lineno, stat.size, stat.count)
            for stat in raw.statistics("lineno")[: self.top]
        )
        return MemorySnapshot(label, os.getpid(), time.time(), current, peak, sites)

    def mark(self) -> None:
        """Remember the current allocations; :meth:`growth` compares against them."""
        self._mark = self._raw()
        self._mark_time = time.perf_counter()

    def growth(self, label: str = "growth") -> MemoryGrowth:
        """The sites that grew most since :meth:`mark` (exact, from raw snapshots)."""
        if self._mark is None:
            raise RuntimeError("memory tracer has no mark: call mark() first")
        after = self._raw()
        diffs = after.compare_to(self._mark, "lineno")
        total = sum(d.size_diff for d in diffs)
        grown = sorted(diffs, key=lambda d: d.size_diff, reverse=True)[: self.top]
        sites = tuple(
            AllocationSite(d.traceback[0].filename, d.traceback[0].lineno, d.size_diff, d.count_diff)
            for d in grown
            if d.size_diff > 0
        )
        return MemoryGrowth(label, os.getpid(), time.perf_counter() - self._mark_time, total, sites)


def compare_snapshots(before: MemorySnapshot, after: MemorySnapshot, *, top: int = 25) -> MemoryGrowth:
    """Growth between two plain snapshots (possibly from another process).

    Only the sites each snapshot kept are compared, so this is exact for the
    large sites and blind to the small ones; :meth:`MemoryTracer.growth` is
    exact throughout.
    """
    old = {(s.file, s.line): s for s in before.sites}
    new = {(s.file, s.line): s for s in after.sites}
    deltas = []
    for key in old.keys() | new.keys():
        a, b = old.get(key), new.get(key)
        size = (b.size_bytes if b else 0) - (a.size_bytes if a else 0)
        count = (b.count if b else 0) - (a.count if a else 0)
        if size > 0:
            deltas.append(AllocationSite(key[0], key[1], size, count))
    deltas.sort(key=lambda s: s.size_bytes, reverse=True)
    return MemoryGrowth(
        label=f"{before.label} -> {after.label}",
        pid=after.pid,
        seconds=after.taken_at - before.taken_at,
        total_growth_bytes=after.traced_bytes - before.traced_bytes,
        sites=tuple(deltas[:top]),
    )


# --- in a worker process ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CapturedCall:
    """The result of a call run by :func:`run_captured`, with its captures and,
    when ``export_stages`` was asked, the worker's stage timings and cache
    counters (a :meth:`Profiler.export` payload)."""

    result: Any
    cpu: CpuCapture | None
    memory: MemoryGrowth | None
    stages: dict[str, Any] | None = None


def run_captured(
    function: Callable[..., Any],
    args: tuple[Any, ...] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    cpu: bool = True,
    memory: bool = False,
    export_stages: bool = False,
    label: str | None = None,
    limit: int = DEFAULT_LIMIT,
    top: int = 25,
) -> CapturedCall:
    """Run one call (a trial) under cProfile and/or tracemalloc, in this process.

    Module-level so a process pool can run it: ``pool.submit(run_captured,
    run_trial, (params,), memory=True)``. ``function`` must itself be a
    module-level function; what comes back is plain data.
    """
    kwargs = dict(kwargs or {})
    name = label or str(getattr(function, "__qualname__", "call"))
    tracer = MemoryTracer(top=top).start() if memory else None
    if tracer is not None:
        tracer.mark()
    recorder = CpuRecorder(name, limit=limit).start() if cpu else None
    try:
        result = function(*args, **kwargs)
    finally:
        cpu_capture = recorder.stop() if recorder is not None else None
        growth = tracer.growth(name) if tracer is not None else None
        if tracer is not None:
            tracer.close()
    stages = None
    if export_stages:
        from engine.profile.stages import profiler

        stages = profiler.export(reset=True)
    return CapturedCall(result, cpu_capture, growth, stages)
