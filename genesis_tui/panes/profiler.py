"""Profiler pane: stage timings, the last capture's top functions and allocation sites, caches."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Label

from engine.telemetry import ProfilerTelemetry
from genesis_tui import format as fmt
from genesis_tui.panes._base import Pane, section, set_text
from genesis_tui.widgets import RowTable


class ProfilerPane(Pane):
    """Where the time and the memory go."""

    TITLE = "Profiler"
    PART = "profiler"

    def compose_body(self) -> ComposeResult:
        yield Label("", id="capture-status")
        with section("Stages", id="stages-box"):
            yield RowTable(
                "stage", "count", "total", "mean", "p50", "p99", "max",
                right=("count", "total", "mean", "p50", "p99", "max"),
                keep=("stage",), optional=("mean", "p50"), id="stages",
            )
        with section("Top functions (last capture)", id="functions-box"):
            yield RowTable("function", "calls", "own", "cumulative", right=("calls", "own", "cumulative"), id="functions")
        with section("Allocation sites (last capture)", id="allocations-box"):
            yield RowTable("site", "size", "blocks", right=("size", "blocks"), id="allocations")
        with section("Caches", id="caches-box"):
            yield RowTable(
                "cache", "hit ratio", "hits", "misses", "evictions", "entries", "size",
                right=("hit ratio", "hits", "misses", "evictions", "entries", "size"),
                keep=("cache",), optional=("entries", "evictions"), id="caches",
            )

    def render_part(self, prof: ProfilerTelemetry) -> None:
        if prof.capturing:
            status = "capturing… (cProfile + tracemalloc)"
        elif prof.captures:
            status = f"last capture: {prof.capture_label} · {prof.captures} taken · c for a new one"
        else:
            status = "no capture yet · press c to take one"
        timers = "stage timers on" if prof.enabled else "stage timers off"
        set_text(self.query_one("#capture-status", Label), f"{timers} · {status}")
        self.query_one("#stages", RowTable).set_rows(
            [
                (s.name, fmt.count(s.count), fmt.seconds(s.total_s), fmt.ms(s.mean_s * 1e3),
                 fmt.ms(s.p50_s * 1e3), fmt.ms(s.p99_s * 1e3), fmt.ms(s.max_s * 1e3))
                for s in sorted(prof.stages, key=lambda s: -s.total_s)
            ],
        )
        self.query_one("#functions", RowTable).set_rows(
            [(f.function, fmt.count(f.calls), fmt.seconds(f.total_s), fmt.seconds(f.cumulative_s)) for f in prof.functions],
        )
        self.query_one("#allocations", RowTable).set_rows(
            [(a.site, fmt.size(a.size), fmt.count(a.count)) for a in prof.allocations],
        )
        self.query_one("#caches", RowTable).set_rows(
            [
                (c.name, fmt.pct(c.hit_ratio), fmt.count(c.hits), fmt.count(c.misses), fmt.count(c.evictions),
                 fmt.count(c.entries), fmt.size(c.bytes))
                for c in prof.caches
            ],
        )
