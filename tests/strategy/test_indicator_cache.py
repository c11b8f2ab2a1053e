"""The indicator cache's lookup by name: window checks and hits (its hot path in a sweep)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.data import load
from engine.errors import InputError
from engine.strategy.cache import IndicatorCache, check_window


@pytest.mark.parametrize(("window", "expected"), [(3, 3), (np.int64(4), 4), (5.0, 5), (np.float64(6.0), 6)])
def test_a_whole_positive_window_is_an_int(window: object, expected: int) -> None:
    got = check_window(window)
    assert got == expected and type(got) is int


@pytest.mark.parametrize("window", [0, -2, True, False, 2.5, "3", None])
def test_anything_else_is_one_input_error(window: object) -> None:
    with pytest.raises(InputError, match="indicator window must be an integer >= 1"):
        check_window(window)


def test_a_lookup_computes_once_and_then_hits_with_the_same_array() -> None:
    bars = load("synthetic:bars=300,seed=1")
    cache = IndicatorCache()
    before = (cache.counters.hits, cache.counters.misses)
    first = cache.get(bars, "sma", 20)
    again = cache.get(bars, "sma", np.int64(20))
    other = cache.get(bars, "atr", 20)  # three columns in, another entry
    assert again is first and other is not first
    assert (cache.counters.hits - before[0], cache.counters.misses - before[1]) == (1, 2)
    expected = np.convolve(bars.close, np.ones(20) / 20, mode="valid")
    np.testing.assert_allclose(first[19:], expected, rtol=1e-12)
    assert np.isnan(first[:19]).all() and not first.flags.writeable
    with pytest.raises(InputError):
        cache.get(bars, "sma", True)
