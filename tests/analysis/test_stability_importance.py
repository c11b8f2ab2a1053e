"""Stability (raw against robust best) and importance (variance explained) on surfaces built to know the answer."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.analysis.importance import importance
from engine.analysis.stability import encode, encode_numbers, grid_smooth, stability

GRID = [{"fast": f, "slow": s} for f in range(2, 60, 2) for s in range(10, 300, 10)]


def _plateau_with_a_spike() -> tuple[np.ndarray, int]:
    objective = np.array([np.exp(-((p["fast"] - 30) ** 2 / 200 + (p["slow"] - 150) ** 2 / 5000)) for p in GRID])
    spike = GRID.index({"fast": 4, "slow": 20})
    objective[spike] = 3.0
    return objective, spike


@pytest.mark.parametrize("gridded", [True, False])
def test_the_spike_is_the_raw_best_and_the_plateau_the_robust_one(gridded: bool) -> None:
    objective, spike = _plateau_with_a_spike()
    result = stability(GRID, objective, gridded=gridded, k=8)
    assert result.method == ("grid" if gridded else "knn")
    assert result.raw_best == spike and result.raw_best_value == 3.0
    assert GRID[result.robust_best] == {"fast": 30, "slow": 150}
    assert result.drop > 2.0  # the spike's neighbours are far below it
    flipped = stability(GRID, -objective, gridded=gridded, k=8, maximize=False)
    assert (flipped.raw_best, flipped.robust_best) == (result.raw_best, result.robust_best)


def test_grid_smoothing_is_the_mean_over_the_moore_neighbourhood() -> None:
    levels = [np.array([0, 0, 1, 1, 2]), np.array([0, 1, 0, 1, 1])]
    values = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    smoothed = grid_smooth(levels, values)
    assert smoothed[0] == pytest.approx((1 + 2 + 3 + 4) / 4)  # (0,0): cells (0..1, 0..1)
    assert smoothed[4] == pytest.approx((3 + 4 + 10) / 3)  # (2,1): cells (1..2, 0..1) present


def test_importance_finds_the_parameters_that_move_the_objective() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((20_000, 3))
    objective = 3 * x[:, 0] + 0.5 * np.sin(6 * x[:, 1]) + rng.normal(0, 0.1, x.shape[0])
    params = [{"a": a, "b": b, "kind": ["x", "y", "z"][int(c * 3)]} for a, b, c in x.tolist()]
    scores = importance(params, objective)
    assert list(scores) == ["a", "b", "kind"]
    assert scores["a"] > 0.7 and 0.05 < scores["b"] < 0.3 and scores["kind"] < 0.01
    assert sum(scores.values()) <= 1.0 + 1e-9
    assert importance(params[:5], np.ones(5)) == {"a": 0.0, "b": 0.0, "kind": 0.0}


def test_importance_of_a_grid_uses_its_levels_exactly() -> None:
    # objective = fast level only: fast explains everything, slow nothing.
    objective = np.array([float(p["fast"]) for p in GRID])
    scores = importance(GRID, objective)
    assert scores["fast"] == pytest.approx(1.0) and scores["slow"] == pytest.approx(0.0, abs=1e-12)


def test_knn_scores_only_the_candidates() -> None:
    rng = np.random.default_rng(1)
    params = [{"a": float(a), "b": float(b)} for a, b in rng.random((500, 2))]
    result = stability(params, rng.random(500), candidates=50)
    assert int(np.isfinite(result.smoothed).sum()) == 50
    assert np.isfinite(result.smoothed[result.raw_best])


def test_encode_scales_int_and_float_columns_and_ranks_every_other_column_by_repr() -> None:
    from engine.analysis.stability import encode

    params = [
        {"n": 10, "x": 0.5, "kind": "b", "big": np.int64(10)},
        {"n": 9, "x": np.float64(1.5), "kind": "a", "big": np.int64(9)},
        {"n": 2.5, "x": 1.0, "big": np.int64(100)},  # "kind" missing: None, a category of its own
    ]
    matrix, levels = encode(params, ["n", "x", "kind", "big"])
    assert matrix[:, 0].tolist() == [1.0, (9 - 2.5) / 7.5, 0.0]  # ints and floats mixed: by value, not repr
    assert matrix[:, 1].tolist() == [0.0, 1.0, 0.5]  # a numpy float is a float
    assert levels[2].tolist() == [1, 0, 2]  # repr order: "'a'" < "'b'" < "None"
    assert levels[3].tolist() == [0, 2, 1]  # numpy ints are not int: "np.int64(10)" < "...(100)" < "...(9)"


@given(st.lists(st.tuples(st.integers(-5, 5), st.floats(-1e6, 1e6, allow_nan=False), st.sampled_from([0, 0.5, 2])),
                min_size=1, max_size=60))
def test_numbers_given_as_columns_encode_as_their_dicts_do(rows: list[tuple[int, float, float]]) -> None:
    """:func:`encode_numbers` of float columns is :func:`encode` of the same numbers in dicts, bit for bit."""
    params = [{"a": a, "b": b, "c": c} for a, b, c in rows]
    columns = [np.array([p[name] for p in params], dtype=np.float64) for name in ("a", "b", "c")]
    matrix, levels = encode(params, ["a", "b", "c"])
    matrix_n, levels_n = encode_numbers(columns)
    assert matrix.tobytes() == matrix_n.tobytes()
    assert all(x.dtype == y.dtype and np.array_equal(x, y) for x, y in zip(levels, levels_n, strict=True))
