"""System monitoring (psutil sampling) and alert rules.

``engine.monitor.alert_spec`` (the ``[alerts]`` table) imports nothing heavy;
the sampler, rules and monitor load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "AlertsSpec": "engine.monitor.alert_spec",
    "Threshold": "engine.monitor.alert_spec",
    "Alert": "engine.monitor.alerts",
    "AlertRules": "engine.monitor.alerts",
    "forecast_memory": "engine.monitor.alerts",
    "resolve_alerts": "engine.monitor.alerts",
    "Monitor": "engine.monitor.monitor",
    "MonitorSnapshot": "engine.monitor.monitor",
    "RingBuffer": "engine.monitor.system",
    "SystemSample": "engine.monitor.system",
    "SystemSampler": "engine.monitor.system",
    "SystemSnapshot": "engine.monitor.system",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'engine.monitor' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
