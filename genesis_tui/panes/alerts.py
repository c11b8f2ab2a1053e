"""Alerts and log pane: alerts by severity with the times raised and cleared; the engine log."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.content import Content
from textual.widgets import DataTable

from engine.telemetry import AlertRow, LogLine, Telemetry
from genesis_tui import format as fmt
from genesis_tui.panes._base import Pane, fill_table, section, set_title

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
            alerts: DataTable[str | Content] = DataTable(id="alerts", cursor_type="row", zebra_stripes=True)
            yield alerts
        with section("Log", id="log-box"):
            log: DataTable[str | Content] = DataTable(id="log", cursor_type="row", zebra_stripes=True)
            yield log

    def on_mount(self) -> None:
        alerts = self.query_one("#alerts", DataTable)
        alerts.add_column("severity", width=9)
        alerts.add_columns("rule", "raised", "cleared", "message")
        log = self.query_one("#log", DataTable)
        log.add_column("time", width=8)
        log.add_column("level", width=8)
        log.add_columns("source", "message")

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
        fill_table(self.query_one("#alerts", DataTable), rows)
        box = self.query_one("#alerts-box")
        open_count = sum(1 for a in alerts if a.active)
        set_title(box, f"Alerts ({open_count} open, {len(alerts) - open_count} cleared)")
        table = self.query_one("#log", DataTable)
        at_end = table.cursor_row >= table.row_count - 1
        fill_table(
            table,
            [
                (fmt.clock(line.ts), Content.styled(line.level, LEVEL_STYLE.get(line.level, "")), line.source, line.message)
                for line in log
            ],
        )
        if at_end and log:
            table.move_cursor(row=len(log) - 1, animate=False)
