"""engine.strategy.ta against slow pure-Python references (hypothesis, with ties and NaNs often)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import InputError
from engine.strategy import IndicatorCache, ta
from engine.strategy.cache import evaluating
from tests.backtest import reference as ref
from tests.backtest.conftest import make_bars

NAN = math.nan
# Prices from a small set (ties and flat stretches), some NaN (gaps and warm-ups).
values = st.lists(
    st.one_of(st.sampled_from([1.0, 2.0, 2.0, 3.0, 5.0]), st.floats(0.5, 10.0), st.just(NAN)),
    min_size=0,
    max_size=60,
)
windows = st.integers(1, 12)


def by_runs(reference: Callable[..., list[float]], *columns: list[float], window: int) -> list[float]:
    """``reference`` applied to each stretch with no NaN in any column; NaN elsewhere."""
    n = len(columns[0])
    out = [NAN] * n
    start = 0
    while start < n:
        if any(math.isnan(c[start]) for c in columns):
            start += 1
            continue
        stop = start
        while stop < n and not any(math.isnan(c[stop]) for c in columns):
            stop += 1
        out[start:stop] = reference(*(c[start:stop] for c in columns), window)
        start = stop
    return out


def same(actual: np.ndarray, expected: list[float]) -> None:
    assert actual.shape == (len(expected),)
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(np.asarray(expected, dtype=float)))
    np.testing.assert_allclose(actual, np.asarray(expected, dtype=float), rtol=1e-9, atol=1e-9, equal_nan=True)


def ref_zscore(x: list[float], w: int) -> list[float]:
    mean, std = ref.sma(x, w), ref.rolling_std(x, w)
    return [(v - m) / s if s > 0 else NAN for v, m, s in zip(x, mean, std, strict=True)]


ONE_INPUT = {
    "sma": (ta.sma, ref.sma),
    "ema": (ta.ema, ref.ema),
    "rsi": (ta.rsi, ref.rsi),
    "rolling_std": (ta.rolling_std, ref.rolling_std),
    "highest": (ta.highest, ref.rolling_max),
    "lowest": (ta.lowest, ref.rolling_min),
    "zscore": (ta.zscore, ref_zscore),
}


@pytest.mark.parametrize("name", sorted(ONE_INPUT))
@settings(max_examples=150, deadline=None)
@given(x=values, window=windows)
def test_one_input_indicators_match_the_reference(name: str, x: list[float], window: int) -> None:
    function, reference = ONE_INPUT[name]
    same(function(np.array(x, dtype=float), window), by_runs(reference, x, window=window))


@settings(max_examples=150, deadline=None)
@given(data=st.data(), window=windows)
def test_atr_and_channels_match_the_reference(data: st.DataObject, window: int) -> None:
    close = data.draw(values)
    n = len(close)
    spread = data.draw(st.lists(st.sampled_from([0.0, 0.5, 1.0, NAN]), min_size=n, max_size=n))
    high = [c + s for c, s in zip(close, spread, strict=True)]
    low = [c - abs(s) for c, s in zip(close, spread, strict=True)]
    same(ta.atr(np.array(high), np.array(low), np.array(close), window), by_runs(ref.atr, high, low, close, window=window))
    upper, lower, _mid = ta.donchian(np.array(high), np.array(low), window)
    same(upper, by_runs(lambda h, lo, w: ref.rolling_max(h, w), high, low, window=window))
    same(lower, by_runs(lambda h, lo, w: ref.rolling_min(lo, w), high, low, window=window))


@settings(max_examples=150, deadline=None)
@given(x=values, window=windows, k=st.sampled_from([0.0, 1.0, 2.0, 2.5]))
def test_bollinger_matches_the_reference(x: list[float], window: int, k: float) -> None:
    mid, upper, lower = ta.bollinger(np.array(x, dtype=float), window, k)
    m = by_runs(ref.sma, x, window=window)
    s = by_runs(ref.rolling_std, x, window=window)
    same(mid, m)
    same(upper, [a + k * b for a, b in zip(m, s, strict=True)])
    same(lower, [a - k * b for a, b in zip(m, s, strict=True)])


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_crossings_are_strict_and_false_on_nan(data: st.DataObject) -> None:
    a = data.draw(values)
    b = data.draw(st.lists(st.sampled_from([1.0, 2.0, 3.0, NAN]), min_size=len(a), max_size=len(a)))
    above = ta.crossed_above(np.array(a, dtype=float), np.array(b, dtype=float))
    below = ta.crossed_below(np.array(a, dtype=float), np.array(b, dtype=float))
    assert above.dtype == np.bool_ and below.dtype == np.bool_
    assert above.tolist() == [t > 0 and ref.crosses_above(a, b, t) for t in range(len(a))]
    assert below.tolist() == [t > 0 and ref.crosses_below(a, b, t) for t in range(len(a))]
    level = 2.0
    assert ta.crossed_above(np.array(a, dtype=float), level).tolist() == [
        t > 0 and a[t - 1] < level and a[t] > level for t in range(len(a))
    ]


@settings(max_examples=100, deadline=None)
@given(x=values, periods=st.integers(0, 8))
def test_shift_delays(x: list[float], periods: int) -> None:
    got = ta.shift(np.array(x, dtype=float), periods)
    same(got, [x[t - periods] if t >= periods else NAN for t in range(len(x))])


def test_bad_arguments_are_one_line_errors() -> None:
    with pytest.raises(InputError, match="window must be an integer >= 1"):
        ta.sma(np.ones(5), 0)
    with pytest.raises(InputError, match="negative shift reads the future"):
        ta.shift(np.ones(5), -1)
    with pytest.raises(InputError, match="different lengths"):
        ta.crossed_above(np.ones(5), np.ones(4))
    with pytest.raises(InputError, match="one-dimensional"):
        ta.sma(np.ones((2, 2)), 2)


def test_indicators_are_read_only() -> None:
    with pytest.raises(ValueError, match="read-only"):
        ta.sma(np.ones(5), 2)[0] = 1.0


def test_inside_an_evaluation_each_window_is_computed_once_and_temporaries_are_not_kept() -> None:
    bars = make_bars(np.linspace(1.0, 2.0, 50))
    cache = IndicatorCache()
    with evaluating(bars, cache):
        first = ta.sma(bars.close, 5)
        assert ta.sma(bars.close, 5) is first  # a hit
        nested = ta.ema(first, 3)  # an input the cache handed out is a stable key too
        assert ta.ema(first, 3) is nested
        ta.sma(bars.close * 2.0, 5)  # a temporary: computed, not cached
    assert len(cache) == 2
    assert cache.get(bars, "sma", 5) is first  # the built-ins' named lookups share the entries
    assert ta.sma(bars.close, 5) is not first  # outside an evaluation: no cache


def test_a_small_spread_after_a_jump_keeps_its_precision() -> None:
    # The jump leaving the window cancels almost all of the sliding sum of squares;
    # its rounding error (about 1e-6 of this spread) must not survive.
    x = np.array([2.0, 0.99999, 1.0])
    np.testing.assert_allclose(ta.rolling_std(x, 2)[2], 0.000005, rtol=1e-9)
    np.testing.assert_allclose(ta.zscore(x, 2)[2], 1.0, rtol=1e-9)
