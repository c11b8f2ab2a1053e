"""SVG snapshots of every pane at 80x24 and 160x48 in the dark and light themes.

Each renders a fixed telemetry fixture once (``poll=False``), so the pictures
are deterministic: no clock, no randomness, no engine. Update them with
``pytest tests/tui --snapshot-update`` and read the SVGs before committing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from textual.pilot import Pilot

from engine.telemetry import Telemetry
from engine.telemetry_map import build_heatmap
from genesis_tui.app import GenesisApp
from genesis_tui.panes import PANES
from tests.tui.fixtures import (
    FixedSource,
    comparison_fixture,
    idle_telemetry_fixture,
    telemetry_fixture,
)

SIZES = {"80x24": (80, 24), "160x48": (160, 48)}
THEMES = ("genesis-dark", "genesis-light")


def _app(theme: str, idle: bool = False, *, sparse: bool = False) -> GenesisApp:
    telemetry = idle_telemetry_fixture() if idle else telemetry_fixture()
    if sparse:
        telemetry = sparse_heatmap_fixture(telemetry)
    return GenesisApp(FixedSource(telemetry), poll=False, theme=theme, remember=False)


def sparse_heatmap_fixture(telemetry: Telemetry) -> Telemetry:
    """The fixture with 60 random-sampler trials: a smoothed heatmap over mostly untried cells, importance bars."""
    assert telemetry.study is not None
    points = []
    for i in range(60):  # a fixed, irregular scatter (no random generator: the picture must not move)
        fast, slow = 2 + (i * 37) % 58, 20 + (i * 53) % 280
        points.append(({"fast": fast, "slow": slow}, 1.5 - ((fast - 25) / 30) ** 2 - ((slow - 160) / 150) ** 2))
    heatmap = build_heatmap(points, maximize=True)
    scores = (("slow", 0.62), ("fast", 0.31), ("stop_loss", 0.02))
    return dataclasses.replace(
        telemetry, study=dataclasses.replace(telemetry.study, heatmap=heatmap, importance=scores)
    )


def _show(pane_id: str) -> Callable[[Pilot], object]:
    async def run_before(pilot: Pilot) -> None:
        app = pilot.app
        assert isinstance(app, GenesisApp)
        app.action_show_pane(pane_id)
        await pilot.pause()
        await pilot.wait_for_scheduled_animations()
        await pilot.pause()

    return run_before


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("pane_id", [pane_id for pane_id, _, _ in PANES])
def test_pane_snapshot(snap_compare, pane_id: str, size: str, theme: str) -> None:
    assert snap_compare(_app(theme), terminal_size=SIZES[size], run_before=_show(pane_id))


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("size", list(SIZES))
def test_smoothed_heatmap_snapshot(snap_compare, size: str, theme: str) -> None:
    async def run_before(pilot: Pilot) -> None:
        await _show("optimizer")(pilot)
        pilot.app.query_one("#validation").scroll_visible(animate=False)
        await pilot.pause()

    assert snap_compare(_app(theme, sparse=True), terminal_size=SIZES[size], run_before=run_before)


@pytest.mark.parametrize("size", list(SIZES))
def test_idle_engine_says_not_running(snap_compare, size: str) -> None:
    assert snap_compare(_app("genesis-dark", idle=True), terminal_size=SIZES[size], run_before=_show("optimizer"))


def test_help_screen_snapshot(snap_compare) -> None:
    async def run_before(pilot: Pilot) -> None:
        await pilot.press("question_mark")
        await pilot.pause()

    assert snap_compare(_app("genesis-dark"), terminal_size=(100, 40), run_before=run_before)


def test_trial_screen_snapshot(snap_compare) -> None:
    async def run_before(pilot: Pilot) -> None:
        app = pilot.app
        assert isinstance(app, GenesisApp)
        app.action_open_trial(telemetry_fixture().study.leaderboard[0].number)  # type: ignore[union-attr]
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()

    assert snap_compare(_app("genesis-light"), terminal_size=(120, 36), run_before=run_before)


def test_high_contrast_theme_snapshot(snap_compare) -> None:
    assert snap_compare(_app("genesis-high-contrast"), terminal_size=(160, 48), run_before=_show("overview"))


def _open_comparison() -> Callable[[Pilot], object]:
    async def run_before(pilot: Pilot) -> None:
        app = pilot.app
        assert isinstance(app, GenesisApp)
        app.action_compare_studies(comparison_fixture().studies)
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()

    return run_before


def _open_trades(select: int | None = None) -> Callable[[Pilot], object]:
    async def run_before(pilot: Pilot) -> None:
        from genesis_tui.screens import TradesScreen
        from genesis_tui.widgets import CandleChart, RowTable
        from genesis_tui.widgets._candles import GUTTER
        from tests.waiting import until

        app = pilot.app
        assert isinstance(app, GenesisApp)
        app.action_backtest_strategy("sma_cross")

        def shown() -> bool:  # filled, fitted to its width, the trades table focused
            screen = app.screen
            if not (isinstance(screen, TradesScreen) and screen.is_mounted):
                return False
            chart = screen.query_one(CandleChart)
            return (
                chart.n > 0 and chart.size.width > GUTTER and chart.span == chart.size.width - GUTTER
                and app.focused is screen.query_one("#trades-table", RowTable)
            )  # fmt: skip

        await until(shown, "the trade screen")
        if select is not None:
            app.screen.query_one("#trades-table", RowTable).move_cursor(select)
            await pilot.press("enter")
        app.clear_notifications()  # the "backtesting…" toast lives on a timer
        await pilot.pause()
        await pilot.wait_for_scheduled_animations()
        await pilot.pause()

    return run_before


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("size", list(SIZES))
def test_compare_screen_snapshot(snap_compare, size: str, theme: str) -> None:
    assert snap_compare(_app(theme), terminal_size=SIZES[size], run_before=_open_comparison())


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("size", list(SIZES))
def test_trades_screen_snapshot(snap_compare, size: str, theme: str) -> None:
    assert snap_compare(_app(theme), terminal_size=SIZES[size], run_before=_open_trades())


def test_trades_screen_with_a_trade_selected_snapshot(snap_compare) -> None:
    assert snap_compare(_app("genesis-dark"), terminal_size=(160, 48), run_before=_open_trades(select=20))
