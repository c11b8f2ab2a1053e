"""The monitor: sampling feeding the rules, delivery to publish and persist hooks."""

from __future__ import annotations

import asyncio
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from engine.monitor.alert_spec import AlertsSpec, Threshold
from engine.monitor.alerts import FORECAST_RULE, Alert
from engine.monitor.monitor import Monitor
from engine.monitor.system import MB, SystemSampler
from engine.store.alerts import AlertStore


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_tick_feeds_memory_disk_and_metrics_to_the_rules(child: subprocess.Popen[str], tmp_path: Path) -> None:
    clock = Clock()
    published: list[Alert] = []
    spec = AlertsSpec(
        min_duration_s=1.0,
        memory_mb=Threshold(warning=50.0, critical=1e9),  # the child alone holds 80 MB
        disk_free_mb=Threshold(warning=1e12, critical=None),  # no disk is that big
    )
    metrics = {"event_rate": 50.0, "error_rate": 0.0}
    monitor = Monitor(spec, disk_path=tmp_path, metrics=lambda: metrics, publish=published.append, clock=clock)
    assert monitor.tick() == []  # breaches start; min duration not reached
    clock.now = 1.5
    raised = monitor.tick()
    assert {(a.rule, a.level) for a in raised} == {
        ("memory_mb", "warning"),
        ("disk_free_mb", "warning"),
        ("event_rate", "warning"),
        ("event_rate", "critical"),
    }
    assert published == raised
    snap = monitor.snapshot()
    assert snap.critical_raised == 1 and len(snap.active) == 4 and snap.active[0].critical
    assert snap.values["memory_mb"] > 80 and snap.values["error_rate"] == 0.0
    metrics["event_rate"] = None  # the loop stopped
    clock.now = 2.0
    cleared = monitor.tick()
    assert {(a.rule, a.state) for a in cleared} == {("event_rate", "cleared")}


def test_memory_forecast_rule_warns_with_the_projected_time() -> None:
    clock = Clock()
    spec = AlertsSpec(min_duration_s=0.0, memory_mb=Threshold(warning=1e6, critical=2e6), memory_forecast_horizon_s=1e9)
    monitor = Monitor(spec, sampler=SystemSampler(capacity=50), clock=clock)
    real = SystemSampler().sample()  # a template; the series below is synthetic
    raised: list[Alert] = []
    for i in range(30):  # a steady climb of 10 MB/s, one sample a second
        process = replace(real.process, rss_bytes=int((100.0 + 10.0 * i) * MB))
        sample = replace(real, ts=1000.0 + i, process=process, workers=())
        monitor.sampler.record(sample)
        clock.now = float(i)
        raised += monitor.tick(sample)
    (alert,) = [a for a in raised if a.rule == FORECAST_RULE]
    assert alert.level == "warning" and alert.direction == "below"
    assert "critical level in about" in alert.message
    forecast = monitor.snapshot().forecast
    assert forecast is not None and forecast.growing
    assert forecast.slope_mb_per_s == pytest.approx(10.0)
    assert forecast.seconds_to_critical == pytest.approx((2e6 - 390.0) / 10.0, rel=1e-6)


async def test_the_task_persists_alerts_to_the_store(tmp_path: Path) -> None:
    spec = AlertsSpec(min_duration_s=0.0, memory_mb=Threshold(warning=1.0, critical=None))
    async with AlertStore(tmp_path / "genesis.db", study="s") as store:
        published: list[Alert] = []
        monitor = Monitor(spec, interval_s=0.02, publish=published.append, persist=store)
        monitor.start()
        while not published:
            await asyncio.sleep(0.01)
        await monitor.stop()
        assert not monitor.running
        rows = await store.recent()
        assert [a.key for a in rows] == ["memory_mb.warning"] and rows[0] == published[0]


async def test_a_stop_during_a_write_keeps_the_batch_being_written() -> None:
    """stop() cancels the tick while its flush awaits the store: the batch it took is still written."""
    spec = AlertsSpec(min_duration_s=0.0, memory_mb=Threshold(warning=1.0, critical=None))
    entered, gate = asyncio.Event(), asyncio.Event()
    stored: list[Alert] = []

    async def persist(batch: list[Alert]) -> None:
        entered.set()
        await gate.wait()
        stored.extend(batch)

    published: list[Alert] = []
    monitor = Monitor(spec, interval_s=0.02, publish=published.append, persist=persist)
    task = monitor.start()
    await entered.wait()
    stopping = asyncio.create_task(monitor.stop())
    while not task.done():  # the tick is cancelled while its write waits at the gate
        await asyncio.sleep(0)
    gate.set()
    await stopping
    assert [a.key for a in stored] == ["memory_mb.warning"] and stored == published


def test_a_failing_publish_hook_does_not_stop_the_rules(caplog) -> None:
    def broken(alert: Alert) -> None:
        raise RuntimeError("bus down")

    monitor = Monitor(AlertsSpec(min_duration_s=0.0), publish=broken)
    out = monitor.evaluate({"bus_p99_ms": 1000.0})
    assert len(out) == 2 and len(monitor.snapshot().active) == 2
    assert "alert publish hook failed" in caplog.text


def test_a_raw_study_table_is_resolved_over_the_global_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[alerts]\nmemory_mb = { warning = 3000 }\nmin_duration_s = 9.0\n")
    monkeypatch.setenv("GENESIS_CONFIG", str(config))
    assert Monitor().spec.min_duration_s == 9.0
    spec = Monitor({"memory_mb": {"critical": 5000}}).spec
    assert spec.memory_mb == Threshold(warning=3000.0, critical=5000.0) and spec.min_duration_s == 9.0


async def test_sampling_does_not_wait_for_a_busy_default_executor() -> None:
    """Trials filling the default executor must not stall the alert rules."""
    release = threading.Event()
    loop = asyncio.get_running_loop()
    busy = ThreadPoolExecutor(max_workers=1)
    loop.set_default_executor(busy)
    blocker = asyncio.create_task(asyncio.to_thread(release.wait))
    try:
        monitor = Monitor(AlertsSpec(min_duration_s=0.0), interval_s=0.02)
        monitor.start()
        while monitor.sampler.snapshot().samples < 3:
            await asyncio.sleep(0.01)
        await monitor.stop()
    finally:
        release.set()
        await blocker
    assert not blocker.exception()
