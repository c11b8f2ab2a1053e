"""System pane: CPU per core and memory sparklines, the engine's processes."""

from __future__ import annotations

import os

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label

from engine.telemetry import SystemTelemetry
from genesis_tui import format as fmt
from genesis_tui.panes._base import Pane, section, set_text
from genesis_tui.widgets import RowTable, Spark, Stat


class SystemPane(Pane):
    """The host and the engine's processes."""

    TITLE = "System"
    PART = "system"

    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="stats"):
            yield Stat("CPU", id="sys-cpu")
            yield Stat("memory", id="sys-mem")
            yield Stat("console RSS", id="sys-rss")
            yield Stat("disk free", id="sys-disk")
        with section("CPU per core (%)", id="cores-box"):
            # one row per core of this machine up front: rows mounted on the first
            # snapshot would make the pane's first view a second layout pass
            yield Vertical(*[CoreRow() for _ in range(os.cpu_count() or 1)], id="cores")
        with section("Memory used (MB)", id="memory-box", classes="spark-box"):
            yield Label("", classes="spark-label", id="memory-label")
            yield Spark(low=0, id="memory-spark")
        with section("Processes", id="processes-box"):
            yield RowTable("pid", "role", "status", "cpu %", "rss", right=("pid", "cpu %", "rss"), id="processes")

    def render_part(self, sys: SystemTelemetry) -> None:
        load = "" if sys.load_average is None else "load " + " ".join(f"{x:.2f}" for x in sys.load_average)
        self.query_one("#sys-cpu", Stat).set(
            f"{sys.cpu_percent:.0f}%", f"{sys.cpu_count} cores {load}".strip(),
            state="warn" if sys.cpu_percent > 90 else "ok",
        )
        self.query_one("#sys-mem", Stat).set(
            f"{sys.memory_percent:.0f}%", f"{fmt.mb(sys.memory_used_mb)} of {fmt.mb(sys.memory_total_mb)}",
            state="warn" if sys.memory_percent > 90 else "ok",
        )
        self.query_one("#sys-rss", Stat).set(fmt.mb(sys.process_rss_mb))
        self.query_one("#sys-disk", Stat).set(fmt.mb(sys.disk_free_mb))
        self._update_cores(sys)
        self.query_one("#memory-spark", Spark).data = sys.memory_history
        set_text(
            self.query_one("#memory-label", Label),
            f"now {fmt.mb(sys.memory_used_mb)} · {len(sys.memory_history)} samples",
        )
        self.query_one("#processes", RowTable).set_rows(
            [(str(p.pid), p.role, p.status, f"{p.cpu_percent:.0f}", fmt.mb(p.rss_mb)) for p in sys.processes],
        )

    def _update_cores(self, sys: SystemTelemetry) -> None:
        cores = self.query_one("#cores", Vertical)
        rows = list(cores.query(CoreRow))
        if len(rows) != len(sys.cpu_per_core):
            cores.remove_children()
            rows = [CoreRow() for _ in sys.cpu_per_core]
            cores.mount_all(rows)
        for i, row in enumerate(rows):
            history = sys.core_history[i] if i < len(sys.core_history) else ()
            row.show(i, sys.cpu_per_core[i], history)


class CoreRow(Horizontal):
    """One core: its label and its CPU sparkline (built here, so it can be filled before mounting)."""

    def __init__(self) -> None:
        super().__init__(classes="core-row")
        self._label = Label("", classes="core-label")
        self._spark = Spark(low=0, high=100, classes="core-spark")

    def compose(self) -> ComposeResult:
        yield self._label
        yield self._spark

    def show(self, index: int, percent: float, history: tuple[float, ...]) -> None:
        set_text(self._label, f"cpu{index:<2} {percent:3.0f}%")
        self._spark.data = history
