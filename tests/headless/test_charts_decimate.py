"""The equity chart's per-column decimation: first, min and max of each pixel column, in order."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.headless.charts import decimate


def _reference(values: list[float], columns: int) -> list[tuple[int, float]]:
    """The plain per-column loop the vectorised version must equal."""
    n = len(values)
    if n <= 2 * columns:
        return [(i, v) for i, v in enumerate(values) if math.isfinite(v)]
    out: list[tuple[int, float]] = []
    per = n / columns
    for c in range(columns):
        a, b = int(c * per), min(n, int((c + 1) * per))
        chunk = [(i, values[i]) for i in range(a, b) if math.isfinite(values[i])]
        if chunk:
            out.extend(sorted({chunk[0], min(chunk, key=lambda p: p[1]), max(chunk, key=lambda p: p[1])}))
    if math.isfinite(values[-1]) and (not out or out[-1][0] != n - 1):
        out.append((n - 1, values[-1]))
    return out


def test_each_column_keeps_its_first_low_and_high_point() -> None:
    values = [5.0, 1.0, 9.0, 3.0, 2.0, 2.0, 8.0, 8.0, 7.0]  # three columns of three
    assert decimate(values, 3) == [(0, 5.0), (1, 1.0), (2, 9.0), (3, 3.0), (4, 2.0), (6, 8.0), (8, 7.0)]


def test_a_column_without_a_finite_value_keeps_nothing() -> None:
    values = [1.0, 2.0, 3.0, math.nan, math.inf, math.nan, 4.0, 0.5, 6.0]
    assert decimate(values, 3) == [(0, 1.0), (2, 3.0), (6, 4.0), (7, 0.5), (8, 6.0)]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(st.floats(-5, 5, allow_nan=False), st.sampled_from([math.nan, math.inf, 0.0, 1.0])),
             min_size=1, max_size=400),
    st.integers(1, 60),
)
def test_equals_the_per_column_loop(values: list[float], columns: int) -> None:
    assert decimate(np.array(values), columns) == _reference(values, columns)
