"""Modal screens: help, a trial's detail, its trades on the price, studies compared, a one-line prompt."""

from __future__ import annotations

from genesis_tui.screens.compare import CompareScreen
from genesis_tui.screens.help import HelpScreen
from genesis_tui.screens.prompt import PromptScreen
from genesis_tui.screens.trades import TradesScreen
from genesis_tui.screens.trial import TrialScreen

__all__ = ["CompareScreen", "HelpScreen", "PromptScreen", "TradesScreen", "TrialScreen"]
