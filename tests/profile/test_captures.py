"""cProfile and tracemalloc captures, in this process and in a real worker process."""

from __future__ import annotations

import asyncio
import inspect
import json
import multiprocessing
import os
import pickle
import threading
from concurrent.futures import ProcessPoolExecutor
from queue import SimpleQueue

import pytest

from engine.profile import caches, profiler
from engine.profile.captures import (
    CapturedCall,
    CpuCapture,
    CpuRecorder,
    MemoryGrowth,
    MemorySnapshot,
    MemoryTracer,
    ThreadSampler,
    _thread_cpu_ticks,
    capture_call,
    capture_cpu_for,
    compare_snapshots,
    merge_cpu_captures,
    run_captured,
)
from tests.profile import workload
from tests.waiting import until

ALLOC_LINE = inspect.getsourcelines(workload.hold_blocks)[1] + 2  # the list comprehension


def _row(capture: CpuCapture, function: str):
    return next(f for f in capture.functions if f.function == function and f.file.endswith("workload.py"))


def test_capture_call_finds_the_hot_function() -> None:
    result, capture = capture_call(workload.fib, 18)
    assert result == 2584
    fib = _row(capture, "fib")
    assert fib.calls == 8361  # fib(18) makes 2*fib(19) - 1 calls
    assert fib.primitive_calls == 1
    assert capture.top_own(1)[0].function == "fib"
    assert fib in capture.top_cumulative(5)
    assert capture.pid == os.getpid()
    assert capture.total_calls >= fib.calls
    assert fib.own_s <= fib.cumulative_s <= capture.duration_s * 1.5


def test_capture_round_trips_through_json() -> None:
    _, capture = capture_call(workload.fib, 12, label="trial 7")
    again = CpuCapture.from_dict(json.loads(json.dumps(capture.to_dict())))
    assert again == capture
    assert again.label == "trial 7"


def test_recorder_stops_once_and_reports_expiry() -> None:
    recorder = CpuRecorder("window", seconds=0.0).start()
    assert recorder.expired
    workload.fib(10)
    capture = recorder.stop()
    assert any(f.function == "fib" for f in capture.functions)
    with pytest.raises(RuntimeError):
        recorder.stop()
    with CpuRecorder("ctx") as ctx:
        workload.fib(8)
    assert ctx.result is not None and any(f.function == "fib" for f in ctx.result.functions)


async def test_capture_for_seconds_sees_the_running_loop() -> None:
    stop = asyncio.Event()

    async def engine_work() -> None:
        while not stop.is_set():
            workload.fib(12)
            await asyncio.sleep(0)

    task = asyncio.create_task(engine_work())
    try:
        capture = await capture_cpu_for(0.2, label="engine")
    finally:
        stop.set()
        await task
    assert capture.label == "engine"
    assert _row(capture, "fib").calls > 0


def test_merge_sums_function_rows() -> None:
    _, a = capture_call(workload.fib, 10)
    _, b = capture_call(workload.fib, 11)
    merged = merge_cpu_captures([a, b], label="workers")
    assert _row(merged, "fib").calls == _row(a, "fib").calls + _row(b, "fib").calls
    assert merged.duration_s == pytest.approx(a.duration_s + b.duration_s)


def test_memory_tracer_finds_the_allocation_site_and_growth() -> None:
    with MemoryTracer(top=10) as tracer:
        tracer.mark()
        kept = workload.hold_blocks(300)
        snapshot = tracer.snapshot("after")
        growth = tracer.growth("leak")
    assert len(kept) == 300
    site = next(s for s in snapshot.sites if s.file.endswith("workload.py"))
    assert site.line == ALLOC_LINE
    assert site.size_bytes >= 300 * 10_000
    grown = growth.sites[0]
    assert (grown.file.endswith("workload.py"), grown.line) == (True, ALLOC_LINE)
    assert grown.size_bytes >= 300 * 10_000
    assert growth.total_growth_bytes >= 300 * 10_000
    assert MemorySnapshot.from_dict(json.loads(json.dumps(snapshot.to_dict()))) == snapshot
    assert MemoryGrowth.from_dict(json.loads(json.dumps(growth.to_dict()))) == growth


def test_compare_plain_snapshots() -> None:
    with MemoryTracer(top=50) as tracer:
        before = tracer.snapshot("before")
        kept = workload.hold_blocks(200)
        after = tracer.snapshot("after")
    growth = compare_snapshots(before, after)
    assert len(kept) == 200
    assert growth.sites[0].line == ALLOC_LINE
    assert growth.sites[0].size_bytes >= 200 * 10_000
    assert growth.label == "before -> after"


def test_growth_needs_a_mark() -> None:
    with MemoryTracer() as tracer, pytest.raises(RuntimeError, match="mark"):
        tracer.growth()


def test_run_captured_in_this_process_exports_stages() -> None:
    out = run_captured(workload.trial, (15,), cpu=True, export_stages=True)
    assert out.result["value"] == 610
    assert out.stages is not None and "trial.compute" in out.stages["stages"]
    assert profiler.stats() == []  # exported with reset


def test_capture_from_a_worker_process_reaches_the_parent() -> None:
    """A real spawned worker profiles its trial and ships plain records back."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        cpu_call = pool.submit(run_captured, workload.trial, (16,), cpu=True, export_stages=True).result(timeout=120)
        mem_call = pool.submit(run_captured, workload.leaking_trial, (400,), cpu=False, memory=True).result(timeout=120)

    assert isinstance(cpu_call, CapturedCall)
    worker_pid = cpu_call.result["pid"]
    assert worker_pid != os.getpid()
    assert cpu_call.cpu is not None and cpu_call.cpu.pid == worker_pid
    assert _row(cpu_call.cpu, "fib").calls == 3193  # fib(16)
    # The payload is plain data: no code objects, JSON-safe.
    payload = json.loads(json.dumps(cpu_call.stages))
    assert b"code" not in pickle.dumps(cpu_call.cpu.to_dict())
    profiler.merge(payload)
    stats = {s.name: s for s in profiler.stats()}
    assert stats["trial.compute"].count == 1 and stats["trial.compute"].merged == 1
    assert stats["trial.total"].total_s >= stats["trial.compute"].total_s
    cache = next(c for c in caches.snapshot() if c.name == "test.trial_cache")
    assert (cache.name, cache.hits, cache.misses, cache.hit_ratio) == ("test.trial_cache", 3, 1, 0.75)

    assert mem_call.result == 400  # blocks leaked so far in that worker
    assert mem_call.cpu is None
    growth = mem_call.memory
    assert growth is not None and growth.pid != os.getpid()
    top = growth.sites[0]
    assert top.file.endswith("workload.py") and top.line == ALLOC_LINE
    assert top.size_bytes >= 400 * 10_000


def test_a_forked_worker_ships_only_its_own_timings() -> None:
    """Fork copies the parent's timings; the worker must not ship them back again."""
    profiler.enabled = True
    profiler.record("parent.only", 1.0)
    caches.counters("test.trial_cache").hits = 100
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        call = pool.submit(run_captured, workload.trial, (10,), cpu=False, export_stages=True).result(timeout=60)
    assert call.stages is not None
    assert set(call.stages["stages"]) == {"trial.total", "trial.compute"}
    shipped = next(c for c in call.stages["caches"] if c["name"] == "test.trial_cache")
    assert (shipped["hits"], shipped["misses"]) == (3, 1)
    assert caches.counters("test.trial_cache").hits == 100  # the parent's own counts are untouched


def _blocked_in_c(queue: SimpleQueue[int]) -> None:
    queue.get()  # waits inside C: no Python frame says it is idle


@pytest.mark.parametrize("clock", ["cpu", "wall"])
async def test_thread_sampler_sees_work_in_an_executor_thread(clock: str) -> None:
    """cProfile on the loop cannot see a to_thread trial; the sampler can."""
    stop = threading.Event()
    queue: SimpleQueue[int] = SimpleQueue()
    trial_id: list[int] = []

    def trial_thread() -> None:
        trial_id.append(threading.get_native_id())
        while not stop.is_set():
            workload.fib(15)

    def trial_ticks() -> int:
        return _thread_cpu_ticks(trial_id[0]) or 0

    idle = threading.Thread(target=_blocked_in_c, args=(queue,))
    idle.start()
    worker = asyncio.create_task(asyncio.to_thread(trial_thread))
    await until(lambda: bool(trial_id), "the trial thread")
    sampler = ThreadSampler("engine threads", interval_s=0.002, clock=clock).start()
    try:
        # The window ends once the trial thread has had 20 CPU clock ticks in it, however slow the machine.
        ticks = trial_ticks()
        await until(lambda: trial_ticks() >= ticks + 20, "the trial thread to run under the sampler")
    finally:
        capture = sampler.stop()
        stop.set()
        queue.put(1)
        await worker
        idle.join()
    assert capture.sampled and capture.label == "engine threads" and capture.total_calls > 0
    fib = _row(capture, "fib")
    assert fib.own_s > 0 and fib.cumulative_s >= fib.own_s
    assert fib.cumulative_s <= capture.duration_s * 1.2
    assert CpuCapture.from_dict(json.loads(json.dumps(capture.to_dict()))) == capture
    if clock == "cpu":  # a thread blocked in C costs no CPU, so it is not charged
        assert capture.top_own(1)[0].function == "fib"
        assert not any(f.function == "_blocked_in_c" for f in capture.functions)


def test_thread_sampler_arguments() -> None:
    with pytest.raises(RuntimeError):
        ThreadSampler().stop()
    with pytest.raises(ValueError, match="clock"):
        ThreadSampler(clock="gpu")
