"""The block-character sparkline: rows, scaling and bucketing against a slow reference."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from genesis_tui.widgets._spark import BLOCKS, bucket_max, spark_rows


def eighths(rows: list[str], column: int) -> int:
    """How many eighths of a cell are filled in ``column``, counted from the drawn rows."""
    return sum(BLOCKS.index(row[column]) for row in rows)


def test_lowest_on_the_baseline_highest_fills_the_box() -> None:
    rows = spark_rows([1.0, 5.0, 3.0], width=3, height=4)
    assert len(rows) == 4 and all(len(r) == 3 for r in rows)
    assert [r[1] for r in rows] == ["█"] * 4  # the maximum: every row full
    assert [r[0] for r in rows] == [" ", " ", " ", "▁"]  # the minimum: one eighth on the baseline
    assert eighths(rows, 2) == 1 + round((3 - 1) / 4 * 31)


def test_short_data_is_right_aligned_and_flat_data_is_half_height() -> None:
    rows = spark_rows([2.0, 2.0], width=5, height=2)
    assert [r[:3] for r in rows] == ["   ", "   "]
    assert eighths(rows, 3) == eighths(rows, 4) == 8


def test_non_finite_values_are_skipped_and_no_data_is_blank() -> None:
    assert spark_rows([math.nan, 1.0, math.inf, 3.0], width=2, height=1) == ["▁█"]
    assert spark_rows([], width=3, height=2) == ["   ", "   "]
    assert spark_rows([1.0], width=0, height=2) == []


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=300), st.integers(1, 80))
def test_bucket_max_matches_a_slow_reference(values: list[float], width: int) -> None:
    got = bucket_max(values, width)
    if len(values) <= width:
        assert got == values
        return
    # reference: column i takes the values whose index maps to it, i = floor(index * width / n) in spirit
    assert len(got) == width
    assert max(got) == max(values) and set(got) <= set(values)
    covered = [False] * len(values)
    n = len(values)
    for i in range(width):
        lo, hi = round(i * n / width), round((i + 1) * n / width)
        chunk = values[lo : max(lo + 1, hi)]
        assert got[i] == max(chunk)
        for j in range(lo, max(lo + 1, hi)):
            covered[j] = True
    assert all(covered)


@given(st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=40), st.integers(1, 6))
def test_taller_values_never_draw_shorter_columns(values: list[float], height: int) -> None:
    rows = spark_rows(values, width=len(values), height=height)
    assert len(rows) == height and all(len(r) == len(values) for r in rows)
    filled = [eighths(rows, c) for c in range(len(values))]
    for a in range(len(values)):
        for b in range(len(values)):
            if values[a] < values[b]:
                assert filled[a] <= filled[b]
    assert max(filled) == height * 8 or max(values) == min(values)


def test_a_fixed_scale_draws_percentages_to_size() -> None:
    rows = spark_rows([50.0, 100.0, 0.0], width=3, height=2, low=0, high=100)
    assert eighths(rows, 1) == 16  # 100 % fills the box
    assert eighths(rows, 0) == 1 + round(0.5 * 15)  # 50 % reaches half way
    assert eighths(rows, 2) == 1  # 0 % sits on the baseline
    # data outside the scale widens it rather than being cut off
    assert eighths(spark_rows([150.0, 0.0], width=2, height=1, low=0, high=100), 0) == 8
