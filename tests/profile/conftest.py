"""Profile fixtures: a clean process-wide profiler and cache registry per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from engine.profile import caches, profiler


@pytest.fixture(autouse=True)
def _clean_profiler() -> Iterator[None]:
    enabled = profiler.enabled
    profiler.reset()
    caches.clear_counts()  # not reset(): other modules hold their counters for the session
    yield
    profiler.enabled = enabled
    profiler.reset()
    caches.clear_counts()
