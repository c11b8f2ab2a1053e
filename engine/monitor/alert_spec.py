"""The ``[alerts]`` table of a study file (and of the global config).

Each rule has a warning and a critical threshold; ``direction`` says whether
the alert fires when the measured value goes above or below them. Unset rules
keep the defaults below.
"""

from __future__ import annotations

from typing import Literal

import msgspec


class Threshold(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Warning and critical levels of one rule; ``None`` disables a level."""

    warning: float | None = None
    critical: float | None = None
    enabled: bool = True


class AlertsSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Alert thresholds. Units are in the field names."""

    event_rate: Threshold = Threshold(warning=500.0, critical=100.0)  # events/s, below, while the loop runs
    bus_p99_ms: Threshold = Threshold(warning=100.0, critical=500.0)  # above
    memory_mb: Threshold = Threshold(warning=1024.0, critical=2048.0)  # resident, above
    error_rate: Threshold = Threshold(warning=0.01, critical=0.05)  # handler errors / events, above
    trial_failure_rate: Threshold = Threshold(warning=0.05, critical=0.25)  # failed / finished trials, above
    queue_drops: Threshold = Threshold(warning=1.0, critical=1000.0)  # dropped events per minute, above
    disk_free_mb: Threshold = Threshold(warning=1024.0, critical=256.0)  # free disk for the store, below
    hysteresis: float = 0.1  # a raised alert clears only 10% past its threshold
    min_duration_s: float = 2.0  # a breach must last this long before it raises
    memory_forecast: bool = True  # warn with the projected time to the critical memory level
    memory_forecast_horizon_s: float = 3600.0  # ... when that time is shorter than this


#: Whether each rule fires above or below its thresholds.
RULE_DIRECTION: dict[str, Literal["above", "below"]] = {
    "event_rate": "below",
    "bus_p99_ms": "above",
    "memory_mb": "above",
    "error_rate": "above",
    "trial_failure_rate": "above",
    "queue_drops": "above",
    "disk_free_mb": "below",
}
