"""Parameter importance: the share of the objective's variance each parameter explains on its own.

A first-order functional ANOVA estimated from the trials themselves (no
surrogate model): a parameter's values are grouped (its distinct values when
it has few, else ``bins`` quantile bins), and its importance is the variance
of the group means, weighted by group size, over the objective's total
variance (the correlation ratio η²). This is fANOVA's main effect with the
marginal read off the sampled trials instead of a random forest, which keeps
100,000 trials well under a second; interactions are what the main effects
leave unexplained (``1 - sum``, when the parameters were sampled independently).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from engine.analysis.stability import encode

#: Parameters with more distinct values than this are grouped into quantile bins.
MAX_LEVELS = 32


def importance(
    params: Sequence[Mapping[str, Any]],
    objective: np.ndarray,
    *,
    names: Sequence[str] | None = None,
    bins: int = 16,
    encoded: tuple[np.ndarray, list[np.ndarray]] | None = None,
) -> dict[str, float]:
    """``name -> η²`` in [0, 1] for each parameter, largest first (all 0 when the objective is constant;
    ``encoded``: :func:`~engine.analysis.stability.encode` of ``params`` and ``names``, when the caller
    has it already)."""
    objective = np.asarray(objective, dtype=np.float64)
    names = list(names) if names is not None else sorted({key for p in params for key in p})
    if objective.size != len(params):
        raise ValueError("importance: expected one objective per trial")
    if objective.size < 2 or not names:
        return dict.fromkeys(names, 0.0)
    matrix, levels = encoded if encoded is not None else encode(params, names)
    centred = objective - objective.mean()
    total = float(centred @ centred)
    out: dict[str, float] = {}
    for q, name in enumerate(names):
        groups = levels[q]
        if int(groups.max()) + 1 > MAX_LEVELS:
            edges = np.quantile(matrix[:, q], np.linspace(0.0, 1.0, bins + 1)[1:-1])
            groups = np.searchsorted(edges, matrix[:, q], side="right")
        counts = np.bincount(groups).astype(np.float64)
        sums = np.bincount(groups, weights=centred)
        present = counts > 0
        between = float(np.sum(sums[present] ** 2 / counts[present]))
        out[name] = between / total if total > 0.0 else 0.0
    return dict(sorted(out.items(), key=lambda item: -item[1]))
