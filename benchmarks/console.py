"""Console responsiveness while the demo study runs on every core.

Figures (one run, the real demo engine with the ``process`` backend):

- ``key_latency_ms``: from a key event's creation to the last frame it caused
  (the app then stays settled: no queued message, no widget waiting to be
  painted, no layout pending), p50/p95/max over ``presses`` pane switches and
  leaderboard sorts sent while the study runs; split into each pane's first
  view (its first render) and the repeats; goal p95 < 100 ms;
- ``console_cpu_percent``: CPU of the console's process (UI + engine
  orchestration; trials run in worker processes) over ``cpu_seconds`` at
  ``refresh_hz`` polls on the Optimizer pane, with the workers' CPU alongside
  for scale; goal < 15%;
- ``first_frame_s``: from process start to the first rendered frame, in a fresh
  interpreter, on a warm numba cache (the second of two launches); goal < 1.5 s;
- the reference: the same latency measured on fixed telemetry with no engine
  (``key_latency_idle_ms``), so ``latency_ratio`` shows what the running study costs;
- ``engine_latency``: the engine's own latency while the console works: the bus's
  p50/p99/max per lane (publish to handler) and the paper loop's bar-to-order
  latency (the bar's publish to its order's publish), over ``window_s`` while
  keys switch panes every 100 ms and the demo study runs on every core; three
  ways: ``headless`` (no console: the reference), ``shared_loop`` (the engine on
  the console's event loop, as before the engine had its thread) and ``thread``
  (the engine on its own thread, as ``genesis`` runs it; ``thread_5ms_switch``: the
  same at CPython's default switch interval); goals NORMAL p99 < 2 ms,
  max < 20 ms, CRITICAL p99 < 1 ms;
- ``gil``: how late a 2 ms sleep on a second thread's event loop wakes while
  this thread runs pure Python, per interpreter switch interval (what chose
  ``engine.runtime.SWITCH_INTERVAL_S``).

Run ``python -m benchmarks.console`` (``--quick`` for a shorter run; ``--engine``
for the engine latency and GIL figures only).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
from textual import events

if TYPE_CHECKING:
    from engine.runtime import Engine
    from engine.telemetry import StudyTelemetry

PANE_KEYS = "1234567"
MODES = ("headless", "shared_loop", "thread", "thread_5ms_switch")
LIVE_TRIALS = 8000


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {"p50": float("nan"), "p95": float("nan"), "max": float("nan")}
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50": round(pick(0.5), 2), "p95": round(pick(0.95), 2), "max": round(ordered[-1], 2)}


def _latency_app(source: Any, **kwargs: Any) -> Any:
    """The console, recording when each frame is written (computed and handed to the terminal)."""
    from genesis_tui.app import GenesisApp

    class LatencyApp(GenesisApp):
        frame_times: list[float]

        def _display(self, screen: Any, renderable: Any) -> None:
            if renderable is not None:
                self.frame_times.append(time.monotonic())
            super()._display(screen, renderable)

    app = LatencyApp(source, **kwargs)
    app.frame_times = []
    return app


def _settled(app: Any) -> bool:
    """Nothing left to do: no queued messages, no widget waiting to be painted, no layout pending."""
    screen = app.screen
    return (
        app._message_queue.empty()
        and screen._message_queue.empty()
        and not screen._dirty_widgets
        and not screen._layout_required
    )


async def _answer_time(app: Any, key: str, quiet_s: float = 0.02, limit_s: float = 3.0) -> float | None:
    """Milliseconds from pressing ``key`` to the last frame it caused (None: it changed nothing).

    The key counts as answered once the app has stayed settled for ``quiet_s``
    (more than a frame at 60 fps); a telemetry poll painted meanwhile is
    counted too, so the figure errs on the slow side.
    """
    app.frame_times.clear()
    pressed = time.monotonic()
    app.post_message(events.Key(key, key))
    quiet_since: float | None = None
    while time.monotonic() - pressed < limit_s:
        await asyncio.sleep(0.002)
        if not _settled(app):
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_s:
            break
    frames = [t for t in app.frame_times if t <= (quiet_since or time.monotonic())]
    return (frames[-1] - pressed) * 1000 if frames else None


async def _press_keys(app: Any, presses: int, gap_s: float) -> dict[str, list[float]]:
    """Pane switches (and leaderboard sorts on the Optimizer pane): first views apart from repeats."""
    seen: set[str] = set()
    first: list[float] = []
    repeat: list[float] = []
    for i in range(presses):
        key = PANE_KEYS[i % len(PANE_KEYS)]
        if i % 8 == 7:
            app.action_show_pane("optimizer")
            await asyncio.sleep(gap_s)
            key = "s"
        started = time.monotonic()
        answered = await _answer_time(app, key)
        if answered is not None:
            (repeat if key in seen else first).append(answered)
        seen.add(key)
        await asyncio.sleep(max(0.0, gap_s - (time.monotonic() - started)))
    return {"first": first, "repeat": repeat}


async def _idle_latency(presses: int) -> dict[str, list[float]]:
    """The reference: the same keys on fixed telemetry (needs the source tree's test fixtures)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    try:
        from tests.tui.fixtures import FixedSource, telemetry_fixture
    except ImportError:
        return {"first": [], "repeat": []}

    app = _latency_app(FixedSource(telemetry_fixture()), refresh_hz=4, remember=False)
    async with app.run_test(size=(160, 48)):
        await asyncio.sleep(2.0)  # as in the live run, keys come after start-up has settled
        return await _press_keys(app, presses, 0.25)


def _descendant_cpu_s(process: psutil.Process) -> dict[int, float]:
    """CPU seconds used so far by each process below ``process`` (worker processes, fork server)."""
    used = {}
    for child in process.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            times = child.cpu_times()
            used[child.pid] = times.user + times.system
    return used


async def _study_started(source: Any) -> StudyTelemetry:
    """Wait for the demo study's first trials; its telemetry."""
    deadline = time.monotonic() + 180
    while True:
        study = source.telemetry().study
        if study is not None and study.done > 0:
            return study  # type: ignore[no-any-return]
        if time.monotonic() > deadline:
            raise RuntimeError(f"the demo study did not start: {source.telemetry().notes}")
        await asyncio.sleep(0.1)


async def _live(presses: int, cpu_seconds: float, refresh_hz: float, data: Path) -> dict[str, Any]:
    from multiprocessing import resource_tracker

    from engine.demo import demo_engine, start_demo
    from engine.runtime import EngineThread

    resource_tracker.ensure_running()
    engine = demo_engine(db=data / "demo.db")
    handle = EngineThread(engine)
    # more trials than the console's demo, so the study outlasts the CPU window
    app = _latency_app(
        handle, refresh_hz=refresh_hz, remember=False,
        startup=lambda: handle.start(lambda: start_demo(engine, trials=LIVE_TRIALS)),
    )
    me = psutil.Process()
    async with app.run_test(size=(160, 48)):
        await _study_started(handle)
        app.action_show_pane("optimizer")  # the heaviest pane to render
        await asyncio.sleep(1.0)
        workers_before = _descendant_cpu_s(me)
        me.cpu_percent(None)
        before = handle.telemetry().study
        window_started = time.monotonic()
        await asyncio.sleep(cpu_seconds)
        cpu = me.cpu_percent(None)
        workers_after = _descendant_cpu_s(me)
        elapsed = time.monotonic() - window_started
        # a worker that ended inside the window loses its last stretch: a floor, for scale
        workers_cpu = 100 * sum(t - workers_before.get(pid, 0.0) for pid, t in workers_after.items()) / elapsed
        after = handle.telemetry().study
        assert before is not None and after is not None
        trials = after.done - before.done
        still_running = after.name == before.name and after.state == "running"
        # then the keys (the CPU window comes first: the study must outlast it)
        latencies = await _press_keys(app, presses, 0.25)
        await handle.close()
    return {
        "latencies": latencies,
        "cpu": cpu,
        "workers_cpu": workers_cpu,
        "trials_during_cpu_window": trials,
        "study_ran_whole_window": still_running,
        "frames": app.frames,
    }


class _BarToOrder:
    """Subscribed to the engine's bus: each order's publish time minus its bar's (ms)."""

    def __init__(self) -> None:
        self.bar_ns: dict[int, int] = {}
        self.ms: list[float] = []

    def attach(self, engine: Engine) -> None:
        assert engine.bus is not None
        engine.bus.subscribe("market.bar.#", self._bar)
        engine.bus.subscribe("orders.*.new", self._order)

    def _bar(self, event: Any) -> None:
        self.bar_ns[event.payload.index] = event.ts_ns
        if len(self.bar_ns) > 10_000:
            self.bar_ns.pop(next(iter(self.bar_ns)))

    def _order(self, event: Any) -> None:
        published = self.bar_ns.get(event.payload.index)
        if published is not None:
            self.ms.append((event.ts_ns - published) / 1e6)


def _lane_figures(engine: Engine) -> dict[str, dict[str, float]]:
    assert engine.bus is not None
    return {
        m.lane.lower(): {
            "delivered": m.delivered,
            "p50_ms": round(m.latency_ns.p50 / 1e6, 3),
            "p99_ms": round(m.latency_ns.p99 / 1e6, 3),
            "max_ms": round(m.latency_ns.max / 1e6, 3),
        }
        for m in engine.bus.metrics().lanes
        if m.delivered
    }


async def _critical_pings(engine: Engine, every_s: float = 0.05) -> None:
    """A risk manager's kind of traffic: one CRITICAL event every ``every_s`` (the demo sends none)."""
    from engine.bus import CRITICAL

    assert engine.bus is not None
    engine.bus.subscribe("bench.ping", lambda event: None)
    while True:
        engine.bus.publish_nowait("bench.ping", None, CRITICAL)
        await asyncio.sleep(every_s)


async def _switch_panes(app: Any, seconds: float) -> int:
    """Press a pane key every 100 ms for ``seconds``; the presses sent."""
    presses = 0
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        key = PANE_KEYS[presses % len(PANE_KEYS)]
        app.post_message(events.Key(key, key))
        presses += 1
        await asyncio.sleep(0.1)
    return presses


async def _engine_latency(mode: str, window_s: float, data: Path) -> dict[str, Any]:
    """The bus and bar-to-order latency over ``window_s`` with the demo running (see the docstring)."""
    from multiprocessing import resource_tracker

    from engine.demo import demo_engine, start_demo
    from engine.runtime import SWITCH_INTERVAL_S, EngineThread

    resource_tracker.ensure_running()
    db = data / f"latency-{mode}.db"
    engine = demo_engine(db=db)
    probe = _BarToOrder()

    pings: list[asyncio.Task[None]] = []

    async def measure() -> dict[str, Any]:
        assert engine.bus is not None
        engine.bus.reset_metrics()  # start-up is not the window
        probe.attach(engine)
        pings.append(asyncio.get_running_loop().create_task(_critical_pings(engine)))
        return {}

    async def figures() -> dict[str, Any]:
        for task in pings:
            task.cancel()
        return {"lanes": _lane_figures(engine)}

    presses = 0
    if mode == "headless":
        async with engine:
            await start_demo(engine, trials=LIVE_TRIALS)
            await _study_started(engine)
            await measure()
            await asyncio.sleep(window_s)
            result = await figures()
            await engine.close()
    elif mode == "shared_loop":  # the engine on the console's loop: before it had its own thread
        app = _latency_app(engine, refresh_hz=4, remember=False, startup=lambda: start_demo(engine, trials=LIVE_TRIALS))
        async with app.run_test(size=(160, 48)):
            await _study_started(engine)
            await measure()
            presses = await _switch_panes(app, window_s)
            result = await figures()
            await engine.close()
    else:  # "thread", or "thread_5ms_switch": CPython's default switch interval, for comparison
        handle = EngineThread(engine, switch_interval_s=None if mode == "thread_5ms_switch" else SWITCH_INTERVAL_S)
        app = _latency_app(
            handle, refresh_hz=4, remember=False,
            startup=lambda: handle.start(lambda: start_demo(engine, trials=LIVE_TRIALS)),
        )
        async with app.run_test(size=(160, 48)):
            await _study_started(handle)
            await handle.call(measure)
            presses = await _switch_panes(app, window_s)
            result = await handle.call(figures)
            await handle.close()
    result["bar_to_order_ms"] = {**_percentiles(probe.ms), "orders": len(probe.ms)}
    result["key_presses"] = presses
    return result


def _gil_probe(switch_interval_s: float, seconds: float = 3.0) -> dict[str, float]:
    """How late a 2 ms sleep on another thread's loop wakes while this thread runs Python (ms)."""
    import threading

    saved = sys.getswitchinterval()
    sys.setswitchinterval(switch_interval_s)
    late: list[float] = []
    stop = threading.Event()

    async def ticks() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            await asyncio.sleep(0.002)
            late.append((time.perf_counter() - started - 0.002) * 1000)

    thread = threading.Thread(target=lambda: asyncio.run(ticks()))
    thread.start()
    work = 0
    ends = time.perf_counter() + seconds
    while time.perf_counter() < ends:  # the UI's kind of work: small objects, dicts, lists
        table = {str(i): [i, i, i] for i in range(2000)}
        work += len(table)
    stop.set()
    thread.join()
    sys.setswitchinterval(saved)
    ordered = sorted(late)
    pick = lambda q: round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)  # noqa: E731
    return {
        "switch_interval_ms": switch_interval_s * 1000, "wakes": len(late),
        "late_p50_ms": pick(0.5), "late_p99_ms": pick(0.99), "late_max_ms": round(ordered[-1], 3),
        "ui_work_per_s": round(work / seconds),
    }


def engine_figures(window_s: float) -> dict[str, Any]:
    """The engine's latency three ways and the GIL probe (see the module docstring)."""
    tmp = Path(tempfile.mkdtemp(prefix="genesis-bench-engine-"))
    try:
        modes = {mode: asyncio.run(_engine_latency(mode, window_s, tmp)) for mode in MODES}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    thread = modes["thread"]["lanes"]
    normal, critical = thread.get("normal", {}), thread.get("critical", {})
    return {
        "engine_latency": modes,
        "window_s": window_s,
        "gil": [_gil_probe(interval) for interval in (0.005, 0.001, 0.0005, 0.0002)],
        "load_average_1m": round(os.getloadavg()[0], 2),
        "normal_p99_meets_goal": normal.get("p99_ms", float("inf")) < 2.0,
        "normal_max_meets_goal": normal.get("max_ms", float("inf")) < 20.0,
        "critical_p99_meets_goal": critical.get("p99_ms", 0.0) < 1.0,
    }


FIRST_FRAME = """
import os, sys, time, psutil
from multiprocessing import resource_tracker
if __name__ == "__main__":
    resource_tracker.ensure_running()
    from engine.demo import demo_engine, start_demo
    from engine.runtime import EngineThread
    from genesis_tui.app import GenesisApp
    engine = demo_engine(db=sys.argv[1])
    handle = EngineThread(engine)
    class App(GenesisApp):
        def _first_frame(self):
            super()._first_frame()
            print(time.time() - psutil.Process().create_time(), flush=True)
            self.call_later(self.action_quit_console)
    App(handle, startup=lambda: handle.start(lambda: start_demo(engine))).run(headless=True)
"""


def _first_frame(data: Path) -> list[float]:
    times = []
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, "-c", FIRST_FRAME, str(data / "first.db")],
            capture_output=True, text=True, timeout=180, check=True, env=dict(os.environ),
        )
        times.append(float(out.stdout.strip().splitlines()[0]))
    return times


def run(quick: bool = False) -> dict[str, Any]:
    """Measure the console; returns the figures (see the module docstring)."""
    presses = 20 if quick else 60
    cpu_seconds = 10.0 if quick else 20.0  # the 8,000-trial study lasts about 35 s here
    saved = {k: os.environ.get(k) for k in ("XDG_DATA_HOME", "XDG_CONFIG_HOME")}
    tmp = Path(tempfile.mkdtemp(prefix="genesis-bench-console-"))
    os.environ["XDG_DATA_HOME"] = str(tmp / "data")
    os.environ["XDG_CONFIG_HOME"] = str(tmp / "config")
    try:
        idle = asyncio.run(_idle_latency(presses))
        live = asyncio.run(_live(presses, cpu_seconds, 4.0, tmp))
        first = _first_frame(tmp)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(tmp, ignore_errors=True)
    live_keys = live["latencies"]["first"] + live["latencies"]["repeat"]
    idle_keys = idle["first"] + idle["repeat"]
    live_p = _percentiles(live_keys)
    idle_p = _percentiles(idle_keys)
    return {
        "key_latency_ms": live_p,
        "key_latency_first_view_ms": _percentiles(live["latencies"]["first"]),
        "key_latency_repeat_ms": _percentiles(live["latencies"]["repeat"]),
        "key_latency_idle_ms": idle_p,
        "latency_ratio": round(live_p["p50"] / idle_p["p50"], 2) if idle_p["p50"] else None,
        "keys_measured": len(live_keys),
        "console_cpu_percent": round(live["cpu"], 1),
        "workers_cpu_percent": round(live["workers_cpu"], 1),
        "cpu_window_s": cpu_seconds,
        "refresh_hz": 4.0,
        "trials_during_cpu_window": live["trials_during_cpu_window"],
        "study_ran_whole_window": live["study_ran_whole_window"],
        "first_frame_s": {"cold": round(first[0], 3), "warm": round(first[1], 3)},
        "cpus": os.cpu_count(),
        "key_p95_meets_goal": live_p["p95"] < 100.0,
        "cpu_meets_goal": live["cpu"] < 15.0,
        "first_frame_meets_goal": first[1] < 1.5,
        **engine_figures(20.0 if quick else 60.0),
    }


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    if "--engine" in sys.argv:
        print(json.dumps(engine_figures(20.0 if quick else 60.0), indent=2))
    else:
        print(json.dumps(run(quick=quick), indent=2))
