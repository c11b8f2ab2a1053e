"""run_many(): the batched kernel gives every set exactly the metrics run() gives it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.backtest import METRIC_NAMES, STRATEGIES, IndicatorCache, KernelInputs, run, run_many
from engine.backtest import strategies as strategies_module
from engine.backtest.enums import KIND_CROSS, KIND_SIGNALS
from engine.data import Bars
from engine.errors import InputError, StrategyError
from tests.backtest import gen

OPTION_KEYS = ("fee", "slippage", "fill", "direction", "size", "cash", "stop_loss", "take_profit")


def metrics_row(bars: Bars, strategy: str, params: dict[str, Any], options: dict[str, Any]) -> np.ndarray:
    """What run() reports for one set, as the float row run_many() returns."""
    result = run(bars, strategy, params, **options)
    return np.array([float(getattr(result.metrics, name)) for name in METRIC_NAMES])


def assert_bitwise_equal(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    assert got.view(np.uint64).tolist() == want.view(np.uint64).tolist(), (got, want)


@st.composite
def param_set(draw: st.DrawFn, strategy: str) -> dict[str, Any]:
    """A valid parameter set of ``strategy``, windows kept short so that short series trade."""
    spec = STRATEGIES[strategy]
    values: dict[str, Any] = {}
    for p in spec.params:
        if p.kind == "int":
            values[p.name] = draw(st.integers(int(p.low), min(int(p.high), int(p.low) + 12)))
        elif p.kind == "float":
            values[p.name] = draw(st.floats(p.low, p.high, allow_nan=False))
        else:
            values[p.name] = draw(st.sampled_from(p.choices))
    for c in spec.constraints:  # repair rather than reject: keep every example
        if not c.holds(values):
            values[c.left], values[c.right] = values[c.right], values[c.left]
        if not c.holds(values):  # equal values
            if spec.param(c.right).kind == "int":
                values[c.right] += 1 if c.op in ("<", "<=") else -1
            else:
                values[c.right] = values[c.left] + (1.0 if c.op in ("<", "<=") else -1.0)
    spec.validate(values)
    return values


@st.composite
def overrides(draw: st.DrawFn) -> dict[str, Any]:
    """A random subset of the backtest options, as a set's own keys."""
    full = draw(gen.options)
    keys = draw(st.lists(st.sampled_from(OPTION_KEYS), unique=True, max_size=4))
    return {k: full[k] for k in keys}


@st.composite
def case(draw: st.DrawFn) -> tuple[Bars, str, list[dict[str, Any]], dict[str, Any]]:
    strategy = draw(st.sampled_from(sorted(STRATEGIES)))
    bars = draw(gen.bars(min_size=1, max_size=80))
    base = draw(gen.options)
    n_sets = draw(st.integers(1, 8))
    sets = []
    for _ in range(n_sets):
        params = draw(param_set(strategy))
        if draw(st.booleans()):
            params.update(draw(overrides()))
        sets.append(params)
    return bars, strategy, sets, base


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case())
def test_run_many_equals_run_bit_for_bit(example: tuple[Bars, str, list[dict[str, Any]], dict[str, Any]]) -> None:
    bars, strategy, sets, base = example
    got = run_many(bars, strategy, sets, cache=IndicatorCache(), **base)
    assert got.shape == (len(sets), len(METRIC_NAMES))
    for row, params in zip(got, sets, strict=True):
        options = {**base, **{k: v for k, v in params.items() if k in OPTION_KEYS}}
        strategy_params = {k: v for k, v in params.items() if k not in OPTION_KEYS}
        assert_bitwise_equal(row, metrics_row(bars, strategy, strategy_params, options))


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_every_strategy_on_longer_data_with_mixed_configurations(random_bars: Bars, strategy: str) -> None:
    """Sets that need different kernel configurations (fills, stops) in one call, rows kept in order."""
    rng = np.random.default_rng(7)
    spec = STRATEGIES[strategy]
    sets: list[dict[str, Any]] = []
    while len(sets) < 24:
        params = spec.defaults()
        for p in spec.params:
            if p.kind == "int":
                params[p.name] = int(rng.integers(p.low, min(p.high, p.low + 60) + 1))
            elif p.kind == "float":
                params[p.name] = float(rng.uniform(p.low, p.high))
        try:
            spec.validate(params)
        except StrategyError:
            continue
        choice = len(sets) % 4
        if choice == 1:
            params["fill"] = "close"
        elif choice == 2:
            params["stop_loss"] = 0.01
        elif choice == 3:
            params.update(fill="close", take_profit=0.02, direction="both")
        sets.append(params)
    base = {"fee": 0.001, "slippage": 0.0005}
    got = run_many(random_bars, strategy, sets, **base)
    for row, params in zip(got, sets, strict=True):
        options = {**base, **{k: v for k, v in params.items() if k in OPTION_KEYS}}
        assert_bitwise_equal(row, metrics_row(random_bars, strategy, {k: v for k, v in params.items()
                                                                       if k not in OPTION_KEYS}, options))


def test_bad_sets_raise_before_anything_runs(random_bars: Bars) -> None:
    assert run_many(random_bars, "sma_cross", []).shape == (0, len(METRIC_NAMES))
    with pytest.raises(StrategyError, match="fast must be < slow"):
        run_many(random_bars, "sma_cross", [{"fast": 5, "slow": 20}, {"fast": 30, "slow": 20}])
    with pytest.raises(StrategyError, match="unknown parameter"):
        run_many(random_bars, "sma_cross", [{"fast": 5, "slow": 20, "nope": 1}])
    with pytest.raises(InputError, match="stop_loss"):
        run_many(random_bars, "sma_cross", [{"fast": 5, "slow": 20, "stop_loss": 2.0}])
    with pytest.raises(InputError, match="fill"):
        run_many(random_bars, "sma_cross", [{"fast": 5, "slow": 20}], fill="tomorrow")


def test_sets_that_cannot_be_batched_take_the_per_set_path(
    random_bars: Bars, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A strategy whose indicators are not contiguous float64 arrays, or which
    gives explicit signals, still gets run()'s exact numbers."""

    def strided(bars: Bars, p: dict[str, Any], cache: IndicatorCache) -> KernelInputs:
        fast = np.repeat(cache.get(bars, "sma", p["fast"]), 2)[::2]  # a strided view
        slow = cache.get(bars, "sma", p["slow"])
        kind = KIND_SIGNALS if p["fast"] == 7 else KIND_CROSS
        return KernelInputs(kind, fast, slow, 0.0, 0.0)

    spec = replace(STRATEGIES["sma_cross"], name="strided_cross", fused=strided)
    monkeypatch.setitem(strategies_module.STRATEGIES, "strided_cross", spec)
    sets = [{"fast": f, "slow": s} for f in (5, 7, 10) for s in (20, 40)]
    got = run_many(random_bars, "strided_cross", sets, fee=0.001)
    for row, params in zip(got, sets, strict=True):
        assert_bitwise_equal(row, metrics_row(random_bars, "strided_cross", params, {"fee": 0.001}))


# Run in fresh processes sharing one numba cache directory: each process
# compiles one configuration, a last one loads both from disk and compares.
SCRIPT = """
import json, sys
import numpy as np
from engine.backtest import METRIC_NAMES, IndicatorCache, run, run_many
from engine.data import load
bars = load("synthetic:bars=3000,seed=5,timeframe=1m")
if not sys.argv[1]:  # compile the indicators only
    IndicatorCache().get(bars, "sma", 5), IndicatorCache().get(bars, "sma", 20)
    print(json.dumps({}))
    sys.exit(0)
stops = [float(s) for s in sys.argv[1].split(",")]
sets = [{"fast": 5, "slow": 20, "stop_loss": s} for s in stops]
got = run_many(bars, "sma_cross", sets, fee=0.001)
want = [[float(getattr(run(bars, "sma_cross", {"fast": 5, "slow": 20}, fee=0.001, stop_loss=s).metrics, m))
         for m in METRIC_NAMES] for s in stops]
print(json.dumps({"same": got.tolist() == want, "distinct": len({row[0] for row in got.tolist()})}))
"""


def run_fresh(cache_dir: Path, stops: str) -> dict[str, Any]:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, stops], capture_output=True, text=True, env=env, timeout=300, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_configurations_compiled_in_different_processes_stay_apart(tmp_path: Path) -> None:
    """Regression: numba names the code of two closures of one ``def`` alike when
    they are compiled in different processes; loaded together from the disk
    cache, a batched kernel then ran the other configuration's callee.
    (The names collide when both processes compile in the same order: hence
    the indicators compiled first, by a process of their own.)"""
    run_fresh(tmp_path, "")
    assert run_fresh(tmp_path, "0.002")["same"]
    assert run_fresh(tmp_path, "0.0")["same"]
    both = run_fresh(tmp_path, "0.0,0.002")
    assert both == {"same": True, "distinct": 2}


def test_block_returns_come_from_the_equity_curve_in_every_kernel_path() -> None:
    from engine.backtest import block_returns
    from engine.data import load

    bars = load("synthetic:bars=5000,seed=5")
    sets: list[dict[str, Any]] = [
        {"fast": 5, "slow": 40},  # batched, next-open fills
        {"fast": 8, "slow": 30, "fill": "close", "stop_loss": 0.01},  # batched, another configuration
        {"fast": 10, "slow": 60, "trailing_stop": 0.02},  # not batchable: the per-set kernel
    ]
    blocks = np.full((len(sets), 8), np.nan)
    table = run_many(bars, "sma_cross", sets, blocks=blocks)
    assert np.array_equal(table, run_many(bars, "sma_cross", sets), equal_nan=True)  # metrics unchanged
    for row, raw in enumerate(sets):
        params = {k: v for k, v in raw.items() if k in ("fast", "slow")}
        options = {k: v for k, v in raw.items() if k not in params}
        curve = run(bars, "sma_cross", params, equity=True, **options).equity
        assert curve is not None
        bounds = [(s + 1) * 5000 // 8 - 1 for s in range(8)]
        starts = [10_000.0] + [curve[b] for b in bounds[:-1]]
        want = np.log(np.array([curve[b] for b in bounds]) / np.array(starts))
        assert blocks[row] == pytest.approx(want, rel=1e-12, abs=1e-15)
        assert np.array_equal(block_returns(curve, 8, 10_000.0), blocks[row])


@pytest.mark.parametrize("fill", ["next_open", "close"])
def test_lockstep_groups_keep_each_set_in_its_row(fill: str) -> None:
    """run_many reorders cross/long sets so that sets sharing a window run in one lockstep
    group (``api._lockstep_order``); every row, metrics and block figures, still belongs to
    its own set: equal bit for bit to run() and to the set's equity curve, in shuffled order."""
    from engine.backtest import block_returns
    from engine.data import load

    bars = load("synthetic:bars=3000,seed=11")
    rng = np.random.default_rng(3)
    pairs = [(f, s) for f in (3, 5, 8, 13) for s in (20, 34, 55, 89, 144) if f < s]
    sets: list[dict[str, Any]] = [{"fast": f, "slow": s} for f, s in pairs]
    sets += [{"fast": 5, "slow": 34, "fee": 0.0}, {"fast": 8, "slow": 20, "size": 0.5}]
    sets = [sets[k] for k in rng.permutation(len(sets))]
    blocks = np.full((len(sets), 6), np.nan)
    table = run_many(bars, "sma_cross", sets, blocks=blocks, fill=fill, fee=0.001)
    for row, raw in enumerate(sets):
        params = {"fast": raw["fast"], "slow": raw["slow"]}
        options = {"fill": fill, "fee": 0.001, **{k: v for k, v in raw.items() if k not in params}}
        assert_bitwise_equal(table[row], metrics_row(bars, "sma_cross", params, options))
        curve = run(bars, "sma_cross", params, equity=True, **options).equity
        assert curve is not None
        assert np.array_equal(block_returns(curve, 6, 10_000.0), blocks[row])
