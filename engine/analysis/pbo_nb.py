"""Numba kernel of combinatorially symmetric cross-validation: every split's chosen trial and its rank."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from engine.strategy.nb import kernel

#: Trials per tile: a tile's columns stay in cache while every split visits them.
TILE = 256


@kernel
def _half_sums_nb(
    columns: np.ndarray, half: np.ndarray, first: int, start: int, stop: int, levels: np.ndarray
) -> None:
    """``levels[d, :stop - start]``: each trial's sum over ``half[:d + 1]``, for ``first <= d < len(half) - 1``.

    Consecutive halves (sorted) share their leading blocks, so only the levels
    from the first block that changed are summed again: about one column per
    half. The last level is not stored: the passes add its column as they go.
    """
    m = stop - start
    for d in range(first, half.shape[0] - 1):
        # Contiguous 1-D views indexed from 0: no offset or wraparound per element, so the loops vectorise.
        column = columns[half[d], start:stop]
        level = levels[d, :m]
        if d == 0:
            for i in range(m):
                level[i] = column[i]
        else:
            previous = levels[d - 1, :m]
            for i in range(m):
                level[i] = previous[i] + column[i]


@kernel
def _tile_beats_nb(
    previous: np.ndarray, column: np.ndarray, totals: np.ndarray, ba: float, bb: float, tie_a: bool, tie_b: bool
) -> bool:
    """Whether a trial of the tile may beat ``ba`` on half A (``previous + column``) or ``bb`` on B
    (equal counts too where ``tie_a``, ``tie_b``: the tile comes before the best so far).

    A count, not a branch per trial, so the loop vectorises; NaN compares false.
    """
    beats = 0
    for i in range(previous.shape[0]):
        a = previous[i] + column[i]
        b = totals[i] - a
        beats += (a > ba) | (b > bb) | (tie_a & (a == ba)) | (tie_b & (b == bb))
    return beats > 0


@kernel
def _tile_best_nb(
    previous: np.ndarray, column: np.ndarray, totals: np.ndarray, start: int, p: int, best_a: np.ndarray,
    best_b: np.ndarray, arg_a: np.ndarray, arg_b: np.ndarray, test_a: np.ndarray, test_b: np.ndarray,
) -> None:
    """Fold one tile into split pair ``p``'s best trials: half A is ``previous + column``, B the total
    less A. The larger figure wins, the lower trial among equals (tiles come in any order); NaN never
    wins, nor does anything before a first winner (``arg -1``) merely by equalling ``-inf``."""
    ba = best_a[p]
    bb = best_b[p]
    ia = arg_a[p]
    ib = arg_b[p]
    ta = test_a[p]
    tb = test_b[p]
    for i in range(previous.shape[0]):
        a = previous[i] + column[i]
        b = totals[i] - a
        if a > ba or (a == ba and start + i < ia):
            ba = a
            ia = start + i
            ta = b
        if b > bb or (b == bb and start + i < ib):
            bb = b
            ib = start + i
            tb = a
    best_a[p] = ba
    best_b[p] = bb
    arg_a[p] = ia
    arg_b[p] = ib
    test_a[p] = ta
    test_b[p] = tb


@kernel
def _tile_ranks_nb(
    previous: np.ndarray, column: np.ndarray, totals: np.ndarray, va: float, vb: float
) -> tuple[int, int, int, int]:
    """Over one tile: how many B figures are below and equal to ``va``, and A figures to ``vb``."""
    la = 0
    sa = 0
    lb = 0
    sb = 0
    for i in range(previous.shape[0]):
        a = previous[i] + column[i]
        b = totals[i] - a
        la += b < va
        sa += b == va
        lb += a < vb
        sb += a == vb
    return la, sa, lb, sb


@kernel
def _first_changes_nb(halves: np.ndarray) -> np.ndarray:
    """For each half, the first position at which it differs from the one before (0 for the first)."""
    pairs, h = halves.shape
    out = np.zeros(pairs, dtype=np.int64)
    for p in range(1, pairs):
        d = 0
        while d < h - 1 and halves[p, d] == halves[p - 1, d]:
            d += 1
        out[p] = d
    return out


#: The CSCV kernel runs chunks of split pairs on every core numba was given.
_parallel = njit(cache=True, nogil=True, parallel=True, error_model="numpy")


@_parallel
def cscv_pairs_nb(
    columns: np.ndarray,
    halves: np.ndarray,
    chunks: int,
    chosen: np.ndarray,
    chosen_train: np.ndarray,
    chosen_test: np.ndarray,
    ranks: np.ndarray,
) -> None:
    """Score split pairs over ``columns`` (blocks × trials): ``halves[p]`` lists one half's blocks.

    Split ``2p`` trains on ``halves[p]`` and tests on the other blocks, split
    ``2p + 1`` the other way round. A half's figure is the sum of its blocks'
    figures (log returns add up); the trial best on the training half (ties:
    the lowest index) is chosen. Writes, per split, the chosen trial, its
    train and test figures and its rank among all trials on the test half
    (1 = worst; ties share their average rank). The pairs are cut into
    ``chunks`` contiguous runs, run in parallel (each its own buffers, so
    the results do not depend on the number of threads).
    """
    s, n = columns.shape
    pairs, h = halves.shape
    total = np.zeros(n)
    for j in range(s):
        for i in range(n):
            total[i] += columns[j, i]
    changes = _first_changes_nb(halves)
    best_a = np.full(pairs, -np.inf)
    best_b = np.full(pairs, -np.inf)
    arg_a = np.full(pairs, -1)  # none yet
    arg_b = np.full(pairs, -1)
    test_a = np.zeros(pairs)  # split 2p: chosen on half A, tested on the rest (B)
    test_b = np.zeros(pairs)  # split 2p + 1: chosen on B, tested on A
    less_a = np.zeros(pairs, dtype=np.int64)
    same_a = np.zeros(pairs, dtype=np.int64)
    less_b = np.zeros(pairs, dtype=np.int64)
    same_b = np.zeros(pairs, dtype=np.int64)
    # Tiles holding the best totals first: the best of each half is found early and later tiles rarely
    # beat it, so most are only counted over (the winner does not depend on the order).
    tiles = (n + TILE - 1) // TILE
    peaks = np.full(tiles, -np.inf)
    for i in range(n):
        if total[i] > peaks[i // TILE]:
            peaks[i // TILE] = total[i]
    order = np.argsort(-peaks) * TILE
    for c in prange(chunks):
        lo = c * pairs // chunks
        hi = (c + 1) * pairs // chunks
        levels = np.empty((h, TILE))
        # A one-block half has no stored level: its sum is the column itself, plus -0.0 (which keeps every bit).
        levels[h - 1, :] = -0.0
        for start in order:
            stop = min(n, start + TILE)
            m = stop - start
            totals = total[start:stop]
            for p in range(lo, hi):
                _half_sums_nb(columns, halves[p], 0 if p == lo else changes[p], start, stop, levels)
                column = columns[halves[p, h - 1], start:stop]
                previous = levels[h - 2, :m] if h > 1 else levels[h - 1, :m]
                if h == 1:
                    previous, column = column, previous
                if _tile_beats_nb(previous, column, totals, best_a[p], best_b[p], start < arg_a[p], start < arg_b[p]):
                    _tile_best_nb(previous, column, totals, start, p, best_a, best_b, arg_a, arg_b, test_a, test_b)
        for start in range(0, n, TILE):
            stop = min(n, start + TILE)
            m = stop - start
            totals = total[start:stop]
            for p in range(lo, hi):
                _half_sums_nb(columns, halves[p], 0 if p == lo else changes[p], start, stop, levels)
                column = columns[halves[p, h - 1], start:stop]
                previous = levels[h - 2, :m] if h > 1 else levels[h - 1, :m]
                if h == 1:
                    previous, column = column, previous
                la, sa, lb, sb = _tile_ranks_nb(previous, column, totals, test_a[p], test_b[p])
                less_a[p] += la
                same_a[p] += sa
                less_b[p] += lb
                same_b[p] += sb
    for p in range(pairs):
        chosen[2 * p] = max(arg_a[p], 0)
        chosen[2 * p + 1] = max(arg_b[p], 0)
        chosen_train[2 * p] = best_a[p]
        chosen_test[2 * p] = test_a[p]
        ranks[2 * p] = less_a[p] + (same_a[p] + 1) / 2.0
        chosen_train[2 * p + 1] = best_b[p]
        chosen_test[2 * p + 1] = test_b[p]
        ranks[2 * p + 1] = less_b[p] + (same_b[p] + 1) / 2.0
