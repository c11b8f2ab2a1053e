"""psutil sampling of this process, its worker processes and the machine.

:class:`SystemSampler` takes one :class:`SystemSample` per call of
:meth:`~SystemSampler.sample` (synchronous) or per tick of
:meth:`~SystemSampler.run` (an asyncio task; psutil's reads happen in a thread
so the loop never waits on /proc) and keeps each series in a fixed-size
:class:`RingBuffer` for the console's sparklines. :meth:`SystemSampler.snapshot`
hands out an immutable :class:`SystemSnapshot`.

Worker processes are the children of the watched process (recursively), plus
any pids added with :meth:`SystemSampler.watch`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil

from engine.monitor.ticker import tick_every

MB = 1024 * 1024


class RingBuffer:
    """The last ``capacity`` floats of a series, oldest first on read."""

    __slots__ = ("_data", "_next", "_size")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"ring buffer capacity: expected >= 1, got {capacity}")
        self._data = np.full(capacity, np.nan)
        self._next = 0
        self._size = 0

    @property
    def capacity(self) -> int:
        return len(self._data)

    def __len__(self) -> int:
        return self._size

    def append(self, value: float) -> None:
        self._data[self._next] = value
        self._next = (self._next + 1) % len(self._data)
        self._size = min(self._size + 1, len(self._data))

    def values(self) -> np.ndarray:
        """A copy of the stored values, oldest first."""
        if self._size < len(self._data):
            return self._data[: self._size].copy()
        return np.concatenate((self._data[self._next :], self._data[: self._next]))

    def last(self, default: float = float("nan")) -> float:
        if not self._size:
            return default
        return float(self._data[self._next - 1])

    def max(self, default: float = float("nan")) -> float:
        values = self.values()
        values = values[~np.isnan(values)]
        return float(values.max()) if values.size else default


@dataclass(frozen=True, slots=True)
class ProcessSample:
    """One process's resources at one moment."""

    pid: int
    name: str
    cpu_percent: float  # of one core (can exceed 100 with threads)
    rss_bytes: int
    threads: int
    open_files: int  # file descriptors on POSIX, handles on Windows


@dataclass(frozen=True, slots=True)
class SystemSample:
    """The process, its workers and the machine at one moment."""

    ts: float  # time.time()
    process: ProcessSample
    workers: tuple[ProcessSample, ...]
    cpu_per_core: tuple[float, ...]
    memory_total_bytes: int
    memory_available_bytes: int
    memory_percent: float
    load_average: tuple[float, float, float]
    disk_free_bytes: int | None  # on the store's file system, when a path was given

    @property
    def total_rss_bytes(self) -> int:
        """Resident memory of the process and all its workers."""
        return self.process.rss_bytes + sum(w.rss_bytes for w in self.workers)

    @property
    def workers_cpu_percent(self) -> float:
        return sum(w.cpu_percent for w in self.workers)

    @property
    def machine_cpu_percent(self) -> float:
        return sum(self.cpu_per_core) / len(self.cpu_per_core) if self.cpu_per_core else 0.0


#: Series names kept in ring buffers (units in the names; "rss_mb" is the process plus its workers).
SERIES = (
    "cpu_percent",
    "process_rss_mb",
    "rss_mb",
    "threads",
    "open_files",
    "workers",
    "workers_cpu_percent",
    "workers_rss_mb",
    "machine_cpu_percent",
    "memory_percent",
    "load_1m",
    "disk_free_mb",
)


@dataclass(frozen=True, slots=True)
class SystemSnapshot:
    """Immutable view of the sampler: the last sample and every series.

    ``series`` and ``cpu_per_core`` hold tuples of floats, oldest first, for
    sparklines; ``peaks`` the largest value seen of each series (all time,
    not only what the ring still holds).
    """

    interval_s: float
    samples: int
    timestamps: tuple[float, ...]
    last: SystemSample | None
    series: dict[str, tuple[float, ...]]
    cpu_per_core: tuple[tuple[float, ...], ...]
    peaks: dict[str, float]

    def to_dict(self) -> dict[str, object]:
        return {
            "interval_s": self.interval_s,
            "samples": self.samples,
            "peaks": dict(self.peaks),
            "last": None if self.last is None else {s: self.series[s][-1] for s in SERIES if self.series[s]},
        }


#: Linux lists each thread's children in ``/proc/<pid>/task/<tid>/children`` (``CONFIG_PROC_CHILDREN``).
_PROC_CHILDREN = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists()


def _descendants(process: psutil.Process) -> list[int]:
    """The pids of ``process``'s children, theirs and so on: from the per-thread ``children`` lists (a
    few small reads) where Linux has them; else psutil's, which reads the stat of every process on the
    machine (milliseconds a sample on a busy one)."""
    if not _PROC_CHILDREN:
        return [child.pid for child in process.children(recursive=True)]
    found: list[int] = []
    parents = [process.pid]
    while parents:
        pid = parents.pop()
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:  # exited since it was listed
            continue
        for task in tasks:
            try:
                with open(f"/proc/{pid}/task/{task}/children") as listing:
                    children = [int(child) for child in listing.read().split()]
            except OSError:  # (the thread or process ended)
                continue
            found.extend(children)
            parents.extend(children)
    return found


class SystemSampler:
    """Samples a process (this one by default), its workers and the machine."""

    def __init__(
        self,
        *,
        interval_s: float = 1.0,
        capacity: int = 300,
        pid: int | None = None,
        disk_path: str | Path | None = None,
        include_children: bool = True,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"sampler interval_s: expected > 0, got {interval_s}")
        self.interval_s = interval_s
        self.capacity = capacity
        self.disk_path = Path(disk_path) if disk_path is not None else None
        self.include_children = include_children
        self._process = psutil.Process(pid)
        self._known: dict[int, psutil.Process] = {self._process.pid: self._process}
        self._watched: set[int] = set()
        self._lock = threading.Lock()
        self._timestamps = RingBuffer(capacity)
        self._series = {name: RingBuffer(capacity) for name in SERIES}
        self._cores = [RingBuffer(capacity) for _ in range(psutil.cpu_count() or 1)]
        self._peaks: dict[str, float] = {}
        self._last: SystemSample | None = None
        self._count = 0
        self._task: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[SystemSample], None]] = []
        self._executor: ThreadPoolExecutor | None = None
        # Prime the cpu counters: psutil's first cpu_percent() reads 0.
        self._process.cpu_percent(None)
        psutil.cpu_percent(None, percpu=True)

    @property
    def pid(self) -> int:
        return self._process.pid

    def watch(self, pids: Iterable[int]) -> None:
        """Also sample these processes as workers (ones not among the children)."""
        with self._lock:
            self._watched.update(int(p) for p in pids)

    def on_sample(self, listener: Callable[[SystemSample], None]) -> None:
        """Call ``listener(sample)`` after every sample (the alert rules, say)."""
        self._listeners.append(listener)

    def _handle(self, pid: int) -> psutil.Process:
        handle = self._known.get(pid)
        if handle is None:
            handle = self._known[pid] = psutil.Process(pid)
            handle.cpu_percent(None)  # prime; the first reading would be 0
        return handle

    @staticmethod
    def _read(handle: psutil.Process) -> ProcessSample:
        with handle.oneshot():
            try:
                if sys.platform == "win32":
                    files = handle.num_handles()
                else:
                    files = handle.num_fds()
            except (psutil.AccessDenied, AttributeError):
                files = 0
            return ProcessSample(
                pid=handle.pid,
                name=handle.name(),
                cpu_percent=handle.cpu_percent(None),
                rss_bytes=handle.memory_info().rss,
                threads=handle.num_threads(),
                open_files=files,
            )

    def _worker_pids(self) -> list[int]:
        pids = set(self._watched)
        if self.include_children:
            with contextlib.suppress(psutil.Error):
                pids.update(_descendants(self._process))
        pids.discard(self._process.pid)
        return sorted(pids)

    def sample(self) -> SystemSample:
        """Take one sample now and append it to the ring buffers."""
        with self._lock:
            process = self._read(self._process)
            workers = []
            alive = {self._process.pid}
            for pid in self._worker_pids():
                try:
                    workers.append(self._read(self._handle(pid)))
                    alive.add(pid)
                except psutil.Error:  # exited between listing and reading
                    self._watched.discard(pid)
            for pid in list(self._known):
                if pid not in alive:
                    del self._known[pid]
            memory = psutil.virtual_memory()
            try:
                load = tuple(float(x) for x in os.getloadavg())
            except (OSError, AttributeError):
                load = (0.0, 0.0, 0.0)
            disk_free = None
            if self.disk_path is not None:
                disk_free = _free_bytes(self.disk_path)
            sample = SystemSample(
                ts=time.time(),
                process=process,
                workers=tuple(workers),
                cpu_per_core=tuple(float(x) for x in psutil.cpu_percent(None, percpu=True)),
                memory_total_bytes=memory.total,
                memory_available_bytes=memory.available,
                memory_percent=float(memory.percent),
                load_average=(load[0], load[1], load[2]),
                disk_free_bytes=disk_free,
            )
        self.record(sample)
        return sample

    def record(self, sample: SystemSample) -> None:
        """Append a sample taken elsewhere (a replayed session, a test's series)."""
        with self._lock:
            self._append(sample)
        for listener in list(self._listeners):
            listener(sample)

    def _append(self, sample: SystemSample) -> None:
        values = {
            "cpu_percent": sample.process.cpu_percent,
            "process_rss_mb": sample.process.rss_bytes / MB,
            "rss_mb": sample.total_rss_bytes / MB,
            "threads": float(sample.process.threads),
            "open_files": float(sample.process.open_files),
            "workers": float(len(sample.workers)),
            "workers_cpu_percent": sample.workers_cpu_percent,
            "workers_rss_mb": sum(w.rss_bytes for w in sample.workers) / MB,
            "machine_cpu_percent": sample.machine_cpu_percent,
            "memory_percent": sample.memory_percent,
            "load_1m": sample.load_average[0],
            "disk_free_mb": float("nan") if sample.disk_free_bytes is None else sample.disk_free_bytes / MB,
        }
        self._timestamps.append(sample.ts)
        for name, value in values.items():
            self._series[name].append(value)
            if value == value and value > self._peaks.get(name, float("-inf")):
                self._peaks[name] = value
        for ring, value in zip(self._cores, sample.cpu_per_core, strict=False):
            ring.append(value)
        self._last = sample
        self._count += 1

    def series(self, name: str) -> np.ndarray:
        """One series' stored values, oldest first."""
        with self._lock:
            return self._series[name].values()

    def timestamps(self) -> np.ndarray:
        with self._lock:
            return self._timestamps.values()

    def snapshot(self) -> SystemSnapshot:
        """An immutable copy of everything sampled so far."""
        with self._lock:
            return SystemSnapshot(
                interval_s=self.interval_s,
                samples=self._count,
                timestamps=tuple(self._timestamps.values().tolist()),
                last=self._last,
                series={name: tuple(ring.values().tolist()) for name, ring in self._series.items()},
                cpu_per_core=tuple(tuple(ring.values().tolist()) for ring in self._cores),
                peaks=dict(self._peaks),
            )

    # --- the async task -------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def sample_async(self) -> SystemSample:
        """:meth:`sample` in the sampler's own thread: a default executor busy
        with trials must not delay the monitor, which is when it matters."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="genesis-sampler")
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.sample)

    def close(self) -> None:
        """Release the sampling thread (idle threads cost nothing, but tests count them)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False)

    async def run(self) -> None:
        """Sample every ``interval_s`` until cancelled (psutil reads run in a thread)."""
        await tick_every(self.interval_s, self.sample_async)

    def start(self) -> asyncio.Task[None]:
        """Start :meth:`run` as a task on the running loop (idempotent)."""
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(self.run(), name="genesis-system-sampler")
        assert self._task is not None
        return self._task

    async def stop(self) -> None:
        """Cancel the sampling task and wait for it to end, and for a sample already in
        its thread (cancelling the await does not stop the thread, which would record it
        after ``stop`` returned)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)  # at most one psutil read (milliseconds)


def _free_bytes(path: Path) -> int | None:
    """Free bytes on the file system holding ``path`` (its nearest existing parent)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free
    except OSError:
        return None
