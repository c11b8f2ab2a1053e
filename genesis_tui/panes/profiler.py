"""Profiler pane: stage timings, the last capture's top functions and allocation sites, caches."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import DataTable, Label

from engine.telemetry import ProfilerTelemetry
from genesis_tui import format as fmt
from genesis_tui.panes._base import Pane, fill_table, section, set_text


class ProfilerPane(Pane):
    """Where the time and the memory go."""

    TITLE = "Profiler"
    PART = "profiler"

    def compose_body(self) -> ComposeResult:
        yield Label("", id="capture-status")
        with section("Stages", id="stages-box"):
            stages: DataTable[str] = DataTable(id="stages", cursor_type="row", zebra_stripes=True)
            yield stages
        with section("Top functions (last capture)", id="functions-box"):
            functions: DataTable[str] = DataTable(id="functions", cursor_type="row", zebra_stripes=True)
            yield functions
        with section("Allocation sites (last capture)", id="allocations-box"):
            allocations: DataTable[str] = DataTable(id="allocations", cursor_type="row", zebra_stripes=True)
            yield allocations
        with section("Caches", id="caches-box"):
            caches: DataTable[str] = DataTable(id="caches", cursor_type="row", zebra_stripes=True)
            yield caches

    def on_mount(self) -> None:
        self.query_one("#stages", DataTable).add_columns("stage", "count", "total", "mean", "p50", "p99", "max")
        self.query_one("#functions", DataTable).add_columns("function", "calls", "own", "cumulative")
        self.query_one("#allocations", DataTable).add_columns("site", "size", "blocks")
        self.query_one("#caches", DataTable).add_columns("cache", "hit ratio", "hits", "misses", "evictions", "entries", "size")

    def render_part(self, prof: ProfilerTelemetry) -> None:
        if prof.capturing:
            status = "capturing… (cProfile + tracemalloc)"
        elif prof.captures:
            status = f"last capture: {prof.capture_label} · {prof.captures} taken · c for a new one"
        else:
            status = "no capture yet · press c to take one"
        timers = "stage timers on" if prof.enabled else "stage timers off"
        set_text(self.query_one("#capture-status", Label), f"{timers} · {status}")
        fill_table(
            self.query_one("#stages", DataTable),
            [
                (s.name, fmt.count(s.count), fmt.seconds(s.total_s), fmt.ms(s.mean_s * 1e3),
                 fmt.ms(s.p50_s * 1e3), fmt.ms(s.p99_s * 1e3), fmt.ms(s.max_s * 1e3))
                for s in sorted(prof.stages, key=lambda s: -s.total_s)
            ],
        )
        fill_table(
            self.query_one("#functions", DataTable),
            [(f.function, fmt.count(f.calls), fmt.seconds(f.total_s), fmt.seconds(f.cumulative_s)) for f in prof.functions],
        )
        fill_table(
            self.query_one("#allocations", DataTable),
            [(a.site, fmt.size(a.size), fmt.count(a.count)) for a in prof.allocations],
        )
        fill_table(
            self.query_one("#caches", DataTable),
            [
                (c.name, fmt.pct(c.hit_ratio), fmt.count(c.hits), fmt.count(c.misses), fmt.count(c.evictions),
                 fmt.count(c.entries), fmt.size(c.bytes))
                for c in prof.caches
            ],
        )
