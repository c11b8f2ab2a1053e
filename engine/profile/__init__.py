"""Profiling: stage timers, captures and reports."""

from __future__ import annotations

from engine.profile.stages import Profiler, StageStats, profiler

__all__ = ["Profiler", "StageStats", "profiler", "stage"]


def stage(name: str):  # noqa: ANN201 - returns the profiler's context manager
    """Time one pass through the named stage on the process-wide profiler."""
    return profiler.stage(name)
