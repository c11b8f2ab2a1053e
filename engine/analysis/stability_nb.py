"""Numba kernel of the parameter-stability smoothing: the mean objective of each candidate's k nearest trials."""

from __future__ import annotations

import numpy as np

from engine.strategy.nb import kernel


@kernel
def knn_mean_nb(points: np.ndarray, values: np.ndarray, rows: np.ndarray, k: int, out: np.ndarray) -> None:
    """``out[i]``: the mean of ``values`` over the candidate ``rows[i]`` and its ``k`` nearest other points.

    Euclidean distance over the columns of ``points`` (normalised to [0, 1]);
    ties at the k-th distance go to the lower index. Brute force, one
    candidate at a time against every point, keeping a small sorted list.
    """
    n, d = points.shape
    k = min(k, n - 1)
    best_d = np.empty(k + 1)
    best_i = np.empty(k + 1, dtype=np.int64)
    for c in range(rows.shape[0]):
        r = rows[c]
        filled = 0
        for j in range(n):
            if j == r:
                continue
            dist = 0.0
            for q in range(d):
                delta = points[j, q] - points[r, q]
                dist += delta * delta
            if filled == k and dist >= best_d[k - 1]:
                continue
            pos = filled if filled < k else k - 1
            while pos > 0 and best_d[pos - 1] > dist:
                best_d[pos] = best_d[pos - 1]
                best_i[pos] = best_i[pos - 1]
                pos -= 1
            best_d[pos] = dist
            best_i[pos] = j
            if filled < k:
                filled += 1
        total = values[r]
        for q in range(filled):
            total += values[best_i[q]]
        out[c] = total / (filled + 1)
