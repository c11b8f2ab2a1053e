"""Overview pane: the key figures of every part at a glance."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Grid
from textual.content import Content
from textual.widgets import Label, Static

from engine.telemetry import Telemetry
from genesis_tui import format as fmt
from genesis_tui.panes._base import Pane, section, set_text
from genesis_tui.panes.alerts import SEVERITY_STYLE
from genesis_tui.widgets import Spark, Stat


class OverviewPane(Pane):
    """Study progress and best objective, bus throughput and p99, paper equity, CPU/memory, alerts."""

    TITLE = "Overview"
    PART = ""

    def compose_body(self) -> ComposeResult:
        with Grid(id="overview-stats", classes="stats-grid"):
            yield Stat("study", id="ov-study")
            yield Stat("best objective", id="ov-best")
            yield Stat("event bus", id="ov-bus")
            yield Stat("paper equity", id="ov-equity")
            yield Stat("CPU / memory", id="ov-system")
            yield Stat("alerts", id="ov-alerts")
        with section("Bus throughput", id="ov-rate-box", classes="spark-box"):
            yield Label("", classes="spark-label", id="ov-rate-label")
            yield Spark(low=0, id="ov-rate-spark")
        with section("CPU", id="ov-cpu-box", classes="spark-box"):
            yield Label("", classes="spark-label", id="ov-cpu-label")
            yield Spark(low=0, high=100, id="ov-cpu-spark")
        with section("Paper equity", id="ov-equity-box", classes="spark-box"):
            yield Label("", classes="spark-label", id="ov-equity-label")
            yield Spark(id="ov-equity-spark")
        with section("Open alerts", id="ov-alerts-box"):
            yield Static("", id="ov-alert-list")

    def select(self, t: Telemetry) -> Any:
        return (t.study, t.bus, t.trading, t.system, t.alerts, t.notes)

    def render_part(self, part: Any) -> None:
        t = self.telemetry
        assert t is not None
        study, bus, trading, system = t.study, t.bus, t.trading, t.system
        if study is None:
            self._stat("ov-study").set("not running", "ctrl+p → Run study from file", state="off")
            self._stat("ov-best").set("—", state="off")
        else:
            eta = fmt.seconds(study.eta_s) if study.state == "running" else study.state
            self._stat("ov-study").set(
                f"{fmt.pct(study.fraction, 0)} {study.state}",
                f"{fmt.count(study.done)}/{fmt.count(study.total)} · {fmt.rate(study.trials_per_s)} · ETA {eta}",
                state={"running": "ok", "paused": "warn", "failed": "bad"}.get(study.state, ""),
            )
            self._stat("ov-best").set(
                fmt.metric(study.objective, study.best_value, 4),
                f"{study.objective} · trial #{study.best_trial}" if study.best_trial is not None else study.objective,
            )
        if bus is None:
            self._stat("ov-bus").set("not running", state="off")
        else:
            self._stat("ov-bus").set(
                fmt.rate(bus.rate, " ev/s"),
                f"p99 {fmt.ms(bus.p99_ms)} · dropped {fmt.count(bus.dropped)}",
                state="warn" if bus.dropped or bus.dead_letters else "ok",
            )
        if trading is None:
            self._stat("ov-equity").set("not running", state="off")
        else:
            risk = "KILL SWITCH" if trading.kill_switch else f"breaker {trading.circuit_breaker}"
            self._stat("ov-equity").set(
                fmt.num(trading.equity),
                f"P&L {fmt.signed(trading.realized_pnl)} · dd {fmt.pct(trading.drawdown)} · {risk}",
                state="bad" if trading.kill_switch else ("ok" if trading.running else "off"),
            )
        if system is None:
            self._stat("ov-system").set("not running", state="off")
        else:
            self._stat("ov-system").set(
                f"{system.cpu_percent:.0f}% · {system.memory_percent:.0f}%",
                f"{system.cpu_count} cores · {fmt.mb(system.memory_used_mb)} used",
                state="warn" if max(system.cpu_percent, system.memory_percent) > 90 else "ok",
            )
        active = t.active_alerts
        critical = sum(1 for a in active if a.severity == "critical")
        self._stat("ov-alerts").set(
            f"{len(active)} open",
            f"{critical} critical · {len(t.alerts)} in total",
            state="bad" if critical else ("warn" if active else "ok"),
        )
        self._spark("ov-rate", bus.rate_history if bus else (), f"{fmt.rate(bus.rate, ' ev/s')}" if bus else "not running")
        self._spark("ov-cpu", system.cpu_history if system else (), f"{system.cpu_percent:.0f}%" if system else "not running")
        self._spark(
            "ov-equity",
            trading.equity_curve[-240:] if trading else (),
            fmt.num(trading.equity) if trading else "not running",
        )
        lines = [
            Content.assemble((f"{a.severity.upper():<8} ", SEVERITY_STYLE[a.severity]), f"{fmt.clock(a.raised_at)} {a.message}")
            for a in active[:6]
        ]
        set_text(
            self.query_one("#ov-alert-list", Static),
            Content("\n").join(lines) if lines else Content.styled("no open alerts", "$text-muted"),
            layout=True,
        )

    def _stat(self, name: str) -> Stat:
        return self.query_one(f"#{name}", Stat)

    def _spark(self, name: str, data: tuple[float, ...], label: str) -> None:
        self.query_one(f"#{name}-spark", Spark).data = data
        set_text(self.query_one(f"#{name}-label", Label), label)
