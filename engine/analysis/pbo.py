"""The probability of backtest overfitting by combinatorially symmetric cross-validation (CSCV).

Bailey, Borwein, López de Prado and Zhu (2017). Each trial's in-sample
performance is recorded on S equal time blocks (here: log returns, which add
up). Every split of the blocks into two halves of S/2 (all C(S, S/2) of
them, or a seeded sample of symmetric pairs when asked for fewer) picks the
trial best on one half and ranks it among all trials on the other half. With
ω its relative rank (rank / (N + 1), 1 = worst) and λ = ln(ω / (1 - ω)), the
PBO is the share of splits with λ ≤ 0: the in-sample winner did no better
than the median out of sample. Also the degradation (a least-squares line of
the chosen trial's out-of-sample figure against its in-sample one, across
splits) and the probability of an out-of-sample loss.
"""

from __future__ import annotations

import itertools
import math
import sys
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class PboResult:
    """CSCV over ``trials`` trials and ``blocks`` blocks; per-split arrays in split order."""

    pbo: float
    blocks: int
    trials: int
    splits: int  # splits evaluated
    total_splits: int  # C(blocks, blocks / 2)
    logits: np.ndarray
    chosen: np.ndarray  # the trial (row) chosen on each split's training half
    in_sample: np.ndarray  # the chosen trial's figure on the training half
    out_of_sample: np.ndarray  # ... and on the other half
    slope: float  # out-of-sample against in-sample, least squares (nan when in-sample does not vary)
    intercept: float
    prob_oos_loss: float  # share of splits whose chosen trial lost out of sample

    @property
    def sampled(self) -> bool:
        """Whether the splits were a sample of all of them."""
        return self.splits < self.total_splits

    def as_dict(self) -> dict[str, float | int | None]:
        """The scalar figures, JSON-ready (``None`` for an undefined slope)."""
        return {
            "pbo": self.pbo,
            "blocks": self.blocks,
            "trials": self.trials,
            "splits": self.splits,
            "total_splits": self.total_splits,
            "degradation_slope": None if math.isnan(self.slope) else self.slope,
            "degradation_intercept": None if math.isnan(self.intercept) else self.intercept,
            "prob_oos_loss": self.prob_oos_loss,
            "logit_median": float(np.median(self.logits)),
        }


def split_halves(blocks: int, *, max_splits: int | None = None, seed: int = 0) -> np.ndarray:
    """One half of each symmetric split pair: the halves that hold block 0 (each pair is a half and its rest).

    All ``C(blocks - 1, blocks/2 - 1)`` of them, or a seeded sample of
    ``max_splits // 2`` when that is fewer.
    """
    if blocks < 2 or blocks % 2:
        raise ValueError(f"blocks: expected an even number >= 2, got {blocks}")
    h = blocks // 2
    pairs = math.comb(blocks - 1, h - 1)
    wanted = pairs if max_splits is None else max(1, min(pairs, max_splits // 2))
    if wanted == pairs:
        rows = [(0, *rest) for rest in itertools.combinations(range(1, blocks), h - 1)]
        return np.array(rows, dtype=np.int64).reshape(pairs, h)
    rng = np.random.default_rng(seed)
    seen: set[tuple[int, ...]] = set()
    rows = []
    while len(rows) < wanted:
        rest = tuple(sorted(int(x) for x in rng.choice(np.arange(1, blocks), h - 1, replace=False)))
        if rest not in seen:
            seen.add(rest)
            rows.append((0, *rest))
    return np.array(rows, dtype=np.int64).reshape(wanted, h)


#: Split pairs × trials up to which :func:`cscv` runs in numpy when numba is not loaded yet: below
#: it numpy (about 0.12 us a cell) takes less than loading numba would (about 0.35 s), so a small
#: study's driver need not load numba at all. Both give the same bits.
NUMPY_MAX_CELLS = 1_500_000


def uses_numba(trials: int, blocks: int, *, max_splits: int | None = None) -> bool:
    """Whether :func:`cscv` of ``trials`` × ``blocks`` figures runs the numba kernel (else numpy)."""
    if blocks < 2 or blocks % 2:
        return False
    pairs = math.comb(blocks - 1, blocks // 2 - 1)
    if max_splits is not None:
        pairs = max(1, min(pairs, max_splits // 2))
    return pairs * trials > NUMPY_MAX_CELLS


def cscv_pairs_np(
    columns: np.ndarray, halves: np.ndarray, chosen: np.ndarray, chosen_train: np.ndarray,
    chosen_test: np.ndarray, ranks: np.ndarray,
) -> None:
    """:func:`engine.analysis.pbo_nb.cscv_pairs_nb` in numpy, bit for bit: the same sums in the same order.

    Each half's figure adds its blocks' columns in the half's order, the
    other half's is the total (summed block by block from 0.0) minus it; the
    chosen trial is the first strictly best (NaN never chosen; none at all
    leaves trial 0 with a test figure of 0.0, as the kernel does).
    """
    with np.errstate(invalid="ignore"):  # inf - inf is NaN here as in the kernel, silently
        _cscv_pairs_np(columns, halves, chosen, chosen_train, chosen_test, ranks)


def _cscv_pairs_np(
    columns: np.ndarray, halves: np.ndarray, chosen: np.ndarray, chosen_train: np.ndarray,
    chosen_test: np.ndarray, ranks: np.ndarray,
) -> None:
    blocks, n = columns.shape
    pairs, h = halves.shape
    total = np.zeros(n)
    for j in range(blocks):
        total += columns[j]
    a = columns[halves[:, 0]].copy()  # pairs × trials
    for d in range(1, h):
        a += columns[halves[:, d]]
    b = total - a
    rows = np.arange(pairs)
    for train, test, offset in ((a, b, 0), (b, a, 1)):
        # The kernel's ``x > best`` from -inf: NaN never wins, the first of equals does.
        scored = np.where(np.isnan(train), -np.inf, train)
        arg = np.argmax(scored, axis=1)
        best = scored[rows, arg]
        found = best > -np.inf
        arg = np.where(found, arg, 0)
        value = np.where(found, test[rows, arg], 0.0)
        less = np.count_nonzero(test < value[:, None], axis=1)
        same = np.count_nonzero(test == value[:, None], axis=1)
        chosen[offset::2] = arg
        chosen_train[offset::2] = best
        chosen_test[offset::2] = value
        ranks[offset::2] = less + (same + 1) / 2.0


def cscv(figures: np.ndarray, *, max_splits: int | None = None, seed: int = 0) -> PboResult:
    """CSCV of ``figures`` (trials × blocks, larger is better; NaN counts as the worst)."""
    figures = np.asarray(figures, dtype=np.float64)
    if figures.ndim != 2 or figures.shape[0] < 2:
        raise ValueError(f"figures: expected a matrix of at least 2 trials × blocks, got shape {figures.shape}")
    trials, blocks = figures.shape
    if np.isnan(figures).any():
        figures = np.where(np.isnan(figures), np.nanmin(figures) - 1e6 if np.isfinite(figures).any() else -1e6, figures)
    columns = np.ascontiguousarray(figures.T)
    halves = split_halves(blocks, max_splits=max_splits, seed=seed)
    splits = 2 * halves.shape[0]
    chosen = np.empty(splits, dtype=np.int64)
    inside = np.empty(splits)
    outside = np.empty(splits)
    ranks = np.empty(splits)
    if halves.shape[0] * trials <= NUMPY_MAX_CELLS and "numba" not in sys.modules:
        cscv_pairs_np(columns, halves, chosen, inside, outside, ranks)
    else:
        # A few chunks per thread: a loaded core holds up one small chunk, not half the work.
        import numba  # (with the kernel, on first use: importing the analysis package loads no numba)

        from engine.analysis.pbo_nb import cscv_pairs_nb

        chunks = min(halves.shape[0], 4 * numba.get_num_threads())
        cscv_pairs_nb(columns, halves, chunks, chosen, inside, outside, ranks)
    omega = ranks / (trials + 1)
    logits = np.log(omega / (1.0 - omega))
    slope, intercept = _line(inside, outside)
    return PboResult(
        pbo=float(np.mean(logits <= 0.0)),
        blocks=blocks,
        trials=trials,
        splits=splits,
        total_splits=math.comb(blocks, blocks // 2),
        logits=logits,
        chosen=chosen,
        in_sample=inside,
        out_of_sample=outside,
        slope=slope,
        intercept=intercept,
        prob_oos_loss=float(np.mean(outside < 0.0)),
    )


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares ``y = slope * x + intercept`` (nan, mean of y when x does not vary)."""
    dx = x - x.mean()
    var = float(dx @ dx)
    if var <= 0.0:
        return math.nan, float(y.mean())
    slope = float(dx @ (y - y.mean())) / var
    return slope, float(y.mean() - slope * x.mean())
