"""Pilot tests: keys and palette commands drive a real Engine (inline backend, real
SQLite store) on its own thread, as ``genesis`` runs it, and the engine's state changes.

The tests read the engine through the snapshots the console renders (or on the
engine's thread), never its objects from the console's loop."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.command import CommandList, CommandPalette
from textual.pilot import Pilot
from textual.widgets import Input

from engine.paths import config_dir
from engine.runtime import Engine, EngineThread
from engine.telemetry import StudyTelemetry, Telemetry, TradingTelemetry
from genesis_tui.app import GenesisApp
from genesis_tui.screens import PromptScreen, TrialScreen
from genesis_tui.widgets import RowTable
from tests.gate import STRATEGY_LINES, Gate
from tests.waiting import until

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


#: Trials of the grid (fast-major: 141 slow values a fast) that wait at a gate in the gated studies:
#: numbers ~181 and ~2,430 of ~7,900, after the first chunk (4 trials) is stored, and in different
#: sampler batches (1,024 trials: a chunk never spans two), so the early one never holds the late one.
EARLY = {"fast": 4, "slow": 100}
LATE = {"fast": 20, "slow": 100}


def write_study(tmp_path: Path, *, trials: int, bars: int, gates: tuple[Gate, ...] = ()) -> Path:
    """The study file; with ``gates``, a grid whose gated trials wait until the test opens them (the
    watchdog waits an hour: the gate holds them)."""
    text = STUDY.format(trials=trials, bars=bars)
    if gates:
        gates[0].write(tmp_path, *gates[1:])
        text = (text.replace('name = "sma_cross"', STRATEGY_LINES).replace('sampler = "random"', 'sampler = "grid"')
                .replace('backend = "inline"', 'backend = "inline"\ntrial_timeout_s = 3600'))
    path = tmp_path / "pilot.toml"
    path.write_text(text)
    return path


async def wait_for(pilot: Pilot, condition: Callable[[], bool], what: str, limit_s: float = 60.0) -> None:
    """Let the app run until ``condition`` holds (a deadline, not a speed assertion)."""
    await until(condition, what, limit_s=limit_s)


def shown_study(app: GenesisApp) -> StudyTelemetry:
    """The study in the console's latest snapshot (the test waited for one)."""
    assert app.last_telemetry is not None and app.last_telemetry.study is not None
    return app.last_telemetry.study


def study_shows(app: GenesisApp, check: Callable[[StudyTelemetry], bool]) -> Callable[[], bool]:
    return telemetry_shows(app, lambda t: t.study is not None and check(t.study))


async def snapshots_later(app: GenesisApp, count: int = 5) -> None:
    """Let the engine build ``count`` more snapshots and the console render them (counted, not timed)."""
    assert app.last_telemetry is not None
    seq = app.last_telemetry.seq
    await until(lambda: app.last_telemetry is not None and app.last_telemetry.seq >= seq + count, "more snapshots")


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


def make_app(engine: Engine, study: Path | None = None) -> tuple[GenesisApp, EngineThread]:
    """The console on ``engine`` run on its own thread, starting ``study`` once the engine runs."""
    handle = EngineThread(engine)

    async def startup() -> None:
        await engine.start()
        if study is not None:
            await engine.start_study(study)

    return GenesisApp(handle, refresh_hz=10, startup=lambda: handle.start(startup)), handle


async def test_pause_resume_stop_drive_the_study(engine: Engine, tmp_path: Path) -> None:
    """Each key lands on a running study: the pause while an early trial waits at its gate (opened once
    paused), the stop while a later one waits (opened once the stop is asked)."""
    early, late = Gate.at(tmp_path, EARLY, name="early"), Gate.at(tmp_path, LATE, name="late")
    study = write_study(tmp_path, trials=20_000, bars=20_000, gates=(early, late))
    app, handle = make_app(engine, study)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: early.held() and study_shows(app, lambda s: s.done > 0)(), "trials")
            await pilot.press("p")
            await wait_for(pilot, study_shows(app, lambda s: s.state == "paused"), "the pause")
            early.open()
            # The executor counts a chunk's trials as done in the same step that takes them out of
            # the running ones, so none running while paused means none can finish until a resume.
            await wait_for(pilot, study_shows(app, lambda s: s.state == "paused" and s.running == 0), "the chunks in hand")
            paused_at = shown_study(app).done
            await snapshots_later(app)  # the engine's loop turns while paused (counted, no speed asserted)
            assert shown_study(app).done == paused_at, "trials kept starting while paused"
            assert not late.held()

            await pilot.press("r")
            await wait_for(pilot, lambda: late.held() and study_shows(app, lambda s: s.done > paused_at)(),
                           "trials after resume")
            assert shown_study(app).state == "running"

            late.open_when(lambda: engine.study is not None and engine.study.stop_requested)
            await pilot.press("x")
            await wait_for(pilot, study_shows(app, lambda s: s.state == "stopped"), "the console to show the stop")
            await app.workers.wait_for_complete()  # the stop command returned: its snapshot is the last
            done = handle.telemetry().study.done  # type: ignore[union-attr]
            state, _seq, trials = stored(engine.db, "pilot")
            assert state == "stopped"
            assert trials == done, "finished trials not all stored"
    finally:
        late.open()
        await handle.close()


async def test_quit_checkpoints_the_study(engine: Engine, tmp_path: Path) -> None:
    """``q`` while a trial waits at its gate: the study cannot have completed first."""
    gate = Gate.at(tmp_path, EARLY)
    study = write_study(tmp_path, trials=20_000, bars=20_000, gates=(gate,))
    app, handle = make_app(engine, study)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: gate.held() and study_shows(app, lambda s: s.done > 0)(), "trials")
        gate.open_when(lambda: engine.study is not None and engine.study.stop_requested)  # q waits for it
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, "exit", limit_s=60)
    assert not handle.alive  # the engine's thread has ended: its objects are ours to read
    state, _seq, trials = stored(engine.db, "pilot")
    assert state == "stopped"
    assert trials == engine.study.progress().done > 0, "finished trials not all stored"
    assert app.return_code == 0
    assert engine.bus is not None and not engine.bus.running
    # the checkpoint is real: a new engine (a library user's, on this loop) resumes from the stored trials
    again = Engine(db=engine.db, workspace="pilot", backend="inline", monitor=False)
    await again.start()
    try:
        await again.start_study(study)
        await until(lambda: again.study.progress().state in ("running", "complete"), "the resumed study")
        assert again.study.progress().resumed_from == trials
    finally:
        await again.close()


async def test_leaderboard_enter_opens_the_trial(engine: Engine, tmp_path: Path) -> None:
    study = write_study(tmp_path, trials=120, bars=3_000)
    app, handle = make_app(engine, study)
    try:
        async with app.run_test(size=(140, 44)) as pilot:
            await wait_for(pilot, study_shows(app, lambda s: s.state == "complete"), "study end")
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
        await handle.close()


async def test_palette_switches_and_remembers_theme(engine: Engine, tmp_path: Path) -> None:
    app, handle = make_app(engine)
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
        await handle.close()
    # the next start picks the remembered theme
    again = GenesisApp(Engine(db=tmp_path / "other.db"), poll=False)
    assert again.theme == "genesis-light"


async def test_capture_key_takes_a_profile(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = engine.capture_profile

    async def short_capture(seconds: float = 5.0) -> str:
        return await original(0.5)

    monkeypatch.setattr(engine, "capture_profile", short_capture)
    app, handle = make_app(engine)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, telemetry_shows(app, lambda t: t.bus is not None), "engine start")
            await pilot.press("5", "c")
            await app.workers.wait_for_complete()  # the capture command returned: its snapshot is the last
            prof = handle.telemetry().profiler
            assert prof is not None and prof.captures == 1
            assert prof.functions, "the capture recorded no functions"
    finally:
        await handle.close()


async def test_bad_study_file_from_palette_is_reported_not_fatal(engine: Engine, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[data]\nspec = 5\n')
    app, handle = make_app(engine)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, telemetry_shows(app, lambda t: t.bus is not None), "engine start")
            await pilot.press("o")
            await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen) and isinstance(app.focused, Input), "prompt")
            await pilot.press(*str(bad), "enter")

            def errors() -> list[str]:
                return [n.message for n in app._notifications if n.severity == "error"]

            await wait_for(pilot, lambda: bool(errors()), "the error notification")
            await app.workers.wait_for_complete()
            assert str(bad) in errors()[-1]
            assert handle.telemetry().study is None
            assert app.is_running
    finally:
        await handle.close()


async def test_paper_loop_toggle_and_kill_switch(tmp_path: Path) -> None:
    from engine.demo import paper_factory

    engine = Engine(
        db=tmp_path / "store.db", workspace="paper", monitor=False,
        paper_factory=paper_factory(bars=3_000, seed=11, bars_per_s=400.0),
    )
    app, handle = make_app(engine)

    def trading(check: Callable[[TradingTelemetry], bool]) -> Callable[[], bool]:
        return telemetry_shows(app, lambda t: t.trading is not None and check(t.trading))

    def bars_seen() -> int:
        assert app.last_telemetry is not None and app.last_telemetry.trading is not None
        return app.last_telemetry.trading.bars_seen

    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, trading(lambda t: t.running), "paper loop")
            await wait_for(pilot, trading(lambda t: t.bars_seen > 50), "bars")
            await pilot.press("4", "t")
            await wait_for(pilot, trading(lambda t: not t.running), "pause")
            await app.workers.wait_for_complete()
            assert engine.bus is not None
            await handle.call(engine.bus.join)  # a bar sent before the pause is settled
            await snapshots_later(app, 1)
            seen = bars_seen()
            await snapshots_later(app)  # the engine's loop turns while paused (counted, no speed asserted)
            assert bars_seen() == seen, "bars kept flowing while paused"
            await pilot.press("t")
            await wait_for(pilot, lambda: bars_seen() > seen, "resume")
            await pilot.press("K")
            await wait_for(pilot, trading(lambda t: t.kill_switch), "the console to show the kill switch")
            await wait_for(pilot, trading(lambda t: not t.positions), "flat after kill")
    finally:
        await handle.close()
