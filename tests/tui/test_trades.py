"""The trade screen's keys (zoom, scroll, edges, a trade's row, tabs), how it is opened
(trial screen, palette), and the candle chart's layout arithmetic."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.command import CommandPalette
from textual.widgets import Input, TabbedContent

from engine.paths import config_dir
from genesis_tui.app import GenesisApp
from genesis_tui.palette import genesis_commands
from genesis_tui.screens import TradesScreen, TrialScreen
from genesis_tui.widgets import CandleChart, RowTable
from genesis_tui.widgets._candles import (
    GUTTER,
    MARKER_BARS_PER_COLUMN,
    MIN_SPAN,
    Slot,
    half_index,
    layout_slots,
)
from tests.tui.fixtures import (
    FixedSource,
    telemetry_fixture,
    trade_inspection_fixture,
    trial_detail_fixture,
)
from tests.waiting import until


def _app() -> tuple[GenesisApp, FixedSource]:
    source = FixedSource(telemetry_fixture())
    return GenesisApp(source, poll=False, remember=False), source


def _shown(app: GenesisApp) -> bool:
    """The trade screen is up, filled, laid out (its chart fitted to its width), and its trades table has the focus."""
    screen = app.screen
    if not (isinstance(screen, TradesScreen) and screen.is_mounted):
        return False
    chart = screen.query_one(CandleChart)
    return (
        chart.n > 0
        and chart.size.width > GUTTER
        and chart.span == chart.size.width - GUTTER
        and app.focused is screen.query_one("#trades-table", RowTable)
    )


async def _open(app: GenesisApp) -> TradesScreen:
    app.action_backtest_strategy("sma_cross")
    await until(lambda: _shown(app), "the trade screen")
    screen = app.screen
    assert isinstance(screen, TradesScreen)
    return screen


def test_slots_aggregate_bars_when_zoomed_out_and_widen_them_when_zoomed_in() -> None:
    # 10 bars on 4 columns: every bar in exactly one column, in order.
    slots = layout_slots(100, 10, 4)
    assert [(s.first, s.last) for s in slots] == [(100, 101), (102, 104), (105, 106), (107, 109)]
    # 3 bars on 9 columns: two columns of candle and a gap each (and one column each when that is all there is).
    assert layout_slots(5, 3, 4) == [Slot(5, 5), Slot(6, 6), Slot(7, 7)]
    assert layout_slots(0, 3, 9) == [Slot(0, 0), Slot(0, 0), Slot(-1, -1), Slot(1, 1), Slot(1, 1), Slot(-1, -1),
                                     Slot(2, 2), Slot(2, 2), Slot(-1, -1)]  # fmt: skip
    assert half_index(10.0, 10.0, 20.0, 8) == 0 and half_index(20.0, 10.0, 20.0, 8) == 7
    assert half_index(15.0, 10.0, 10.0, 8) == 4  # a flat range sits in the middle


async def test_zoom_scroll_and_edges() -> None:
    app, _ = _app()
    async with app.run_test(size=(120, 40)) as pilot:
        await _open(app)
        chart = app.screen.query_one(CandleChart)
        n = chart.n
        fit = chart.size.width - GUTTER  # one bar per column until zoomed
        assert n == len(trade_inspection_fixture().ts) and (chart.span, chart.end) == (fit, n)
        await pilot.press("minus")
        assert (chart.span, chart.end) == (2 * fit, n)
        await pilot.press("plus", "plus")
        assert chart.span == fit // 2
        end = chart.end
        await pilot.press("left")
        assert chart.end == end - chart.span // 4
        await pilot.press("right")
        assert chart.end == end
        await pilot.press("home")
        assert chart.start == 0 and chart.end == fit // 2
        await pilot.press("left")
        assert chart.start == 0, "scrolled before the first bar"
        await pilot.press("end")
        assert chart.end == n
        for _ in range(8):
            await pilot.press("plus")
        assert chart.span == MIN_SPAN
        for _ in range(12):
            await pilot.press("minus")
        assert (chart.start, chart.end) == (0, n)


async def test_a_trades_row_jumps_the_chart_to_that_trade() -> None:
    app, _ = _app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(app)
        chart = screen.query_one(CandleChart)
        table = screen.query_one("#trades-table", RowTable)
        assert app.focused is table
        trades = screen.inspection.trades
        assert table.row_count == len(trades)
        # The view opens on the last bars; the third trade is far to the left of them.
        assert trades[2].exit < chart.start
        await pilot.press("down", "down", "enter")
        assert chart.selected == (trades[2].entry, trades[2].exit)
        assert chart.start <= trades[2].entry and trades[2].exit < chart.end
        await pilot.press("end", "enter")  # the chart's end key; enter selects the same row again
        assert chart.start <= trades[2].entry and trades[2].exit < chart.end
        table.move_cursor(len(trades) - 1)
        await pilot.press("enter")
        assert chart.selected == (trades[-1].entry, trades[-1].exit)
        assert chart.start <= trades[-1].entry and trades[-1].exit < chart.end
        # Zoomed all the way out (no markers drawn), a trade's row zooms back in to where they are.
        for _ in range(12):
            await pilot.press("minus")
        assert chart.span == chart.n > (chart.size.width - GUTTER) * MARKER_BARS_PER_COLUMN
        await pilot.press("enter")
        assert chart.span <= (chart.size.width - GUTTER) * MARKER_BARS_PER_COLUMN
        assert chart.start <= trades[-1].entry and trades[-1].exit < chart.end


async def test_tabs_keys_and_escape() -> None:
    app, _ = _app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _open(app)
        tabs = screen.query_one(TabbedContent)
        assert tabs.active == "trades"
        for key, tab in (("e", "equity"), ("m", "months"), ("x", "exits"), ("t", "trades")):
            await pilot.press(key)
            assert tabs.active == tab
        reasons = screen.query_one("#trades-reasons", RowTable)
        assert {row[0] for row in reasons.rows} == {t.reason for t in screen.inspection.trades}
        await pilot.press("escape")
        await until(lambda: not isinstance(app.screen, TradesScreen), "the screen to close")


async def test_trial_screens_t_opens_its_trades() -> None:
    app, source = _app()
    async with app.run_test(size=(120, 40)) as pilot:
        number = trial_detail_fixture().number
        app.action_open_trial(number)
        await until(lambda: isinstance(app.screen, TrialScreen), "the trial screen")
        await pilot.press("t")
        await until(lambda: _shown(app), "the trade screen")
        assert f"inspect_trial {number}" in source.commands


def test_palette_offers_a_backtest_of_every_strategy_found(tmp_path: Path) -> None:
    folder = config_dir() / "strategies"
    folder.mkdir(parents=True)
    (folder / "mine.py").write_text(
        "from engine.strategy import Param, strategy, ta\n\n\n"
        "@strategy(params=[Param.int('n', 5, 2, 50)], lookback='n')\n"
        "def my_breakout(bars, n):\n"
        "    '''Close above its n-bar high.'''\n"
        "    high = ta.shift(ta.highest(bars.high, n))\n"
        "    return bars.close > high, bars.close < ta.shift(ta.lowest(bars.low, n))\n"
    )
    app, _ = _app()
    names = {c.name: c for c in genesis_commands(app)}
    for builtin in ("sma_cross", "ema_cross", "rsi_reversion", "bollinger_breakout", "donchian_breakout", "zscore_reversion"):
        assert f"Backtest {builtin}" in names
    assert "Backtest my_breakout" in names
    assert f"{folder / 'mine.py'}:4" in names["Backtest my_breakout"].help


async def test_palette_backtest_opens_the_trade_screen() -> None:
    from tests.tui.test_console_engine import palette_highlights

    app, source = _app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("ctrl+p")
        await until(lambda: isinstance(app.focused, Input) and isinstance(app.screen, CommandPalette), "the palette")
        await pilot.press(*"Backtest ema_cross")
        await until(lambda: palette_highlights(app, "Backtest ema_cross"), "the palette's search")
        await pilot.press("enter")
        await until(lambda: _shown(app), "the trade screen")
        assert source.commands[-1] == "backtest_strategy ema_cross"


@pytest.mark.parametrize("timeframe", ["1h", "1d"])
def test_trade_times_read_as_times(timeframe: str) -> None:
    from genesis_tui.screens.trades import format_time, time_format

    inspection = trade_inspection_fixture()
    pattern = time_format(inspection.ts, timeframe)
    first = format_time(int(inspection.ts[0]), pattern)
    assert first == ("01-01 00:00" if timeframe == "1h" else "2024-01-01")


async def test_trial_screen_names_a_user_strategys_file_and_line() -> None:
    import dataclasses

    from textual.widgets import Label

    app, _ = _app()
    async with app.run_test(size=(120, 40)):
        await app.push_screen(TrialScreen(dataclasses.replace(trial_detail_fixture(), strategy="/home/me/mine.py:4")))
        await until(lambda: bool(app.screen.query("#trial-strategy")), "the trial screen")
        assert str(app.screen.query_one("#trial-strategy", Label).render()) == "strategy file /home/me/mine.py:4"
        await app.pop_screen()
        await app.push_screen(TrialScreen(trial_detail_fixture()))  # a built-in: no file line
        await until(lambda: isinstance(app.screen, TrialScreen) and app.screen.is_mounted, "the trial screen")
        assert not app.screen.query("#trial-strategy")
