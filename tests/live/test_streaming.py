"""Streaming indicators (``engine.backtest.streaming``) against their batch kernels,
and the streaming strategy adapter (``RegistrySignals``) against the batch signals.

Equality is exact (``array_equal``, NaN where NaN): each twin repeats its kernel's
floating-point operations, and crossovers are strict comparisons, so "close"
would not be enough for the loop to decide as the backtest does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from engine.backtest import INDICATORS, STRATEGIES, IndicatorCache, Param, get_strategy, nb
from engine.backtest import streaming as s
from engine.backtest.strategies import KernelInputs, Strategy
from engine.data.bars import Bars
from engine.errors import InputError, StrategyError
from engine.live import PrefixBuffer, RegistrySignals
from tests.live.conftest import bars_from, hypothesis_bars

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def series(draw: st.DrawFn, max_size: int = 70) -> np.ndarray:
    """Random walks with flat stretches and gaps, flat series, small integers
    (ties everywhere), and arbitrary positive floats."""
    n = draw(st.integers(0, max_size))
    shape = draw(st.sampled_from(["walk", "flat", "ints", "floats"]))
    if shape == "floats":
        return np.array(draw(st.lists(st.floats(1e-3, 1e6), min_size=n, max_size=n)))
    if shape == "ints":
        return np.array(draw(st.lists(st.integers(1, 4), min_size=n, max_size=n)), dtype=float)
    if shape == "flat":
        return np.full(n, draw(st.floats(1e-3, 1e6)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    steps = rng.normal(0.0, 0.01, n)
    steps[rng.random(n) < 0.3] = 0.0  # flat stretches
    steps[rng.random(n) < 0.05] *= 20.0  # gaps
    return 100.0 * np.exp(np.cumsum(steps))


def ohlc(close: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """High and low around ``close`` (some bars with no range at all)."""
    rng = np.random.default_rng(seed)
    wick = np.abs(rng.normal(0.0, 0.01, close.shape[0])) * (rng.random(close.shape[0]) < 0.8)
    return close * (1.0 + wick), close * (1.0 - wick[::-1]), close


def same(got: Any, want: np.ndarray) -> None:
    got = np.asarray(got, dtype=float)
    assert np.array_equal(got, want, equal_nan=True), np.flatnonzero(
        ~((got == want) | (np.isnan(got) & np.isnan(want)))
    )[:5]


ONE_INPUT = [
    (s.SMA, nb.sma_nb),
    (s.EMA, nb.ema_nb),
    (s.RSI, nb.rsi_nb),
    (s.RollingStd, nb.rolling_std_nb),
    (s.RollingMax, nb.rolling_max_nb),
    (s.RollingMin, nb.rolling_min_nb),
    (s.ZScore, nb.zscore_nb),
]


@pytest.mark.parametrize(("cls", "kernel"), ONE_INPUT, ids=[c.__name__ for c, _ in ONE_INPUT])
@SETTINGS
@given(x=series(), window=st.integers(1, 80))
def test_one_input_indicator_equals_kernel(cls: Any, kernel: Any, x: np.ndarray, window: int) -> None:
    """Value by value, on every prefix (windows longer than the data included)."""
    ind = cls(window)
    got = [ind.update(v) for v in x]
    same(got, kernel(x, window))
    assert ind.count == x.shape[0]
    if x.shape[0]:
        same([ind.value], kernel(x, window)[-1:])


@SETTINGS
@given(close=series(), window=st.integers(1, 80), seed=st.integers(0, 2**16))
def test_atr_equals_kernel(close: np.ndarray, window: int, seed: int) -> None:
    high, low, close = ohlc(close, seed)
    ind = s.ATR(window)
    got = [ind.update(h, lo, c) for h, lo, c in zip(high, low, close, strict=True)]
    same(got, nb.atr_nb(high, low, close, window))


@SETTINGS
@given(x=series(), window=st.integers(1, 80), k=st.floats(0.1, 5.0))
# A jump leaving the window: the batch kernel sums the window again exactly, so must the stream.
@example(x=np.array([1.0, 44915.94413106, 44911.0]), window=2, k=1.0)
@example(x=np.array([2.0, 0.99999, 1.0, 1.00001, 3.0, 3.00002]), window=2, k=2.0)
def test_bollinger_equals_kernel(x: np.ndarray, window: int, k: float) -> None:
    ind = s.Bollinger(window, k)
    got = np.array([ind.update(v) for v in x]).reshape(-1, 3).T
    for g, want in zip(got, nb.bollinger_nb(x, window, k), strict=True):
        same(g, want)


@SETTINGS
@given(close=series(), window=st.integers(1, 80), seed=st.integers(0, 2**16))
def test_donchian_equals_kernel(close: np.ndarray, window: int, seed: int) -> None:
    """This bar included (the strategy compares with the previous bar's channel)."""
    high, low, _ = ohlc(close, seed)
    ind = s.Donchian(window)
    got = np.array([ind.update(h, lo) for h, lo in zip(high, low, strict=True)]).reshape(-1, 3).T
    for g, want in zip(got, nb.donchian_nb(high, low, window), strict=True):
        same(g, want)


def test_every_cached_indicator_has_a_streaming_twin() -> None:
    assert set(s.NAMED) == set(INDICATORS)


@pytest.mark.parametrize("name", INDICATORS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bars=hypothesis_bars(min_size=1, max_size=120), window=st.integers(1, 150), data=st.data())
def test_bank_equals_indicator_cache(name: str, bars: Bars, window: int, data: st.DataObject) -> None:
    """A bank fed in uneven chunks reads the same columns and gives the same
    values as ``IndicatorCache.get`` (what the backtest's strategies use)."""
    bank = s.IndicatorBank([(name, window), ("sma", 3)])
    want = IndicatorCache().get(bars, name, window)
    start = 0
    while start < len(bars):
        stop = min(len(bars), start + data.draw(st.integers(1, 7), label="chunk"))
        bank.feed(bars.high[:stop], bars.low[:stop], bars.close[:stop], start)
        same([bank.value(name, window)], want[stop - 1 : stop])
        start = stop
    assert bank.bank[bank.offset(name, window) + s.S_COUNT] == len(bars)  # each bar fed once


def test_bank_shares_rows_and_validates() -> None:
    bank = s.IndicatorBank([("rsi", 14), ("rsi", 14), ("sma", 5)])
    assert bank.rows == {("rsi", 14): 0, ("sma", 5): 1}
    with pytest.raises(InputError, match="no streaming version"):
        s.IndicatorBank([("vwap", 5)])
    with pytest.raises(InputError, match="at least one"):
        s.IndicatorBank([])
    for bad in (0, -3, 2.5, True):
        with pytest.raises(InputError, match="window"):
            s.SMA(bad)  # type: ignore[arg-type]


def test_reset_forgets_everything() -> None:
    x = np.array([1.0, 2.0, 2.0, 5.0, 3.0, 3.0, 3.0, 8.0])
    ind = s.Bollinger(3, 1.5)
    first = np.array([ind.update(v) for v in x])
    ind.reset()
    assert ind.count == 0 and np.isnan(ind.value)
    same([ind.update(v) for v in x], first)


# ------------------------------------------------------------------ adapter


def _param(p: Param) -> st.SearchStrategy[Any]:
    if p.kind == "int":
        return st.integers(int(p.low), int(min(p.high, 40)))
    if p.kind == "float":
        return st.floats(p.low, p.high, allow_nan=False)
    return st.sampled_from(p.choices)


def _draw_params(data: st.DataObject, strategy: str) -> dict[str, Any]:
    spec = STRATEGIES[strategy]
    params = {p.name: data.draw(_param(p), label=p.name) for p in spec.params}
    try:
        return spec.validate(params)
    except StrategyError:
        assume(False)
        raise


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bars=hypothesis_bars(min_size=2, max_size=160), data=st.data())
def test_adapter_signals_equal_batch_signals(strategy: str, bars: Bars, data: st.DataObject) -> None:
    """Bar by bar through the loop's buffer, the adapter gives ``Strategy.signals``."""
    params = _draw_params(data, strategy)
    entries, exits = get_strategy(strategy).signals(bars, params)
    source = RegistrySignals(strategy, params)
    buf = PrefixBuffer(8)  # grows while it runs
    got_entries, got_exits = [], []
    for i in range(len(bars)):
        buf.append(bars.open[i], bars.high[i], bars.low[i], bars.close[i], bars.volume[i])
        entry, exit_ = source.signal_at(buf.view())
        got_entries.append(entry)
        got_exits.append(exit_)
    assert got_entries == entries.tolist()
    assert got_exits == exits.tolist()
    for key in source.bank.rows:  # every bar was fed once: nothing recomputed
        assert source.bank.bank[source.bank.offset(*key) + s.S_COUNT] == len(bars)


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bars=hypothesis_bars(min_size=2, max_size=120), data=st.data())
def test_adapter_catches_up_and_starts_over(strategy: str, bars: Bars, data: st.DataObject) -> None:
    """Prefixes that grow by several bars at once (plain tuples of arrays) are caught
    up; a prefix no longer than the last one starts a new series."""
    params = _draw_params(data, strategy)
    entries, exits = get_strategy(strategy).signals(bars, params)
    cols = (bars.open, bars.high, bars.low, bars.close, bars.volume)
    source = RegistrySignals(strategy, params)
    for _ in range(2):  # the second pass starts over on the same source
        n = 0
        while n < len(bars):
            n = min(len(bars), n + data.draw(st.integers(1, 9), label="step"))
            got = source.signal_at(tuple(c[:n] for c in cols))
            assert got == (bool(entries[n - 1]), bool(exits[n - 1])), n
    # A shorter prefix: a new series, evaluated from scratch.
    cut = data.draw(st.integers(1, len(bars)), label="cut")
    assert source.signal_at(tuple(c[:cut] for c in cols)) == (
        bool(entries[cut - 1]),
        bool(exits[cut - 1]),
    )


def test_adapter_reused_on_another_series_equals_a_fresh_one() -> None:
    rng = np.random.default_rng(5)
    one = bars_from((100 * np.exp(np.cumsum(rng.normal(0, 0.01, 300)))).tolist())
    two = bars_from((100 * np.exp(np.cumsum(rng.normal(0, 0.02, 200)))).tolist())
    source = RegistrySignals("sma_cross", {"fast": 3, "slow": 9})
    for bars in (one, two):
        buf = PrefixBuffer(len(bars))
        got = []
        for i in range(len(bars)):
            buf.append(bars.open[i], bars.high[i], bars.low[i], bars.close[i], bars.volume[i])
            got.append(source.signal_at(buf.view()))
        entries, exits = get_strategy("sma_cross").signals(bars, {"fast": 3, "slow": 9})
        assert got == list(zip(entries.tolist(), exits.tolist(), strict=True))
        assert any(e for e, _ in got)  # the series does trade
    source.reset()
    assert source.signal_at((one.open[:1], one.high[:1], one.low[:1], one.close[:1], one.volume[:1])) == (
        False,
        False,
    )


def test_adapter_refuses_a_recipe_it_cannot_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    def derived(bars: Any, p: dict[str, Any], cache: Any) -> KernelInputs:
        fast = cache.get(bars, "sma", 5)
        return KernelInputs(1, fast * 2.0, fast, 0.0, 0.0)  # arithmetic on the array

    def fresh(bars: Any, p: dict[str, Any], cache: Any) -> KernelInputs:
        return KernelInputs(1, np.zeros(3), cache.get(bars, "sma", 5), 0.0, 0.0)

    def unknown(bars: Any, p: dict[str, Any], cache: Any) -> KernelInputs:
        return KernelInputs(1, cache.get(bars, "vwap", 5), cache.get(bars, "sma", 5), 0.0, 0.0)

    for name, recipe, match in (
        ("derived_test", derived, "cannot stream"),
        ("fresh_test", fresh, "cannot stream"),
        ("unknown_test", unknown, "no streaming version"),
    ):
        strategy = Strategy(name, "test", (), (), "test", recipe)
        monkeypatch.setitem(STRATEGIES, name, strategy)
        with pytest.raises(StrategyError, match=match):
            RegistrySignals(name)


# ------------------------------------------------------------------- buffer


def test_prefix_is_an_immutable_sequence_of_views() -> None:
    buf = PrefixBuffer(2)
    rows = [(float(i), i + 1.0, i - 1.0, i + 0.5, 10.0 * i) for i in range(5)]
    for row in rows[:3]:
        buf.append(*row)
    prefix = buf.view()
    for row in rows[3:]:
        buf.append(*row)  # grows past the capacity
    assert len(prefix) == 5 and prefix.n == 3
    cols = list(prefix)
    assert [c.tolist() for c in cols] == [list(col) for col in zip(*rows[:3], strict=True)]
    _, h, lo, c, _ = prefix
    assert c.tolist() == [0.5, 1.5, 2.5] and prefix[3].tolist() == c.tolist()
    assert [x.tolist() for x in prefix[1:3]] == [h.tolist(), lo.tolist()]
    assert [x.tolist() for x in buf.view()][3] == [r[3] for r in rows]
    assert np.shares_memory(buf.view()[0], buf.view().columns[0])
