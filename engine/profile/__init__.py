"""Profiling: stage timers, captures and reports."""

from __future__ import annotations

from engine.profile.stages import Profiler, StageStats, profiler

__all__ = ["Profiler", "StageStats", "profiler"]
