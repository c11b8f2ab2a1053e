"""Event-bus pane: one row per lane, throughput and p99 sparklines, dead letters."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label

from engine.telemetry import BusTelemetry
from genesis_tui import format as fmt
from genesis_tui.panes._base import Pane, section, set_text
from genesis_tui.widgets import RowTable, Spark, Stat

LANE_COLUMNS = ("lane", "rate", "delivered", "dropped", "depth", "high", "p50", "p99")


class BusPane(Pane):
    """The event bus's lanes."""

    TITLE = "Event bus"
    PART = "bus"

    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="stats"):
            yield Stat("throughput", id="bus-rate")
            yield Stat("p99 latency", id="bus-p99")
            yield Stat("delivered", id="bus-delivered")
            yield Stat("dropped", id="bus-dropped")
            yield Stat("dead letters", id="bus-dead")
        with section("Lanes", id="lanes-box"):
            yield RowTable(*LANE_COLUMNS, right=LANE_COLUMNS[1:], id="lanes")
        with section("Throughput (events/s)", id="bus-rate-box", classes="spark-box"):
            yield Label("", classes="spark-label", id="bus-rate-label")
            yield Spark(low=0, id="bus-rate-spark")
        with section("p99 latency (ms)", id="bus-p99-box", classes="spark-box"):
            yield Label("", classes="spark-label", id="bus-p99-label")
            yield Spark(low=0, id="bus-p99-spark")

    def render_part(self, bus: BusTelemetry) -> None:
        self.query_one("#bus-rate", Stat).set(fmt.rate(bus.rate, " ev/s"))
        self.query_one("#bus-p99", Stat).set(fmt.ms(bus.p99_ms), state="warn" if bus.p99_ms > 100 else "ok")
        self.query_one("#bus-delivered", Stat).set(fmt.count(bus.delivered))
        self.query_one("#bus-dropped", Stat).set(fmt.count(bus.dropped), state="warn" if bus.dropped else "")
        self.query_one("#bus-dead", Stat).set(fmt.count(bus.dead_letters), state="bad" if bus.dead_letters else "")
        self.query_one("#lanes", RowTable).set_rows(
            [
                (
                    lane.name,
                    fmt.rate(lane.rate),
                    fmt.count(lane.delivered),
                    fmt.count(lane.dropped),
                    f"{lane.depth}/{lane.capacity}" if lane.capacity else str(lane.depth),
                    str(lane.high_water),
                    fmt.ms(lane.p50_ms),
                    fmt.ms(lane.p99_ms),
                )
                for lane in bus.lanes
            ],
        )
        self.query_one("#bus-rate-spark", Spark).data = bus.rate_history
        self.query_one("#bus-p99-spark", Spark).data = bus.p99_history
        if bus.rate_history:
            set_text(
                self.query_one("#bus-rate-label", Label),
                f"now {fmt.rate(bus.rate)} · max {fmt.rate(max(bus.rate_history))}",
            )
        if bus.p99_history:
            set_text(
                self.query_one("#bus-p99-label", Label),
                f"now {fmt.ms(bus.p99_ms)} · max {fmt.ms(max(bus.p99_history))}",
            )
