"""Strategies: signals against the reference rules, validation, the cache, run()/run_many()."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.backtest import (
    METRIC_NAMES,
    STRATEGIES,
    IndicatorCache,
    get_strategy,
    indicators,
    run,
    run_many,
    run_signals,
)
from engine.data import Bars, periods_per_year
from engine.errors import InputError, StrategyError
from engine.profile.caches import caches
from tests.backtest import gen
from tests.backtest import reference as ref

# Small parameters so that short random series still produce signals.
SMALL_PARAMS = {
    "sma_cross": {"fast": 2, "slow": 5},
    "ema_cross": {"fast": 2, "slow": 4},
    "rsi_reversion": {"window": 3, "lower": 35.0, "upper": 65.0},
    "bollinger_breakout": {"window": 4, "k": 0.5},
    "donchian_breakout": {"window": 3, "exit_window": 2},
    "zscore_reversion": {"window": 4, "entry_z": 0.8, "exit_z": 0.1},
}


def test_registry_has_the_six_strategies() -> None:
    assert set(SMALL_PARAMS) <= set(STRATEGIES)


class KernelIndicators:
    """The kernels' indicators as lists, for the reference rules."""

    @staticmethod
    def _wrap(function):
        return lambda x, w: function(np.asarray(x, dtype=np.float64), w).tolist()

    sma = _wrap(indicators.sma)
    ema = _wrap(indicators.ema)
    rsi = _wrap(indicators.rsi)
    rolling_std = _wrap(indicators.rolling_std)
    rolling_max = _wrap(indicators.rolling_max)
    rolling_min = _wrap(indicators.rolling_min)


@settings(max_examples=60, deadline=None)
@given(gen.bars(min_size=1, max_size=80), st.sampled_from(sorted(SMALL_PARAMS)))
def test_signals_match_reference_rules(bars: Bars, name: str) -> None:
    """The rules of docs/backtest.md over the kernels' indicators: exactly the same signals."""
    params = SMALL_PARAMS[name]
    entries, exits = get_strategy(name).signals(bars, params)
    o, h, l, c = (getattr(bars, k).tolist() for k in ("open", "high", "low", "close"))  # noqa: E741
    want_entries, want_exits = ref.signals(name, params, o, h, l, c, ind=KernelIndicators)
    assert entries.tolist() == want_entries
    assert exits.tolist() == want_exits


TIES = [
    # flat, then rising: fast and slow are equal (5 and 5) on bar 9, so bar 10 is no cross
    ("sma_cross", {"fast": 2, "slow": 5}, [5.0] * 10 + [6.0, 7.0, 8.0], [], []),
    ("ema_cross", {"fast": 2, "slow": 4}, [5.0] * 10 + [6.0, 7.0, 8.0], [], []),
    # flat, then falling: no exit either
    ("sma_cross", {"fast": 2, "slow": 5}, [5.0] * 10 + [4.0, 3.0, 2.0], [], []),
    # flat throughout: the lines coincide and never cross
    ("sma_cross", {"fast": 2, "slow": 5}, [7.0] * 20, [], []),
    # a dip from the tie is no exit (equal on bar 9); the rise after it is a cross (4 < 4.5, then 5 > 4.75)
    ("sma_cross", {"fast": 2, "slow": 4}, [5.0] * 10 + [4.0, 4.0, 6.0, 9.0], [12], []),
]


@pytest.mark.parametrize(("name", "params", "closes", "entries", "exits"), TIES)
def test_lines_that_touch_do_not_cross(name: str, params: dict, closes: list[float], entries: list[int], exits: list[int]) -> None:
    """Crossovers are strict on both sides (docs/backtest.md): equal values the bar before are no
    cross, in the signals and in the fused kernel that evaluates the rule inline."""
    from tests.backtest.conftest import make_bars

    bars = make_bars(closes)
    got_entries, got_exits = get_strategy(name).signals(bars, params)
    assert np.flatnonzero(got_entries).tolist() == entries
    assert np.flatnonzero(got_exits).tolist() == exits
    trades = run(bars, name, params, fill="close", trades=True).trades
    assert trades is not None
    assert [int(t["entry_idx"]) for t in trades] == entries


@pytest.mark.parametrize("name", sorted(SMALL_PARAMS))
@pytest.mark.parametrize("fill", ["next_open", "close"])
def test_run_equals_run_signals_on_the_strategy_signals(random_bars: Bars, name: str, fill: str) -> None:
    """The fused kernel (rules evaluated inline) equals the same rules materialised as arrays."""
    params = {k: v * 3 if isinstance(v, int) else v for k, v in SMALL_PARAMS[name].items()}
    options = dict(fee=0.001, slippage=0.0002, fill=fill, direction="both", stop_loss=0.01, take_profit=0.03)
    fused = run(random_bars, name, params, equity=True, trades=True, **options)
    entries, exits = get_strategy(name).signals(random_bars, params)
    explicit = run_signals(random_bars, entries, exits, equity=True, trades=True, **options)
    assert fused.metrics == explicit.metrics
    np.testing.assert_array_equal(fused.equity, explicit.equity)
    np.testing.assert_array_equal(fused.trades, explicit.trades)
    assert fused.metrics.trades > 0


def test_sma_cross_matches_reference_end_to_end(random_bars: Bars) -> None:
    o, h, l, c = (getattr(random_bars, k).tolist() for k in ("open", "high", "low", "close"))  # noqa: E741
    entries, exits = ref.signals("sma_cross", {"fast": 10, "slow": 30}, o, h, l, c)
    equity, trades, held = ref.simulate(o, h, l, c, entries, exits, fee=0.001, slippage=0.0005)
    result = run(random_bars, "sma_cross", {"fast": 10, "slow": 30}, fee=0.001, slippage=0.0005, equity=True)
    np.testing.assert_allclose(result.equity, equity, rtol=1e-10)
    expected = ref.metrics(equity, 10_000.0, trades, held, periods_per_year("1m"))
    for key, value in result.metrics.as_dict().items():
        assert value == pytest.approx(expected[key], rel=1e-8, abs=1e-12), key


def test_metrics_against_numpy_formulas(random_bars: Bars) -> None:
    result = run(random_bars, "ema_cross", {"fast": 5, "slow": 20}, fee=0.0005, equity=True, trades=True)
    eq = result.equity
    r = np.diff(np.r_[10_000.0, eq]) / np.r_[10_000.0, eq[:-1]]
    ppy = periods_per_year("1m")
    m = result.metrics
    assert m.final_value == eq[-1]
    assert m.volatility == pytest.approx(np.std(r, ddof=1) * np.sqrt(ppy), rel=1e-9)
    assert m.sharpe == pytest.approx(r.mean() / np.std(r, ddof=1) * np.sqrt(ppy), rel=1e-9)
    assert m.sortino == pytest.approx(r.mean() / np.sqrt(np.mean(np.minimum(r, 0) ** 2)) * np.sqrt(ppy), rel=1e-9)
    peak = np.maximum.accumulate(np.r_[10_000.0, eq])[1:]
    assert m.max_drawdown == pytest.approx(np.max(1 - eq / peak), rel=1e-12)
    assert m.cagr == pytest.approx((eq[-1] / 10_000.0) ** (ppy / len(eq)) - 1, rel=1e-9)
    closed = result.trades[result.trades["exit_reason"] != 3]
    assert m.trades == len(closed)
    assert m.win_rate == pytest.approx(np.mean(closed["pnl"] > 0))
    losses = -closed["pnl"][closed["pnl"] <= 0].sum()
    assert m.profit_factor == pytest.approx(closed["pnl"][closed["pnl"] > 0].sum() / losses)
    assert m.avg_trade == pytest.approx(closed["return"].mean())
    assert set(m.as_dict()) == set(METRIC_NAMES)


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("strategy", "params", "message"),
    [
        ("nope", {}, "unknown strategy 'nope' (known: sma_cross, ema_cross"),
        ("sma_cross", {"fast": 1}, "sma_cross: parameter fast must be an integer in [2, 500], got 1"),
        ("sma_cross", {"fast": 10.5}, "sma_cross: parameter fast must be an integer"),
        ("sma_cross", {"fast": "10"}, "sma_cross: parameter fast must be an integer"),
        ("sma_cross", {"fast": True}, "sma_cross: parameter fast must be an integer"),
        ("sma_cross", {"fast": 60, "slow": 50}, "sma_cross: fast must be < slow, got fast=60, slow=50"),
        ("sma_cross", {"speed": 3}, "sma_cross: unknown parameter 'speed' (known: fast, slow)"),
        ("rsi_reversion", {"lower": float("nan")}, "rsi_reversion: parameter lower must be a number in [1, 99]"),
        ("rsi_reversion", {"lower": 80.0}, "rsi_reversion: lower must be < upper"),
    ],
)
def test_bad_parameters_are_one_line_strategy_errors(random_bars: Bars, strategy: str, params: dict, message: str) -> None:
    with pytest.raises(StrategyError) as info:
        run(random_bars, strategy, params)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"fee": -0.1}, "fee must be a number in [0, 1), got -0.1"),
        ({"slippage": float("inf")}, "slippage must be a number in [0, 1)"),
        ({"fill": "open"}, "fill must be one of next_open, close, got 'open'"),
        ({"direction": "sideways"}, "direction must be one of long, short, both"),
        ({"size": 0.0}, "size must be a number in (0, 1], got 0.0"),
        ({"cash": -5}, "cash must be a number in (0, inf)"),
        ({"stop_loss": 1.0}, "stop_loss must be a number in [0, 1)"),
    ],
)
def test_bad_options_are_input_errors(random_bars: Bars, options: dict, message: str) -> None:
    with pytest.raises(InputError) as info:
        run(random_bars, "sma_cross", {}, **options)
    assert message in str(info.value)


def test_integral_floats_and_defaults_are_accepted() -> None:
    spec = get_strategy("sma_cross")
    assert spec.validate({"fast": 5.0}) == {"fast": 5, "slow": 50}
    assert spec.parse_params({"fast": "7", "slow": "21"}) == {"fast": 7, "slow": 21}
    described = spec.to_dict()
    assert described["constraints"] == ["fast < slow"]
    assert described["params"][0] == {
        "name": "fast", "kind": "int", "default": 10, "low": 2, "high": 500,
        "help": "fast moving-average window (bars)",
    }


# ---------------------------------------------------------------- cache and sweeps


def test_indicator_cache_computes_each_window_once(random_bars: Bars) -> None:
    counters = caches.counters("backtest.indicators")
    cache = IndicatorCache()
    hits, misses = counters.hits, counters.misses
    pairs = [(f, s) for f in (5, 10, 15) for s in (20, 40) if f < s]
    for fast, slow in pairs:
        run(random_bars, "sma_cross", {"fast": fast, "slow": slow}, cache=cache)
    assert counters.misses - misses == 5  # 3 fast + 2 slow windows
    assert counters.hits - hits == 2 * len(pairs) - 5
    assert len(cache) == 5
    assert cache.nbytes == 5 * len(random_bars) * 8
    array = cache.get(random_bars, "sma", 5)
    assert not array.flags.writeable


def test_indicator_cache_keeps_bars_apart_and_evicts(random_bars: Bars) -> None:
    other = random_bars.slice(0, 1_000)
    cache = IndicatorCache(max_bytes=3 * len(random_bars) * 8)
    a = cache.get(random_bars, "sma", 5)
    b = cache.get(other, "sma", 5)
    assert a.shape != b.shape
    for w in (6, 7, 8):
        cache.get(random_bars, "sma", w)
    assert cache.nbytes <= cache.max_bytes
    assert cache.counters.evictions > 0
    np.testing.assert_array_equal(cache.get(random_bars, "sma", 5), a)  # recomputed identically
    with pytest.raises(InputError, match="unknown indicator 'vwap'"):
        cache.get(random_bars, "vwap", 3)


def test_run_many_equals_run(random_bars: Bars) -> None:
    sets = [{"fast": f, "slow": s} for f in (5, 10) for s in (20, 30)]
    sets.append({"fast": 5, "slow": 20, "stop_loss": 0.01})  # an option searched like a parameter
    grid = run_many(random_bars, "sma_cross", sets, fee=0.001)
    assert grid.shape == (len(sets), len(METRIC_NAMES))
    for row, params in zip(grid, sets, strict=True):
        stop = params.pop("stop_loss", 0.0)
        single = run(random_bars, "sma_cross", params, fee=0.001, stop_loss=stop)
        assert row.tolist() == [float(v) for v in single.metrics.as_dict().values()]


@pytest.mark.parametrize(
    ("available", "cores", "expected"),
    [
        (24 * 2**30, 2, 2 * 2**30),  # 3 GiB a core: capped at 2 GiB
        (16 * 2**30, 8, 512 * 2**20),  # a quarter of 16 GiB over 8 cores
        (2 * 2**30, 8, 256 * 2**20),  # 64 MiB a core: the 256 MiB floor
    ],
)
def test_the_indicator_cache_budget_is_a_quarter_of_available_memory_per_core_within_bounds(
    monkeypatch: pytest.MonkeyPatch, available: int, cores: int, expected: int
) -> None:
    """A grid's moving averages must fit the cache (226 slow windows on 200k bars are 362 MB; a
    256 MiB cache recomputed them 23,555 times in one study), without a machine's worth per core."""
    import collections
    import os

    import psutil

    from engine.profile.caches import indicator_cache_budget

    memory = collections.namedtuple("memory", "available")
    monkeypatch.setattr(psutil, "virtual_memory", lambda: memory(available))
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    assert indicator_cache_budget.__wrapped__() == expected
    assert IndicatorCache().max_bytes == indicator_cache_budget()  # the default every worker's cache takes
    assert IndicatorCache(max_bytes=1234).max_bytes == 1234
