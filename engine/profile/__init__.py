"""Profiling: stage timers, captures, cache statistics and reports.

``from engine.profile import profiler`` is all instrumented code needs; the
heavier parts (captures, the session, the report) load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from engine.profile.caches import CacheCounters, CacheStats, caches
from engine.profile.stages import Profiler, StageStats, profiler

_LAZY = {
    "CpuCapture": "engine.profile.captures",
    "CpuRecorder": "engine.profile.captures",
    "MemoryTracer": "engine.profile.captures",
    "capture_call": "engine.profile.captures",
    "run_captured": "engine.profile.captures",
    "ProfileReport": "engine.profile.report",
    "build_profile_report": "engine.profile.report",
    "ProfileSession": "engine.profile.session",
    "ProfileSnapshot": "engine.profile.session",
    "timed_kernel": "engine.profile.numba_timing",
}

__all__ = ["CacheCounters", "CacheStats", "Profiler", "StageStats", "caches", "profiler", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'engine.profile' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
