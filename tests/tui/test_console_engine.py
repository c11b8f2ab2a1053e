"""Pilot tests: keys and palette commands drive a real Engine (inline backend, real
SQLite store) and the engine's state changes."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.command import CommandList, CommandPalette
from textual.pilot import Pilot
from textual.widgets import Input

from engine.paths import config_dir
from engine.runtime import Engine
from engine.telemetry import Telemetry
from genesis_tui.app import GenesisApp
from genesis_tui.screens import PromptScreen, TrialScreen
from genesis_tui.widgets import RowTable

STUDY = """\
name = "pilot"

[data]
spec = "synthetic:bars={bars},seed=5,timeframe=1m"

[strategy]
name = "sma_cross"

[space]
fast = {{ int = [3, 60] }}
slow = {{ int = [20, 300], step = 2 }}
constraints = ["fast < slow"]

[search]
sampler = "random"
trials = {trials}
seed = 3

[execution]
backend = "inline"
checkpoint_every = 50
artifacts = "top:5"
"""


def write_study(tmp_path: Path, *, trials: int, bars: int) -> Path:
    path = tmp_path / "pilot.toml"
    path.write_text(STUDY.format(trials=trials, bars=bars))
    return path


async def wait_for(pilot: Pilot, condition: Callable[[], bool], what: str, limit_s: float = 60.0) -> None:
    """Let the app run until ``condition`` holds (a deadline, not a speed assertion)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


async def settled_done(pilot: Pilot, engine: Engine) -> int:
    """Trials done once a paused study has no trial in hand.

    The executor counts a chunk's trials as done in the same step that takes them
    out of ``in_flight``, so ``in_flight == 0`` while paused means no trial can
    finish until a resume."""
    await wait_for(
        pilot,
        lambda: engine.study.progress().state == "paused" and engine.study.progress().in_flight == 0,
        "the chunks in hand to finish",
    )
    return engine.study.progress().done


def telemetry_shows(app: GenesisApp, check: Callable[[Telemetry], bool]) -> Callable[[], bool]:
    """A condition: the console's latest telemetry exists and passes ``check``."""
    return lambda: app.last_telemetry is not None and check(app.last_telemetry)


def palette_highlights(app: GenesisApp, text: str) -> bool:
    """The command palette has finished searching and its highlighted command mentions ``text``."""
    palette = app.screen
    if not isinstance(palette, CommandPalette):
        return False
    if any(w.group == CommandPalette._GATHER_COMMANDS_GROUP and not w.is_finished for w in app.workers):
        return False
    commands = palette.query_one(CommandList)
    if commands.highlighted is None:
        return False
    return text in commands.get_option_at_index(commands.highlighted).prompt.plain


def stored(db: Path, name: str) -> tuple[str, int, int]:
    """(state, checkpoint_seq, trials) of a study as committed in the SQLite store."""
    with sqlite3.connect(db) as connection:
        study_id, state, seq = connection.execute(
            "SELECT id, state, checkpoint_seq FROM studies WHERE name = ?", (name,)
        ).fetchone()
        (trials,) = connection.execute("SELECT count(*) FROM trials WHERE study_id = ?", (study_id,)).fetchone()
    return state, seq, trials


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return Engine(db=tmp_path / "store.db", workspace="pilot", backend="inline", sample_interval_s=0.5)


def make_app(engine: Engine, study: Path) -> GenesisApp:
    async def startup() -> None:
        await engine.start()
        await engine.start_study(study)

    return GenesisApp(engine, refresh_hz=10, startup=startup)


async def test_pause_resume_stop_drive_the_study(engine: Engine, tmp_path: Path) -> None:
    study = write_study(tmp_path, trials=20_000, bars=200_000)
    app = make_app(engine, study)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: engine.study is not None and engine.study.progress().done > 0, "trials")
            await pilot.press("p")
            await wait_for(pilot, lambda: engine.study.progress().state == "paused", "pause")
            paused_at = await settled_done(pilot, engine)
            await pilot.pause(0.6)  # a window for a wrong pause to start trials (no speed asserted)
            assert engine.study.progress().done == paused_at, "trials kept starting while paused"
            assert paused_at < 20_000

            await pilot.press("r")
            await wait_for(pilot, lambda: engine.study.progress().done > paused_at, "trials after resume")
            assert engine.study.progress().state == "running"

            await pilot.press("x")
            await wait_for(pilot, lambda: engine._study_task.done(), "stop")  # the stop command returned
            await app.workers.wait_for_complete()
            done = engine.study.progress().done
            state, _seq, trials = stored(engine.db, "pilot")
            assert state == "stopped"
            assert trials == done, "finished trials not all stored"
            await wait_for(
                pilot, telemetry_shows(app, lambda t: t.study is not None and t.study.state == "stopped"),
                "the console to show the stop",
            )
    finally:
        await engine.close()


async def test_quit_checkpoints_the_study(engine: Engine, tmp_path: Path) -> None:
    study = write_study(tmp_path, trials=20_000, bars=200_000)
    app = make_app(engine, study)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: engine.study is not None and engine.study.progress().done > 0, "trials")
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, "exit", limit_s=60)
    state, _seq, trials = stored(engine.db, "pilot")
    assert state == "stopped"
    assert trials == engine.study.progress().done > 0, "finished trials not all stored"
    assert app.return_code == 0
    assert engine.bus is not None and not engine.bus.running
    # the checkpoint is real: a new engine resumes from the stored trials instead of redoing them
    again = Engine(db=engine.db, workspace="pilot", backend="inline", monitor=False)
    await again.start()
    try:
        await again.start_study(study)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while again.study.progress().state not in ("running", "complete") and loop.time() < deadline:
            await asyncio.sleep(0.05)
        assert again.study.progress().resumed_from == trials
    finally:
        await again.close()


async def test_leaderboard_enter_opens_the_trial(engine: Engine, tmp_path: Path) -> None:
    study = write_study(tmp_path, trials=120, bars=3_000)
    app = make_app(engine, study)
    try:
        async with app.run_test(size=(140, 44)) as pilot:
            await wait_for(pilot, lambda: engine.study is not None and engine.study.progress().state == "complete", "study end")
            await pilot.press("2")
            await wait_for(
                pilot,
                lambda: app.last_telemetry is not None and app.last_telemetry.study is not None
                and len(app.last_telemetry.study.leaderboard) > 0,
                "leaderboard",
            )
            table = app.query_one("#leaderboard", RowTable)
            await wait_for(pilot, lambda: table.row_count > 0, "the leaderboard's rows")
            table.focus()
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, TrialScreen), "trial screen")
            best = app.last_telemetry.study.leaderboard[0]
            detail = app.screen.detail
            assert detail.number == best.number
            assert detail.value == best.value
            assert len(detail.equity) > 1, "the best trial's equity artifact was not shown"
            await pilot.press("escape")
            await wait_for(pilot, lambda: not isinstance(app.screen, TrialScreen), "close")
    finally:
        await engine.close()


async def test_palette_switches_and_remembers_theme(engine: Engine, tmp_path: Path) -> None:
    app = GenesisApp(engine, refresh_hz=10, startup=engine.start)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            assert app.theme == "genesis-dark"
            await pilot.press("ctrl+p")
            await wait_for(pilot, lambda: isinstance(app.focused, Input) and isinstance(app.screen, CommandPalette), "palette")
            await pilot.press(*"Theme: genesis-light")
            await wait_for(pilot, lambda: palette_highlights(app, "genesis-light"), "the palette's search")
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.theme == "genesis-light", "theme switch")
            state = json.loads((config_dir() / "console-state.json").read_text())
            assert state["theme"] == "genesis-light"
    finally:
        await engine.close()
    # the next start picks the remembered theme
    again = GenesisApp(Engine(db=tmp_path / "other.db"), poll=False)
    assert again.theme == "genesis-light"


async def test_capture_key_takes_a_profile(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = engine.capture_profile

    async def short_capture(seconds: float = 5.0) -> str:
        return await original(0.5)

    monkeypatch.setattr(engine, "capture_profile", short_capture)
    app = GenesisApp(engine, refresh_hz=10, startup=engine.start)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: engine.bus is not None, "engine start")
            await pilot.press("5", "c")
            await wait_for(
                pilot,
                lambda: engine.telemetry().profiler is not None and engine.telemetry().profiler.captures == 1,
                "capture",
            )
            await app.workers.wait_for_complete()
            prof = engine.telemetry().profiler
            assert prof.functions, "the capture recorded no functions"
    finally:
        await engine.close()


async def test_bad_study_file_from_palette_is_reported_not_fatal(engine: Engine, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[data]\nspec = 5\n')
    app = GenesisApp(engine, refresh_hz=10, startup=engine.start)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: engine.bus is not None, "engine start")
            await pilot.press("o")
            await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen) and isinstance(app.focused, Input), "prompt")
            await pilot.press(*str(bad), "enter")

            def errors() -> list[str]:
                return [n.message for n in app._notifications if n.severity == "error"]

            await wait_for(pilot, lambda: bool(errors()), "the error notification")
            await app.workers.wait_for_complete()
            assert str(bad) in errors()[-1]
            assert engine.study is None
            assert app.is_running
    finally:
        await engine.close()


async def test_paper_loop_toggle_and_kill_switch(tmp_path: Path) -> None:
    from engine.demo import paper_factory

    engine = Engine(
        db=tmp_path / "store.db", workspace="paper", monitor=False,
        paper_factory=paper_factory(bars=3_000, seed=11, bars_per_s=400.0),
    )
    app = GenesisApp(engine, refresh_hz=10, startup=engine.start)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: engine.paper is not None and engine.paper.running, "paper loop")
            await wait_for(pilot, lambda: engine.paper.loop.state().bars_seen > 50, "bars")
            await pilot.press("4", "t")
            await wait_for(pilot, lambda: engine.paper.loop.state().paused, "pause")
            await app.workers.wait_for_complete()
            await engine.bus.join()  # a bar sent before the pause is settled
            seen = engine.paper.loop.state().bars_seen
            await pilot.pause(0.3)  # a window for a wrong pause to let bars through (no speed asserted)
            assert engine.paper.loop.state().bars_seen == seen, "bars kept flowing while paused"
            await pilot.press("t")
            await wait_for(pilot, lambda: engine.paper.loop.state().bars_seen > seen, "resume")
            await pilot.press("K")
            await wait_for(pilot, lambda: engine.paper.loop.state().risk.kill_switch, "kill switch")
            await wait_for(pilot, lambda: engine.paper.loop.state().side == 0, "flat after kill")
            await wait_for(
                pilot, telemetry_shows(app, lambda t: t.trading is not None and t.trading.kill_switch),
                "the console to show the kill switch",
            )
    finally:
        await engine.close()
