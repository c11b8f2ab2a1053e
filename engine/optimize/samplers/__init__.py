"""Samplers: grid, random, genetic and TPE, all of the ask/tell shape.

``make_sampler(search, space)`` builds the sampler a study's ``[search]`` table
names. See :mod:`engine.optimize.samplers._base` for the protocol and the
batch discipline that makes interrupted and uninterrupted runs identical.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.errors import ConfigError
from engine.optimize.samplers._base import MAX_REJECTIONS, Sampler
from engine.optimize.samplers._genetic import GeneticSampler
from engine.optimize.samplers._grid import GridSampler
from engine.optimize.samplers._random import FeistelPermutation, RandomSampler
from engine.optimize.samplers._tpe import TPESampler

if TYPE_CHECKING:
    from engine.optimize.space import Space
    from engine.optimize.spec import SearchSpec

__all__ = [
    "MAX_REJECTIONS",
    "FeistelPermutation",
    "GeneticSampler",
    "GridSampler",
    "RandomSampler",
    "Sampler",
    "TPESampler",
    "make_sampler",
]


def make_sampler(search: SearchSpec, space: Space) -> Sampler:
    """The sampler ``search.sampler`` names, seeded with ``search.seed``."""
    seed, direction = search.seed, search.direction
    if search.sampler == "grid":
        return GridSampler(space, seed=seed, direction=direction)
    if search.sampler == "random":
        return RandomSampler(space, seed=seed, direction=direction)
    if search.sampler == "genetic":
        return GeneticSampler(
            space,
            population=search.population,
            generations=search.generations,
            mutation_rate=search.mutation_rate,
            crossover_rate=search.crossover_rate,
            elite=search.elite,
            tournament=search.tournament,
            seed=seed,
            direction=direction,
        )
    if search.sampler == "tpe":
        return TPESampler(space, startup_trials=search.startup_trials, seed=seed, direction=direction)
    raise ConfigError(f"search.sampler: unknown sampler {search.sampler!r} (expected grid, random, genetic or tpe)")
