"""The console's panes, one module each; every pane renders one part of a telemetry snapshot."""

from __future__ import annotations

from genesis_tui.panes._base import Pane
from genesis_tui.panes.alerts import AlertsPane
from genesis_tui.panes.bus import BusPane
from genesis_tui.panes.optimizer import OptimizerPane
from genesis_tui.panes.overview import OverviewPane
from genesis_tui.panes.profiler import ProfilerPane
from genesis_tui.panes.system import SystemPane
from genesis_tui.panes.trading import TradingPane

#: (tab id, tab label, pane class) in tab order; keys 1..7 switch to them.
PANES: tuple[tuple[str, str, type[Pane]], ...] = (
    ("overview", "Overview", OverviewPane),
    ("optimizer", "Optimizer", OptimizerPane),
    ("bus", "Bus", BusPane),
    ("trading", "Trading", TradingPane),
    ("profiler", "Profiler", ProfilerPane),
    ("system", "System", SystemPane),
    ("alerts", "Alerts", AlertsPane),
)

__all__ = [
    "PANES",
    "AlertsPane",
    "BusPane",
    "OptimizerPane",
    "OverviewPane",
    "Pane",
    "ProfilerPane",
    "SystemPane",
    "TradingPane",
]
