"""Alerts and log pane: alerts by severity with the times raised and cleared; the engine log."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.content import Content

from engine.telemetry import AlertRow, LogLine, Telemetry
from genesis_tui import format as fmt
from genesis_tui.panes._base import Pane, section, set_title
from genesis_tui.widgets import RowTable

SEVERITY_STYLE = {"critical": "bold $error", "warning": "bold $warning", "info": "$primary"}
LEVEL_STYLE = {"CRITICAL": "bold $error", "ERROR": "$error", "WARNING": "$warning", "INFO": "", "DEBUG": "dim"}
_ORDER = {"critical": 0, "warning": 1, "info": 2}


def ordered_alerts(alerts: tuple[AlertRow, ...]) -> list[AlertRow]:
    """Open alerts first, then by severity, newest first."""
    return sorted(alerts, key=lambda a: (not a.active, _ORDER.get(a.severity, 3), -a.raised_at))


class AlertsPane(Pane):
    """Alerts and the engine's log."""

    TITLE = "Alerts"
    PART = ""

    def compose_body(self) -> ComposeResult:
        with section("Alerts", id="alerts-box"):
            yield RowTable("severity", "rule", "raised", "cleared", "message", id="alerts")
        with section("Log (newest first)", id="log-box"):
            yield RowTable("time", "level", "source", "message", id="log")

    def select(self, telemetry: Telemetry) -> tuple[tuple[AlertRow, ...], tuple[LogLine, ...]]:
        return (telemetry.alerts, telemetry.log)

    def render_part(self, part: tuple[tuple[AlertRow, ...], tuple[LogLine, ...]]) -> None:
        alerts, log = part
        rows: list[tuple[str | Content, ...]] = [
            (
                Content.styled(a.severity.upper(), SEVERITY_STYLE.get(a.severity, "")),
                a.rule,
                fmt.clock(a.raised_at),
                "open" if a.cleared_at is None else fmt.clock(a.cleared_at),
                a.message,
            )
            for a in ordered_alerts(alerts)
        ]
        self.query_one("#alerts", RowTable).set_rows(rows)
        box = self.query_one("#alerts-box")
        open_count = sum(1 for a in alerts if a.active)
        set_title(box, f"Alerts ({open_count} open, {len(alerts) - open_count} cleared)")
        self.query_one("#log", RowTable).set_rows(
            [
                (fmt.clock(line.ts), Content.styled(line.level, LEVEL_STYLE.get(line.level, "")), line.source, line.message)
                for line in reversed(log)
            ],
        )
