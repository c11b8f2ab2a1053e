"""The console's study comparison: opened from the palette's prompt, scrolled and closed with keys."""

from __future__ import annotations

from genesis_tui.app import GenesisApp
from genesis_tui.screens import CompareScreen, PromptScreen
from genesis_tui.widgets import RowTable
from tests.tui.fixtures import FixedSource, comparison_fixture, telemetry_fixture


async def test_the_prompt_opens_the_comparison_and_keys_scroll_and_close_it() -> None:
    source = FixedSource(telemetry_fixture())
    app = GenesisApp(source, poll=False, remember=False)
    names = comparison_fixture().studies
    async with app.run_test(size=(80, 24)) as pilot:
        app.action_compare_studies_prompt()
        await pilot.pause()
        assert isinstance(app.screen, PromptScreen)
        await pilot.press(*", ".join(names))  # commas or spaces between the names
        await pilot.press("enter")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert source.commands[-1] == "compare_studies " + " ".join(names)
        assert isinstance(app.screen, CompareScreen)
        table = app.screen.query_one("#compare-table", RowTable)
        assert table.has_focus
        header = table.render_line(0).text
        assert "sma-nightly" in header
        labels = [table.render_line(y).text.split("  ")[0].strip() for y in range(1, table.size.height)]
        assert labels[:3] == ["state", "strategy", "data"]  # the label column is never cut
        rows_before = table.top
        await pilot.press("pagedown")
        await pilot.pause()
        assert table.top > rows_before  # more rows than fit at 80x24: the keys scroll them
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, CompareScreen)


async def test_an_unknown_study_is_a_notification_not_a_screen() -> None:
    source = FixedSource(telemetry_fixture())
    app = GenesisApp(source, poll=False, remember=False)
    async with app.run_test(size=(80, 24)) as pilot:
        app.action_compare_studies(("sma-nightly", "nope"))
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert not isinstance(app.screen, CompareScreen)
        assert any("nope" in n.message for n in app._notifications)
