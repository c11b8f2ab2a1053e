"""Monte Carlo of a trial's trades: how bad its drawdowns could plausibly get, and its fan of equity paths.

The trades' returns on equity (:func:`returns_on_equity`: each trade's pnl
over the account's equity before it, not over the trade's own notional) are
resampled into thousands of paths (``bootstrap``: drawn with replacement;
``reshuffle``: permuted, which keeps the final return and moves the
drawdowns), each compounded from 1. Seeded: the same trades give the same
figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

PERCENTILES = (5, 50, 95)
#: The fan's bands: these percentiles of the equity after each marked trade.
FAN_PERCENTILES = (5, 25, 50, 75, 95)


@dataclass(frozen=True, slots=True)
class MonteCarloResult:
    """Percentiles of the resampled paths (fractions: 0.1 is 10%)."""

    mode: str
    paths: int
    trades: int
    seed: int
    final_return: dict[int, float]  # percentile -> total return
    max_drawdown: dict[int, float]  # percentile -> largest fall from a peak
    threshold: float
    prob_drawdown_over: float  # share of paths whose drawdown exceeds ``threshold``
    marks: np.ndarray  # trade counts the fan is taken at
    fan: np.ndarray  # FAN_PERCENTILES × marks: equity (from 1)
    in_order_return: float  # the trades compounded in their own order, unresampled (on equity: the trial's own)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready figures (the fan as lists)."""
        return {
            "mode": self.mode,
            "paths": self.paths,
            "trades": self.trades,
            "seed": self.seed,
            "final_return": {f"p{p}": v for p, v in self.final_return.items()},
            "max_drawdown": {f"p{p}": v for p, v in self.max_drawdown.items()},
            "drawdown_threshold": self.threshold,
            "prob_drawdown_over": self.prob_drawdown_over,
            "in_order_return": self.in_order_return,
            "fan": {
                "trades": self.marks.tolist(),
                **{f"p{p}": row.tolist() for p, row in zip(FAN_PERCENTILES, self.fan, strict=True)},
            },
        }


def returns_on_equity(pnl: np.ndarray, cash: float) -> np.ndarray:
    """Each trade's ``pnl`` over the account's equity before it: ``cash`` plus the pnl of the trades before it.

    ``pnl`` in the order the trades were recorded (the order they closed; a
    trade still open at the end marked at the last close, last). Compounded in
    that order the returns telescope to ``(cash + sum(pnl)) / cash``, the
    trial's final value over its start, whatever the sizing (``size < 1``,
    risk sizing, a basket's split or shared cash). One symbol's trades never
    overlap, so the equity before a trade is the equity at its entry; in a
    basket, trades that overlap are taken as if each had started when the one
    before it closed. A trade after the account is gone (equity <= 0) has no
    return (NaN, left out of the Monte Carlo).
    """
    pnl = np.asarray(pnl, dtype=np.float64)
    before = np.empty_like(pnl)
    if pnl.size:
        before[0] = cash
        np.cumsum(pnl[:-1], out=before[1:])
        before[1:] += cash
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = pnl / before
    returns[~(before > 0.0)] = np.nan
    return returns


#: Path × trade cells per numpy chunk of :func:`bootstrap_paths_np` (bounds its memory: 8 bytes a cell).
CHUNK_CELLS = 1 << 21


def bootstrap_paths_np(
    returns: np.ndarray, seed: int, marks: np.ndarray, finals: np.ndarray, drawdowns: np.ndarray, fan: np.ndarray
) -> None:
    """The bootstrap of :func:`engine.analysis.montecarlo_nb.trade_paths_nb` in numpy, bit for bit.

    Numba's ``np.random.seed`` and ``randint`` draw the same stream as numpy's
    legacy ``RandomState(seed).randint`` (Mersenne Twister, masked rejection),
    path after path; each path compounds in the same order, so the figures
    match the kernel's exactly, without loading numba (``0 <= seed < 2**32``).
    The paths of a chunk advance together, one trade at a time (a few vector
    operations a trade beat cumulative ones along each path).
    """
    m = returns.shape[0]
    paths = finals.shape[0]
    growth = np.maximum(1.0 + returns, 0.0)
    stream = np.random.RandomState(seed)
    at_mark = np.zeros(m + 1, dtype=np.int64) - 1
    at_mark[marks] = np.arange(marks.size)
    step = max(1, CHUNK_CELLS // m)
    for lo in range(0, paths, step):
        hi = min(paths, lo + step)
        draws = np.take(growth, stream.randint(0, m, size=(hi - lo, m)).T)  # trades × paths
        equity = np.ones(hi - lo)
        peak = np.ones(hi - lo)
        # The kernel's largest fall max(1 - equity / peak) is 1 - the smallest ratio (1 - x is
        # monotone, so even rounded); fmin keeps it when a ratio is NaN, as the kernel's max does.
        lowest = np.ones(hi - lo)
        ratio = np.empty(hi - lo)
        if at_mark[0] >= 0:
            fan[lo:hi, at_mark[0]] = equity
        for i in range(m):
            equity *= draws[i]
            np.maximum(peak, equity, out=peak)
            with np.errstate(invalid="ignore"):
                np.divide(equity, peak, out=ratio)
            np.fmin(lowest, ratio, out=lowest)
            if at_mark[i + 1] >= 0:
                fan[lo:hi, at_mark[i + 1]] = equity
        finals[lo:hi] = equity - 1.0
        drawdowns[lo:hi] = 1.0 - lowest


def monte_carlo(
    returns: np.ndarray,
    *,
    paths: int = 10_000,
    mode: Literal["bootstrap", "reshuffle"] = "bootstrap",
    seed: int = 0,
    threshold: float = 0.2,
    fan_points: int = 50,
) -> MonteCarloResult:
    """Resample ``returns`` (one per trade, fractions: :func:`returns_on_equity`) into ``paths`` equity paths."""
    returns = np.ascontiguousarray(returns, dtype=np.float64)
    returns = returns[np.isfinite(returns)]
    if returns.size == 0:
        raise ValueError("monte carlo: no trades to resample")
    if paths < 1:
        raise ValueError(f"monte carlo: paths: expected >= 1, got {paths}")
    m = returns.size
    marks = np.unique(np.linspace(0, m, min(fan_points, m) + 1).round().astype(np.int64))
    finals = np.empty(paths)
    drawdowns = np.empty(paths)
    fan = np.empty((paths, marks.size))
    if mode == "bootstrap" and 0 <= seed < 2**32:
        bootstrap_paths_np(returns, seed, marks, finals, drawdowns, fan)
    else:
        from engine.analysis.montecarlo_nb import (  # numba, on first use
            BOOTSTRAP,
            RESHUFFLE,
            trade_paths_nb,
        )

        trade_paths_nb(returns, BOOTSTRAP if mode == "bootstrap" else RESHUFFLE, seed, marks, finals, drawdowns, fan)
    return MonteCarloResult(
        mode=mode,
        paths=paths,
        trades=m,
        seed=seed,
        final_return={p: float(v) for p, v in zip(PERCENTILES, np.percentile(finals, PERCENTILES), strict=True)},
        max_drawdown={p: float(v) for p, v in zip(PERCENTILES, np.percentile(drawdowns, PERCENTILES), strict=True)},
        threshold=threshold,
        prob_drawdown_over=float(np.mean(drawdowns > threshold)),
        marks=marks,
        fan=np.percentile(fan, FAN_PERCENTILES, axis=0),
        in_order_return=float(np.prod(np.maximum(1.0 + returns, 0.0)) - 1.0),
    )
