"""The random sampler: uniform draws over the space, never the same point twice.

Two modes, chosen from the space:

* **Permutation** (every dimension finite and none log-scaled): the grid walked
  in a seeded pseudo-random order, a Feistel permutation of ``[0, grid_size)``
  with cycle walking. Exactly uniform sampling without replacement, exhaustion
  is exact, and the state is one cursor however long the study runs.
* **Draws** (a continuous or log-scaled dimension): one ``numpy`` Generator draw
  of unit coordinates per attempt, rejected when infeasible or already
  produced; after ``MAX_REJECTIONS`` consecutive rejections the sampler is
  exhausted. The state is the generator's ``bit_generator.state`` and the
  counts; for a finite space, restoring replays the draws from the seed to
  rebuild the set of produced keys (a continuous dimension makes repeats
  impossible in practice, so that replay is skipped).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.errors import ConfigError
from engine.optimize.samplers._base import MAX_REJECTIONS, Sampler
from engine.optimize.space import Space

_ROUNDS = 6
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_MAX_PERMUTED = 1 << 62
_MAX_BLOCK = 1 << 16  # positions permuted per numpy block (bounded memory)


class FeistelPermutation:
    """A seeded bijection of ``[0, size)`` evaluated on numpy arrays (no table is built)."""

    def __init__(self, size: int, seed: int) -> None:
        if not 0 < size <= _MAX_PERMUTED:
            raise ValueError(f"permutation size {size} out of range")
        self.size = size
        bits = max(2, (size - 1).bit_length())
        bits += bits % 2
        self._half = bits // 2
        self._mask = np.uint64((1 << self._half) - 1)
        sequence = np.random.SeedSequence([seed, 0x5EED])
        self._keys = [np.uint64(k) for k in sequence.generate_state(_ROUNDS, dtype=np.uint64)]

    def _round_trip(self, x: np.ndarray) -> np.ndarray:
        half = np.uint64(self._half)
        left, right = x >> half, x & self._mask
        with np.errstate(over="ignore"):
            for key in self._keys:
                z = right ^ key
                z = (z ^ (z >> np.uint64(30))) * _M1
                z = (z ^ (z >> np.uint64(27))) * _M2
                z = z ^ (z >> np.uint64(31))
                left, right = right, left ^ (z & self._mask)
        return (left << half) | right

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        """The permuted index of each position (positions in ``[0, size)``)."""
        values = self._round_trip(positions.astype(np.uint64))
        limit = np.uint64(self.size)
        outside = values >= limit
        while outside.any():  # cycle walking back into [0, size)
            values[outside] = self._round_trip(values[outside])
            outside = values >= limit
        return values.astype(np.int64)


class RandomSampler(Sampler):
    """Uniform random points without repeats (see the module docstring for the two modes)."""

    name = "random"
    asks_ahead = True  # (tell is the base no-op)

    def __init__(self, space: Space, *, seed: int = 0, direction: str = "maximize") -> None:
        super().__init__(space, seed=seed, direction=direction)
        uniform = not any(getattr(d, "log", False) for d in space.dims)
        self._permutation: FeistelPermutation | None = None
        if space.discrete and uniform and space.grid_size <= _MAX_PERMUTED:
            self._permutation = FeistelPermutation(space.grid_size, self.seed)
        self._cursor = 0  # permutation mode: next position
        self._rng = np.random.default_rng(self.seed)  # draw mode
        self._attempts = 0
        self._produced = 0
        self._streak = 0
        self._seen: set[str] = set()
        self._limit = space.feasible_grid_size() if space.discrete and self._permutation is None else None

    @property
    def mode(self) -> str:
        return "permutation" if self._permutation is not None else "draws"

    def _ask(self, n: int) -> list[dict[str, Any]]:
        if self._permutation is not None:
            return self._ask_permuted(n)
        return [point for point in (self._draw() for _ in range(n)) if point is not None]

    def _ask_permuted(self, n: int) -> list[dict[str, Any]]:
        assert self._permutation is not None
        size = self._permutation.size
        points: list[dict[str, Any]] = []
        block = min(max(64, 2 * n), _MAX_BLOCK)
        while self._cursor < size and len(points) < n:
            stop = min(size, self._cursor + block)
            positions = np.arange(self._cursor, stop, dtype=np.int64)
            indices = self._permutation(positions)
            feasible = np.flatnonzero(self.space.feasible_mask(indices))
            need = n - len(points)
            points.extend(self.space.grid_points(indices[feasible[:need]]))
            if len(feasible) >= need:
                # Continue just past the last position handed out.
                self._cursor = int(positions[feasible[need - 1]]) + 1
            else:
                self._cursor = stop
            block = min(block * 2, _MAX_BLOCK)
        return points

    def _draw(self) -> dict[str, Any] | None:
        """One new feasible point, or ``None`` once exhausted."""
        while not self.exhausted:
            point = self._attempt()
            if point is not None:
                return point
        return None

    def _attempt(self) -> dict[str, Any] | None:
        """One draw: the point if it is feasible and new, else ``None``."""
        self._attempts += 1
        point = self.space.sample(self._rng.random(len(self.space.dims)))
        key = self.space.trial_key(point)
        if key in self._seen or not self.space.is_feasible(point):
            self._streak += 1
            return None
        self._seen.add(key)
        self._produced += 1
        self._streak = 0
        return point

    @property
    def exhausted(self) -> bool:
        if self._permutation is not None:
            return self._cursor >= self._permutation.size
        if self._limit is not None and self._produced >= self._limit:
            return True
        return self._streak >= MAX_REJECTIONS

    def _state(self) -> dict[str, Any]:
        if self._permutation is not None:
            return {"mode": "permutation", "cursor": self._cursor}
        return {
            "mode": "draws",
            "rng": self._rng.bit_generator.state,
            "attempts": self._attempts,
            "produced": self._produced,
            "streak": self._streak,
        }

    def _restore(self, state: dict[str, Any]) -> None:
        if state.get("mode") != self.mode:
            raise ConfigError(f"checkpoint: random sampler state in mode {state.get('mode')!r}, expected {self.mode!r}")
        if self._permutation is not None:
            self._cursor = int(state["cursor"])
            return
        attempts = int(state["attempts"])
        self._rng = np.random.default_rng(self.seed)
        self._attempts = self._produced = self._streak = 0
        self._seen = set()
        if self.space.discrete:
            # Replay the draws to rebuild the produced keys, then check we landed
            # exactly where the checkpoint was taken.
            while self._attempts < attempts:
                self._attempt()
            if self._rng.bit_generator.state != state["rng"]:
                raise ConfigError("checkpoint: the random sampler's replay does not match its saved state")
        else:
            self._rng.bit_generator.state = state["rng"]
            self._attempts = attempts
            self._produced = int(state["produced"])
            self._streak = int(state["streak"])
