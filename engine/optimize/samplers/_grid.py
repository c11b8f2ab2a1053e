"""The grid sampler: every feasible grid point in grid order, one cursor of state."""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.optimize.samplers._base import Sampler
from engine.optimize.space import Space

#: Grid indices checked against the constraints per numpy block (the walk's own block sizes;
#: where a walk stops does not depend on them).
_BLOCK = 1 << 14
#: Past this size an index is no int64: the grid is walked a point at a time (``Space.walk_grid``).
_VECTOR_LIMIT = 1 << 62


class GridSampler(Sampler):
    """Walks the lazy grid from a cursor; constraints are filtered while walking."""

    name = "grid"
    asks_ahead = True  # (tell is the base no-op)

    def __init__(self, space: Space, *, seed: int = 0, direction: str = "maximize") -> None:
        super().__init__(space, seed=seed, direction=direction)
        self._size = space.grid_size  # raises ConfigError for a continuous range
        self._cursor = 0

    @property
    def cursor(self) -> int:
        """The next grid index to examine."""
        return self._cursor

    def _ask(self, n: int) -> list[dict[str, Any]]:
        if self._size > _VECTOR_LIMIT:
            points, self._cursor = self.space.walk_grid(self._cursor, n)
            return [params for _, params in points]
        # Space.walk_grid's points and cursor, with the points built from per-dimension tables
        # (Space.grid_points) rather than one index at a time.
        taken: list[np.ndarray] = []
        count = 0
        cursor = self._cursor
        while cursor < self._size and count < n:
            stop = min(self._size, cursor + _BLOCK)
            feasible = self.space.feasible_indices(cursor, stop)[: n - count]
            taken.append(feasible)
            count += len(feasible)
            cursor = int(feasible[-1]) + 1 if count >= n else stop
        self._cursor = min(cursor, self._size)
        if not count:
            return []
        return self.space.grid_points(np.concatenate(taken))

    @property
    def exhausted(self) -> bool:
        return self._cursor >= self._size

    def _state(self) -> dict[str, Any]:
        return {"cursor": self._cursor}

    def _restore(self, state: dict[str, Any]) -> None:
        self._cursor = int(state["cursor"])
