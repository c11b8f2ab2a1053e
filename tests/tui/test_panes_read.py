"""What a new user reads in the panes at 80x24 and 160x48: no key column cut to ambiguity."""

from __future__ import annotations

import pytest

from genesis_tui.app import GenesisApp
from genesis_tui.widgets import RowTable
from tests.tui.fixtures import FixedSource, telemetry_fixture


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
async def test_profiler_stage_and_cache_names_are_shown_whole(size: tuple[int, int]) -> None:
    telemetry = telemetry_fixture()
    app = GenesisApp(FixedSource(telemetry), poll=False, remember=False)
    async with app.run_test(size=size) as pilot:
        await pilot.press("5")
        await pilot.pause()
        assert telemetry.profiler is not None
        for table_id, names in (
            ("#stages", [s.name for s in telemetry.profiler.stages]),
            ("#caches", [c.name for c in telemetry.profiler.caches]),
        ):
            table = app.query_one(table_id, RowTable)
            shown = [table.render_line(y).text.split()[0] for y in range(1, len(names) + 1)]
            assert sorted(shown) == sorted(names), table_id
            assert "…" not in table.render_line(0).text  # no header cut either


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
async def test_trading_fills_show_the_whole_status_and_the_loop_state(size: tuple[int, int]) -> None:
    telemetry = telemetry_fixture()
    app = GenesisApp(FixedSource(telemetry), poll=False, remember=False)
    async with app.run_test(size=size) as pilot:
        await pilot.press("4")
        await pilot.pause()
        fills = app.query_one("#fills", RowTable)
        shown = [fills.render_line(y).text for y in range(1, fills.size.height)]
        assert any("filled (stop_loss)" in line for line in shown)
        assert not any("…" in line for line in shown)
        assert "…" not in str(app.query_one("#tr-equity").query(".stat--detail").first().render())


def test_a_pane_scrollbar_thumb_is_whole_cells() -> None:
    # the stock thumb ends in eighth blocks (▂ ▅) that read as stray marks beside a box's right border
    from textual.scrollbar import ScrollBarRender

    from genesis_tui.panes._base import WholeCellScrollBarRender

    def glyphs(render: type[ScrollBarRender]) -> set[str]:
        bar = render.render_bar(size=20, virtual_size=37, window_size=20, position=3)
        return {segment.text for segment in bar.segments}

    assert glyphs(ScrollBarRender) - {" "}  # the stock renderer would draw them here
    assert glyphs(WholeCellScrollBarRender) == {" "}


async def test_panes_use_the_whole_cell_scrollbar() -> None:
    from genesis_tui.panes._base import WholeCellScrollBarRender

    app = GenesisApp(FixedSource(telemetry_fixture()), poll=False, remember=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        pane = app.query_one("#pane-overview")
        assert pane.vertical_scrollbar.renderer is WholeCellScrollBarRender


async def test_the_optimizer_lists_the_drivers_of_a_shared_study() -> None:
    import dataclasses

    from textual.widgets import Label

    from engine.telemetry import DriverRow

    telemetry = telemetry_fixture()
    assert telemetry.study is not None
    drivers = (DriverRow("lab-a", 4101, "running", 1200, 35.5), DriverRow("lab-b", 977, "done", 800, 20.0))
    telemetry = dataclasses.replace(telemetry, study=dataclasses.replace(telemetry.study, drivers=drivers))
    app = GenesisApp(FixedSource(telemetry), poll=False, remember=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("2")
        await pilot.pause()
        text = str(app.query_one("#study-counts", Label).render())
        assert "drivers lab-a:4101 running 1,200" in text and "lab-b:977 done 800" in text


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
async def test_a_basket_trial_shows_each_symbols_share(size: tuple[int, int]) -> None:
    import dataclasses

    from engine.telemetry import SymbolRow
    from genesis_tui.screens import TrialScreen
    from tests.tui.fixtures import trial_detail_fixture

    rows = (SymbolRow("BTCUSDT", 14, 0.0312, 0.5714, 0.41), SymbolRow("ETHUSDT", 9, -0.0105, 0.3333, 0.27))
    app = GenesisApp(FixedSource(telemetry_fixture()), poll=False, remember=False)
    async with app.run_test(size=size) as pilot:
        await app.push_screen(TrialScreen(dataclasses.replace(trial_detail_fixture(), symbols=rows)))
        await pilot.pause()
        table = app.screen.query_one("#trial-symbols", RowTable)
        shown = [table.render_line(y).text.split() for y in range(1, 3)]
        assert [line[:4] for line in shown] == [["BTCUSDT", "14", "3.12%", "57.1%"], ["ETHUSDT", "9", "-1.05%", "33.3%"]]
