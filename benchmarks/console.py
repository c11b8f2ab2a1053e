"""Console responsiveness while the demo study runs on every core.

Figures (one run, the real demo engine with the ``process`` backend):

- ``key_latency_ms``: from a key event's creation to the end of the screen
  refresh that follows its handling (pane switches and leaderboard sorts),
  p50/p95/max over ``presses`` keys sent while the study runs;
- ``console_cpu_percent``: CPU of the console's process (UI + engine
  orchestration; trials run in worker processes) over ``cpu_seconds`` at
  ``refresh_hz`` polls, with the workers' CPU alongside for scale;
- ``first_frame_s``: from process start to the first rendered frame, in a fresh
  interpreter, on a warm numba cache (the second of two launches);
- the reference: the same latency measured on fixed telemetry with no engine
  (``key_latency_idle_ms``), so ``latency_ratio`` shows what the running study costs.

Run ``python -m benchmarks.console`` (``--quick`` for a shorter run).
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
from typing import Any

import psutil
from textual import events

PANE_KEYS = "1234567"


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {"p50": float("nan"), "p95": float("nan"), "max": float("nan")}
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50": round(pick(0.5), 2), "p95": round(pick(0.95), 2), "max": round(ordered[-1], 2)}


def _latency_app(source: Any, **kwargs: Any) -> Any:
    from genesis_tui.app import GenesisApp

    class LatencyApp(GenesisApp):
        latencies: list[float]

        async def on_event(self, event: events.Event) -> None:
            if isinstance(event, events.Key) and id(event) not in self._seen:
                self._seen.add(id(event))
                started = event.time
                await super().on_event(event)
                self.call_after_refresh(lambda: self.latencies.append((time.monotonic() - started) * 1000))
                return
            await super().on_event(event)

    app = LatencyApp(source, **kwargs)
    app.latencies = []
    app._seen = set()
    return app


async def _press_keys(app: Any, presses: int, gap_s: float) -> list[float]:
    app.latencies.clear()
    for i in range(presses):
        key = PANE_KEYS[i % len(PANE_KEYS)] if i % 5 else "s"
        app.post_message(events.Key(key, key))
        await asyncio.sleep(gap_s)
    await asyncio.sleep(0.5)
    return list(app.latencies)


async def _idle_latency(presses: int) -> list[float]:
    """The reference: the same keys on fixed telemetry (needs the source tree's test fixtures)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    try:
        from tests.tui.fixtures import FixedSource, telemetry_fixture
    except ImportError:
        return []

    app = _latency_app(FixedSource(telemetry_fixture()), refresh_hz=4, remember=False)
    async with app.run_test(size=(160, 48)):
        await asyncio.sleep(0.5)
        return await _press_keys(app, presses, 0.15)


async def _live(presses: int, cpu_seconds: float, refresh_hz: float, data: Path) -> dict[str, Any]:
    from multiprocessing import resource_tracker

    from engine.demo import demo_engine, start_demo

    resource_tracker.ensure_running()
    engine = demo_engine(db=data / "demo.db")
    app = _latency_app(engine, refresh_hz=refresh_hz, remember=False, startup=lambda: start_demo(engine))
    me = psutil.Process()
    async with app.run_test(size=(160, 48)):
        deadline = time.monotonic() + 120
        while not (engine.study is not None and engine.study.progress().done > 0):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the demo study did not start: {engine.telemetry().notes}")
            await asyncio.sleep(0.1)
        latencies = await _press_keys(app, presses, 0.25)
        app.action_show_pane("optimizer")  # the heaviest pane to render
        workers = me.children(recursive=True)
        for p in [me, *workers]:
            p.cpu_percent(None)
        study, done_before = engine.study, engine.study.progress().done
        await asyncio.sleep(cpu_seconds)
        cpu = me.cpu_percent(None)
        workers_cpu = 0.0
        for p in workers:
            with contextlib.suppress(psutil.Error):
                workers_cpu += p.cpu_percent(None)
        trials = study.progress().done - done_before
        still_running = engine.study is study and study.progress().state == "running"
        await engine.close()
    return {
        "latencies": latencies,
        "cpu": cpu,
        "workers_cpu": workers_cpu,
        "trials_during_cpu_window": trials,
        "study_ran_whole_window": still_running,
        "frames": app.frames,
    }


FIRST_FRAME = """
import os, sys, time, psutil
from multiprocessing import resource_tracker
if __name__ == "__main__":
    resource_tracker.ensure_running()
    from engine.demo import demo_engine, start_demo
    from genesis_tui.app import GenesisApp
    engine = demo_engine(db=sys.argv[1])
    class App(GenesisApp):
        def _first_frame(self):
            super()._first_frame()
            print(time.time() - psutil.Process().create_time(), flush=True)
            self.call_later(self.action_quit_console)
    App(engine, startup=lambda: start_demo(engine)).run(headless=True)
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
    cpu_seconds = 10.0 if quick else 30.0
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
    live_p = _percentiles(live["latencies"])
    idle_p = _percentiles(idle)
    return {
        "key_latency_ms": live_p,
        "key_latency_idle_ms": idle_p,
        "latency_ratio": round(live_p["p50"] / idle_p["p50"], 2) if idle_p["p50"] else None,
        "keys_measured": len(live["latencies"]),
        "console_cpu_percent": round(live["cpu"], 1),
        "workers_cpu_percent": round(live["workers_cpu"], 1),
        "cpu_window_s": cpu_seconds,
        "refresh_hz": 4.0,
        "trials_during_cpu_window": live["trials_during_cpu_window"],
        "study_ran_whole_window": live["study_ran_whole_window"],
        "first_frame_s": {"cold": round(first[0], 3), "warm": round(first[1], 3)},
        "cpus": os.cpu_count(),
    }


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
