"""ProfileSession: what the Engine facade owns, end to end on real parts."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from engine.monitor.alert_spec import AlertsSpec, Threshold
from engine.monitor.monitor import Monitor
from engine.profile import caches, profiler
from engine.profile.captures import run_captured
from engine.profile.session import ProfileSession, profiled_run
from engine.store.alerts import AlertStore
from tests.profile import workload
from tests.waiting import until


def small_study(trials: int) -> None:
    """A study-shaped workload whose every step is a top-level stage."""
    with profiler.stage("data.load"):
        close = np.cumsum(np.random.default_rng(1).normal(size=50_000)) + 1000.0
    with profiler.stage("data.validate"):
        assert np.isfinite(close).all()
    cache = caches.counters("test.indicators")
    for trial in range(trials):
        with profiler.stage("optimize.trial"):
            with profiler.stage("backtest.indicators"):
                window = 5 + trial % 3
                if trial >= 3:
                    cache.hits += 1
                else:
                    cache.misses += 1
                sma = np.convolve(close, np.ones(window) / window, mode="valid")
            with profiler.stage("backtest.kernel"):
                signal = np.sign(np.diff(sma))
            with profiler.stage("backtest.metrics"):
                float(signal.mean())
        with profiler.stage("optimize.store_write"):
            json.dumps({"trial": trial, "value": float(sma[-1])})


async def test_a_profiled_run_accounts_for_its_wall_time(tmp_path: Path) -> None:
    published = []
    spec = AlertsSpec(min_duration_s=0.0, memory_mb=Threshold(warning=1.0, critical=None))  # any process breaches
    async with AlertStore(tmp_path / "genesis.db", study="demo") as store:
        session = ProfileSession(monitor=Monitor(spec, interval_s=0.05, publish=published.append, persist=store))
        await session.start()
        assert profiler.enabled
        small_study(30)
        await until(lambda: bool(published), "the monitor's alert")
        await asyncio.sleep(0.1)  # outside any stage: what the report must leave unaccounted
        await session.stop()
        assert len(await store.recent()) == 1
    report = session.report(title="demo")
    # Between start() and stop() only the stages and the short await ran.
    stage_names = {s.name for s in report.stages}
    assert {"data.load", "optimize.trial", "backtest.kernel", "optimize.store_write"} <= stage_names
    assert report.covered_s <= report.wall_s
    assert report.wall_s - report.covered_s >= 0.1  # the sleep outside any stage is unaccounted
    md = report.to_markdown()
    assert "| `test.indicators` | 27 | 3 | 90.0% |" in md
    assert "resident memory" in md and "No alert was raised." not in md
    assert published and report.alerts == tuple(published)


async def test_stages_cover_the_wall_time_of_an_instrumented_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """The 'Done when' check: top-level stages sum to the wall time, on a clock that ticks once
    per reading (so the accounting is exact whatever the machine's speed): only the session's own
    two readings, at begin and stop, fall outside the top-level stage."""
    import types

    from engine.profile import session as session_module
    from engine.profile import stages

    tick_ns = 1_000_000
    ticks = [0]

    def now_ns() -> int:
        ticks[0] += 1
        return ticks[0] * tick_ns

    monkeypatch.setattr(stages, "perf_counter_ns", now_ns)
    monkeypatch.setattr(session_module, "time", types.SimpleNamespace(perf_counter=lambda: now_ns() / 1e9))
    session = ProfileSession()
    session.begin()
    with profiler.stage("study.run"):
        small_study(40)
    await session.stop()
    report = session.report(title="covered")
    assert report.wall_s == pytest.approx((ticks[0] - 1) * tick_ns / 1e9)
    assert report.unaccounted_s == pytest.approx(2 * tick_ns / 1e9)  # begin → stage, stage → stop
    assert report.accounts_for(0.05), (report.wall_s, report.covered_s)
    assert report.top_level_s == pytest.approx(report.covered_s, rel=1e-9)


async def test_captures_on_demand_and_the_telemetry_snapshot() -> None:
    session = ProfileSession(monitor=Monitor(interval_s=0.05))
    await session.start()
    stop = asyncio.Event()

    async def busy() -> None:
        while not stop.is_set():
            with profiler.stage("bus.dispatch"):
                workload.fib(11)
            await asyncio.sleep(0)

    task = asyncio.create_task(busy())
    capture = await session.capture_cpu(0.15, label="engine 0.15s")
    session.start_memory()
    kept = workload.hold_blocks(50)
    memory = session.capture_memory("now")
    stop.set()
    await task
    await until(lambda: session.monitor.sampler.snapshot().samples >= 1, "a monitor sample")
    snap = session.snapshot()
    await session.stop()
    assert len(kept) == 50
    assert snap.enabled and snap.captures == 1 and not snap.capturing
    assert snap.cpu == capture and snap.top_functions(3, by="own")[0].function == "fib"
    assert snap.memory == memory and snap.growth is not None and snap.growth.total_growth_bytes > 0
    assert any(s.name == "bus.dispatch" for s in snap.stages)
    assert snap.monitor is not None and snap.monitor.system.samples >= 1
    assert snap.wall_s > 0 and snap.covered_s <= snap.wall_s
    with pytest.raises(AttributeError):
        snap.enabled = False  # type: ignore[misc]


def test_worker_payloads_and_captures_join_the_report() -> None:
    session = ProfileSession()
    session.begin()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        calls = [pool.submit(run_captured, workload.trial, (14,), export_stages=True).result(timeout=120) for _ in range(2)]
    for call in calls:
        session.add_worker_payload(call.stages)
        session.add_capture(call.cpu.to_dict())
    report = session.report(cpu=session.last_capture(merge_label="trial"))
    stats = {s.name: s for s in report.stages}
    assert stats["trial.compute"].count == 2 and stats["trial.compute"].merged == 2
    assert stats["trial.compute"].top_s == 0.0  # ran in the worker, not in this process's wall time
    assert report.cpu is not None and report.cpu.label == "trial"
    fib = next(f for f in report.cpu.functions if f.function == "fib")
    assert fib.calls == 2 * 1219  # fib(14) makes 2 * fib(15) - 1 calls; twice
    cache = next(c for c in report.caches if c.name == "test.trial_cache")
    assert (cache.hits, cache.misses) == (6, 2)


async def test_one_capture_window_switches_tracemalloc_off_again() -> None:
    import tracemalloc

    session = ProfileSession()
    session.begin()
    stop = asyncio.Event()
    kept: list[list[bytes]] = []

    async def leaky() -> None:
        while not stop.is_set():
            kept.append(workload.hold_blocks(5))
            await asyncio.sleep(0.005)

    task = asyncio.create_task(leaky())
    capture = await session.capture(0.15, label="window")
    stop.set()
    await task
    assert not tracemalloc.is_tracing()
    snap = session.snapshot()
    assert snap.cpu == capture and snap.memory is not None and snap.memory.label == "window"
    assert snap.growth is not None
    assert any(s.file.endswith("workload.py") for s in snap.growth.sites)
    assert kept


async def test_profiled_run_wraps_a_run_and_stores_its_alerts(tmp_path: Path) -> None:
    db = tmp_path / "genesis.db"
    raw_alerts = {"memory_mb": {"warning": 1.0, "critical": 1e9}, "min_duration_s": 0.0}
    async with profiled_run(alerts=raw_alerts, db=db, study="demo", interval_s=0.02) as session:
        assert profiler.enabled and session.monitor is not None and session.monitor.running
        with profiler.stage("study.run"):
            small_study(5)
            await until(lambda: session.monitor.sampler.snapshot().samples >= 2, "two monitor samples")
    assert session.monitor is not None and not session.monitor.running
    report = session.report(title="demo")
    assert [a.key for a in report.alerts] == ["memory_mb.warning"]
    assert report.active_alerts == report.alerts  # still raised when the run ended
    async with AlertStore(db, study="demo") as store:
        assert [a.key for a in await store.recent()] == ["memory_mb.warning"]
    assert report.system_samples >= 2


async def test_a_sampled_capture_of_every_thread_reaches_the_report(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    import types

    from engine.profile import captures

    session = ProfileSession()
    session.begin()
    stop = threading.Event()
    trial_id: list[int] = []

    def trials() -> None:  # what the inline backend does in an executor thread
        trial_id.append(threading.get_native_id())
        while not stop.is_set():
            with profiler.stage("backtest.kernel"):
                workload.fib(14)

    def trial_ticks() -> int:
        return captures._thread_cpu_ticks(trial_id[0]) or 0

    async def window(seconds: float) -> None:
        """The capture's window ends once the trial thread has had 20 CPU clock ticks in it
        (a fixed wall time would see nothing of a thread a loaded machine starves)."""
        ticks = trial_ticks()
        await until(lambda: trial_ticks() >= ticks + 20, "the trial thread to run under the sampler")

    monkeypatch.setattr(captures, "asyncio", types.SimpleNamespace(sleep=window))
    worker = asyncio.create_task(asyncio.to_thread(trials))
    await until(lambda: bool(trial_id), "the trial thread")
    capture = await session.capture(0.4, label="all threads", memory=False, threads=True)
    stop.set()
    await worker
    await session.stop()
    assert capture.sampled
    md = session.report().to_markdown()
    assert "Sampled capture `all threads` (every thread)" in md
    assert "| function | samples | own s | cumulative s |" in md
    assert "`fib (profile/workload.py:" in md


def test_a_fresh_session_forgets_what_came_before() -> None:
    profiler.enabled = True
    profiler.record("before.session", 3.0)
    counters = caches.counters("test.before")
    counters.hits, counters.bytes = 7, 1024
    session = ProfileSession()
    session.begin()
    assert profiler.stats() == [] and profiler.covered_s() == 0.0
    assert caches.counters("test.before") is counters  # the cache's own object lives on
    assert (counters.hits, counters.bytes) == (0, 1024)
    profiler.record("kept", 1.0)
    ProfileSession().begin(fresh=False)
    assert [s.name for s in profiler.stats()] == ["kept"]
