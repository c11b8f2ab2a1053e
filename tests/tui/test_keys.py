"""Keys driven through Pilot on fixed telemetry: screens open, close and hand keys back."""

from __future__ import annotations

import pytest
from textual.widgets import TabbedContent

from engine.telemetry import Telemetry
from genesis_tui.app import GenesisApp
from genesis_tui.screens.help import HelpScreen
from tests.tui.fixtures import FixedSource, telemetry_fixture


async def test_help_closes_and_keys_work_again() -> None:
    """`?` opens help, escape closes it, and the next key switches pane (no crash)."""
    app = GenesisApp(FixedSource(telemetry_fixture()), poll=False, theme="genesis-dark", remember=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("2")
        await pilot.pause()
        tabs = app.query_one(TabbedContent)
        assert tabs.active == "tab-optimizer"
        await pilot.press("question_mark")
        await pilot.pause()
        await pilot.press("q")  # q closes the help screen, it does not quit the app
        await pilot.pause()
        assert app.is_running and not isinstance(app.screen, HelpScreen)


class CountingSource(FixedSource):
    def __init__(self) -> None:
        super().__init__(telemetry_fixture())
        self.polls = 0

    def telemetry(self):  # type: ignore[no-untyped-def]
        self.polls += 1
        return super().telemetry()


async def test_a_forced_poll_does_not_start_a_second_poll_chain() -> None:
    """A timer that had already fired when a command forced a poll is ignored, so the rate stays at refresh_hz."""
    source = CountingSource()
    app = GenesisApp(source, refresh_hz=4, remember=False, theme="genesis-dark")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        for _ in range(3):
            fired = app._poll_timer
            assert fired is not None
            app.refresh_now()  # a command finished: poll at once
            fired._callback()  # ...while the timer's own tick was already on its way
        await pilot.pause(0.2)
        before = source.polls
        await pilot.pause(2.0)
        # one chain at 4 Hz gives at most 9 polls in 2 s (a busy machine gives fewer, never more)
        assert source.polls - before <= 9


async def test_a_running_leaderboard_refills_at_most_once_a_second_but_sorting_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import dataclasses

    from genesis_tui.panes import optimizer

    # a long interval, so a slow machine cannot let it run out between the two snapshots
    monkeypatch.setattr(optimizer, "LEADERBOARD_INTERVAL_S", 60.0)

    from engine.telemetry import TrialRow
    from genesis_tui.panes.optimizer import OptimizerPane
    from genesis_tui.widgets import RowTable

    first = telemetry_fixture()
    assert first.study is not None and first.study.state == "running"
    newcomer = TrialRow(number=9999, value=99.0, params=(("fast", 5),), duration_s=0.1)
    second = dataclasses.replace(
        first, study=dataclasses.replace(first.study, done=first.study.done + 1, leaderboard=(newcomer, *first.study.leaderboard))
    )
    app = GenesisApp(FixedSource(first), poll=False, theme="genesis-dark", remember=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("2")
        await pilot.pause()
        table = app.query_one("#leaderboard", RowTable)
        keys = lambda: list(table.keys or ())  # noqa: E731
        assert "9999" not in keys()
        app.apply_telemetry(second)  # a moment later: the new best waits for the next refill
        await pilot.pause()
        assert "9999" not in keys()
        await pilot.press("s")  # the user asked: at once
        await pilot.pause()
        assert app.query_one(OptimizerPane).sort_key == "value", app.focused
        assert "9999" in keys()


async def test_sort_and_enter_work_right_after_the_pane_key() -> None:
    """`2` then `s` sorts and `enter` opens the best trial, with no click on the table first."""
    from genesis_tui.panes.optimizer import OptimizerPane

    source = FixedSource(telemetry_fixture())
    app = GenesisApp(source, poll=False, theme="genesis-dark", remember=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("2")
        await pilot.pause()
        await pilot.press("s")
        await pilot.pause()
        assert app.query_one(OptimizerPane).sort_key == "value"
        await pilot.press("s", "s", "s")  # back to rank: the best trial first
        await pilot.pause()
        assert app.query_one(OptimizerPane).sort_key == "rank"
        await pilot.press("enter")
        await pilot.pause(0.3)
        study = telemetry_fixture().study
        assert study is not None
        assert source.commands == [f"open_trial {study.best_trial}"]
        await pilot.press("escape")  # close the trial
        await pilot.pause()
        await pilot.press("1", "s", "enter")  # on another pane the keys do nothing
        await pilot.pause()
        assert app.query_one(TabbedContent).active == "tab-overview"
        assert source.commands == [f"open_trial {study.best_trial}"]


async def warmed_up(pilot) -> None:  # type: ignore[no-untyped-def]
    """Wait until the console has laid out its hidden panes (the warm-up after start-up)."""
    app = pilot.app
    for _ in range(100):
        if app.screen_stack[0].has_class("-warming"):
            break
        await pilot.pause(0.1)
    while app.warming_up:
        await pilot.pause(0.1)
    await pilot.pause(0.3)


class FrameCountingApp(GenesisApp):
    """The console, counting the frames it hands to the terminal."""

    frames_painted = 0

    def _display(self, screen, renderable) -> None:  # type: ignore[no-untyped-def]
        if renderable is not None:
            self.frames_painted += 1
        super()._display(screen, renderable)


@pytest.mark.parametrize("pane_key", ["2", "3", "4", "6"])
async def test_a_pane_switch_with_fresh_figures_is_one_frame(pane_key: str) -> None:
    """The switch and the figures that changed while the pane was hidden arrive together.

    Filled after the switch (on TabActivated), or with Textual's tab underline
    moved after the first frame, every switch painted twice. A stray refresh on
    a busy machine can only add frames, so the fewest over three switches counts.
    """
    import dataclasses

    from textual.widgets import Label

    def changed(t: Telemetry, step: int) -> Telemetry:  # every pane's part changes
        assert t.study is not None and t.bus is not None and t.trading is not None and t.system is not None
        return dataclasses.replace(
            t,
            study=dataclasses.replace(t.study, done=t.study.done + step),
            bus=dataclasses.replace(t.bus, rate=t.bus.rate * 2),
            trading=dataclasses.replace(t.trading, equity=t.trading.equity + 1),
            system=dataclasses.replace(t.system, cpu_percent=t.system.cpu_percent / 2),
        )

    telemetry = telemetry_fixture()
    app = FrameCountingApp(FixedSource(telemetry), poll=False, theme="genesis-dark", remember=False)
    frames = []
    async with app.run_test(size=(160, 48)) as pilot:
        await warmed_up(pilot)  # no warm-up frame lands in what is counted
        await pilot.press(pane_key)  # the pane's first view
        await pilot.pause(0.3)
        for step in (777, 1, 1):
            await pilot.press("1")
            await pilot.pause(0.3)
            telemetry = changed(telemetry, step)
            app.apply_telemetry(telemetry)  # figures change while the pane is hidden
            await pilot.pause(0.5)  # settled, even on a loaded machine
            painted = app.frames_painted
            await pilot.press(pane_key)
            await pilot.pause(0.3)
            frames.append(app.frames_painted - painted)
            if pane_key == "2":
                assert telemetry.study is not None
                figures = str(app.query_one("#study-figures", Label).render())
                assert f"{telemetry.study.done:,}/" in figures
    assert min(frames) == 1, frames


@pytest.mark.parametrize("pane_key", ["2", "3", "4", "5", "6", "7"])
async def test_a_panes_first_view_is_one_frame_once_warmed_up(pane_key: str) -> None:
    """After start-up every hidden pane is laid out once, out of sight, so showing one for the
    first time needs no second layout pass."""
    import dataclasses
    import os

    telemetry = telemetry_fixture()
    assert telemetry.system is not None
    cores = os.cpu_count() or 1  # as a live engine reports them (the fixture has its own count)
    system = dataclasses.replace(
        telemetry.system, cpu_per_core=(50.0,) * cores, core_history=((50.0, 60.0),) * cores, cpu_count=cores
    )
    source = FixedSource(dataclasses.replace(telemetry, system=system))
    frames = []
    for _ in range(2):  # a stray refresh on a busy machine can only add frames: the fewer counts
        app = FrameCountingApp(source, poll=False, theme="genesis-dark", remember=False)
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.pause(0.5)
            assert app.warming_up is False  # it starts once start-up has settled
            await warmed_up(pilot)
            painted = app.frames_painted
            await pilot.press(pane_key)
            await pilot.pause(0.3)
            frames.append(app.frames_painted - painted)
            displayed = [pane.id for pane in app.query("TabPane") if pane.display]
            assert displayed == [app.query_one(TabbedContent).active]
        if frames[-1] == 1:
            break
    assert min(frames) == 1, frames


async def test_a_key_during_the_warm_up_ends_it_and_shows_only_its_pane() -> None:
    app = GenesisApp(FixedSource(telemetry_fixture()), poll=False, theme="genesis-dark", remember=False)
    async with app.run_test(size=(160, 48)) as pilot:
        for _ in range(100):
            await pilot.pause(0.05)
            if app.screen.has_class("-warming"):
                break
        assert app.warming_up
        await pilot.press("4")
        await pilot.pause(0.3)
        assert not app.warming_up and not app.screen.has_class("-warming")
        displayed = [pane.id for pane in app.query("TabPane") if pane.display]
        assert displayed == ["tab-trading"]


async def test_the_warm_up_ends_quietly_under_the_help_screen() -> None:
    """Help open when the warm-up is due: it ends, nothing crashes, and the panes still work after."""
    app = GenesisApp(FixedSource(telemetry_fixture()), poll=False, theme="genesis-dark", remember=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("question_mark")
        for _ in range(40):  # past the start-up settle time, when the warm-up would begin
            await pilot.pause(0.1)
        assert isinstance(app.screen, HelpScreen) and not app.warming_up
        await pilot.press("escape", "3")
        await pilot.pause(0.3)
        displayed = [pane.id for pane in app.query("TabPane") if pane.display]
        assert displayed == ["tab-bus"]
