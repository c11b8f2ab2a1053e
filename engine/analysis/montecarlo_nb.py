"""Numba kernel of the trade Monte Carlo: resampled equity paths, their final return and drawdown."""

from __future__ import annotations

import numpy as np

from engine.strategy.nb import kernel

BOOTSTRAP = 0  # draw each trade with replacement
RESHUFFLE = 1  # permute the trades (the final return is kept, the drawdowns change)


@kernel
def trade_paths_nb(
    returns: np.ndarray,
    mode: int,
    seed: int,
    marks: np.ndarray,
    finals: np.ndarray,
    drawdowns: np.ndarray,
    fan: np.ndarray,
) -> None:
    """Path ``k`` of ``finals.shape[0]``: the trades' returns resampled (``mode``), compounded from 1.

    ``finals[k]`` gets the path's total return, ``drawdowns[k]`` its largest
    peak-to-trough fall (a fraction), ``fan[k, j]`` its equity after
    ``marks[j]`` trades (``marks`` ascending, 0 for the start). Seeded: the
    same arguments give the same paths.
    """
    np.random.seed(seed)
    m = returns.shape[0]
    order = np.arange(m)
    for k in range(finals.shape[0]):
        if mode == RESHUFFLE:
            for i in range(m - 1, 0, -1):  # Fisher-Yates
                j = np.random.randint(0, i + 1)
                order[i], order[j] = order[j], order[i]
        equity = 1.0
        peak = 1.0
        worst = 0.0
        mark = 0
        while mark < marks.shape[0] and marks[mark] == 0:
            fan[k, mark] = equity
            mark += 1
        for i in range(m):
            r = returns[np.random.randint(0, m)] if mode == BOOTSTRAP else returns[order[i]]
            equity *= max(1.0 + r, 0.0)
            peak = max(peak, equity)
            worst = max(worst, 1.0 - equity / peak)
            while mark < marks.shape[0] and marks[mark] == i + 1:
                fan[k, mark] = equity
                mark += 1
        finals[k] = equity - 1.0
        drawdowns[k] = worst
