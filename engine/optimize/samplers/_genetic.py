"""The genetic sampler: tournament selection, uniform crossover, mutation, elitism.

Generation 0 is ``population`` distinct random feasible points. Each later
generation keeps the ``elite`` best individuals seen so far (carried over
without being evaluated again) and breeds ``population - elite`` new children:
two parents each won a tournament of ``tournament`` individuals drawn from the
last generation and the elites. With probability ``crossover_rate`` the child
mixes them: each discrete gene comes from either parent (uniform crossover)
and each continuous gene is drawn on the segment between the parents' values,
extended by a quarter on each side (BLX-0.25); otherwise the child copies the
first parent. Each gene then mutates with probability ``mutation_rate``: an
integer or stepped range moves by a Gaussian number of steps, a choice jumps
to another value, a continuous range moves by a Gaussian of 0.1 of its width
(in log space for log ranges). A child that is infeasible or already produced is
bred again (20 tries), then drawn at random (100 tries), else dropped.

One generation is one batch: :meth:`ask` hands out the current generation's
children (in as many calls as the executor likes) and returns ``[]`` until all
of them are told; breeding then happens on the next :meth:`ask`. Results are
matched by key, so the order of tells does not matter. A study runs
``population + (generations - 1) * (population - elite)`` trials at most.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.errors import ConfigError
from engine.optimize.samplers._base import MAX_REJECTIONS, Sampler, decode_float, encode_float
from engine.optimize.space import ChoiceDim, Space

_BREED_TRIES = 20
_RANDOM_TRIES = 100
_CONTINUOUS_SIGMA = 0.1
_BLEND = 0.25


class GeneticSampler(Sampler):
    """A steady generational GA over mixed integer, float and choice dimensions."""

    name = "genetic"

    def __init__(
        self,
        space: Space,
        *,
        seed: int = 0,
        direction: str = "maximize",
        population: int = 50,
        generations: int = 20,
        mutation_rate: float = 0.2,
        crossover_rate: float = 0.9,
        elite: int = 2,
        tournament: int = 3,
    ) -> None:
        super().__init__(space, seed=seed, direction=direction)
        if population < 2 or generations < 1 or not 0 <= elite < population or tournament < 1:
            raise ConfigError(
                "search: the genetic sampler needs population >= 2, generations >= 1,"
                " 0 <= elite < population and tournament >= 1"
            )
        self.population = population
        self.generations = generations
        self.mutation_rate = mutation_rate
        self.crossover_rate = crossover_rate
        self.elite = elite
        self.tournament = tournament
        self._rng = np.random.default_rng(self.seed)
        self._started = False
        self._done = False
        self._generation = 0
        self._members: list[dict[str, Any]] = []
        self._keys: list[str] = []
        self._index: dict[str, int] = {}
        self._asked = 0
        self._results: dict[str, float | None] = {}  # key -> fitness (None: failed)
        self._elites: list[tuple[dict[str, Any], float]] = []
        self._seen: set[str] = set()

    # ------------------------------------------------------------------ protocol

    @property
    def preferred_batch(self) -> int:
        return self.population

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def best(self) -> tuple[dict[str, Any], float] | None:
        """The best individual told so far and its fitness (negated objective when minimising)."""
        pool = self._pool()
        return max(pool, key=lambda item: item[1]) if pool else None

    def _ask(self, n: int) -> list[dict[str, Any]]:
        if not self._started:
            self._started = True
            self._set_members(self._initial())
        if self._asked >= len(self._members) and (not self._complete() or not self._advance()):
            return []
        batch = self._members[self._asked:self._asked + n]
        self._asked += len(batch)
        return [dict(point) for point in batch]

    def tell(self, params: dict[str, Any], value: float | None) -> None:
        key = self.space.trial_key(params)
        position = self._index.get(key)
        if position is not None and position < self._asked:
            self._results[key] = self.fitness(value)

    @property
    def exhausted(self) -> bool:
        if self._done:
            return True
        last = self._generation >= self.generations - 1
        return self._started and last and self._asked >= len(self._members)

    # ------------------------------------------------------------------ generations

    def _complete(self) -> bool:
        return all(key in self._results for key in self._keys)

    def _set_members(self, members: list[dict[str, Any]]) -> None:
        self._members = members
        self._keys = [self.space.trial_key(p) for p in members]
        self._index = {key: i for i, key in enumerate(self._keys)}
        self._asked = 0
        self._results = {}
        if not members:
            self._done = True

    def _pool(self) -> list[tuple[dict[str, Any], float]]:
        """Elites, then this generation's told members with a fitness (ask order)."""
        pool = list(self._elites)
        for point, key in zip(self._members, self._keys, strict=True):
            fitness = self._results.get(key)
            if fitness is not None:
                pool.append((point, fitness))
        return pool

    def _advance(self) -> bool:
        """Breed the next generation; ``False`` when the run is over."""
        if self._generation + 1 >= self.generations:
            self._done = True
            return False
        pool = self._pool()
        ranked = sorted(range(len(pool)), key=lambda i: -pool[i][1])  # stable: ties keep order
        self._elites = [pool[i] for i in ranked[: self.elite]]
        children = self._breed(pool, self.population - len(self._elites))
        self._generation += 1
        self._set_members(children)
        return not self._done

    def _initial(self) -> list[dict[str, Any]]:
        members: list[dict[str, Any]] = []
        rejected = 0
        while len(members) < self.population and rejected < MAX_REJECTIONS:
            point = self._random_point()
            if point is None:
                rejected += 1
                continue
            members.append(point)
        return members

    def _accept(self, point: dict[str, Any]) -> bool:
        if not self.space.is_feasible(point):
            return False
        key = self.space.trial_key(point)
        if key in self._seen:
            return False
        self._seen.add(key)
        return True

    def _random_point(self) -> dict[str, Any] | None:
        point = self.space.sample(self._rng.random(len(self.space.dims)))
        return point if self._accept(point) else None

    def _breed(self, pool: list[tuple[dict[str, Any], float]], count: int) -> list[dict[str, Any]]:
        genomes = [self._encode(point) for point, _ in pool]
        fitness = np.array([f for _, f in pool], dtype=np.float64)
        children: list[dict[str, Any]] = []
        for _ in range(count):
            child = None
            for _ in range(_BREED_TRIES if genomes else 0):
                first = genomes[self._select(fitness)]
                second = genomes[self._select(fitness)]
                genes = self._crossover(first, second) if self._rng.random() < self.crossover_rate else list(first)
                point = self._decode(self._mutate(genes))
                if self._accept(point):
                    child = point
                    break
            for _ in range(_RANDOM_TRIES if child is None else 0):
                child = self._random_point()
                if child is not None:
                    break
            if child is None:
                break  # the space is all but used up
            children.append(child)
        return children

    def _select(self, fitness: np.ndarray) -> int:
        entrants = self._rng.integers(0, fitness.shape[0], size=self.tournament)
        return int(entrants[int(np.argmax(fitness[entrants]))])

    def _crossover(self, first: list[Any], second: list[Any]) -> list[Any]:
        """Uniform crossover; continuous genes blend (BLX-0.25) instead of swapping."""
        mask = self._rng.random(len(first)) < 0.5
        blend = self._rng.uniform(-_BLEND, 1.0 + _BLEND, len(first))
        child = []
        for dim, a, b, take, t in zip(self.space.dims, first, second, mask, blend, strict=True):
            if dim.discrete:
                child.append(a if take else b)
            else:
                child.append(min(max(a + t * (b - a), 0.0), 1.0))
        return child

    def _mutate(self, genes: list[Any]) -> list[Any]:
        draws = self._rng.random(len(genes))
        noise = self._rng.standard_normal(len(genes))
        for i, dim in enumerate(self.space.dims):
            if draws[i] >= self.mutation_rate:
                continue
            if not dim.discrete:
                u = genes[i] + _CONTINUOUS_SIGMA * noise[i]
                u = abs(u) % 2.0  # reflect into [0, 1]
                genes[i] = 2.0 - u if u > 1.0 else u
                continue
            size = dim.size
            if size < 2:
                continue
            if isinstance(dim, ChoiceDim):
                other = int(self._rng.integers(0, size - 1))
                genes[i] = other + 1 if other >= genes[i] else other
                continue
            step = round(float(noise[i]) * max(1.0, 0.1 * size))
            if step == 0:
                step = 1 if noise[i] >= 0 else -1
            genes[i] = min(max(genes[i] + step, 0), size - 1)
        return genes

    def _encode(self, point: dict[str, Any]) -> list[Any]:
        genes: list[Any] = []
        for dim in self.space.dims:
            if dim.discrete:
                index = dim.index(point[dim.name])
                assert index is not None, (dim.name, point[dim.name])
                genes.append(index)
            else:
                genes.append(dim.unit(point[dim.name]))  # type: ignore[union-attr]
        return genes

    def _decode(self, genes: list[Any]) -> dict[str, Any]:
        point: dict[str, Any] = {}
        for dim, gene in zip(self.space.dims, genes, strict=True):
            point[dim.name] = dim.grid_value(gene) if dim.discrete else dim.sample(gene)
        point.update(self.space.fixed)
        return point

    # ------------------------------------------------------------------ state

    def _state(self) -> dict[str, Any]:
        return {
            "started": self._started,
            "done": self._done,
            "generation": self._generation,
            "members": self._members,
            "asked": self._asked,
            "results": {k: encode_float(v) for k, v in self._results.items()},
            "elites": [[point, encode_float(f)] for point, f in self._elites],
            "rng": self._rng.bit_generator.state,
            "seen": "".join(sorted(self._seen)),
        }

    def _restore(self, state: dict[str, Any]) -> None:
        self._started = bool(state["started"])
        self._generation = int(state["generation"])
        self._members = [dict(p) for p in state["members"]]
        self._keys = [self.space.trial_key(p) for p in self._members]
        self._index = {key: i for i, key in enumerate(self._keys)}
        self._asked = int(state["asked"])
        self._results = {k: decode_float(v) for k, v in state["results"].items()}
        self._elites = [(dict(p), float(decode_float(f))) for p, f in state["elites"]]  # type: ignore[arg-type]
        self._done = bool(state["done"])
        self._rng = np.random.default_rng(self.seed)
        self._rng.bit_generator.state = state["rng"]
        seen = state["seen"]
        self._seen = {seen[i:i + 16] for i in range(0, len(seen), 16)}
