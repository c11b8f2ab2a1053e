"""Samplers: the ask/tell contract, determinism, and exact resume from a saved state."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import ConfigError
from engine.optimize.samplers import (
    FeistelPermutation,
    GeneticSampler,
    GridSampler,
    RandomSampler,
    Sampler,
    TPESampler,
    make_sampler,
)
from engine.optimize.space import Space, parse_space
from engine.optimize.spec import SearchSpec

Params = dict[str, Any]


def small_space() -> Space:
    """60 grid points, 30 of them with fast < slow, plus a fixed value."""
    return parse_space(
        {
            "fast": {"int": [2, 12], "step": 2},
            "slow": {"int": [4, 12], "step": 2},
            "mode": ["a", "b"],
            "size": 0.5,
            "constraints": ["fast < slow"],
        },
        "s",
    )


def mixed_space() -> Space:
    """Int, stepped float, continuous log float and a choice: effectively infinite."""
    return parse_space(
        {
            "fast": {"int": [2, 100]},
            "slow": {"int": [10, 400], "step": 2},
            "k": {"float": [0.01, 10.0], "log": True},
            "stop": {"float": [0.0, 0.1], "step": 0.01},
            "mode": ["a", "b", "c"],
            "constraints": ["fast < slow"],
        },
        "s",
    )


def objective(params: Params) -> float:
    """A smooth deterministic objective with its peak at fast=20, slow=100."""
    value = -((params.get("fast", 20) - 20) / 10) ** 2 - ((params.get("slow", 100) - 100) / 50) ** 2
    value -= (math.log10(params.get("k", 1.0))) ** 2
    value -= abs(params.get("stop", 0.03) - 0.03) * 10
    return value + (0.5 if params.get("mode") == "a" else 0.0)


SAMPLERS: dict[str, Callable[[Space, int], Sampler]] = {
    "grid": lambda space, seed: GridSampler(space, seed=seed),
    "random": lambda space, seed: RandomSampler(space, seed=seed),
    "genetic": lambda space, seed: GeneticSampler(space, seed=seed, population=8, generations=6, elite=2),
    "tpe": lambda space, seed: TPESampler(space, seed=seed, startup_trials=5),
}


def drive(
    sampler: Sampler,
    batches: int,
    batch: int,
    *,
    restart_at: int | None = None,
    factory: Callable[[], Sampler] | None = None,
    failing: Callable[[Params], bool] = lambda p: False,
) -> tuple[list[Params], Sampler]:
    """Run the executor's batch discipline: ask a batch, tell it in ask order, checkpoint.

    With ``restart_at`` the state after that many batches goes through JSON into
    a fresh sampler, which carries on (a resume).
    """
    sequence: list[Params] = []
    for index in range(batches):
        if restart_at is not None and index == restart_at:
            assert factory is not None
            state = json.loads(json.dumps(sampler.get_state()))
            sampler = factory()
            sampler.set_state(state)
        points = sampler.ask(batch)
        if not points and sampler.exhausted:
            break
        sequence.extend(points)
        for point in points:
            sampler.tell(point, None if failing(point) else objective(point))
    return sequence, sampler


# --------------------------------------------------------------------------- contract


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_ask_tell_contract_on_a_finite_space(name: str) -> None:
    space = small_space()
    sampler = SAMPLERS[name](space, 3)
    assert sampler.ask(0) == []
    keys: set[str] = set()
    produced = 0
    for _ in range(200):
        points = sampler.ask(5)
        assert len(points) <= 5
        for point in points:
            assert list(point) == ["fast", "slow", "mode", "size"]
            assert point["size"] == 0.5
            assert point["fast"] < point["slow"]
            key = space.trial_key(point)
            assert key not in keys, "a key was produced twice"
            keys.add(key)
            sampler.tell(point, objective(point))
        produced += len(points)
        if sampler.exhausted:
            break
    assert sampler.exhausted
    assert sampler.ask(5) == []
    feasible = space.feasible_grid_size()
    assert feasible == 30
    if name in ("grid", "random"):
        assert produced == feasible
    else:
        assert 0 < produced <= feasible


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_same_seed_same_sequence(name: str) -> None:
    space = small_space() if name == "grid" else mixed_space()
    first, _ = drive(SAMPLERS[name](space, 11), 4, 8)
    second, _ = drive(SAMPLERS[name](space, 11), 4, 8)
    assert first == second and len(first) > 0
    if name != "grid":
        other, _ = drive(SAMPLERS[name](space, 12), 4, 8)
        assert other != first


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_resume_from_saved_state_continues_exactly(name: str) -> None:
    space = mixed_space() if name != "grid" else small_space()
    make = lambda: SAMPLERS[name](space, 5)  # noqa: E731
    straight, _ = drive(make(), 7, 6)
    for restart in (1, 3, 6):
        resumed, _ = drive(make(), 7, 6, restart_at=restart, factory=make)
        assert resumed == straight, f"restart after {restart} batches"


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_state_survives_msgspec_json_and_failed_trials(name: str) -> None:
    space = mixed_space() if name != "grid" else small_space()
    make = lambda: SAMPLERS[name](space, 2)  # noqa: E731
    failing = lambda p: p["fast"] % 3 == 0  # noqa: E731
    straight, sampler = drive(make(), 5, 4, failing=failing)
    half, sampler = drive(make(), 3, 4, failing=failing)
    state = msgspec.json.decode(msgspec.json.encode(sampler.get_state()))
    fresh = make()
    fresh.set_state(state)
    rest, _ = drive(fresh, 2, 4, failing=failing)
    assert half + rest == straight


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(["grid", "random", "genetic"]),
    seed=st.integers(0, 2**32),
    batch=st.integers(1, 9),
    restart=st.integers(0, 6),
    discrete=st.booleans(),
)
def test_resume_property(name: str, seed: int, batch: int, restart: int, discrete: bool) -> None:
    space = small_space() if discrete or name == "grid" else mixed_space()
    make = lambda: SAMPLERS[name](space, seed)  # noqa: E731
    straight, _ = drive(make(), 6, batch)
    resumed, _ = drive(make(), 6, batch, restart_at=restart, factory=make)
    assert resumed == straight


def test_state_of_another_space_or_sampler_is_refused() -> None:
    grid = GridSampler(small_space())
    grid.ask(3)
    state = grid.get_state()
    with pytest.raises(ConfigError, match="sampler"):
        RandomSampler(small_space()).set_state(state)
    with pytest.raises(ConfigError, match="space"):
        GridSampler(mixed_space().__class__(small_space().dims[:2])).set_state(state)
    with pytest.raises(ConfigError, match="seed"):
        GridSampler(small_space(), seed=9).set_state(state)


def test_make_sampler_reads_the_search_table() -> None:
    space = small_space()
    assert isinstance(make_sampler(SearchSpec(sampler="grid"), space), GridSampler)
    genetic = make_sampler(SearchSpec(sampler="genetic", population=10, generations=3, elite=1, seed=4), space)
    assert isinstance(genetic, GeneticSampler)
    assert (genetic.population, genetic.generations, genetic.elite, genetic.seed) == (10, 3, 1, 4)
    assert isinstance(make_sampler(SearchSpec(sampler="tpe", direction="minimize"), space), TPESampler)
    with pytest.raises(ConfigError):
        make_sampler(SearchSpec(sampler="nope"), space)


# --------------------------------------------------------------------------- grid


def test_grid_walks_in_grid_order_with_a_cursor() -> None:
    space = small_space()
    sampler = GridSampler(space)
    points = sampler.ask(1000)
    assert points == list(space.iter_grid())
    assert sampler.get_state()["cursor"] == space.grid_size


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 40_000), min_size=1, max_size=6), st.booleans())
def test_grid_batches_are_the_walk_of_the_grid_point_by_point(sizes: list[int], sparse: bool) -> None:
    # ~80k points, a constraint that leaves whole blocks empty (sparse), and a fixed value: each ask
    # gives exactly the points and cursor of Space.walk_grid (what checkpoints and resumes rely on).
    space = parse_space(
        {
            "fast": {"int": [2, 200]},
            "slow": {"int": [10, 800], "step": 2},
            "size": 0.5,
            "constraints": ["slow < 40" if sparse else "fast < slow"],
        },
        "s",
    )
    sampler = GridSampler(space)
    cursor = 0
    for n in sizes:
        expected, cursor = space.walk_grid(cursor, n)
        assert sampler.ask(n) == [params for _, params in expected]
        assert sampler.get_state()["cursor"] == cursor


def test_grid_refuses_a_continuous_range() -> None:
    with pytest.raises(ConfigError, match="no grid"):
        GridSampler(mixed_space())


# --------------------------------------------------------------------------- random


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 3000), st.integers(0, 2**40))
def test_feistel_permutation_is_a_bijection(size: int, seed: int) -> None:
    values = FeistelPermutation(size, seed)(np.arange(size, dtype=np.int64))
    assert sorted(values.tolist()) == list(range(size))


def test_random_permutation_mode_is_uniform_without_replacement() -> None:
    space = parse_space({"a": {"int": [0, 99]}, "b": {"int": [0, 9]}}, "s")
    sampler = RandomSampler(space, seed=1)
    assert sampler.mode == "permutation"
    points = sampler.ask(1000)
    assert len(points) == 1000 and sampler.exhausted
    assert len({(p["a"], p["b"]) for p in points}) == 1000
    firsts = [p["a"] for p in points[:200]]
    assert 30 < float(np.mean(firsts)) < 70  # shuffled, not grid order
    assert sampler.get_state()["cursor"] == 1000


def test_random_draw_mode_replays_a_finite_log_space_on_resume() -> None:
    space = parse_space({"w": {"int": [1, 60], "log": True}, "m": ["x", "y"]}, "s")
    make = lambda: RandomSampler(space, seed=8)  # noqa: E731
    sampler = make()
    assert sampler.mode == "draws"
    straight, _ = drive(make(), 30, 7)
    assert len(straight) == 120 and len({(p["w"], p["m"]) for p in straight}) == 120
    resumed, _ = drive(make(), 30, 7, restart_at=10, factory=make)
    assert resumed == straight


def test_random_stops_after_bounded_rejections() -> None:
    # Every continuous draw is rejected by the constraint: exhausted, not a hang.
    space = parse_space(
        {"x": {"float": [0.0, 1.0]}, "y": {"float": [0.0, 1.0]}, "constraints": ["x > y + 0.999999"]}, "s"
    )
    sampler = RandomSampler(space, seed=0)
    assert sampler.ask(3) == []
    assert sampler.exhausted


# --------------------------------------------------------------------------- genetic


def test_genetic_generation_sizes_and_elites() -> None:
    space = mixed_space()
    sampler = GeneticSampler(space, seed=1, population=10, generations=4, elite=3)
    sizes = []
    while not sampler.exhausted:
        points = sampler.ask(100)
        if not points:
            break
        sizes.append(len(points))
        assert sampler.ask(1) == [] or sampler.exhausted  # waits for the results
        for point in points:
            sampler.tell(point, objective(point))
    assert sizes == [10, 7, 7, 7]  # population + (generations - 1) * (population - elite)


def test_genetic_is_indifferent_to_the_order_of_tells() -> None:
    def run(shuffle: bool) -> list[Params]:
        sampler = GeneticSampler(mixed_space(), seed=3, population=8, generations=5)
        rng = random.Random(0)
        seen = []
        while not sampler.exhausted:
            points = sampler.ask(8)
            if not points:
                break
            seen += points
            order = list(points)
            if shuffle:
                rng.shuffle(order)
            for point in order:
                sampler.tell(point, objective(point))
        return seen

    assert run(False) == run(True)


def test_genetic_improves_on_its_first_generation() -> None:
    sampler = GeneticSampler(mixed_space(), seed=5, population=30, generations=12, elite=2)
    first: list[float] = []
    generation = 0
    while not sampler.exhausted:
        points = sampler.ask(30)
        if not points:
            break
        values = [objective(p) for p in points]
        if generation == 0:
            first = values
        for point, value in zip(points, values, strict=True):
            sampler.tell(point, value)
        generation += 1
    assert sampler.best is not None
    assert sampler.best[1] > max(first)
    assert sampler.best[1] > -0.5


def test_genetic_minimises_when_asked() -> None:
    sampler = GeneticSampler(mixed_space(), seed=5, population=20, generations=8, direction="minimize")
    told = []
    while not sampler.exhausted:
        points = sampler.ask(20)
        if not points:
            break
        for point in points:
            value = -objective(point)
            told.append(value)
            sampler.tell(point, value)
    assert sampler.best is not None
    assert -sampler.best[1] == min(told)  # fitness is the negated objective


def test_genetic_on_a_tiny_space_never_repeats_and_ends() -> None:
    space = parse_space({"a": {"int": [0, 3]}, "b": ["x", "y"]}, "s")
    sampler = GeneticSampler(space, seed=0, population=5, generations=10, elite=1)
    produced, _ = drive(sampler, 50, 5)
    keys = [space.trial_key(p) for p in produced]
    assert len(keys) == len(set(keys)) <= 8
    assert sampler.exhausted


# --------------------------------------------------------------------------- TPE


def test_tpe_concentrates_on_good_regions() -> None:
    space = parse_space({"fast": {"int": [2, 100]}, "slow": {"int": [10, 400], "step": 2}}, "s")
    sequence, _ = drive(TPESampler(space, seed=0, startup_trials=10), 12, 5)
    assert len(sequence) == 60
    early = np.mean([objective(p) for p in sequence[:10]])
    late = np.mean([objective(p) for p in sequence[-20:]])
    assert late > early


def test_tpe_never_hands_out_infeasible_or_repeated_points() -> None:
    space = parse_space({"a": {"int": [0, 5]}, "b": {"int": [0, 5]}, "constraints": ["a + 2 <= b"]}, "s")
    produced, sampler = drive(TPESampler(space, seed=1, startup_trials=3), 40, 3)
    assert all(p["a"] + 2 <= p["b"] for p in produced)
    keys = [space.trial_key(p) for p in produced]
    assert len(keys) == len(set(keys))
    assert len(produced) == space.feasible_grid_size() == 10
    assert sampler.exhausted


def test_tpe_stepped_floats_land_on_the_lattice() -> None:
    space = parse_space({"stop": {"float": [0.0, 0.3], "step": 0.1}, "fast": {"int": [2, 30]}}, "s")
    produced, _ = drive(TPESampler(space, seed=2, startup_trials=3), 6, 4)
    assert {p["stop"] for p in produced} <= {0.0, 0.1, 0.2, 0.3}


@st.composite
def random_spaces(draw: st.DrawFn) -> Space:
    """Small finite spaces of every discrete kind, sometimes constrained."""
    table: dict[str, Any] = {}
    for name in draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3, unique=True)):
        kind = draw(st.integers(0, 2))
        if kind == 0:
            lo = draw(st.integers(-4, 4))
            table[name] = {"int": [lo, lo + draw(st.integers(0, 6))], "step": draw(st.integers(1, 2))}
        elif kind == 1:
            table[name] = {"float": [0.0, draw(st.sampled_from([0.5, 1.0]))], "step": 0.25}
        else:
            table[name] = draw(st.lists(st.integers(-3, 3), min_size=1, max_size=4, unique=True))
    names = list(table)
    if len(names) >= 2 and draw(st.booleans()):
        table["constraints"] = [f"{names[0]} <= {names[1]} + {draw(st.integers(-1, 2))}"]
    try:
        space = parse_space(table, "s")
        space.check_feasible()
    except ConfigError:
        from hypothesis import assume

        assume(False)
    return space


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(space=random_spaces(), name=st.sampled_from(["grid", "random", "genetic"]), seed=st.integers(0, 1000), batch=st.integers(1, 7))
def test_contract_on_random_spaces(space: Space, name: str, seed: int, batch: int) -> None:
    factories: dict[str, Callable[[], Sampler]] = {
        "grid": lambda: GridSampler(space, seed=seed),
        "random": lambda: RandomSampler(space, seed=seed),
        "genetic": lambda: GeneticSampler(space, seed=seed, population=4, generations=5, elite=1),
    }
    sampler = factories[name]()
    produced, sampler = drive(sampler, 400, batch)
    keys = [space.trial_key(p) for p in produced]
    assert len(keys) == len(set(keys))
    assert all(space.is_feasible(p) and set(p) == set(space.names) for p in produced)
    feasible = {space.trial_key(p) for p in space.iter_grid()}
    assert set(keys) <= feasible
    assert sampler.exhausted
    if name != "genetic":
        assert set(keys) == feasible
    resumed, _ = drive(factories[name](), 400, batch, restart_at=2, factory=factories[name])
    assert resumed == produced


@pytest.mark.parametrize("name", ["genetic", "tpe"])
def test_infinite_objectives_survive_a_json_state(name: str) -> None:
    """A profit factor without a losing trade is +inf; JSON has no infinity."""
    space = mixed_space()

    def run(restart: bool) -> list[Params]:
        sampler = SAMPLERS[name](space, 4)
        seen: list[Params] = []
        for index in range(5):
            if restart and index == 3:
                state = msgspec.json.decode(msgspec.json.encode(sampler.get_state()))
                sampler = SAMPLERS[name](space, 4)
                sampler.set_state(state)
            points = sampler.ask(8)
            seen += points
            for point in points:
                sampler.tell(point, math.inf if point["fast"] % 4 == 0 else objective(point))
        return seen

    assert run(True) == run(False)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_a_smaller_ask_is_a_prefix(name: str) -> None:
    """What a resumed executor near its trial budget relies on."""
    space = small_space() if name == "grid" else mixed_space()
    warm = lambda: drive(SAMPLERS[name](space, 6), 2, 5)[1]  # noqa: E731
    full = warm().ask(7)
    for k in (1, 3, 6):
        assert warm().ask(k) == full[:k]


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_value_asked_is_a_plain_python_scalar(name: str) -> None:
    """Trial params are stored as JSON: a numpy float (a genetic mutation's gene) cannot be."""
    space = small_space() if name == "grid" else parse_space(
        {"fast": {"int": [2, 100]}, "mult": {"float": [0.5, 5.0]}, "k": {"float": [0.01, 10.0], "log": True},
         "stop": {"float": [0.0, 0.1], "step": 0.01}, "mode": ["a", "b", "c"]}, "s",
    )
    points, _ = drive(SAMPLERS[name](space, 5), batches=6, batch=8)
    assert points
    for point in points:
        for key, value in point.items():
            assert type(value) in (int, float, str, bool), (key, type(value))
        json.dumps(point)
