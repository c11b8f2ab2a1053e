"""The profile report: where the time and memory went, as rich, Markdown and JSON.

:func:`build_profile_report` gathers the stage timings, the last cProfile
capture, tracemalloc sites, cache ratios, system peaks and alerts into one
immutable :class:`ProfileReport`. The report sets the stages against the wall
time: *covered* is the time during which at least one stage was active in
this process (the sum of the top-level stages when they run one after
another), and *unaccounted* is the wall time no stage covers. A well
instrumented run leaves less than 5% unaccounted.

Stages merged from worker processes ran beside the parent, not inside its wall
time: they appear in the table (their ``merged`` count says how many passes
came from workers) but never in the covered sum.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from engine.monitor.alerts import Alert
from engine.monitor.system import SystemSnapshot
from engine.profile.caches import CacheRegistry, CacheStats, caches
from engine.profile.captures import CpuCapture, FunctionStat, MemoryGrowth, MemorySnapshot
from engine.profile.stages import Profiler, StageStats, profiler

REPORT_VERSION = 1
#: The stage a worker process ships with each chunk: its busy time on it (not top-level).
WORKER_BUSY_STAGE = "optimize.worker_chunk"

#: System series shown in the report, with their titles (peaks; disk is a minimum).
_SYSTEM_ROWS = (
    ("rss_mb", "resident memory, process + workers (MB)"),
    ("process_rss_mb", "resident memory, this process (MB)"),
    ("workers_rss_mb", "resident memory, workers (MB)"),
    ("cpu_percent", "CPU, this process (%)"),
    ("workers_cpu_percent", "CPU, workers (%)"),
    ("machine_cpu_percent", "CPU, machine (%)"),
    ("memory_percent", "memory used, machine (%)"),
    ("load_1m", "load average (1 min)"),
    ("workers", "worker processes"),
    ("threads", "threads"),
    ("open_files", "open files"),
)


@dataclass(frozen=True, slots=True)
class ProfileReport:
    """Everything the profile report shows, frozen."""

    title: str
    created_at: float
    wall_s: float
    covered_s: float  # time with at least one stage active in this process
    top_level_s: float  # sum of top-level passes (= covered_s unless tasks overlapped)
    stages: tuple[StageStats, ...]
    caches: tuple[CacheStats, ...]
    cpu: CpuCapture | None = None
    memory: MemorySnapshot | None = None
    growth: MemoryGrowth | None = None
    system: tuple[tuple[str, float], ...] = ()  # (series, peak) plus ("disk_free_mb_min", ...)
    system_samples: int = 0
    alerts: tuple[Alert, ...] = ()  # raises and clears, oldest first
    active_alerts: tuple[Alert, ...] = ()
    top: int = 15

    @property
    def unaccounted_s(self) -> float:
        """Wall time no stage covers (negative only if the wall time given was too short)."""
        return self.wall_s - self.covered_s

    @property
    def covered_ratio(self) -> float:
        return self.covered_s / self.wall_s if self.wall_s > 0 else 0.0

    def accounts_for(self, tolerance: float = 0.05) -> bool:
        """Whether the stages cover the wall time within ``tolerance`` (5% by default)."""
        return self.wall_s > 0 and abs(self.unaccounted_s) <= tolerance * self.wall_s

    def stage_rows(self) -> tuple[StageStats, ...]:
        """Stages by top-level time, then by total time."""
        return tuple(sorted(self.stages, key=lambda s: (-s.top_s, -s.total_s, s.name)))

    # --- plain data ------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": REPORT_VERSION,
            "title": self.title,
            "created_at": self.created_at,
            "wall_s": self.wall_s,
            "covered_s": self.covered_s,
            "top_level_s": self.top_level_s,
            "unaccounted_s": self.unaccounted_s,
            "covered_ratio": self.covered_ratio,
            "stages": [s.to_dict() for s in self.stage_rows()],
            "top_functions": None
            if self.cpu is None
            else {
                "label": self.cpu.label,
                "pid": self.cpu.pid,
                "duration_s": self.cpu.duration_s,
                "total_calls": self.cpu.total_calls,
                "sampled": self.cpu.sampled,
                "started_at": self.cpu.started_at,
                "by_cumulative": [f.to_dict() for f in self.cpu.top_cumulative(self.top)],
                "by_own": [f.to_dict() for f in self.cpu.top_own(self.top)],
            },
            "allocations": None if self.memory is None else self.memory.to_dict(),
            "memory_growth": None if self.growth is None else self.growth.to_dict(),
            "caches": [c.to_dict() for c in self.caches],
            "system": {"samples": self.system_samples, "peaks": dict(self.system)},
            "alerts": [a.to_dict() for a in self.alerts],
            "active_alerts": [a.to_dict() for a in self.active_alerts],
            "top": self.top,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProfileReport:
        """Rebuild a report from :meth:`to_dict` (or parsed :meth:`to_json`): what a
        stored study report keeps. The capture keeps the rows the report showed."""
        version = data.get("version")
        if version != REPORT_VERSION:
            raise ValueError(f"profile report: version: expected {REPORT_VERSION}, got {version!r}")
        cpu = None
        top_functions = data.get("top_functions")
        if top_functions is not None:
            rows = {}
            for row in (*top_functions["by_cumulative"], *top_functions["by_own"]):
                stat = FunctionStat.from_dict(row)
                rows[(stat.file, stat.line, stat.function)] = stat
            cpu = CpuCapture(
                label=str(top_functions["label"]),
                pid=int(top_functions["pid"]),
                duration_s=float(top_functions["duration_s"]),
                total_calls=int(top_functions["total_calls"]),
                functions=tuple(sorted(rows.values(), key=lambda f: f.cumulative_s, reverse=True)),
                started_at=float(top_functions.get("started_at", 0.0)),
                sampled=bool(top_functions.get("sampled", False)),
            )
        system = data.get("system") or {}
        return cls(
            title=str(data.get("title", "")),
            created_at=float(data["created_at"]),
            wall_s=float(data["wall_s"]),
            covered_s=float(data["covered_s"]),
            top_level_s=float(data["top_level_s"]),
            stages=tuple(StageStats.from_dict(s) for s in data.get("stages", ())),
            caches=tuple(CacheStats.from_dict(c) for c in data.get("caches", ())),
            cpu=cpu,
            memory=None if data.get("allocations") is None else MemorySnapshot.from_dict(data["allocations"]),
            growth=None if data.get("memory_growth") is None else MemoryGrowth.from_dict(data["memory_growth"]),
            system=tuple(sorted((str(k), float(v)) for k, v in (system.get("peaks") or {}).items() if v is not None)),
            system_samples=int(system.get("samples", 0)),
            alerts=tuple(Alert.from_dict(a) for a in data.get("alerts", ())),
            active_alerts=tuple(Alert.from_dict(a) for a in data.get("active_alerts", ())),
            top=int(data.get("top", 15)),
        )

    @classmethod
    def from_json(cls, text: str) -> ProfileReport:
        return cls.from_dict(json.loads(text))

    def to_json(self, *, indent: int | None = 2) -> str:
        """The report as JSON (NaN and infinities become null)."""
        return json.dumps(_finite(self.to_dict()), indent=indent)

    # --- Markdown ----------------------------------------------------------------

    def to_markdown(self, *, level: int = 2) -> str:
        """The report as Markdown; ``level`` is the heading level of its title."""
        h = "#" * level
        hh = "#" * (level + 1)
        out = [f"{h} Profile: {self.title}" if self.title else f"{h} Profile", ""]
        out.append(self._summary_line())
        out.append("")

        out += [f"{hh} Stages", ""]
        if self.stages:
            out.append(
                "Count and total are this process's; top-level time sums to the covered time, and a stage with "
                "none ran inside another (its total is part of that one's). *In workers*: passes and seconds "
                "worker processes shipped back, beside the wall time, not in it. Percentiles cover all passes."
            )
            out.append("")
            out.append(
                "| stage | count | total s | top-level s | % of wall | in workers | workers s "
                "| mean ms | p50 ms | p95 ms | p99 ms | max ms |"
            )
            out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
            for s in self.stage_rows():
                own = s.total_s - s.merged_s
                out.append(
                    f"| `{_md(s.name)}` | {s.count - s.merged:,} | {own:.3f} | {s.top_s:.3f} | {_pct(s.top_s, self.wall_s)} "
                    f"| {s.merged:,} | {s.merged_s:.3f} "
                    f"| {s.mean_s * 1e3:.3f} | {s.p50_s * 1e3:.3f} | {s.p95_s * 1e3:.3f} | {s.p99_s * 1e3:.3f} | {s.max_s * 1e3:.3f} |"
                )
            blank = "| | | | | | | |"
            out.append(
                f"| **stages, top level** | | | **{self.covered_s:.3f}** | **{_pct(self.covered_s, self.wall_s)}** {blank}"
            )
            out.append(f"| *unaccounted* | | | {self.unaccounted_s:.3f} | {_pct(self.unaccounted_s, self.wall_s)} {blank}")
            out.append(f"| **wall time** | | | **{self.wall_s:.3f}** | 100.0% {blank}")
        else:
            out.append("No stage was timed (profiling was off).")
        out.append("")

        out += [f"{hh} Top functions", ""]
        if self.cpu is None:
            out.append("No cProfile capture was taken.")
        else:
            c = self.cpu
            if c.sampled:
                out.append(
                    f"Sampled capture `{_md(c.label)}` (every thread): {c.duration_s:.3f} s, {c.total_calls:,} samples, "
                    f"pid {c.pid}; times are estimates."
                )
                header = "| function | samples | own s | cumulative s |"
            else:
                out.append(f"cProfile capture `{_md(c.label)}`: {c.duration_s:.3f} s, {c.total_calls:,} calls, pid {c.pid}.")
                header = "| function | calls | own s | cumulative s |"
            out.append("")
            for heading, rows in (("By cumulative time", c.top_cumulative(self.top)), ("By own time", c.top_own(self.top))):
                out += [f"**{heading}**", "", header, "|---|---:|---:|---:|"]
                out += [_function_md(f) for f in rows]
                out.append("")
        if self.cpu is None:
            out.append("")

        out += [f"{hh} Allocations", ""]
        if self.memory is None and self.growth is None:
            out.append("No tracemalloc snapshot was taken.")
        if self.memory is not None:
            m = self.memory
            out.append(
                f"tracemalloc `{_md(m.label)}`: {_mb(m.traced_bytes)} traced, peak {_mb(m.peak_bytes)}, pid {m.pid}."
            )
            out += ["", "| site | size | blocks |", "|---|---:|---:|"]
            out += [f"| `{_md(s.label)}` | {_mb(s.size_bytes)} | {s.count:,} |" for s in m.sites[: self.top]]
            out.append("")
        if self.growth is not None:
            g = self.growth
            out.append(f"Growth `{_md(g.label)}` over {g.seconds:.1f} s: {_mb(g.total_growth_bytes)} in total.")
            out += ["", "| site | grew by | blocks |", "|---|---:|---:|"]
            out += [f"| `{_md(s.label)}` | {_mb(s.size_bytes)} | {s.count:+,} |" for s in g.sites[: self.top]]
            out.append("")
        if self.memory is None and self.growth is None:
            out.append("")

        out += [f"{hh} Caches", ""]
        if self.caches:
            out += ["| cache | hits | misses | hit ratio | evictions | entries | size |", "|---|---:|---:|---:|---:|---:|---:|"]
            out += [
                f"| `{_md(c.name)}` | {c.hits:,} | {c.misses:,} | {_ratio(c)} | {c.evictions:,} | {c.entries:,} | {_mb(c.bytes)} |"
                for c in self.caches
            ]
        else:
            out.append("No cache reported.")
        out.append("")

        out += [f"{hh} System", ""]
        if self.system:
            out += [f"{self.system_samples:,} samples.", "", "| metric | peak |", "|---|---:|"]
            out += [f"| {title} | {value:,.1f} |" for title, value in self._system_rows()]
        else:
            out.append("The system was not sampled.")
        out.append("")

        out += [f"{hh} Alerts", ""]
        if self.alerts or self.active_alerts:
            out += ["| time (UTC) | level | event | rule | message |", "|---|---|---|---|---|"]
            for a in self.alerts:
                out.append(f"| {_clock(a.ts)} | {a.level} | {a.state} | `{a.rule}` | {_md(a.message)} |")
            if self.active_alerts:
                out += ["", "Still active: " + ", ".join(f"`{a.key}`" for a in self.active_alerts) + "."]
        else:
            out.append("No alert was raised.")
        out.append("")
        return "\n".join(out)

    @property
    def worker_s(self) -> float:
        """Stage time shipped back by worker processes, at their own top level."""
        return sum(s.merged_top_s for s in self.stages)

    def _summary_line(self) -> str:
        line = (
            f"Wall time **{self.wall_s:.3f} s**; stages at top level **{self.covered_s:.3f} s** "
            f"({_pct(self.covered_s, self.wall_s)}); unaccounted {self.unaccounted_s:.3f} s "
            f"({_pct(self.unaccounted_s, self.wall_s)})."
        )
        passes = sum(s.merged for s in self.stages)
        busy = sum(s.merged_s for s in self.stages if s.name == WORKER_BUSY_STAGE)
        if busy > 0:
            line += (
                f" Worker processes, beside the wall time: busy {busy:.3f} s on chunks; their stages at top "
                f"level {self.worker_s:.3f} s ({_pct(self.worker_s, busy)} of that; warm-up before the first "
                f"chunk counts too)."
            )
        elif passes:
            line += (
                f" Worker processes: {self.worker_s:.3f} s in stages at their top level "
                f"({passes:,} passes shipped back), beside the wall time."
            )
        return line

    def _system_rows(self) -> list[tuple[str, float]]:
        peaks = dict(self.system)
        rows = [(title, peaks[key]) for key, title in _SYSTEM_ROWS if key in peaks]
        if "disk_free_mb_min" in peaks:
            rows.append(("free disk for the store, lowest (MB)", peaks["disk_free_mb_min"]))
        return rows

    # --- rich ----------------------------------------------------------------------

    def to_rich(self) -> Any:
        """The report as a rich renderable (a group of tables)."""
        from rich import box
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        parts: list[Any] = [Text(f"Profile: {self.title}" if self.title else "Profile", style="bold")]
        parts.append(
            Text(
                f"wall {self.wall_s:.3f} s · stages {self.covered_s:.3f} s ({_pct(self.covered_s, self.wall_s)}) · "
                f"unaccounted {self.unaccounted_s:.3f} s ({_pct(self.unaccounted_s, self.wall_s)})"
            )
        )
        stages = Table(title="Stages", box=box.SIMPLE_HEAVY, title_justify="left")
        columns = ("stage", "count", "total s", "workers s", "top s", "% wall", "mean ms", "p50 ms", "p95 ms", "p99 ms", "max ms")
        for column in columns:
            stages.add_column(column, justify="left" if column == "stage" else "right")
        for s in self.stage_rows():
            stages.add_row(
                s.name,
                f"{s.count:,}",
                f"{s.total_s - s.merged_s:.3f}",
                f"{s.merged_s:.3f}",
                f"{s.top_s:.3f}",
                _pct(s.top_s, self.wall_s),
                f"{s.mean_s * 1e3:.3f}",
                f"{s.p50_s * 1e3:.3f}",
                f"{s.p95_s * 1e3:.3f}",
                f"{s.p99_s * 1e3:.3f}",
                f"{s.max_s * 1e3:.3f}",
            )
        stages.add_row("unaccounted", "", "", "", f"{self.unaccounted_s:.3f}", _pct(self.unaccounted_s, self.wall_s), style="dim")
        parts.append(stages)
        if self.cpu is not None:
            functions = Table(
                title=f"Top functions ({self.cpu.label}, {self.cpu.duration_s:.2f} s)", box=box.SIMPLE, title_justify="left"
            )
            for column in ("function", "samples" if self.cpu.sampled else "calls", "own s", "cumulative s"):
                functions.add_column(column, justify="left" if column == "function" else "right")
            for f in self.cpu.top_cumulative(self.top):
                functions.add_row(f.label, f"{f.calls:,}", f"{f.own_s:.4f}", f"{f.cumulative_s:.4f}")
            parts.append(functions)
        if self.memory is not None:
            memory = Table(title=f"Allocations ({_mb(self.memory.traced_bytes)} traced)", box=box.SIMPLE, title_justify="left")
            memory.add_column("site")
            memory.add_column("size", justify="right")
            memory.add_column("blocks", justify="right")
            for site in self.memory.sites[: self.top]:
                memory.add_row(site.label, _mb(site.size_bytes), f"{site.count:,}")
            parts.append(memory)
        if self.caches:
            table = Table(title="Caches", box=box.SIMPLE, title_justify="left")
            for column in ("cache", "hits", "misses", "hit ratio", "evictions", "size"):
                table.add_column(column, justify="left" if column == "cache" else "right")
            for c in self.caches:
                table.add_row(c.name, f"{c.hits:,}", f"{c.misses:,}", _ratio(c), f"{c.evictions:,}", _mb(c.bytes))
            parts.append(table)
        if self.system:
            table = Table(title="System peaks", box=box.SIMPLE, title_justify="left")
            table.add_column("metric")
            table.add_column("peak", justify="right")
            for title, value in self._system_rows():
                table.add_row(title, f"{value:,.1f}")
            parts.append(table)
        if self.alerts:
            table = Table(title="Alerts", box=box.SIMPLE, title_justify="left")
            for column in ("time", "level", "event", "message"):
                table.add_column(column)
            for a in self.alerts:
                table.add_row(_clock(a.ts), a.level, a.state, a.message, style="red" if a.critical else "yellow")
            parts.append(table)
        return Group(*parts)

    def __rich__(self) -> Any:
        return self.to_rich()


def build_profile_report(
    *,
    wall_s: float,
    title: str = "",
    timer: Profiler | None = None,
    registry: CacheRegistry | None = None,
    stages: Iterable[StageStats] | None = None,
    covered_s: float | None = None,
    cpu: CpuCapture | None = None,
    memory: MemorySnapshot | None = None,
    growth: MemoryGrowth | None = None,
    system: SystemSnapshot | None = None,
    alerts: Iterable[Alert] = (),
    active_alerts: Iterable[Alert] = (),
    top: int = 15,
    created_at: float | None = None,
) -> ProfileReport:
    """Build the immutable report of one profiled run.

    ``wall_s`` is the run's wall time (measured around it with
    ``time.perf_counter()``). Stages and the covered time come from ``timer``
    (the process-wide profiler by default) unless given; cache ratios from
    ``registry`` (the process-wide one by default).
    """
    timer = timer if timer is not None else profiler
    registry = registry if registry is not None else caches
    stage_list = tuple(stages) if stages is not None else tuple(timer.stats())
    covered = covered_s if covered_s is not None else timer.covered_s()
    top_level = sum(s.top_s for s in stage_list)
    system_rows: tuple[tuple[str, float], ...] = ()
    samples = 0
    if system is not None and system.samples:
        samples = system.samples
        peaks = {k: v for k, v in system.peaks.items() if k != "disk_free_mb"}
        disk = [v for v in system.series.get("disk_free_mb", ()) if not math.isnan(v)]
        if disk:
            peaks["disk_free_mb_min"] = min(disk)
        system_rows = tuple(sorted(peaks.items()))
    return ProfileReport(
        title=title,
        created_at=time.time() if created_at is None else created_at,
        wall_s=float(wall_s),
        covered_s=float(covered),
        top_level_s=float(top_level),
        stages=stage_list,
        caches=tuple(registry.snapshot()),
        cpu=cpu,
        memory=memory,
        growth=growth,
        system=system_rows,
        system_samples=samples,
        alerts=tuple(alerts),
        active_alerts=tuple(active_alerts),
        top=top,
    )


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _pct(part: float, whole: float) -> str:
    return f"{part / whole:.1%}" if whole > 0 else "n/a"


def _ratio(stats: CacheStats) -> str:
    return f"{stats.hit_ratio:.1%}" if stats.lookups else "n/a"


def _mb(size: int | float) -> str:
    mb = size / (1024 * 1024)
    if abs(mb) >= 1:
        return f"{mb:,.1f} MB"
    return f"{size / 1024:,.1f} KB"


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _function_md(f: FunctionStat) -> str:
    return f"| `{_md(f.label)}` | {f.calls:,} | {f.own_s:.4f} | {f.cumulative_s:.4f} |"
