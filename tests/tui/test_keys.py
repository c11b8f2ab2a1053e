"""Keys driven through Pilot on fixed telemetry: screens open, close and hand keys back."""

from __future__ import annotations

from textual.widgets import TabbedContent

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
