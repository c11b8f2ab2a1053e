"""The profiling session the ``Engine`` facade owns.

:class:`ProfileSession` switches the stage timers on, runs the
:class:`~engine.monitor.monitor.Monitor` (system sampling and alert rules),
takes captures on demand (cProfile of N seconds of this process's loop,
tracemalloc snapshots and growth), folds in what worker processes ship back
(stage timings, cache counters, captures) and hands out immutable
:class:`ProfileSnapshot` s for telemetry and a :class:`ProfileReport` at the end.

    session = ProfileSession(monitor=Monitor(spec, publish=..., persist=store))
    await session.start()
    ...                                   # the run
    capture = await session.capture_cpu(5.0)
    session.add_worker_payload(payload)   # from a worker: profiler.export(reset=True)
    await session.stop()
    report = session.report(title="nightly")
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.monitor.alert_spec import AlertsSpec
from engine.monitor.alerts import Alert
from engine.monitor.monitor import MetricsSource, Monitor, MonitorSnapshot
from engine.profile.caches import CacheRegistry, CacheStats, caches
from engine.profile.captures import (
    CpuCapture,
    FunctionStat,
    MemoryGrowth,
    MemorySnapshot,
    MemoryTracer,
    capture_cpu_for,
    merge_cpu_captures,
    sample_threads_for,
)
from engine.profile.report import ProfileReport, build_profile_report
from engine.profile.stages import Profiler, StageStats, profiler
from engine.store.alerts import AlertStore


@dataclass(frozen=True, slots=True)
class ProfileSnapshot:
    """What the profiler pane shows, frozen."""

    enabled: bool
    wall_s: float
    covered_s: float
    stages: tuple[StageStats, ...]
    caches: tuple[CacheStats, ...]
    cpu: CpuCapture | None  # the last capture
    memory: MemorySnapshot | None  # the last tracemalloc snapshot
    growth: MemoryGrowth | None
    capturing: bool
    captures: int
    monitor: MonitorSnapshot | None

    def top_functions(self, n: int = 15, *, by: str = "cumulative") -> tuple[FunctionStat, ...]:
        """The last capture's heaviest functions, ``by`` "cumulative" or "own" time."""
        if self.cpu is None:
            return ()
        return self.cpu.top_own(n) if by == "own" else self.cpu.top_cumulative(n)


class ProfileSession:
    """Stage timers, captures and the monitor of one running engine."""

    def __init__(
        self,
        *,
        monitor: Monitor | None = None,
        timer: Profiler | None = None,
        registry: CacheRegistry | None = None,
        keep_captures: int = 20,
    ) -> None:
        self.monitor = monitor
        self.timer = timer if timer is not None else profiler
        self.registry = registry if registry is not None else caches
        self._captures: deque[CpuCapture] = deque(maxlen=keep_captures)
        self._capturing = False
        self._tracer: MemoryTracer | None = None
        self._memory: MemorySnapshot | None = None
        self._growth: MemoryGrowth | None = None
        self._started: float | None = None
        self._stopped: float | None = None

    # --- lifecycle ---------------------------------------------------------------

    def begin(self, *, fresh: bool = True) -> None:
        """Switch the stage timers on and start the wall clock (no loop needed).

        ``fresh`` forgets earlier stage timings and cache counts, so the stages
        and the wall time cover the same window (the report's accounting needs
        that); caches keep their counters objects, only the counts go.
        """
        if fresh:
            self.timer.reset()
            self.registry.clear_counts()
        self.timer.enabled = True
        self._started = time.perf_counter()
        self._stopped = None

    async def start(self, *, sample: bool = True, fresh: bool = True) -> None:
        """:meth:`begin`, and start the monitor's sampling task when there is a monitor."""
        self.begin(fresh=fresh)
        if sample and self.monitor is not None:
            self.monitor.start()

    async def stop(self) -> None:
        """Stop the wall clock and the monitor (pending alerts are persisted); timers stay on."""
        if self._started is not None and self._stopped is None:
            self._stopped = time.perf_counter()
        if self.monitor is not None:
            await self.monitor.stop()
        if self._tracer is not None:
            self._tracer.close()
            self._tracer = None

    @property
    def wall_s(self) -> float:
        """Seconds since :meth:`start` (until :meth:`stop`)."""
        if self._started is None:
            return 0.0
        end = self._stopped if self._stopped is not None else time.perf_counter()
        return end - self._started

    # --- captures ----------------------------------------------------------------

    async def capture_cpu(self, seconds: float, *, label: str | None = None, threads: bool = False) -> CpuCapture:
        """cProfile ``seconds`` of this process's event loop (or, with ``threads``,
        sample every thread: trials run in executor threads, say); kept as the
        last capture."""
        if self._capturing:
            raise RuntimeError("a cpu capture is already running")
        self._capturing = True
        try:
            if threads:
                capture = await sample_threads_for(seconds, label=label)
            else:
                capture = await capture_cpu_for(seconds, label=label)
        finally:
            self._capturing = False
        self._captures.append(capture)
        return capture

    def add_capture(self, capture: CpuCapture | Mapping[str, Any]) -> CpuCapture:
        """Keep a capture taken elsewhere (a worker's, as a record or its ``to_dict()``)."""
        record = capture if isinstance(capture, CpuCapture) else CpuCapture.from_dict(capture)
        self._captures.append(record)
        return record

    def captures(self) -> tuple[CpuCapture, ...]:
        return tuple(self._captures)

    def last_capture(self, *, merge_label: str | None = None) -> CpuCapture | None:
        """The last capture, or, given ``merge_label``, all captures with that label summed."""
        if not self._captures:
            return None
        if merge_label is None:
            return self._captures[-1]
        same = [c for c in self._captures if c.label == merge_label]
        return merge_cpu_captures(same, label=merge_label) if same else None

    async def capture(
        self, seconds: float, *, label: str | None = None, memory: bool = True, threads: bool = False
    ) -> CpuCapture:
        """One capture window: cProfile ``seconds`` of the loop and, with ``memory``,
        tracemalloc over the same window (top sites and growth), switched off
        afterwards unless it was already on. What the console's capture key wants."""
        if not memory:
            return await self.capture_cpu(seconds, label=label, threads=threads)
        was_tracing = self._tracer is not None
        self.start_memory()
        try:
            capture = await self.capture_cpu(seconds, label=label, threads=threads)
            self.capture_memory(capture.label)
        finally:
            if not was_tracing:
                self.stop_memory()
        return capture

    def start_memory(self, *, frames: int = 1, top: int = 25) -> None:
        """Start tracemalloc (if off) and mark the baseline for growth."""
        if self._tracer is None:
            self._tracer = MemoryTracer(frames=frames, top=top).start()
        self._tracer.mark()

    def capture_memory(self, label: str = "snapshot") -> MemorySnapshot:
        """Top allocation sites now, and growth since :meth:`start_memory`.

        Tracing stays on (allocation-heavy Python code runs several times
        slower under it) until :meth:`stop_memory` or :meth:`stop`."""
        if self._tracer is None:
            self.start_memory()
        assert self._tracer is not None
        self._memory = self._tracer.snapshot(label)
        self._growth = self._tracer.growth(label)
        return self._memory

    def stop_memory(self) -> None:
        if self._tracer is not None:
            self._tracer.close()
            self._tracer = None

    def add_memory(
        self, snapshot: MemorySnapshot | None = None, growth: MemoryGrowth | None = None
    ) -> None:
        """Keep tracemalloc results taken in a worker."""
        if snapshot is not None:
            self._memory = snapshot
        if growth is not None:
            self._growth = growth

    def add_worker_payload(self, payload: Mapping[str, Any]) -> None:
        """Fold in a worker's ``profiler.export(reset=True)`` (stages and cache counters)."""
        self.timer.merge(payload, registry=self.registry)

    # --- views -------------------------------------------------------------------

    def snapshot(self) -> ProfileSnapshot:
        return ProfileSnapshot(
            enabled=self.timer.enabled,
            wall_s=self.wall_s,
            covered_s=self.timer.covered_s(),
            stages=tuple(self.timer.stats()),
            caches=tuple(self.registry.snapshot()),
            cpu=self._captures[-1] if self._captures else None,
            memory=self._memory,
            growth=self._growth,
            capturing=self._capturing,
            captures=len(self._captures),
            monitor=self.monitor.snapshot() if self.monitor is not None else None,
        )

    def report(
        self, *, title: str = "", cpu: CpuCapture | None = None, top: int = 15
    ) -> ProfileReport:
        """The profile report of the run so far (``cpu`` defaults to the last capture)."""
        monitor = self.monitor.snapshot(history=500) if self.monitor is not None else None
        return build_profile_report(
            wall_s=self.wall_s,
            title=title,
            timer=self.timer,
            registry=self.registry,
            cpu=cpu if cpu is not None else (self._captures[-1] if self._captures else None),
            memory=self._memory,
            growth=self._growth,
            system=monitor.system if monitor is not None else None,
            alerts=monitor.history if monitor is not None else (),
            active_alerts=monitor.active if monitor is not None else (),
            top=top,
        )


@asynccontextmanager
async def profiled_run(
    *,
    alerts: AlertsSpec | Mapping[str, Any] | None = None,
    db: str | Path | None = None,
    study: str | None = None,
    metrics: MetricsSource | None = None,
    publish: Callable[[Alert], None] | None = None,
    interval_s: float = 1.0,
) -> AsyncIterator[ProfileSession]:
    """A profiled run in one ``async with``: timers on, system sampled, alert
    rules running (raises and clears stored in ``db``'s ``alerts`` table under
    ``study`` when a store is given), all stopped on the way out::

        async with profiled_run(alerts=spec_alerts, db=db, study=name) as session:
            summary = await study.run()
        report = session.report(title=name)
    """
    store = await AlertStore(db, study=study).open() if db is not None else None
    try:
        monitor = Monitor(
            alerts,
            interval_s=interval_s,
            disk_path=db,
            metrics=metrics,
            publish=publish,
            persist=store,
        )
        session = ProfileSession(monitor=monitor)
        await session.start()
        try:
            yield session
        finally:
            await session.stop()
    finally:
        if store is not None:
            await store.close()
