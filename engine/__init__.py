"""Genesis engine: market data, numba backtests, parameter studies, the event
bus, the paper-trading loop, profiling and monitoring.

The engine is a library: it never imports the console (``genesis_tui``) or
textual. Heavy subpackages are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

from engine import kernel_cache

kernel_cache.configure()

_LAZY = {
    "Engine": ("engine.runtime", "Engine"),
}
_SUBPACKAGES = {"backtest", "bus", "data", "live", "monitor", "optimize", "profile", "store"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module_name, attribute = _LAZY[name]
        return getattr(importlib.import_module(module_name), attribute)
    if name in _SUBPACKAGES:
        return importlib.import_module(f"engine.{name}")
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
