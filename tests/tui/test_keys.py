"""Keys driven through Pilot on fixed telemetry: screens open, close and hand keys back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from textual.widget import Widget
from textual.widgets import TabbedContent

from engine.telemetry import Telemetry
from genesis_tui.app import GenesisApp
from genesis_tui.panes import PANES, Pane
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
    app = GenesisApp(source, refresh_hz=0.2, remember=False, theme="genesis-dark")  # its own ticks 5 s apart
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        for _ in range(3):
            fired = app._poll_timer
            assert fired is not None
            app.refresh_now()  # a command finished: poll at once
            polls = source.polls
            fired._callback()  # ...while the timer's own tick was already on its way
            assert source.polls == polls  # the stale tick neither polled nor re-armed a second chain
            assert app._poll_timer is not fired


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
        await app.workers.wait_for_complete()
        await pilot.pause()
        study = telemetry_fixture().study
        assert study is not None
        assert source.commands == [f"open_trial {study.best_trial}"]
        await pilot.press("escape")  # close the trial
        await pilot.pause()
        await pilot.press("h")  # the heatmap's next two parameters
        await app.workers.wait_for_complete()
        assert source.commands == [f"open_trial {study.best_trial}", "cycle_heatmap"]
        await pilot.press("1", "s", "enter", "h")  # on another pane the keys do nothing
        await pilot.pause()
        await app.workers.wait_for_complete()
        assert app.query_one(TabbedContent).active == "tab-overview"
        assert source.commands == [f"open_trial {study.best_trial}", "cycle_heatmap"]


async def until(pilot, condition: Callable[[], bool], what: str) -> None:  # type: ignore[no-untyped-def]
    """Let the console run until ``condition()`` holds (the limit is a safety net, not a timing check)."""
    for _ in range(1200):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"never happened: {what}")


def laid_out(pane: Pane) -> bool:
    """Whether a layout pass has sized ``pane`` (a widget's first size is what costs a second layout)."""
    return bool(pane.container_size)


async def warmed_up(pilot) -> None:  # type: ignore[no-untyped-def]
    """Wait until the warm-up after start-up has laid out every pane and ended."""
    app = pilot.app
    await until(pilot, lambda: all(laid_out(p) for p in app.query(Pane)) and not app.warming_up, "the warm-up")
    await pilot.pause()


class KeyEffects:
    """What the console did for one key, counted from calls rather than frames in a time window:
    which panes rendered (and which tab was active then), and which widgets got a new size (each
    asks for another layout, a second frame, after the frame that sized it)."""

    def __init__(self, app: GenesisApp, monkeypatch: pytest.MonkeyPatch) -> None:
        self.renders: list[tuple[str | None, str]] = []
        self.resized: list[Widget] = []
        self.counting = False
        tabs = lambda: app.query_one(TabbedContent)  # noqa: E731
        size_updated = Widget._size_updated

        def counted_size(widget: Widget, *args: Any, **kwargs: Any) -> bool:
            changed = size_updated(widget, *args, **kwargs)
            if changed and self.counting:
                self.resized.append(widget)
            return changed

        monkeypatch.setattr(Widget, "_size_updated", counted_size)
        for _, _, pane_class in PANES:
            render_part = pane_class.render_part

            def counted_render(pane: Pane, part: Any, render_part: Any = render_part) -> None:
                if self.counting:
                    self.renders.append((pane.id, tabs().active))
                render_part(pane, part)

            monkeypatch.setattr(pane_class, "render_part", counted_render)

    async def press(self, pilot, key: str) -> None:  # type: ignore[no-untyped-def]
        """Press ``key`` and let the console handle it and lay out the result (counting only that)."""
        self.renders.clear()
        self.resized.clear()
        self.counting = True
        await pilot.press(key)
        await pilot.pause()  # ends with a layout pass of whatever the key left to do
        await pilot.pause()
        self.counting = False

    def resized_in(self, app: GenesisApp, tab_id: str) -> list[str]:
        tab = app.query_one(f"#{tab_id}")
        return [f"{type(w).__name__}#{w.id}" for w in self.resized if w is tab or tab in w.ancestors]


@pytest.mark.parametrize("pane_key", ["2", "3", "4", "6"])
async def test_a_pane_switch_with_fresh_figures_is_one_frame(pane_key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The switch and the figures that changed while the pane was hidden arrive together: the pane
    renders once, before its tab is activated, and no widget in it needs a new size.

    Filled after the switch (on TabActivated) every switch painted twice; the frame counts
    themselves, which depend on how fast the machine paints, are in benchmarks/console.py.
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

    pane_id = dict(zip("1234567", (p for p, _, _ in PANES), strict=True))[pane_key]
    telemetry = telemetry_fixture()
    app = GenesisApp(FixedSource(telemetry), poll=False, theme="genesis-dark", remember=False)
    effects = KeyEffects(app, monkeypatch)
    async with app.run_test(size=(160, 48)) as pilot:
        await warmed_up(pilot)
        await pilot.press(pane_key)  # the pane's first view
        await pilot.pause()
        for step in (777, 1, 1):
            await pilot.press("1")
            await pilot.pause()
            telemetry = changed(telemetry, step)
            app.apply_telemetry(telemetry)  # figures change while the pane is hidden
            await pilot.pause()
            await effects.press(pilot, pane_key)
            assert app.query_one(TabbedContent).active == f"tab-{pane_id}"
            assert effects.renders == [(f"pane-{pane_id}", "tab-overview")]  # once, before the switch
            assert effects.resized_in(app, f"tab-{pane_id}") == []
            if pane_key == "2":
                assert telemetry.study is not None
                figures = str(app.query_one("#study-figures", Label).render())
                assert f"{telemetry.study.done:,}/" in figures


@pytest.mark.parametrize("pane_key", ["2", "3", "4", "5", "6", "7"])
async def test_a_panes_first_view_is_one_layout_once_warmed_up(pane_key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """After start-up every hidden pane is laid out once, out of sight, so showing one for the
    first time gives none of its widgets a new size: no second layout pass."""
    import dataclasses
    import os

    telemetry = telemetry_fixture()
    assert telemetry.system is not None
    cores = os.cpu_count() or 1  # as a live engine reports them (the fixture has its own count)
    system = dataclasses.replace(
        telemetry.system, cpu_per_core=(50.0,) * cores, core_history=((50.0, 60.0),) * cores, cpu_count=cores
    )
    source = FixedSource(dataclasses.replace(telemetry, system=system))
    app = GenesisApp(source, poll=False, theme="genesis-dark", remember=False)
    effects = KeyEffects(app, monkeypatch)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        assert app.warming_up is False  # it starts once start-up has settled
        await warmed_up(pilot)
        await effects.press(pilot, pane_key)
        active = app.query_one(TabbedContent).active
        assert active != "tab-overview"
        assert effects.resized_in(app, active) == []
        displayed = [pane.id for pane in app.query("TabPane") if pane.display]
        assert displayed == [active]


async def test_the_warm_up_lays_out_a_pane_whose_layout_request_comes_late() -> None:
    """A pane's layout request reaches the screen from the pane's own idle handler; when the
    screen went idle first, the warm-up hid the pane again before any layout (a race that made
    a pane's first view two frames on a busy machine). Made to happen every time here."""
    app = GenesisApp(FixedSource(telemetry_fixture()), poll=False, theme="genesis-dark", remember=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        warming_up = app._warm_up_panes

        def late_layout_request(waiting: list[str] | None = None) -> None:
            app._begin_batch()  # no layout pass until the warm-up's after-refresh check has run
            warming_up(waiting)
            app.call_after_refresh(app._end_batch)

        app._warm_up_panes = late_layout_request  # type: ignore[method-assign]
        await warmed_up(pilot)


async def test_a_key_during_the_warm_up_ends_it_and_shows_only_its_pane(monkeypatch: pytest.MonkeyPatch) -> None:
    from genesis_tui import app as app_module

    monkeypatch.setattr(app_module, "WARM_UP_GAP_S", 600.0)  # the warm-up stays after its first pane
    app = GenesisApp(FixedSource(telemetry_fixture()), poll=False, theme="genesis-dark", remember=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: app.screen.has_class("-warming"), "the warm-up starting")
        assert app.warming_up
        await pilot.press("4")
        await pilot.pause()
        assert not app.warming_up and not app.screen.has_class("-warming")
        displayed = [pane.id for pane in app.query("TabPane") if pane.display]
        assert displayed == ["tab-trading"]


async def test_the_warm_up_ends_quietly_under_the_help_screen() -> None:
    """Help open when the warm-up is due: it ends, nothing crashes, and the panes still work after."""
    app = GenesisApp(FixedSource(telemetry_fixture()), poll=False, theme="genesis-dark", remember=False)
    calls: list[list[str] | None] = []
    warm_up = app._warm_up_panes

    def counted(waiting: list[str] | None = None) -> None:
        calls.append(waiting)
        warm_up(waiting)

    app._warm_up_panes = counted  # type: ignore[method-assign]
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("question_mark")
        await until(pilot, lambda: bool(calls), "the warm-up falling due")  # past the start-up settle time
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen) and not app.warming_up
        assert calls == [None]  # it looked, found the help screen on top and ended
        await pilot.press("escape", "3")
        await pilot.pause()
        displayed = [pane.id for pane in app.query("TabPane") if pane.display]
        assert displayed == ["tab-bus"]
