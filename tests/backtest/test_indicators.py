"""Indicator kernels against the pure-Python references, by hand and by hypothesis."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.backtest import indicators as ind
from engine.errors import InputError
from tests.backtest import reference as ref

prices = st.one_of(
    # a random walk with flat stretches and gaps
    st.lists(st.one_of(st.just(0.0), st.floats(-0.05, 0.05), st.floats(-0.5, 0.5)), min_size=1, max_size=80).map(
        lambda moves: list(100.0 * np.exp(np.cumsum(moves)))
    ),
    # perfectly flat prices
    st.tuples(st.floats(0.01, 1e5), st.integers(1, 40)).map(lambda p: [p[0]] * p[1]),
)
windows = st.integers(1, 90)  # often longer than the data


def assert_same(actual: np.ndarray, expected: list[float], rtol: float = 1e-9, atol: float = 1e-9) -> None:
    expected_arr = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected_arr.shape
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected_arr), err_msg="NaN warm-up differs")
    np.testing.assert_allclose(actual, expected_arr, rtol=rtol, atol=atol, equal_nan=True)


# ---------------------------------------------------------------- hand cases


def test_sma_by_hand() -> None:
    out = ind.sma(np.array([1.0, 2.0, 3.0, 4.0, 5.0]), 3)
    assert_same(out, [math.nan, math.nan, 2.0, 3.0, 4.0])


def test_ema_by_hand() -> None:
    # alpha = 2/(3+1) = 0.5, seeded with SMA(1, 2, 3) = 2 at index 2
    out = ind.ema(np.array([1.0, 2.0, 3.0, 5.0, 1.0]), 3)
    assert_same(out, [math.nan, math.nan, 2.0, 3.5, 2.25])


def test_rsi_by_hand() -> None:
    # changes +1, +1, -1, +2; window 2: gain (1+1)/2 = 1, loss 0 -> 100 at index 2;
    # then gain (1*1 + 0)/2 = 0.5, loss (0 + 1)/2 = 0.5 -> 50; then gain 1.25, loss 0.25 -> 100 - 100/6
    out = ind.rsi(np.array([10.0, 11.0, 12.0, 11.0, 13.0]), 2)
    assert_same(out, [math.nan, math.nan, 100.0, 50.0, 100.0 - 100.0 / 6.0])


def test_rsi_flat_is_50() -> None:
    out = ind.rsi(np.full(6, 7.0), 3)
    assert_same(out, [math.nan] * 3 + [50.0] * 3)


def test_atr_by_hand() -> None:
    high = np.array([11.0, 12.0, 15.0])
    low = np.array([9.0, 10.0, 12.0])
    close = np.array([10.0, 11.0, 14.0])
    # TR: 2, max(2, 2, 0) = 2, max(3, 4, 1) = 4; ATR(2): (2+2)/2 = 2, then (2*1 + 4)/2 = 3
    assert_same(ind.atr(high, low, close, 2), [math.nan, 2.0, 3.0])


def test_std_bollinger_zscore_by_hand() -> None:
    x = np.array([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0])
    std = ind.rolling_std(x, 8)
    assert std[-1] == pytest.approx(2.0)  # the textbook population std of this set
    mid, upper, lower = ind.bollinger(x, 8, 1.5)
    assert (mid[-1], upper[-1], lower[-1]) == pytest.approx((5.0, 8.0, 2.0))
    assert ind.zscore(x, 8)[-1] == pytest.approx((9.0 - 5.0) / 2.0)
    assert np.isnan(ind.zscore(np.full(5, 3.0), 3)).all()  # flat: std 0, z undefined


def test_donchian_by_hand() -> None:
    high = np.array([5.0, 7.0, 6.0, 4.0, 8.0])
    low = np.array([1.0, 3.0, 2.0, 0.5, 6.0])
    upper, lower, mid = ind.donchian(high, low, 3)
    assert_same(upper, [math.nan, math.nan, 7.0, 7.0, 8.0])
    assert_same(lower, [math.nan, math.nan, 1.0, 0.5, 0.5])
    assert_same(mid, [math.nan, math.nan, 4.0, 3.75, 4.25])


def test_window_longer_than_data_is_all_nan() -> None:
    x = np.array([1.0, 2.0, 3.0])
    for out in (ind.sma(x, 4), ind.ema(x, 4), ind.rsi(x, 3), ind.rolling_std(x, 4), ind.rolling_max(x, 4)):
        assert np.isnan(out).all()


def test_bad_window_is_an_input_error() -> None:
    with pytest.raises(InputError, match="window"):
        ind.sma(np.ones(3), 0)
    with pytest.raises(InputError, match="window"):
        ind.ema(np.ones(3), 2.5)  # type: ignore[arg-type]


def test_flat_prices_keep_sma_bit_exact() -> None:
    """A flat stretch after a move must not jitter (it would fake crossovers)."""
    x = np.r_[np.linspace(1.0, 3.7, 50), np.full(500, 0.1 + 0.2)]
    out = ind.sma(x, 7)[60:]
    assert np.all(out == out[0])


# ---------------------------------------------------------------- hypothesis


@settings(max_examples=150, deadline=None)
@given(prices, windows)
def test_sma_matches_reference(x: list[float], w: int) -> None:
    assert_same(ind.sma(np.array(x), w), ref.sma(x, w))


@settings(max_examples=150, deadline=None)
@given(prices, windows)
def test_ema_matches_reference(x: list[float], w: int) -> None:
    assert_same(ind.ema(np.array(x), w), ref.ema(x, w))


@settings(max_examples=150, deadline=None)
@given(prices, windows)
def test_rsi_matches_reference(x: list[float], w: int) -> None:
    assert_same(ind.rsi(np.array(x), w), ref.rsi(x, w), rtol=1e-7, atol=1e-7)


@settings(max_examples=150, deadline=None)
@given(prices, windows, st.floats(0.0, 0.05), st.floats(0.0, 0.05))
def test_atr_matches_reference(x: list[float], w: int, up: float, down: float) -> None:
    close = np.array(x)
    high = close * (1.0 + up)
    low = close * (1.0 - down)
    assert_same(ind.atr(high, low, close, w), ref.atr(list(high), list(low), x, w))


@settings(max_examples=150, deadline=None)
@given(prices, windows)
def test_rolling_std_matches_reference(x: list[float], w: int) -> None:
    scale = max(x)
    assert_same(ind.rolling_std(np.array(x), w), ref.rolling_std(x, w), rtol=1e-7, atol=1e-9 * scale)


@settings(max_examples=150, deadline=None)
@given(prices, windows)
def test_rolling_extremes_match_reference(x: list[float], w: int) -> None:
    assert_same(ind.rolling_max(np.array(x), w), ref.rolling_max(x, w), rtol=0, atol=0)
    assert_same(ind.rolling_min(np.array(x), w), ref.rolling_min(x, w), rtol=0, atol=0)


@settings(max_examples=100, deadline=None)
@given(prices, st.integers(2, 30))
def test_zscore_matches_reference(x: list[float], w: int) -> None:
    mean, std = ref.sma(x, w), ref.rolling_std(x, w)
    out = ind.zscore(np.array(x), w)
    for i, value in enumerate(out):
        # Well-conditioned windows agree closely; a spread below 1e-6 of the price
        # amplifies the std's rounding (absolute error ~1e-11 of the price) into z.
        if std[i] > 1e-6 * max(x):
            assert value == pytest.approx((x[i] - mean[i]) / std[i], rel=1e-6, abs=1e-6)
        elif std[i] == 0.0 or math.isnan(std[i]):
            assert math.isnan(value)
