"""Stage timers: arithmetic, percentiles, nesting, export/merge."""

from __future__ import annotations

import asyncio
import json
import math
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.profile import Profiler, caches, profiler
from engine.profile.caches import CacheRegistry


def stage(p: Profiler, name: str):
    return next(s for s in p.stats() if s.name == name)


def test_record_arithmetic_on_a_known_sequence() -> None:
    p = Profiler(enabled=True)
    for seconds in (0.010, 0.020, 0.030, 0.040):
        p.record("data.load", seconds)
    s = stage(p, "data.load")
    assert s.count == 4
    assert s.total_s == pytest.approx(0.100, abs=1e-9)
    assert s.mean_s == pytest.approx(0.025, abs=1e-9)
    assert s.max_s == pytest.approx(0.040, abs=1e-9)
    assert s.min_s == pytest.approx(0.010, abs=1e-9)
    assert s.p50_s == pytest.approx(0.020, rel=0.04)
    assert s.p99_s == pytest.approx(0.040, rel=0.04)
    # Recorded outside any stage, the passes are top level.
    assert s.top_s == pytest.approx(0.100, abs=1e-9)
    assert p.covered_s() == pytest.approx(0.100, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10**12), min_size=1, max_size=200))
def test_count_total_min_max_are_exact(values_ns: list[int]) -> None:
    p = Profiler(enabled=True)
    for v in values_ns:
        p.record("x", v * 1e-9)
    s = stage(p, "x")
    # record() takes seconds; int(seconds * 1e9) may lose one ns to float rounding.
    assert s.count == len(values_ns)
    assert s.total_s == pytest.approx(sum(values_ns) * 1e-9, abs=len(values_ns) * 1e-9)
    assert s.max_s == pytest.approx(max(values_ns) * 1e-9, abs=1e-9)
    assert s.min_s == pytest.approx(min(values_ns) * 1e-9, abs=1e-9)
    assert s.min_s <= s.p50_s <= s.p95_s <= s.p99_s <= s.max_s


@pytest.mark.parametrize("sigma", [0.5, 1.5])
def test_percentiles_match_numpy_within_histogram_error(rng: np.random.Generator, sigma: float) -> None:
    p = Profiler(enabled=True)
    samples_ns = np.round(rng.lognormal(mean=12.0, sigma=sigma, size=20_000)).astype(np.int64)
    for v in samples_ns.tolist():
        p.record("backtest.kernel", v * 1e-9)
    s = stage(p, "backtest.kernel")
    for q, got in ((50, s.p50_s), (95, s.p95_s), (99, s.p99_s)):
        want = float(np.percentile(samples_ns, q, method="inverted_cdf")) * 1e-9
        assert got == pytest.approx(want, rel=0.06), q
    assert s.mean_s == pytest.approx(samples_ns.mean() * 1e-9, rel=1e-6)


def test_disabled_profiler_records_nothing() -> None:
    p = Profiler(enabled=False)
    with p.stage("data.load"):
        pass
    p.record("data.load", 1.0)

    @p.timed("fn")
    def fn() -> int:
        return 7

    assert fn() == 7
    assert p.stats() == []
    assert p.covered_s() == 0.0


def test_nesting_counts_top_level_time_once() -> None:
    p = Profiler(enabled=True)
    with p.stage("optimize.trial"):
        with p.stage("backtest.indicators"):
            time.sleep(0.002)
        with p.stage("backtest.kernel"):
            time.sleep(0.002)
    with p.stage("optimize.store_write"):
        time.sleep(0.001)
    trial, indicators, kernel, write = (
        stage(p, n) for n in ("optimize.trial", "backtest.indicators", "backtest.kernel", "optimize.store_write")
    )
    assert indicators.top_s == 0.0 and kernel.top_s == 0.0
    assert trial.top_s == trial.total_s >= indicators.total_s + kernel.total_s
    assert write.top_s == write.total_s
    # Sequential top-level stages: covered time is exactly their sum.
    assert p.covered_s() == pytest.approx(trial.total_s + write.total_s, abs=1e-9)
    assert p.top_level_s() == pytest.approx(p.covered_s(), abs=1e-9)
    assert p.depth() == 0


def test_record_inside_a_stage_is_nested_by_default() -> None:
    p = Profiler(enabled=True)
    with p.stage("outer"):
        p.record("numba.compile", 0.5)
        p.record("forced", 0.25, top_level=True)
    assert stage(p, "numba.compile").top_s == 0.0
    assert stage(p, "forced").top_s == pytest.approx(0.25)


def test_a_stage_that_raises_is_still_timed() -> None:
    p = Profiler(enabled=True)
    with pytest.raises(ZeroDivisionError), p.stage("data.validate"):
        1 / 0  # noqa: B018
    assert stage(p, "data.validate").count == 1
    assert p.depth() == 0


def test_timed_decorator_and_reentrancy() -> None:
    p = Profiler(enabled=True)

    @p.timed("recursive")
    def countdown(n: int) -> int:
        return 0 if n == 0 else 1 + countdown(n - 1)

    assert countdown(5) == 5
    s = stage(p, "recursive")
    assert s.count == 6
    assert s.top_s == s.max_s  # only the outermost pass is top level


async def test_concurrent_tasks_cover_the_union_not_the_sum(monkeypatch: pytest.MonkeyPatch) -> None:
    # A clock the test moves: the overlap is exact, whatever the machine's speed.
    from engine.profile import stages as stages_module

    now_ms = [0]
    monkeypatch.setattr(stages_module, "perf_counter_ns", lambda: now_ms[0] * 1_000_000)
    p = Profiler(enabled=True)
    release = {name: asyncio.Event() for name in "abc"}

    async def work(name: str) -> None:
        with p.stage(name):
            await release[name].wait()

    now_ms[0] = 100
    tasks = {name: asyncio.create_task(work(name)) for name in "abc"}
    await asyncio.sleep(0)  # all three enter their stage at 100 ms
    now_ms[0] = 110
    release["a"].set()
    await tasks["a"]
    now_ms[0] = 150
    release["b"].set()
    release["c"].set()
    await asyncio.gather(tasks["b"], tasks["c"])
    assert {s.name: s.total_s for s in p.stats()} == pytest.approx({"a": 0.01, "b": 0.05, "c": 0.05})
    assert p.covered_s() == pytest.approx(0.05)  # the union (100 to 150 ms), not the sum (110 ms)
    assert p.depth() == 0


def test_export_is_plain_json_and_merge_adds_up(rng: np.random.Generator) -> None:
    worker = Profiler(enabled=True)
    parent = Profiler(enabled=True)
    a = rng.integers(1_000, 10_000_000, size=500)
    b = rng.integers(1_000, 10_000_000, size=300)
    for v in a.tolist():
        worker.record("backtest.kernel", v * 1e-9)
    for v in b.tolist():
        parent.record("backtest.kernel", v * 1e-9)
    payload = json.loads(json.dumps(worker.export(include_caches=False)))
    parent.merge(payload)
    s = stage(parent, "backtest.kernel")
    both = np.concatenate([a, b])
    assert s.count == 800
    assert s.merged == 500
    assert s.total_s == pytest.approx(both.sum() * 1e-9, abs=800e-9)
    assert s.p95_s == pytest.approx(np.percentile(both, 95, method="inverted_cdf") * 1e-9, rel=0.06)
    # Another process's passes do not join this process's wall-time accounting.
    assert s.top_s == pytest.approx(b.sum() * 1e-9, abs=300e-9)
    assert parent.covered_s() == pytest.approx(b.sum() * 1e-9, abs=300e-9)


def test_export_with_reset_ships_deltas_with_cache_counters() -> None:
    profiler.enabled = True
    counters = caches.counters("indicators")
    counters.hits, counters.misses, counters.bytes, counters.entries = 9, 3, 4096, 12
    profiler.record("backtest.indicators", 0.004)
    first = profiler.export(reset=True)
    assert profiler.stats() == []
    assert counters.hits == 0 and counters.bytes == 4096  # counts drained, levels kept
    counters.hits += 1
    second = profiler.export(reset=True)

    parent_registry = CacheRegistry()
    parent = Profiler()
    for payload in (first, second):
        parent.merge(payload, registry=parent_registry)
    merged = next(c for c in parent_registry.snapshot() if c.name == "indicators")
    assert (merged.name, merged.hits, merged.misses, merged.bytes, merged.entries) == ("indicators", 10, 3, 4096, 12)
    assert stage(parent, "backtest.indicators").count == 1


def test_merge_rejects_an_unknown_payload_version() -> None:
    with pytest.raises(ValueError, match="version"):
        Profiler().merge({"version": 99, "stages": {}})


def test_stats_are_plain_and_finite() -> None:
    p = Profiler(enabled=True)
    with p.stage("x"):
        pass
    (s,) = p.stats()
    assert all(math.isfinite(v) for k, v in s.to_dict().items() if isinstance(v, float))
