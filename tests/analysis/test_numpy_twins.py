"""The numpy twins of the analysis kernels give the kernels' bits, so a study's driver can skip numba."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from engine.analysis.montecarlo import bootstrap_paths_np
from engine.analysis.montecarlo_nb import BOOTSTRAP, trade_paths_nb
from engine.analysis.pbo import cscv_pairs_np, split_halves
from engine.analysis.pbo_nb import cscv_pairs_nb
from engine.analysis.stability import knn_mean_np
from engine.analysis.stability_nb import knn_mean_nb


def _cscv_outputs(pairs: int) -> list[np.ndarray]:
    return [np.empty(2 * pairs, np.int64), np.empty(2 * pairs), np.empty(2 * pairs), np.empty(2 * pairs)]


#: Figures as stored (float32 steps), with ties, zeros and infinities mixed in.
_figure = st.one_of(
    st.floats(-0.5, 0.5, width=32),
    st.sampled_from([0.0, -0.0, 0.01, -0.01, -math.inf, math.inf]),
)


@settings(max_examples=150, deadline=None)
@given(
    st.integers(2, 40).flatmap(
        lambda n: st.tuples(st.just(n), st.sampled_from([2, 4, 6, 8]), st.integers(0, 2**16))
    ).flatmap(
        lambda t: st.tuples(arrays(np.float64, (t[1], t[0]), elements=_figure), st.just(t[2]))
    )
)
def test_cscv_in_numpy_is_the_kernel_bit_for_bit(case: tuple[np.ndarray, int]) -> None:
    columns, seed = case
    blocks = columns.shape[0]
    halves = split_halves(blocks, max_splits=None if seed % 2 else 6, seed=seed)
    want, got = _cscv_outputs(halves.shape[0]), _cscv_outputs(halves.shape[0])
    cscv_pairs_nb(np.ascontiguousarray(columns), halves, 3, *want)
    cscv_pairs_np(np.ascontiguousarray(columns), halves, *got)
    for a, b in zip(want, got, strict=True):
        np.testing.assert_array_equal(a, b)
        assert np.array_equal(np.signbit(a), np.signbit(b))  # -0.0 and 0.0 kept apart


def test_cscv_kernel_over_several_tiles_keeps_the_first_of_equals_across_tiles() -> None:
    """More trials than one tile of the kernel: the best and its ties fall in different tiles (the first
    stays, -0.0 before 0.0 included), and every rank counts every tile; the numpy twin's bits."""
    from engine.analysis.pbo_nb import TILE

    rng = np.random.default_rng(5)
    n, blocks = 3 * TILE + 17, 6
    columns = rng.integers(-4, 5, size=(blocks, n)).astype(np.float64) * 0.25  # many exact ties
    columns[:, TILE + 3] = 2.0  # the best on every half, first in the second tile ...
    columns[:, 2 * TILE + 5] = 2.0  # ... tied in the third tile and in the last, partial one
    columns[:, 3 * TILE + 1] = 2.0
    columns[:, 7] = -0.0
    columns[0, 9] = math.inf
    columns[1, 9] = -math.inf  # its total is NaN: never chosen, never ranked below
    halves = split_halves(blocks)
    want, got = _cscv_outputs(halves.shape[0]), _cscv_outputs(halves.shape[0])
    cscv_pairs_nb(columns, halves, 2, *want)
    cscv_pairs_np(columns, halves, *got)
    for a, b in zip(want, got, strict=True):
        np.testing.assert_array_equal(a, b)
        assert np.array_equal(np.signbit(a), np.signbit(b))
    # The 2.0 trial wins every half that does not hold trial 9's infinity: the first of its ties, never a later one.
    assert set(want[0].tolist()) == {TILE + 3, 9}


@settings(max_examples=100, deadline=None)
@given(
    arrays(np.float64, st.integers(1, 60), elements=st.floats(-1.5, 3.0)),
    st.integers(0, 2**32 - 1),
    st.integers(1, 300),
    st.integers(1, 30),
)
def test_bootstrap_in_numpy_is_the_kernel_bit_for_bit(returns: np.ndarray, seed: int, paths: int, points: int) -> None:
    m = returns.size
    marks = np.unique(np.linspace(0, m, min(points, m) + 1).round().astype(np.int64))
    want = (np.empty(paths), np.empty(paths), np.empty((paths, marks.size)))
    got = (np.empty(paths), np.empty(paths), np.empty((paths, marks.size)))
    trade_paths_nb(returns, BOOTSTRAP, seed, marks, *want)
    bootstrap_paths_np(returns, seed, marks, *got)
    for a, b in zip(want, got, strict=True):
        np.testing.assert_array_equal(a, b)


def test_bootstrap_in_numpy_chunks_the_paths_without_changing_them(monkeypatch: object) -> None:
    import engine.analysis.montecarlo as montecarlo

    returns = np.random.default_rng(1).normal(0.001, 0.03, 97)
    marks = np.array([0, 10, 50, 97])
    whole = (np.empty(500), np.empty(500), np.empty((500, 4)))
    bootstrap_paths_np(returns, 7, marks, *whole)
    monkeypatch.setattr(montecarlo, "CHUNK_CELLS", 97 * 3 + 5)  # type: ignore[attr-defined]
    chunked = (np.empty(500), np.empty(500), np.empty((500, 4)))
    bootstrap_paths_np(returns, 7, marks, *chunked)
    for a, b in zip(whole, chunked, strict=True):
        np.testing.assert_array_equal(a, b)


@settings(max_examples=100, deadline=None)
@given(
    st.integers(2, 60).flatmap(
        lambda n: st.tuples(
            arrays(np.float64, (n, 2), elements=st.sampled_from([0.0, 0.25, 0.5, 1.0]) | st.floats(0, 1)),
            arrays(np.float64, n, elements=st.floats(-5, 5)),
            st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True),
        )
    ),
    st.integers(0, 12),
)
def test_knn_in_numpy_is_the_kernel_bit_for_bit(case: tuple[np.ndarray, np.ndarray, list[int]], k: int) -> None:
    points, values, candidates = case
    rows = np.array(candidates, dtype=np.int64)
    want, got = np.empty(rows.size), np.empty(rows.size)
    knn_mean_nb(points, values, rows, k, want)
    knn_mean_np(points, values, rows, k, got)
    np.testing.assert_array_equal(want, got)
