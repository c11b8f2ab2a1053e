"""The grid sampler: every feasible grid point in grid order, one cursor of state."""

from __future__ import annotations

from typing import Any

from engine.optimize.samplers._base import Sampler
from engine.optimize.space import Space


class GridSampler(Sampler):
    """Walks the lazy grid from a cursor; constraints are filtered while walking."""

    name = "grid"

    def __init__(self, space: Space, *, seed: int = 0, direction: str = "maximize") -> None:
        super().__init__(space, seed=seed, direction=direction)
        self._size = space.grid_size  # raises ConfigError for a continuous range
        self._cursor = 0

    @property
    def cursor(self) -> int:
        """The next grid index to examine."""
        return self._cursor

    def _ask(self, n: int) -> list[dict[str, Any]]:
        points, self._cursor = self.space.walk_grid(self._cursor, n)
        return [params for _, params in points]

    @property
    def exhausted(self) -> bool:
        return self._cursor >= self._size

    def _state(self) -> dict[str, Any]:
        return {"cursor": self._cursor}

    def _restore(self, state: dict[str, Any]) -> None:
        self._cursor = int(state["cursor"])
