"""The profile report: arithmetic and rendering (Markdown, JSON, rich)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from rich.console import Console

from engine.monitor.alert_spec import AlertsSpec
from engine.monitor.alerts import AlertRules
from engine.profile import Profiler
from engine.profile.caches import CacheRegistry
from engine.profile.captures import MemoryTracer, capture_call
from engine.profile.report import ProfileReport, build_profile_report
from tests.profile import workload


def _report(**overrides) -> ProfileReport:
    p = Profiler(enabled=True)
    for seconds in (1.0, 2.0, 3.0):
        p.record("backtest.kernel", seconds)
    p.record("data.load", 3.5)
    with p.stage("optimize.trial"):
        p.record("backtest.metrics", 0.25)  # nested: not in the covered sum
    registry = CacheRegistry()
    indicators = registry.counters("backtest.indicators")
    indicators.hits, indicators.misses, indicators.evictions, indicators.bytes = 30, 10, 2, 5 * 1024 * 1024
    registry.counters("data.cache.memory")  # never looked up: no ratio
    _, cpu = capture_call(workload.fib, 14, label="trial 3")
    clock = iter(float(t) for t in range(100))
    rules = AlertRules(AlertsSpec(min_duration_s=0.0), clock=lambda: next(clock), wall_clock=lambda: 1_700_000_000.0)
    rules.evaluate({"memory_mb": 1500.0})
    rules.evaluate({"memory_mb": 100.0})
    kwargs = dict(
        wall_s=10.0,
        title="sma-nightly",
        timer=p,
        registry=registry,
        cpu=cpu,
        alerts=rules.history(),
        created_at=1_700_000_000.0,
    )
    kwargs.update(overrides)
    return build_profile_report(**kwargs)


def test_wall_time_accounting() -> None:
    report = _report()
    covered = 1.0 + 2.0 + 3.0 + 3.5 + report_trial_seconds(report)
    assert report.covered_s == pytest.approx(covered)
    assert report.top_level_s == pytest.approx(covered)
    assert report.unaccounted_s == pytest.approx(10.0 - covered)
    assert report.accounts_for(0.05) == (abs(10.0 - covered) <= 0.5)
    # the same report with other wall times (a new _report would time optimize.trial again)
    exact = dataclasses.replace(report, wall_s=report.covered_s)
    assert exact.accounts_for(0.05) and exact.covered_ratio == pytest.approx(1.0)
    assert not dataclasses.replace(report, wall_s=report.covered_s * 1.2).accounts_for(0.05)
    # Rows: by top-level time first.
    assert [s.name for s in report.stage_rows()][:2] == ["backtest.kernel", "data.load"]


def report_trial_seconds(report: ProfileReport) -> float:
    return next(s.top_s for s in report.stages if s.name == "optimize.trial")


def test_markdown_shows_stages_ratios_functions_and_alerts() -> None:
    md = _report().to_markdown()
    assert md.startswith("## Profile: sma-nightly")
    for text in (
        "`backtest.kernel`",
        "`data.load`",
        "`backtest.metrics`",
        "**wall time** | | | **10.000**",
        "*unaccounted*",
        "| `backtest.indicators` | 30 | 10 | 75.0% | 2 |",
        "| `data.cache.memory` | 0 | 0 | n/a |",
        "cProfile capture `trial 3`",
        "fib (profile/workload.py:",
        "resident memory 1,500 MB above warning threshold 1,024 MB",
        "| raised |",
        "| cleared |",
        "No tracemalloc snapshot was taken.",
        "The system was not sampled.",
    ):
        assert text in md, text
    # Every table row has as many cells as its header.
    for block in md.split("\n\n"):
        lines = [line for line in block.splitlines() if line.startswith("|")]
        if lines:
            widths = {line.replace("\\|", "").count("|") for line in lines}
            assert len(widths) == 1, block


def test_json_has_the_same_content() -> None:
    report = _report()
    data = json.loads(report.to_json())
    assert data["title"] == "sma-nightly"
    assert data["wall_s"] == 10.0
    assert data["unaccounted_s"] == pytest.approx(report.unaccounted_s)
    names = [s["name"] for s in data["stages"]]
    assert set(names) == {"backtest.kernel", "data.load", "optimize.trial", "backtest.metrics"}
    kernel = data["stages"][names.index("backtest.kernel")]
    assert kernel["count"] == 3 and kernel["total_s"] == pytest.approx(6.0)
    ratios = {c["name"]: c["hit_ratio"] for c in data["caches"]}
    assert ratios == {"backtest.indicators": 0.75, "data.cache.memory": 0.0}
    assert data["top_functions"]["by_own"][0]["function"] == "fib"
    assert [a["state"] for a in data["alerts"]] == ["raised", "cleared"]


def test_allocations_and_system_sections() -> None:
    with MemoryTracer(top=5) as tracer:
        tracer.mark()
        kept = workload.hold_blocks(100)
        memory, growth = tracer.snapshot("end"), tracer.growth("run")
    from engine.monitor.system import SystemSampler

    sampler = SystemSampler(capacity=8)
    sampler.sample()
    sampler.sample()
    report = _report(memory=memory, growth=growth, system=sampler.snapshot())
    md = report.to_markdown()
    assert len(kept) == 100
    assert "profile/workload.py:" in md and "Growth `run`" in md
    assert "resident memory, process + workers (MB)" in md and "2 samples." in md
    data = json.loads(report.to_json())
    assert data["allocations"]["sites"] and data["memory_growth"]["total_growth_bytes"] > 0
    assert data["system"]["samples"] == 2 and data["system"]["peaks"]["rss_mb"] > 0


def test_rich_rendering() -> None:
    console = Console(record=True, width=160, color_system=None)
    console.print(_report())
    text = console.export_text()
    for needle in ("Stages", "backtest.kernel", "unaccounted", "Caches", "75.0%", "Top functions", "Alerts"):
        assert needle in text, needle


def test_an_empty_report_says_what_is_missing() -> None:
    report = build_profile_report(wall_s=1.0, timer=Profiler(), registry=CacheRegistry())
    md = report.to_markdown()
    assert "No stage was timed" in md and "No alert was raised." in md
    assert json.loads(report.to_json())["top_functions"] is None


def test_a_stored_report_renders_the_same() -> None:
    with MemoryTracer(top=5) as tracer:
        tracer.mark()
        kept = workload.hold_blocks(20)
        memory, growth = tracer.snapshot("end"), tracer.growth("run")
    from engine.monitor.system import SystemSampler

    sampler = SystemSampler(capacity=4, disk_path=".")
    sampler.sample()
    report = _report(memory=memory, growth=growth, system=sampler.snapshot())
    again = ProfileReport.from_json(report.to_json())
    assert len(kept) == 20
    assert again.to_markdown() == report.to_markdown()
    assert again.to_dict() == json.loads(report.to_json())
    with pytest.raises(ValueError, match="version"):
        ProfileReport.from_dict({"version": 0})
