"""The log histogram's batch recording against recording one value at a time."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from engine.histogram import LogHistogram

_VALUES = st.one_of(st.integers(-10, 100), st.integers(0, 2**63 - 1), st.integers(1, 62).map(lambda k: 2**k - 1),
                    st.integers(0, 62).map(lambda k: 2**k))


@given(st.lists(_VALUES, max_size=40), st.lists(st.integers(0, 10**6), max_size=3))
def test_recording_many_values_at_once_counts_as_recording_each(values: list[int], before: list[int]) -> None:
    """Buckets (around every power of two, past 2**53 where floats round), count, sum, min and max agree."""
    one, many = LogHistogram(), LogHistogram()
    for value in before:
        one.record(value)
        many.record(value)
    for value in values:
        one.record(value)
    many.record_many(np.array(values, dtype=np.int64))
    assert (one._counts, one.count, one.total, one.min, one.max) == (
        many._counts, many.count, many.total, many.min, many.max)
    assert one.snapshot() == many.snapshot()
