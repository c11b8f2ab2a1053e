"""Parameter stability: each trial's objective smoothed over its neighbours, and the robust best.

A spike (a best trial whose neighbours are much worse) is luck; a plateau is
a setting that survives small changes. Gridded studies use grid neighbours:
the trials one grid step away or less in every parameter (the Moore
neighbourhood, itself included). Other samplers use the ``k`` nearest trials in
parameter space normalised to [0, 1] per parameter (categories by their
position in sorted order), scored for the ``candidates`` best raw trials
(the robust best is almost always among them; brute force stays fast).
"""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: A dense grid larger than this falls back to nearest neighbours.
MAX_GRID_CELLS = 4_000_000


@dataclass(frozen=True, slots=True)
class StabilityResult:
    """Raw best against robust best; ``smoothed`` is nan for trials that were not scored."""

    method: str  # "grid" or "knn"
    neighbours: int  # k (knn), or 3**P - 1 at most (grid)
    smoothed: np.ndarray
    raw_best: int  # row of the best raw objective
    robust_best: int  # row of the best smoothed objective
    raw_best_value: float
    raw_best_smoothed: float  # the raw best's own smoothed objective
    robust_best_value: float  # the robust best's raw objective
    robust_best_smoothed: float

    @property
    def drop(self) -> float:
        """How far the raw best's neighbourhood falls below it (objective units; larger: a spike)."""
        return self.raw_best_value - self.raw_best_smoothed


def _numeric_type(kind: type) -> bool:
    """Whether values of type ``kind`` scale as numbers (``int``, ``float`` and their subclasses; not ``bool``)."""
    return issubclass(kind, int | float) and not issubclass(kind, bool)


def encode(params: Sequence[Mapping[str, Any]], names: Sequence[str]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Parameter values as a trials × parameters matrix in [0, 1], and each value's rank among its column's.

    Numbers scale linearly from their minimum to their maximum; any other
    value is placed by its rank among the column's distinct values.
    """
    n = len(params)
    matrix = np.zeros((n, len(names)))
    levels: list[np.ndarray] = []
    for q, name in enumerate(names):
        raw = [p.get(name) for p in params]
        # By distinct type, not value by value: a grid's column has one or two types and many values.
        numeric = all(_numeric_type(kind) for kind in set(map(type, raw)))
        if numeric:
            index = _scale(np.asarray(raw, dtype=np.float64), matrix[:, q])
        else:
            keys = [repr(v) for v in raw]
            distinct_keys = sorted(set(keys))
            lookup = {key: i for i, key in enumerate(distinct_keys)}
            index = np.array([lookup[key] for key in keys], dtype=np.int64)
            matrix[:, q] = index / max(1, len(distinct_keys) - 1)
        levels.append(np.asarray(index, dtype=np.int64).reshape(n))
    return matrix, levels


def encode_numbers(columns: Sequence[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """:func:`encode` of parameters whose every value is a number, given as float64 columns (one
    value per trial): the same matrix and ranks, without a pass over the trials' dicts."""
    n = len(columns[0]) if columns else 0
    matrix = np.zeros((n, len(columns)))
    levels = [np.asarray(_scale(column, matrix[:, q]), dtype=np.int64).reshape(n) for q, column in enumerate(columns)]
    return matrix, levels


def _scale(values: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``values`` scaled linearly from their minimum to their maximum into ``out``; each one's rank
    among the distinct values."""
    index = np.unique(values, return_inverse=True)[1]
    low, high = float(values.min()), float(values.max())
    out[:] = (values - low) / (high - low) if high > low else 0.0
    return index


def grid_smooth(levels: Sequence[np.ndarray], values: np.ndarray) -> np.ndarray:
    """Each trial's mean objective over its grid cell and the present cells one step away in every parameter."""
    shape = tuple(int(level.max()) + 1 for level in levels)
    total = np.zeros(shape)
    count = np.zeros(shape)
    cells = tuple(levels)
    np.add.at(total, cells, values)
    np.add.at(count, cells, 1.0)
    sum_near = np.zeros(shape)
    count_near = np.zeros(shape)
    for offset in itertools.product((-1, 0, 1), repeat=len(shape)):
        source = tuple(slice(max(0, o), s + min(0, o)) for o, s in zip(offset, shape, strict=True))
        target = tuple(slice(max(0, -o), s - max(0, o)) for o, s in zip(offset, shape, strict=True))
        sum_near[target] += total[source]
        count_near[target] += count[source]
    return sum_near[cells] / count_near[cells]


#: Candidates × trials up to which the k-nearest smoothing runs in numpy while numba is not
#: loaded (a small study's driver then never loads it); both give the same bits.
KNN_NUMPY_MAX_CELLS = 1_000_000


def knn_mean_np(points: np.ndarray, values: np.ndarray, rows: np.ndarray, k: int, out: np.ndarray) -> None:
    """:func:`engine.analysis.stability_nb.knn_mean_nb` in numpy, bit for bit.

    The same squared distances (summed column by column from 0.0), the
    neighbours in order of distance with ties to the lower index (a stable
    sort), and the candidate's value plus theirs added in that order.
    """
    n, d = points.shape
    k = min(k, n - 1)
    dist = np.zeros((rows.size, n))
    for q in range(d):
        delta = points[:, q][None, :] - points[rows, q][:, None]
        dist += delta * delta
    dist[np.arange(rows.size), rows] = np.inf  # a candidate is not its own neighbour
    nearest = np.argsort(dist, axis=1, kind="stable")[:, :k]
    total = values[rows].copy()
    for q in range(k):
        total += values[nearest[:, q]]
    out[:] = total / (k + 1)


def stability(
    params: Sequence[Mapping[str, Any]],
    objective: np.ndarray,
    *,
    names: Sequence[str] | None = None,
    maximize: bool = True,
    gridded: bool = False,
    k: int = 10,
    candidates: int = 1000,
    encoded: tuple[np.ndarray, list[np.ndarray]] | None = None,
) -> StabilityResult:
    """Smooth ``objective`` (one finite value per trial) over parameter neighbours; raw and robust best
    (``encoded``: :func:`encode` of ``params`` and ``names``, when the caller has it already)."""
    objective = np.asarray(objective, dtype=np.float64)
    if objective.size == 0 or objective.size != len(params):
        raise ValueError("stability: expected one objective per trial, and at least one trial")
    names = list(names) if names is not None else sorted({key for p in params for key in p})
    score = objective if maximize else -objective
    matrix, levels = encoded if encoded is not None else encode(params, names)
    cells = math.prod(int(level.max()) + 1 for level in levels) if levels else 1
    if gridded and levels and cells <= MAX_GRID_CELLS:
        smoothed_score = grid_smooth(levels, score)
        method, neighbours = "grid", 3 ** len(levels) - 1
    else:
        rows = np.argsort(-score, kind="stable")[: max(1, candidates)]
        smoothed_score = np.full(score.size, np.nan)
        if score.size > 1 and names:
            out = np.empty(rows.size)
            points = np.ascontiguousarray(matrix)
            small = rows.size * score.size <= KNN_NUMPY_MAX_CELLS and bool(np.isfinite(points).all())
            if small and "numba" not in sys.modules:
                knn_mean_np(points, score, rows.astype(np.int64), k, out)
            else:
                from engine.analysis.stability_nb import (
                    knn_mean_nb,  # numba: loaded by the runs that need it
                )

                knn_mean_nb(points, score, rows.astype(np.int64), k, out)
            smoothed_score[rows] = out
        else:
            smoothed_score[rows] = score[rows]
        method, neighbours = "knn", min(k, score.size - 1)
    raw_best = int(np.argmax(score))  # first of equals: the lowest row
    robust_best = int(np.nanargmax(smoothed_score))
    sign = 1.0 if maximize else -1.0
    smoothed = smoothed_score * sign
    return StabilityResult(
        method=method,
        neighbours=neighbours,
        smoothed=smoothed,
        raw_best=raw_best,
        robust_best=robust_best,
        raw_best_value=float(objective[raw_best]),
        raw_best_smoothed=float(smoothed[raw_best]),
        robust_best_value=float(objective[robust_best]),
        robust_best_smoothed=float(smoothed[robust_best]),
    )
