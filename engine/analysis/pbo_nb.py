"""Numba kernel of combinatorially symmetric cross-validation: every split's chosen trial and its rank."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from engine.strategy.nb import kernel

#: Trials per tile: a tile's columns stay in cache while every split visits them.
TILE = 512


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
def _floor_nb(best: float, tie: bool) -> float:
    """The figure a trial must exceed to beat ``best``: ``best`` itself, or where an equal trial would
    win (``tie``: it comes first), the next float down (NaN still compares false)."""
    return np.nextafter(best, -np.inf) if tie else best


@kernel
def _tile_pass_nb(
    previous: np.ndarray, column: np.ndarray, totals: np.ndarray, floor_a: float, floor_b: float,
    va: float, vb: float,
) -> tuple[bool, int, int, int, int]:
    """Over one tile (half A ``previous + column``, B the total less A): whether a trial's A exceeds
    ``floor_a`` or its B ``floor_b``, and how many B figures are below and equal to ``va``, and A
    figures to ``vb``.

    Counts, not a branch per trial, so the loop vectorises; NaN compares false.
    """
    beats = 0
    la = 0
    sa = 0
    lb = 0
    sb = 0
    for i in range(previous.shape[0]):
        a = previous[i] + column[i]
        b = totals[i] - a
        beats += (a > floor_a) | (b > floor_b)
        la += b < va
        sa += b == va
        lb += a < vb
        sb += a == vb
    return beats > 0, la, sa, lb, sb


@kernel
def _beats_nb(previous: np.ndarray, column: np.ndarray, totals: np.ndarray, floor_a: float, floor_b: float) -> bool:
    """Whether a trial's A (``previous + column``) exceeds ``floor_a`` or its B ``floor_b``."""
    beats = 0
    for i in range(previous.shape[0]):
        a = previous[i] + column[i]
        beats += (a > floor_a) | (totals[i] - a > floor_b)
    return beats > 0


#: Trials per step of a tile's exact scan: a step none of whose trials can win is skipped whole.
STEP = 16


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
    m = previous.shape[0]
    for i0 in range(0, m, STEP):
        i1 = min(m, i0 + STEP)
        j = start + i0
        if not _beats_nb(previous[i0:i1], column[i0:i1], totals[i0:i1], _floor_nb(ba, j < ia), _floor_nb(bb, j < ib)):
            continue
        for i in range(i0, i1):
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
    """:func:`_tile_pass_nb`'s counts alone (the comparisons with no floor are compiled away)."""
    _, la, sa, lb, sb = _tile_pass_nb(previous, column, totals, np.inf, np.inf, va, vb)
    return la, sa, lb, sb


@kernel
def _operands(
    columns: np.ndarray, levels: np.ndarray, half: np.ndarray, start: int, stop: int
) -> tuple[np.ndarray, np.ndarray]:
    """The two tile vectors whose sum is half ``half``'s figure: its last stored level and last column."""
    h = half.shape[0]
    column = columns[half[h - 1], start:stop]
    if h == 1:
        return column, levels[0, : stop - start]  # -0.0s
    return levels[h - 2, : stop - start], column


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
    # The ranks are counted in the first pass against the best so far; the tiles visited before its
    # last change (from ``since``) are counted again in a second pass against the final best.
    since_a = np.zeros(pairs, dtype=np.int64)
    since_b = np.zeros(pairs, dtype=np.int64)
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
        for k in range(tiles):
            start = order[k]
            stop = min(n, start + TILE)
            totals = total[start:stop]
            for p in range(lo, hi):
                _half_sums_nb(columns, halves[p], 0 if p == lo else changes[p], start, stop, levels)
                previous, column = _operands(columns, levels, halves[p], start, stop)
                beats, la, sa, lb, sb = _tile_pass_nb(
                    previous, column, totals, _floor_nb(best_a[p], start < arg_a[p]),
                    _floor_nb(best_b[p], start < arg_b[p]), test_a[p], test_b[p],
                )
                if beats:
                    ia = arg_a[p]
                    ib = arg_b[p]
                    _tile_best_nb(previous, column, totals, start, p, best_a, best_b, arg_a, arg_b, test_a, test_b)
                    if arg_a[p] != ia or arg_b[p] != ib:
                        la2, sa2, lb2, sb2 = _tile_ranks_nb(previous, column, totals, test_a[p], test_b[p])
                        if arg_a[p] != ia:
                            la, sa, less_a[p], same_a[p], since_a[p] = la2, sa2, 0, 0, k
                        if arg_b[p] != ib:
                            lb, sb, less_b[p], same_b[p], since_b[p] = lb2, sb2, 0, 0, k
                less_a[p] += la
                same_a[p] += sa
                less_b[p] += lb
                same_b[p] += sb
        again = 0
        for p in range(lo, hi):
            again = max(again, since_a[p], since_b[p])
        for k in range(again):
            start = order[k]
            stop = min(n, start + TILE)
            totals = total[start:stop]
            first = 0  # the first level that differs from the last half summed (all of them at first)
            for p in range(lo, hi):
                first = min(first, changes[p])
                if k >= since_a[p] and k >= since_b[p]:
                    continue
                _half_sums_nb(columns, halves[p], first, start, stop, levels)
                first = h
                previous, column = _operands(columns, levels, halves[p], start, stop)
                la, sa, lb, sb = _tile_ranks_nb(previous, column, totals, test_a[p], test_b[p])
                if k < since_a[p]:
                    less_a[p] += la
                    same_a[p] += sa
                if k < since_b[p]:
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
