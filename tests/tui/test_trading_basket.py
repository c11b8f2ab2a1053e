"""The Trading pane on a basket: one row per symbol and the portfolio's equity, from a fixed snapshot
and from the real console running a 3-symbol synthetic basket's paper loop."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from engine.runtime import Engine
from engine.telemetry import PaperSymbolRow, PositionRow
from genesis_tui.app import GenesisApp
from genesis_tui.widgets import RowTable
from tests.tui.fixtures import FixedSource, telemetry_fixture
from tests.tui.test_console_engine import make_app, telemetry_shows
from tests.waiting import until


def _lines(table: RowTable) -> list[str]:
    return [table.render_line(y).text for y in range(1, table.size.height)]


async def test_a_basket_snapshot_shows_each_symbol_s_row_and_the_portfolio_equity() -> None:
    telemetry = telemetry_fixture()
    assert telemetry.trading is not None
    trading = dataclasses.replace(
        telemetry.trading,
        symbol="basket of 3 (shared)",
        positions=(PositionRow("BTC", 0.12, 61_000.0, 62_100.0, 132.0),),
        symbols=(
            PaperSymbolRow("BTC", 7, 412.5, 0.0545, 0.12),
            PaperSymbolRow("ETH", 4, -88.25, -0.0088, 0.0),
            PaperSymbolRow("SOL", 2, 15.0, 0.0015, -3.5),
        ),
    )
    app = GenesisApp(FixedSource(dataclasses.replace(telemetry, trading=trading)), poll=False, remember=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("4")
        await pilot.pause()
        table = app.query_one("#paper-symbols", RowTable)
        assert table.display
        rows = [line.split() for line in _lines(table) if line.strip()]
        assert rows[:3] == [
            ["BTC", "7", "+412.50", "5.45%", "0.1200"],
            ["ETH", "4", "-88.25", "-0.88%", "0.0000"],
            ["SOL", "2", "+15.00", "0.15%", "-3.5000"],
        ]
        assert "Portfolio equity" in str(app.query_one("#paper-equity-box").border_title)
        assert "basket of 3 (shared)" in str(app.query_one("#positions-box").border_title)
        # a basket's fills name their symbol: at 86 columns one optional column must go, and it is the bar index
        assert "symbol" in app.query_one("#fills", RowTable).render_line(0).text.split()
        await pilot.resize_terminal(86, 30)
        await pilot.pause()
        header = app.query_one("#fills", RowTable).render_line(0).text.split()
        assert "symbol" in header and "bar" not in header, header


async def test_one_symbol_s_trading_pane_hides_the_basket_table() -> None:
    app = GenesisApp(FixedSource(telemetry_fixture()), poll=False, remember=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("4")
        await pilot.pause()
        assert not app.query_one("#paper-symbols", RowTable).display
        assert "Portfolio" not in str(app.query_one("#paper-equity-box").border_title)


@pytest.mark.parametrize("allocation", ["shared", "split"])
async def test_the_console_shows_a_running_basket_paper_loop_one_row_per_symbol(
    tmp_path: Path, allocation: str
) -> None:
    from engine.backtest import BacktestOptions
    from engine.data import align, load_basket
    from engine.runtime import paper_factory_for

    basket = align(load_basket("synthetic:bars=2000,seed=5,timeframe=1m,symbols=3"))
    factory = paper_factory_for(basket, "sma_cross", {"fast": 3, "slow": 10},
                                BacktestOptions(allocation=allocation, fee=0.0005), bars_per_s=400.0)  # fmt: skip
    engine = Engine(db=tmp_path / "store.db", workspace="basket", monitor=False, paper_factory=factory)
    app, handle = make_app(engine)
    trading = telemetry_shows(
        app, lambda t: t.trading is not None and t.trading.bars_seen > 60 and sum(r.trades for r in t.trading.symbols) > 0
    )  # fmt: skip
    try:
        async with app.run_test(size=(160, 48)) as pilot:
            await until(trading, "the basket's first closed trades")
            await pilot.press("4")
            await pilot.pause()
            shown = app.last_telemetry
            assert shown is not None and shown.trading is not None
            assert shown.trading.symbol == f"basket of 3 ({allocation})"
            table = app.query_one("#paper-symbols", RowTable)
            await until(lambda: sum(bool(line.strip()) for line in _lines(table)) >= 3, "the symbols' rows")
            assert [line.split()[0] for line in _lines(table) if line.strip()] == ["SYNTH1", "SYNTH2", "SYNTH3"]
    finally:
        await handle.close()
