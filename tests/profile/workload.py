"""Module-level workloads a spawned worker process can import and run."""

# Line numbers matter: tests look for the allocation in hold_blocks.

from __future__ import annotations

import os

from engine.profile import caches, profiler


def fib(n: int) -> int:
    """Deliberately slow recursion: a function cProfile cannot miss."""
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def hold_blocks(n: int) -> list[bytes]:
    """Allocate ``n`` blocks of 10 kB at one line and keep them."""
    return [bytes(10_000) for _ in range(n)]


def trial(n: int) -> dict[str, int]:
    """A fake trial: timed stages, a cache lookup, some CPU work."""
    profiler.enabled = True
    counters = caches.counters("test.trial_cache")
    with profiler.stage("trial.total"):
        with profiler.stage("trial.compute"):
            value = fib(n)
        counters.hits += 3
        counters.misses += 1
    return {"value": value, "pid": os.getpid()}


_LEAKED: list[list[bytes]] = []


def leaking_trial(n: int) -> int:
    """A trial that leaks ``n`` blocks of 10 kB (kept in a module list)."""
    _LEAKED.append(hold_blocks(n))
    return sum(len(blocks) for blocks in _LEAKED)
