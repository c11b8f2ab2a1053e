"""Successive halving on growing prefixes of the data (``prune = "halving"``).

A sampler batch is first evaluated on the first ``1/eta**(rungs-1)`` of the
bars; the best ``1/eta`` of the candidates go on to a prefix ``eta`` times
longer, and so on until the survivors run on all the data. A candidate cut at
rung ``r`` is recorded ``pruned`` with ``step = r`` and the metrics it reached
there. Ties are broken by trial number, so the cut is deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from engine.store.records import TrialResult, TrialState, rank_value

#: A prefix shorter than this is not worth a rung (indicators need warm-up).
MIN_RUNG_BARS = 2_000


@dataclass(frozen=True, slots=True)
class HalvingPlan:
    """The bar counts of each rung (the last is all the bars) and the keep ratio ``1/eta``."""

    stops: tuple[int, ...]
    eta: int = 3

    @classmethod
    def for_bars(cls, n_bars: int, *, eta: int = 3, rungs: int = 3, min_bars: int = MIN_RUNG_BARS) -> HalvingPlan:
        """A plan of up to ``rungs`` rungs; rungs shorter than ``min_bars`` are dropped."""
        stops = []
        for r in range(rungs - 1, 0, -1):
            stop = n_bars // eta**r
            if stop >= min_bars:
                stops.append(stop)
        stops.append(n_bars)
        return cls(tuple(stops), eta)

    @property
    def rungs(self) -> int:
        return len(self.stops)

    def stop_for(self, rung: int) -> int | None:
        """The prefix length of ``rung`` (``None`` for all the bars)."""
        return None if rung == self.rungs - 1 else self.stops[rung]

    def survivors(self, results: Sequence[TrialResult], maximize: bool) -> tuple[list[int], list[int]]:
        """Split one rung's results into ``(promoted numbers, pruned numbers)``.

        Failed trials are neither (they are final as failed); of the others
        the best ``ceil(n / eta)`` are promoted.
        """
        alive = [r for r in results if r.state is TrialState.COMPLETE]
        alive.sort(key=lambda r: (-rank_value(r.objective, maximize), r.number))
        keep = math.ceil(len(alive) / self.eta) if alive else 0
        return [r.number for r in alive[:keep]], [r.number for r in alive[keep:]]
