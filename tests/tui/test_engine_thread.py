"""Pilot tests: the console's engine runs on its own thread and loop, and every way out stops it cleanly.

The console gets an :class:`~engine.runtime.EngineThread`; these tests check that no
engine coroutine runs on the console's loop, and that ``q``, SIGTERM, a fatal error
in the engine's thread and an error in the UI each leave no engine thread and no
worker process behind, with the study checkpointed.

A study that completed before the key, the signal or the error landed would leave
these tests nothing to check (or a ``complete`` study where ``stopped`` is asserted),
so its trial number 431 of the grid's 20,000 waits at a gate (:mod:`tests.gate`) until
the test has seen the stop asked for: until then the study cannot complete, however
fast it runs.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from engine.runtime import Engine, EngineThread, engine_threads
from engine.telemetry import Telemetry
from genesis_tui.app import GenesisApp
from tests.gate import Gate
from tests.waiting import until

STUDY = """\
name = "threaded"

[data]
spec = "synthetic:bars={bars},seed=5,timeframe=1m"

[strategy]
name = "gated_cross"
file = "gated.py"

[space]
fast = {{ int = [3, 120] }}
slow = {{ int = [20, 800], step = 2 }}
constraints = ["fast < slow"]

[search]
sampler = "grid"
trials = {trials}

[execution]
backend = "{backend}"
workers = 1
trial_timeout_s = 3600
checkpoint_every = 50
artifacts = "top:5"
"""

ENGINE_DIR = str(Path(Engine.__module__.replace(".", "/")).parent.parent)  # "engine"


#: The trial that waits at the gate: number 431 of the fast-major grid (391 slow values for fast=3,
#: then 40 for fast=4), after the first chunk (4 trials) is stored.
HELD = {"fast": 4, "slow": 100}


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Gate]:
    """The gate of the study :func:`write_study` writes; opened at the end, so that no trial waits on."""
    gate = Gate.at(tmp_path, HELD)
    yield gate
    gate.open()


def write_study(tmp_path: Path, *, trials: int = 20_000, bars: int = 20_000, backend: str = "inline") -> Path:
    """The study file, with the gated strategy beside it (the watchdog waits an hour: the gate holds it)."""
    Gate.at(tmp_path, HELD).write(tmp_path)
    path = tmp_path / "threaded.toml"
    path.write_text(STUDY.format(trials=trials, bars=bars, backend=backend))
    return path


def stored_state(db: Path) -> str:
    with sqlite3.connect(db) as connection:
        (state,) = connection.execute("SELECT state FROM studies WHERE name = 'threaded'").fetchone()
    return str(state)


def threaded_app(tmp_path: Path, study: Path, **kwargs: object) -> tuple[GenesisApp, EngineThread]:
    engine = Engine(db=tmp_path / "store.db", workspace="threaded", monitor=False)
    handle = EngineThread(engine)

    async def startup() -> None:
        await engine.start()
        await engine.start_study(study)

    app = GenesisApp(handle, refresh_hz=10, startup=lambda: handle.start(startup), remember=False, **kwargs)  # type: ignore[arg-type]
    return app, handle


def shows(app: GenesisApp, check: object) -> bool:
    telemetry = app.last_telemetry
    return telemetry is not None and check(telemetry)  # type: ignore[operator]


def trials_done(app: GenesisApp) -> bool:
    return shows(app, lambda t: t.study is not None and t.study.done > 0)


def stop_asked(handle: EngineThread) -> bool:
    """The study was asked to stop: once the gate opens, it stops with no new trial started."""
    study = handle.engine.study
    return study is not None and study.stop_requested


def errors(app: GenesisApp) -> list[str]:
    return [str(n.message) for n in app._notifications if n.severity == "error"]


def engine_tasks_on(loop: asyncio.AbstractEventLoop) -> list[str]:
    """Tasks on ``loop`` whose coroutine is engine code (the thread handle's crossing excepted)."""
    found = []
    for task in asyncio.all_tasks(loop):
        code = getattr(task.get_coro(), "cr_code", None)
        filename = code.co_filename if code is not None else ""
        if f"/{ENGINE_DIR}/" in filename and not filename.endswith("_thread.py"):
            found.append(f"{task.get_name()} ({filename})")
    return found


def study_workers() -> list[psutil.Process]:
    """Processes below this one that run trials (multiprocessing's shared helpers are not the study's)."""
    workers = []
    for child in psutil.Process().children(recursive=True):
        try:
            cmdline = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if "forkserver" in cmdline and child.ppid() == os.getpid():
            continue  # the fork server itself, shared by every pool of this process
        if "resource_tracker" in cmdline:
            continue
        workers.append(child)
    return workers


async def no_engine_left() -> None:
    await until(lambda: not engine_threads(), "the engine thread to end")
    await until(lambda: not [p for p in study_workers() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE],
                "the worker processes to end")


async def test_engine_coroutines_never_run_on_the_console_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gate: Gate
) -> None:
    called_on: list[tuple[asyncio.AbstractEventLoop | None, int]] = []
    check = Engine._check_loop

    def recording(engine: Engine) -> None:
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        called_on.append((running, threading.get_ident()))
        check(engine)

    monkeypatch.setattr(Engine, "_check_loop", recording)
    app, handle = threaded_app(tmp_path, write_study(tmp_path))
    seen_on_console: list[str] = []
    async with app.run_test(size=(120, 40)) as pilot:
        console = asyncio.get_running_loop()

        async def wait(condition: object, what: str) -> None:
            def sampled() -> bool:
                seen_on_console.extend(engine_tasks_on(console))
                return bool(condition())  # type: ignore[operator]

            await until(sampled, what)

        await wait(lambda: trials_done(app) and gate.held(), "trials")
        for key, state in (("p", "paused"), ("r", "running"), ("p", "paused")):
            await pilot.press(key)
            await wait(lambda s=state: shows(app, lambda t: t.study.state == s), state)  # type: ignore[misc]
        gate.open()  # paused: the trials in hand finish and no other starts
        await pilot.press("4", "2", "x")
        await wait(lambda: shows(app, lambda t: t.study.state == "stopped"), "stop")
        await pilot.press("q")
        await wait(lambda: not app.is_running, "exit")
    assert handle.loop is not None and handle.loop is not console
    assert called_on, "no engine command or snapshot ran"
    assert {loop for loop, _ in called_on} == {handle.loop}, "an engine call ran on another loop"
    assert all(ident != threading.get_ident() for _, ident in called_on), "an engine call ran on the console's thread"
    assert seen_on_console == []
    await no_engine_left()


async def test_engine_refuses_a_call_from_the_console_loop(tmp_path: Path) -> None:
    handle = EngineThread(Engine(db=tmp_path / "store.db", workspace="threaded", monitor=False))
    await handle.start()
    try:
        with pytest.raises(RuntimeError, match="other than its own"):
            await handle.engine.pause()  # the UI reaching past the handle
        with pytest.raises(RuntimeError, match="other than its own"):
            handle.engine.telemetry()
    finally:
        await handle.close()
    assert not engine_threads()


async def test_quit_stops_the_thread_and_the_workers(tmp_path: Path, gate: Gate) -> None:
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()  # as `genesis` does, while stderr is still a real file
    app, handle = threaded_app(tmp_path, write_study(tmp_path, backend="process"))
    async with app.run_test(size=(120, 40)) as pilot:
        await until(lambda: trials_done(app) and gate.held(), "trials", limit_s=180)
        assert study_workers(), "the process backend started no worker"
        gate.open_when(lambda: stop_asked(handle))  # the key's handler waits for the trials in hand
        await pilot.press("q")
        await until(lambda: not app.is_running, "exit", limit_s=120)
    assert app.return_code == 0
    assert stored_state(tmp_path / "store.db") == "stopped"
    await no_engine_left()


async def test_sigterm_quits_with_a_checkpoint(tmp_path: Path, gate: Gate) -> None:
    app, handle = threaded_app(tmp_path, write_study(tmp_path), handle_signals=True)
    async with app.run_test(size=(120, 40)):
        await until(lambda: trials_done(app) and gate.held(), "trials")
        gate.open_when(lambda: stop_asked(handle))
        os.kill(os.getpid(), signal.SIGTERM)
        await until(lambda: not app.is_running, "exit")
    assert app.return_code == app.return_value == 128 + signal.SIGTERM
    assert stored_state(tmp_path / "store.db") == "stopped"
    await no_engine_left()


async def test_engine_thread_errors_show_in_the_console(tmp_path: Path, gate: Gate) -> None:
    app, handle = threaded_app(tmp_path, write_study(tmp_path))

    def unhandled() -> None:
        raise ValueError("a stray callback")

    def fatal() -> None:
        raise SystemExit("a strategy called sys.exit")

    async with app.run_test(size=(120, 40)) as pilot:
        await until(lambda: trials_done(app) and gate.held(), "trials")
        assert handle.loop is not None
        # an error nothing handled: shown, and the engine carries on
        handle.loop.call_soon_threadsafe(unhandled)
        await until(lambda: any("a stray callback" in e for e in errors(app)), "the error in the console")
        assert handle.alive
        # the thread itself dies: the study is checkpointed, the console says so and keeps answering
        gate.open_when(lambda: stop_asked(handle))
        handle.loop.call_soon_threadsafe(fatal)
        await until(lambda: not engine_threads(), "the engine thread to end")
        await until(lambda: any("engine thread stopped" in e for e in errors(app)), "the fault in the console")
        assert stored_state(tmp_path / "store.db") == "stopped"
        await pilot.press("p")
        await until(lambda: any("pause" in n.title.lower() for n in app._notifications if n.severity == "error"),
                    "the pause to fail")
        assert app.is_running
        await pilot.press("q")
        await until(lambda: not app.is_running, "exit")
    assert app.return_code == 0
    await no_engine_left()


async def test_an_error_in_the_ui_checkpoints_and_stops_the_engine(tmp_path: Path, gate: Gate) -> None:
    class Broken(RuntimeError):
        pass

    app, handle = threaded_app(tmp_path, write_study(tmp_path))

    def broken_help() -> None:
        raise Broken("a bug in a pane")

    app.action_help = broken_help  # type: ignore[method-assign]
    with pytest.raises(Broken):
        async with app.run_test(size=(120, 40)) as pilot:
            await until(lambda: trials_done(app) and gate.held(), "trials")
            # the console's shutdown waits on this loop for the trials in hand: the gate opens from a thread
            gate.open_when(lambda: stop_asked(handle))
            await pilot.press("question_mark")
            await until(lambda: not app.is_running, "the console to end")
    assert stored_state(tmp_path / "store.db") == "stopped"
    await no_engine_left()


def test_snapshots_are_frozen_and_handed_over_whole(tmp_path: Path) -> None:
    """A snapshot the console holds never changes: the engine builds a new one each time."""
    handle = EngineThread(Engine(db=tmp_path / "store.db", workspace="threaded", monitor=False))

    async def main() -> tuple[Telemetry, Telemetry]:
        await handle.start()
        first = handle.telemetry()
        await until(lambda: handle.telemetry().seq > max(first.seq, 1), "a second snapshot")
        second = handle.telemetry()
        await handle.close()
        return first, second

    first, second = asyncio.run(main())
    assert first is not second and first.seq < second.seq
    with pytest.raises(AttributeError):
        second.seq = 0  # type: ignore[misc]
    assert not engine_threads()
