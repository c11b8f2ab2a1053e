"""The fork server's preload: what every worker inherits from it."""

from __future__ import annotations

import gc
import subprocess
import sys

from engine.optimize.fork_server import call_in_fork_server


def test_a_worker_inherits_the_server_s_objects_frozen() -> None:
    """A child of the fork server starts with the preloaded engine moved out of the collector's
    sight (so its first full collection does not copy every inherited page)."""
    assert call_in_fork_server(gc.get_freeze_count) > 10_000


def _loaded(module: str) -> bool:
    return module in sys.modules


def test_a_worker_inherits_its_entry_point_loaded() -> None:
    """The process backend's module (asyncio, the shared bars) is loaded once in the server rather
    than in every worker after its fork."""
    assert call_in_fork_server(_loaded, "engine.optimize.backends.process")


def test_importing_the_preload_elsewhere_freezes_nothing() -> None:
    """Outside the fork server (the driver imports ``tiny_bars`` from it) the collector is left alone."""
    code = (
        "import gc\nimport engine.optimize.backends._preload\n"
        "assert gc.get_freeze_count() == 0, gc.get_freeze_count()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def _counted_in_worker() -> list[tuple[str, int, int, int, int]]:
    """(In a child of the fork server) the indicator lookups counted so far."""
    from engine.profile.caches import caches

    return [(stats.name, stats.hits, stats.misses, stats.bytes, stats.entries) for stats in caches.snapshot()]


def test_the_server_s_warm_up_lookups_are_not_counted_as_a_worker_s() -> None:
    """A worker's cache counters start at zero although the server ran a warm-up through the caches."""
    counted = call_in_fork_server(_counted_in_worker)
    assert all(hits == misses == held == entries == 0 for _, hits, misses, held, entries in counted), counted
