"""Profiler and monitor benchmarks: stage-timer overhead against an empty ``with``
block and a bare loop measured in the same run, plus the cost of a system
sample, an alert evaluation, a memory forecast and the slowdown under cProfile
and tracemalloc.

``python -m benchmarks.profile [--quick] [--json]``; ``run(quick)`` returns the figures.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from engine.monitor.alert_spec import AlertsSpec
from engine.monitor.alerts import AlertRules, forecast_memory
from engine.monitor.system import SystemSampler
from engine.profile.captures import MemoryTracer, capture_call
from engine.profile.stages import Profiler

#: Goals: nanoseconds added per stage entry (on/off) over an empty ``with`` block.
GOALS = {"stage_on_overhead_ns": 1000.0, "stage_off_overhead_ns": 150.0}


class _Empty:
    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _per_iteration_ns(loop: Callable[[int], float], n: int, repeat: int) -> float:
    """Best of ``repeat`` runs of ``loop(n)`` (which returns its own seconds), per iteration."""
    return min(loop(n) for _ in range(repeat)) / n * 1e9


def _bare(n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        pass
    return time.perf_counter() - start


def _empty_with(n: int) -> float:
    empty = _Empty()
    start = time.perf_counter()
    for _ in range(n):
        with empty:
            pass
    return time.perf_counter() - start


def _stage_loop(timer: Profiler) -> Callable[[int], float]:
    def loop(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            with timer.stage("bench.stage"):
                pass
        return time.perf_counter() - start

    return loop


def _nested_loop(timer: Profiler) -> Callable[[int], float]:
    def loop(n: int) -> float:
        outer = timer.stage("bench.outer")
        start = time.perf_counter()
        with outer:
            for _ in range(n):
                with timer.stage("bench.inner"):
                    pass
        return time.perf_counter() - start

    return loop


def _fib(n: int) -> int:
    return n if n < 2 else _fib(n - 1) + _fib(n - 2)


def _allocate(n: int) -> int:
    return sum(len([i] * 8) for i in range(n))


def _best(function: Callable[[], Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def run(quick: bool = False) -> dict[str, Any]:
    """Measure (a few seconds with ``quick``, about 15 s without)."""
    n, rounds = (50_000, 9) if quick else (300_000, 15)
    on, off = Profiler(enabled=True), Profiler(enabled=False)
    loops = {
        "bare": _bare,
        "empty": _empty_with,
        "off": _stage_loop(off),
        "on": _stage_loop(on),
        "nested": _nested_loop(on),
    }
    # Interleaved rounds, best of each: the loops share whatever else the machine is doing.
    best = dict.fromkeys(loops, float("inf"))
    for _ in range(rounds):
        for name, loop in loops.items():
            best[name] = min(best[name], _per_iteration_ns(loop, n, 1))
    bare, empty, stage_off, stage_on, nested_on = (best[k] for k in ("bare", "empty", "off", "on", "nested"))

    sampler = SystemSampler(capacity=300)
    samples = 5 if quick else 20
    sample_ms = _best(sampler.sample, samples) * 1e3
    rules = AlertRules(AlertsSpec())
    values = {"event_rate": 900.0, "bus_p99_ms": 20.0, "memory_mb": 300.0, "error_rate": 0.0, "disk_free_mb": 5e4}
    evaluate_us = _best(lambda: rules.evaluate(values), 200) * 1e6
    t = np.arange(300, dtype=np.float64)
    rss = 500.0 + t + np.random.default_rng(0).normal(0, 2, t.size)
    forecast_ms = _best(lambda: forecast_memory(t, rss, 2048.0), 20) * 1e3

    depth = 18 if quick else 22
    plain = _best(lambda: _fib(depth), 3)
    profiled = _best(lambda: capture_call(_fib, depth), 3)
    count = 50_000 if quick else 300_000
    untraced = _best(lambda: _allocate(count), 3)
    with MemoryTracer():
        traced = _best(lambda: _allocate(count), 3)

    figures: dict[str, Any] = {
        "iterations": n,
        "bare_loop_ns": bare,
        "empty_with_ns": empty,
        "stage_off_ns": stage_off,
        "stage_on_ns": stage_on,
        "nested_stage_on_ns": nested_on,
        "stage_on_overhead_ns": stage_on - empty,
        "stage_off_overhead_ns": stage_off - empty,
        "stage_on_vs_empty_with_ratio": stage_on / empty,
        "system_sample_ms": sample_ms,
        "alert_evaluate_us": evaluate_us,
        "memory_forecast_300_ms": forecast_ms,
        "cprofile_slowdown_ratio": profiled / plain,
        "tracemalloc_slowdown_ratio": traced / untraced,
    }
    figures["goals"] = {
        key: {"value": figures[key], "goal": goal, "met": figures[key] < goal} for key, goal in GOALS.items()
    }
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    figures = run(args.quick)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    for key, value in figures.items():
        if key != "goals":
            print(f"{key:32} {value:14,.2f}")
    for key, goal in figures["goals"].items():
        print(f"goal {key:27} {'met' if goal['met'] else 'MISSED':>6}  ({goal['value']:,.1f} vs < {goal['goal']:,.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
