"""The monitor: system sampling and alert rules on one clock.

Each tick takes a :class:`~engine.monitor.system.SystemSample`, reads the
engine's own figures from a ``metrics`` callback (event rate, bus p99, error
rate, trial failure rate, queue drops: the runtime wires the bus and the
study to it), adds resident memory, free disk and the memory forecast, and
runs the :class:`~engine.monitor.alerts.AlertRules`. Raises and clears go to
``publish`` (sync, on the loop thread: the bus) and to ``persist`` (async:
an :class:`~engine.store.alerts.AlertStore`).

``tick()`` is synchronous (tests, a headless runner without a loop);
``start()``/``stop()`` run it every ``interval_s`` as an asyncio task with
psutil's reads in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.monitor.alert_spec import AlertsSpec
from engine.monitor.alerts import (
    FORECAST_RULE,
    Alert,
    AlertRules,
    MemoryForecast,
    forecast_memory,
    resolve_alerts,
)
from engine.monitor.system import MB, SystemSample, SystemSampler, SystemSnapshot
from engine.monitor.ticker import tick_every

log = logging.getLogger(__name__)

MetricsSource = Callable[[], Mapping[str, float | None]]
Persist = Callable[[list[Alert]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class MonitorSnapshot:
    """Immutable view of the monitor for telemetry and reports."""

    system: SystemSnapshot
    active: tuple[Alert, ...]
    history: tuple[Alert, ...]
    forecast: MemoryForecast | None
    values: dict[str, float | None]  # the last values the rules saw
    critical_raised: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "system": self.system.to_dict(),
            "active": [a.to_dict() for a in self.active],
            "history": [a.to_dict() for a in self.history],
            "forecast": None if self.forecast is None else self.forecast.to_dict(),
            "values": dict(self.values),
            "critical_raised": self.critical_raised,
        }


class Monitor:
    """System sampler + alert rules + the hooks that deliver alerts.

    ``spec`` is a resolved :class:`AlertsSpec`, or a study's raw ``[alerts]``
    table, or None; the last two are resolved over the global config's
    ``[alerts]`` (:func:`~engine.monitor.alerts.resolve_alerts`).
    """

    def __init__(
        self,
        spec: AlertsSpec | Mapping[str, Any] | None = None,
        *,
        sampler: SystemSampler | None = None,
        interval_s: float = 1.0,
        capacity: int = 300,
        disk_path: str | Path | None = None,
        metrics: MetricsSource | None = None,
        publish: Callable[[Alert], None] | None = None,
        persist: Persist | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(spec, AlertsSpec):
            spec = resolve_alerts(spec)  # the global config's [alerts], then the study's raw table
        self.sampler = sampler or SystemSampler(interval_s=interval_s, capacity=capacity, disk_path=disk_path)
        self.rules = AlertRules(spec, publish=self._deliver, clock=clock, wall_clock=wall_clock)
        self.metrics = metrics
        self.publish = publish
        self.persist = persist
        self._unsaved: list[Alert] = []
        self._persisting: asyncio.Future[None] | None = None  # the batch being written, if any
        self._forecast: MemoryForecast | None = None
        self._values: dict[str, float | None] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def spec(self) -> AlertsSpec:
        return self.rules.spec

    def _deliver(self, alert: Alert) -> None:
        self._unsaved.append(alert)
        if self.publish is not None:
            try:
                self.publish(alert)
            except Exception:  # a broken subscriber must not stop the monitor
                log.exception("alert publish hook failed for %s", alert.key)

    def values_from(self, sample: SystemSample) -> dict[str, float | None]:
        """What the rules see: the metrics callback plus memory, disk and the forecast."""
        values: dict[str, float | None] = {}
        if self.metrics is not None:
            try:
                values.update(self.metrics())
            except Exception:
                log.exception("monitor metrics source failed")
        values["memory_mb"] = sample.total_rss_bytes / MB
        if sample.disk_free_bytes is not None:
            values["disk_free_mb"] = sample.disk_free_bytes / MB
        critical = self.spec.memory_mb.critical
        if self.spec.memory_forecast and critical is not None:
            self._forecast = forecast_memory(
                self.sampler.timestamps(), self.sampler.series("rss_mb"), float(critical)
            )
            if self._forecast is not None:
                values[FORECAST_RULE] = self._forecast.seconds_to_critical
        return values

    def tick(self, sample: SystemSample | None = None, now: float | None = None) -> list[Alert]:
        """Sample (unless given one), evaluate the rules; the raises and clears."""
        sample = sample if sample is not None else self.sampler.sample()
        values = self.values_from(sample)
        self._values = values
        return self.rules.evaluate(values, now)

    def evaluate(self, values: Mapping[str, float | None], now: float | None = None) -> list[Alert]:
        """Evaluate the rules on given values, without sampling."""
        self._values = {**self._values, **values}
        return self.rules.evaluate(values, now)

    async def flush(self) -> None:
        """Hand the alerts not yet persisted to ``persist``."""
        if not self._unsaved or self.persist is None:
            self._unsaved.clear()
            return
        batch, self._unsaved = self._unsaved, []
        # Shielded: a stop() that cancels the tick mid-write must not lose the batch it took;
        # stop() waits for it instead.
        self._persisting = asyncio.ensure_future(self._persist(batch))
        await asyncio.shield(self._persisting)

    async def _persist(self, batch: list[Alert]) -> None:
        assert self.persist is not None
        try:
            await self.persist(batch)
        except Exception:
            log.exception("alert persistence failed; %d alerts not stored", len(batch))

    # --- the async task --------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def run(self) -> None:
        """Tick every ``interval_s`` until cancelled (a failed tick is logged, the next one runs)."""
        await tick_every(self.sampler.interval_s, self._tick_once)

    async def _tick_once(self) -> None:
        try:
            sample = await self.sampler.sample_async()
            self.tick(sample)
            await self.flush()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("monitor tick failed")

    def start(self) -> asyncio.Task[None]:
        """Run :meth:`run` as a task on the running loop (idempotent)."""
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(self.run(), name="genesis-monitor")
        assert self._task is not None
        return self._task

    async def stop(self) -> None:
        """Stop ticking and persist what is pending."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._persisting is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._persisting  # a batch the cancelled tick was writing
        self.sampler.close()
        await self.flush()

    def snapshot(self, history: int = 50) -> MonitorSnapshot:
        return MonitorSnapshot(
            system=self.sampler.snapshot(),
            active=self.rules.active(),
            history=self.rules.history(history),
            forecast=self._forecast,
            values={k: (None if v is None or (isinstance(v, float) and math.isinf(v)) else v) for k, v in self._values.items()},
            critical_raised=self.rules.critical_raised,
        )

