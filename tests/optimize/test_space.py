"""The parameter space: parsing, the lazy grid, trial keys and constraints."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import subprocess
import sys
import tracemalloc
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import ConfigError
from engine.optimize.constraints import parse_constraint, tighten
from engine.optimize.space import (
    ChoiceDim,
    FloatDim,
    IntDim,
    Space,
    canonical_json,
    parse_space,
    trial_key,
    trial_keys,
)

# --------------------------------------------------------------------------- parsing


def test_kinds_shorthands_and_groups_flatten_in_declaration_order() -> None:
    space = parse_space(
        {
            "fast": {"int": [5, 50], "step": 5},
            "kind": ["ema", "sma"],
            "risk": {
                "stop": {"float": [0.01, 0.05], "step": 0.01},
                "deep": {"lr": {"float": [1e-4, 1e-1], "log": True, "points": 4}},
                "size": 0.5,
            },
            "width": {"float": [0.5, 3.0]},
            "flag": {"fixed": True},
        },
        "s.toml",
    )
    assert space.names == ("fast", "kind", "risk.stop", "risk.deep.lr", "width")
    assert space.fixed == {"risk.size": 0.5, "flag": True}
    assert isinstance(space.dim("fast"), IntDim) and space.dim("fast").size == 10
    assert isinstance(space.dim("kind"), ChoiceDim)
    assert isinstance(space.dim("width"), FloatDim) and not space.dim("width").discrete
    assert not space.griddable and not space.discrete


def test_float_lattice_values_are_clean_decimals() -> None:
    dim = FloatDim("x", 0.01, 0.1, step=0.01)
    values = [dim.grid_value(i) for i in range(dim.size)]
    assert values == [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1]
    assert list(dim.grid_values(np.arange(dim.size))) == values


def test_log_points_are_geometric_with_exact_ends() -> None:
    dim = FloatDim("lr", 1e-4, 1e-1, log=True, points=4)
    values = [dim.grid_value(i) for i in range(4)]
    assert values == [1e-4, 1e-3, 1e-2, 1e-1]
    linear = FloatDim("w", 0.0, 1.0, points=5)
    assert [linear.grid_value(i) for i in range(5)] == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_log_int_samples_stay_in_range_and_favour_small_values() -> None:
    dim = IntDim("w", 2, 500, log=True)
    u = np.random.default_rng(1).random(20_000)
    values = dim.sample_array(u)
    assert values.min() >= 2 and values.max() <= 500
    assert np.median(values) < 60  # log-uniform: the median is near sqrt(2 * 500)
    assert [dim.sample(float(x)) for x in u[:50]] == list(values[:50])


def test_int_range_with_step_ends_on_the_last_step() -> None:
    dim = IntDim("slow", 20, 205, step=10)
    assert dim.size == 19 and dim.top == 200 and dim.bounds == (20.0, 200.0)
    assert dim.index(200) == 18 and dim.index(205) is None and dim.index(25) is None


def test_canonical_normalises_and_rejects() -> None:
    space = parse_space({"fast": {"int": [5, 50]}, "k": {"float": [0.5, 2.0]}, "m": ["a", "b"]}, "s")
    assert space.canonical({"fast": 7.0, "k": 1, "m": "a"}) == {"fast": 7, "k": 1.0, "m": "a"}
    with pytest.raises(ValueError):
        space.canonical({"fast": 7.5, "k": 1, "m": "a"})
    with pytest.raises(ValueError):
        space.canonical({"fast": 7, "k": 3.0, "m": "a"})
    with pytest.raises(ValueError):
        space.canonical({"fast": 7, "k": 1.0, "m": "c"})
    with pytest.raises(ValueError):
        space.canonical({"fast": 7, "k": 1.0})


# --------------------------------------------------------------------------- grid vs itertools.product

leaf_specs = st.one_of(
    st.builds(lambda lo, n, step: {"int": [lo, lo + n * step], "step": step},
              st.integers(-5, 5), st.integers(0, 3), st.integers(1, 3)),
    st.builds(lambda lo, n: {"float": [lo, round(lo + n * 0.25, 2)], "step": 0.25},
              st.sampled_from([0.0, 0.5, 1.25]), st.integers(0, 3)),
    st.builds(lambda n, log: {"float": [0.1, 10.0], "points": n, "log": log},
              st.integers(2, 4), st.booleans()),
    st.lists(st.one_of(st.integers(-3, 3), st.sampled_from(["x", "y", "z"])), min_size=1, max_size=3, unique=True)
    .filter(lambda vals: len({json.dumps(v) for v in vals}) == len(vals)),
)


@st.composite
def nested_tables(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=3, unique=True))
    table: dict[str, Any] = {}
    for name in names:
        if depth < 2 and draw(st.integers(0, 4)) == 0:
            table[name] = draw(nested_tables(depth + 1))
        elif draw(st.integers(0, 6)) == 0:
            table[name] = draw(st.sampled_from([1, 0.5, "on", False]))
        else:
            table[name] = draw(leaf_specs)
    return table


def _expected_values(spec: Any) -> list[Any]:
    """The grid values of one leaf, computed the obvious way."""
    if isinstance(spec, list):
        return list(spec)
    if "int" in spec:
        lo, hi = spec["int"]
        return list(range(lo, hi + 1, spec["step"]))
    lo, hi = spec["float"]
    if "step" in spec:
        count = round((hi - lo) / spec["step"]) + 1
        return [round(lo + i * spec["step"], 2) for i in range(count)]
    n = spec["points"]
    if spec["log"]:
        return [lo * (hi / lo) ** (i / (n - 1)) for i in range(n)]
    return [lo + (hi - lo) * i / (n - 1) for i in range(n)]


def _flatten(table: dict[str, Any], prefix: str = "") -> tuple[list[tuple[str, list[Any]]], dict[str, Any]]:
    dims: list[tuple[str, list[Any]]] = []
    fixed: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and not ({"int", "float"} & set(value)):
            sub_dims, sub_fixed = _flatten(value, f"{name}.")
            dims += sub_dims
            fixed.update(sub_fixed)
        elif isinstance(value, (dict, list)):
            dims.append((name, _expected_values(value)))
        else:
            fixed[name] = value
    return dims, fixed


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nested_tables(), st.booleans())
def test_grid_expansion_matches_itertools_product(table: dict[str, Any], constrained: bool) -> None:
    dims, fixed = _flatten(table)
    if not dims:
        with pytest.raises(ConfigError, match="the space is empty"):
            parse_space(table, "s")
        return
    numeric = [name for name, values in dims if all(isinstance(v, (int, float)) for v in values)]
    constraints = [f"{numeric[0]} <= {numeric[-1]} + 1"] if constrained and len(numeric) >= 2 else []
    space = parse_space({**table, "constraints": constraints} if constraints else table, "s")
    expected = []
    for combo in itertools.product(*(values for _, values in dims)):
        point = dict(zip((name for name, _ in dims), combo, strict=True))
        point.update(fixed)
        expected.append(point)
    assert space.names == tuple(name for name, _ in dims)
    assert space.grid_size == len(expected)
    for index, point in enumerate(expected):
        got = space.grid_point(index)
        assert got.keys() == point.keys()
        for key, value in point.items():
            assert got[key] == pytest.approx(value, rel=1e-11), (index, key)
        assert space.grid_index(got) == index
    feasible = [p for p in expected if not constraints or p[numeric[0]] <= p[numeric[-1]] + 1]
    walked = list(space.iter_grid())
    assert len(walked) == len(feasible) == space.feasible_grid_size()
    assert [trial_key(p) for p in walked] == [trial_key(space.grid_point(space.grid_index(p))) for p in walked]
    points, cursor = space.walk_grid(0, limit=3)
    assert [p for _, p in points] == walked[:3]
    assert cursor == (points[-1][0] + 1 if len(points) == 3 else space.grid_size)


def test_ten_million_point_grid_costs_nothing_until_walked() -> None:
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        space = parse_space(
            {
                "a": {"int": [0, 999]},
                "b": {"int": [0, 99]},
                "c": {"choice": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]},
                "d": {"float": [0.0, 0.9], "step": 0.1},
                "constraints": ["a >= b"],
            },
            "s",
        )
        built = tracemalloc.get_traced_memory()[0] - before
        assert space.grid_size == 10_000_000
        assert built < 64 * 1024  # no per-point storage
        last = space.grid_point(9_999_999)
        assert last == {"a": 999, "b": 99, "c": 10, "d": 0.9}
        assert space.grid_point(1_234_567) == {"a": 123, "b": 45, "c": 7, "d": 0.7}  # digits 123|45|6|7
        tracemalloc.reset_peak()
        start = tracemalloc.get_traced_memory()[0]
        # Walk a stretch where the constraint rejects everything (a < b), then find the next points.
        points, _ = space.walk_grid(10_000, limit=5)
        assert [p["a"] for _, p in points] == [1] * 5 and points[0][1]["b"] <= 1
        peak = tracemalloc.get_traced_memory()[1] - start
        assert peak < 8 * 1024 * 1024
        # Walking the whole grid bounds memory by the block size, not the grid.
        tracemalloc.reset_peak()
        start = tracemalloc.get_traced_memory()[0]
        count = space.feasible_grid_size()
        assert count == sum(min(a, 99) + 1 for a in range(1000)) * 100
        assert tracemalloc.get_traced_memory()[1] - start < 16 * 1024 * 1024
    finally:
        tracemalloc.stop()


# --------------------------------------------------------------------------- trial keys


def test_trial_key_is_blake2b_of_canonical_json() -> None:
    params = {"slow": 20, "fast": 5.0, "kind": "ema", "stop": -0.0, "on": True}
    text = canonical_json(params)
    assert text == '{"fast":5,"kind":"ema","on":true,"slow":20,"stop":0}'
    assert trial_key(params) == hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
    assert len(trial_key(params)) == 16


def test_trial_key_normalises_numbers_and_order() -> None:
    a = trial_key({"fast": 5, "slow": 20})
    assert a == trial_key({"slow": 20.0, "fast": np.int64(5)}) == trial_key({"fast": np.float64(5.0), "slow": 20})
    assert a != trial_key({"fast": 5, "slow": 21})
    assert trial_key({"x": True}) != trial_key({"x": 1})
    assert trial_key({"x": 0.1}) != trial_key({"x": 0.1000000001})
    assert trial_key({"x": "5"}) != trial_key({"x": 5})
    with pytest.raises(ValueError):
        trial_key({"x": math.nan})


_VALUES = st.one_of(
    st.integers(-5, 5), st.sampled_from([0.5, -0.0, 0.0, 2.0, 1e300]), st.booleans(), st.sampled_from(["a", "5"]),
    st.lists(st.integers(0, 2), max_size=2),
)


@given(st.lists(st.dictionaries(st.sampled_from(["fast", "slow", "kind"]), _VALUES, min_size=1), max_size=8))
def test_trial_keys_of_a_batch_are_each_points_trial_key(points: list[dict[str, Any]]) -> None:
    # Whatever the batch mixes (names, types, 1 and 1.0 and True), each key is the point's own.
    assert trial_keys(points) == [trial_key(p) for p in points]
    shared = [{"fast": p.get("fast", 1), "slow": 3} for p in points]  # one layout: the columns' path
    assert trial_keys(shared) == [trial_key(p) for p in shared]


def test_space_trial_key_coerces_by_kind() -> None:
    space = parse_space({"fast": {"int": [2, 10]}, "k": {"float": [1.0, 2.0], "step": 0.5}}, "s")
    assert space.trial_key({"fast": 5.0, "k": 2}) == space.trial_key({"fast": 5, "k": 2.0})


def test_trial_keys_are_stable_across_processes() -> None:
    points = [{"fast": f, "slow": s, "stop": 0.02 * f, "kind": "ema"} for f in range(3) for s in (10, 20.0)]
    code = (
        "import json, sys\n"
        "from engine.optimize.space import trial_key\n"
        "points = json.loads(sys.stdin.read())\n"
        "print(json.dumps([trial_key(p) for p in points]))\n"
    )
    keys = []
    for seed in ("0", "12345"):
        result = subprocess.run(
            [sys.executable, "-c", code], input=json.dumps(points), capture_output=True, text=True,
            env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"}, check=True,
        )
        keys.append(json.loads(result.stdout))
    assert keys[0] == keys[1] == [trial_key(p) for p in points]


# --------------------------------------------------------------------------- constraints


@pytest.mark.parametrize(
    ("text", "params", "expected"),
    [
        ("fast < slow", {"fast": 5, "slow": 10}, True),
        ("fast < slow", {"fast": 10, "slow": 10}, False),
        ("fast <= slow", {"fast": 10, "slow": 10}, True),
        ("fast * 2 <= slow", {"fast": 5, "slow": 10}, True),
        ("2 * fast <= slow - 1", {"fast": 5, "slow": 10}, False),
        ("slow - fast >= 10", {"fast": 5, "slow": 15}, True),
        ("fast / 2 > 2.4", {"fast": 5}, True),
        ("-fast + slow != 0", {"fast": 5, "slow": 5}, False),
        ("risk.stop < 0.05", {"risk.stop": 0.02}, True),
        ("1e-3 < lr", {"lr": 0.01}, True),
        ('kind == "ema"', {"kind": "ema"}, True),
        ("kind != 'ema'", {"kind": "ema"}, False),
        ("kind == other", {"kind": "a", "other": "a"}, True),
        ("kind < 3", {"kind": "a"}, False),  # mismatched types never satisfy
    ],
)
def test_constraint_evaluation(text: str, params: dict[str, Any], expected: bool) -> None:
    constraint = parse_constraint(text)
    assert constraint(params) is expected
    columns = {}
    for name, value in params.items():
        column = np.empty(3, dtype=object if isinstance(value, str) else np.float64)
        column[:] = value
        columns[name] = column
    assert list(constraint.evaluate_columns(columns, 3)) == [expected] * 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fast slow", "expected one comparison"),
        ("fast < slow < 3", "found 2 comparisons"),
        ("fast <", "the right side is empty"),
        ("fast * slow < 3", "products of parameters are not supported"),
        ("3 / fast < 1", "cannot divide by a parameter"),
        ("fast / 0 < 1", "division by zero"),
        ("fast + < 3", "the left side ends with an operator"),
        ("fast < 3 *", "expected a number or a name at the end"),
        ('fast < "x"', "strings compare only with == or !="),
        ('fast + 1 == "x"', "a string compares with one parameter name"),
        ("__import__('os') < 1", "unexpected"),
        ("1 < 2", "references no parameter"),
        ("fast < slow;", "unexpected ';'"),
        ("", "empty constraint"),
    ],
)
def test_constraint_syntax_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match="where: ") as caught:
        parse_constraint(text, "where")
    assert message in str(caught.value)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(-3, 3), st.sampled_from(["x", "y", "z"])), min_size=1, max_size=3),
    st.integers(-10, 10),
    st.sampled_from(["<", "<=", ">", ">=", "==", "!="]),
    st.dictionaries(st.sampled_from(["x", "y", "z"]), st.integers(-20, 20), min_size=3, max_size=3),
)
def test_linear_constraints_agree_with_arithmetic(
    terms: list[tuple[int, str]], constant: int, op: str, values: dict[str, int]
) -> None:
    text = " + ".join(f"{c} * {n}" for c, n in terms) + f" {op} {constant}"
    left = sum(c * values[n] for c, n in terms)
    expected = {"<": left < constant, "<=": left <= constant, ">": left > constant,
                ">=": left >= constant, "==": left == constant, "!=": left != constant}[op]
    assert parse_constraint(text)(values) is expected


def test_strings_only_compare_for_equality() -> None:
    for text in ("kind < 3", "kind * 2 == 4", "kind + 1 != fast", "fast < kind"):
        with pytest.raises(ConfigError, match="'kind' is not numeric"):
            parse_space({"fast": {"int": [1, 5]}, "kind": ["a", "b"], "constraints": [text]}, "s")
    space = parse_space(
        {"fast": {"int": [1, 5]}, "kind": ["a", "b"], "mode": "x", "constraints": ['kind != "a"', "kind != mode"]}, "s"
    )
    assert [p["kind"] for p in space.iter_grid()] == ["b"] * 5


def test_unknown_constraint_parameter() -> None:
    with pytest.raises(ConfigError, match="unknown parameter 'slwo'"):
        parse_space({"fast": {"int": [1, 5]}, "constraints": ["fast < slwo"]}, "s")


def test_feasibility_enumerates_discrete_and_reasons_on_intervals() -> None:
    ok = parse_space({"a": {"int": [0, 9]}, "b": {"int": [0, 9]}, "constraints": ["a + b == 18"]}, "s")
    ok.check_feasible()  # exactly one point: (9, 9)
    assert ok.feasible_grid_size() == 1
    bad = parse_space({"a": {"int": [0, 9]}, "b": {"int": [0, 9]}, "constraints": ["a + b == 19"]}, "s")
    with pytest.raises(ConfigError, match="no point of the space satisfies"):
        bad.check_feasible("s: space.constraints")
    # Continuous: x >= z + 1 and z >= x - 0.5 contradict; propagation finds it.
    cyc = parse_space(
        {"x": {"float": [0.0, 1.0]}, "y": {"float": [0.0, 1.0]}, "z": {"float": [0.0, 1.0]},
         "constraints": ["x >= y + 0.5", "y >= z + 0.5", "z >= x - 0.5"]},
        "s",
    )
    with pytest.raises(ConfigError):
        cyc.check_feasible()
    fine = parse_space(
        {"x": {"float": [0.0, 1.0]}, "y": {"float": [0.0, 1.0]}, "constraints": ["x >= y + 0.5"]}, "s"
    )
    fine.check_feasible()
    # Grid check with points: continuous-feasible, but no grid point qualifies.
    grid = parse_space(
        {"x": {"float": [0.0, 1.0], "points": 2}, "y": {"float": [0.0, 1.0], "points": 2},
         "constraints": ["x > y + 0.2", "x < y + 0.8"]},
        "s",
    )
    grid.check_feasible()
    with pytest.raises(ConfigError, match="no grid point"):
        grid.check_feasible(grid=True)
    fixed = parse_space({"x": {"int": [0, 3]}, "y": 5, "constraints": ["y < 3"]}, "s")
    with pytest.raises(ConfigError):
        fixed.check_feasible()


def test_tighten_narrows_bounds() -> None:
    constraints = [parse_constraint("x + 2 <= y"), parse_constraint("y <= 5")]
    box = tighten(constraints, {"x": (0.0, 10.0), "y": (0.0, 10.0)})
    assert box == {"x": (0.0, 3.0), "y": (2.0, 5.0)}
    assert tighten([parse_constraint("x > y + 20")], {"x": (0.0, 10.0), "y": (0.0, 10.0)}) is None


def test_space_repr_and_fingerprint() -> None:
    a = parse_space({"fast": {"int": [2, 10]}, "constraints": ["fast > 3"]}, "s")
    b = parse_space({"fast": {"int": [2, 10]}, "constraints": ["fast > 4"]}, "s")
    assert a.fingerprint() != b.fingerprint()
    assert a.fingerprint() == parse_space({"fast": {"int": [2, 10]}, "constraints": ["fast > 3"]}, "s").fingerprint()
    assert "fast" in repr(a)


def test_duplicate_names_are_rejected() -> None:
    with pytest.raises(ConfigError, match="declared twice"):
        Space([IntDim("a", 0, 3), IntDim("a", 0, 2)])


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.one_of(
            st.integers(-(2**60), 2**60),
            st.floats(allow_nan=False, allow_infinity=False),
            st.booleans(),
            st.text(max_size=6),
        ),
        max_size=6,
    )
)
def test_canonical_json_fast_path_equals_json_dumps(params: dict[str, Any]) -> None:
    from engine.optimize.space import canonical_value

    reference = json.dumps(
        {k: canonical_value(v) for k, v in params.items()},
        sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
    )
    assert canonical_json(params) == reference
    assert json.loads(canonical_json(params)) == json.loads(reference)


linear_constraint = st.builds(
    lambda a, x, b, y, op, c: f"{a} * {x} + {b} * {y} {op} {c}",
    st.integers(-3, 3), st.sampled_from(["x", "y", "z"]),
    st.integers(-3, 3), st.sampled_from(["x", "y", "z"]),
    st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), st.integers(-15, 15),
).filter(lambda text: not text.startswith("0 * x + 0 * y"))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.integers(-5, 5), st.integers(0, 6)), min_size=3, max_size=3),
    st.lists(linear_constraint, min_size=1, max_size=3),
)
def test_impossible_constraints_are_found_exactly_on_discrete_spaces(
    ranges: list[tuple[int, int]], constraints: list[str]
) -> None:
    table: dict[str, Any] = {n: {"int": [lo, lo + w]} for n, (lo, w) in zip("xyz", ranges, strict=True)}
    try:
        space = parse_space({**table, "constraints": constraints}, "s")
    except ConfigError as error:
        assert "references no parameter" in str(error)
        return
    axes = [range(lo, lo + w + 1) for lo, w in ranges]
    count = sum(
        1 for x, y, z in itertools.product(*axes) if space.is_feasible({"x": x, "y": y, "z": z})
    )
    assert space.feasible_grid_size() == count
    if count == 0:
        with pytest.raises(ConfigError, match="no point of the space satisfies"):
            space.check_feasible()
    else:
        space.check_feasible()


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.floats(-5, 5), st.floats(0, 6)), min_size=3, max_size=3),
    st.lists(linear_constraint.filter(lambda t: "!=" not in t and "==" not in t), min_size=1, max_size=3),
    st.integers(0, 2**32),
)
def test_interval_propagation_is_sound(
    ranges: list[tuple[float, float]], constraints: list[str], seed: int
) -> None:
    """No point that satisfies the constraints is ever cut from the box."""
    parsed = []
    for text in constraints:
        try:
            parsed.append(parse_constraint(text))
        except ConfigError:
            return
    box = {n: (lo, lo + w) for n, (lo, w) in zip("xyz", ranges, strict=True)}
    narrowed = tighten(parsed, box)
    rng = np.random.default_rng(seed)
    for _ in range(400):
        point = {n: float(lo + (hi - lo) * rng.random()) for n, (lo, hi) in box.items()}
        corner = {n: (lo, hi)[int(rng.integers(0, 2))] for n, (lo, hi) in box.items()}
        for candidate in (point, corner):
            if all(c(candidate) for c in parsed):
                assert narrowed is not None, candidate
                for name, value in candidate.items():
                    lo, hi = narrowed[name]
                    assert lo - 1e-6 <= value <= hi + 1e-6, (name, value, narrowed[name])


def test_spaces_pickle_for_worker_processes() -> None:
    import pickle

    space = parse_space(
        {
            "fast": {"int": [2, 30], "step": 2},
            "k": {"float": [0.1, 10.0], "log": True, "points": 5},
            "m": ["a", "b"],
            "risk": {"stop": {"float": [0.0, 0.05], "step": 0.01}},
            "size": 0.5,
            "constraints": ["fast * 2 >= risk.stop * 100", 'm != "b"'],
        },
        "s",
    )
    copy = pickle.loads(pickle.dumps(space))
    assert copy.fingerprint() == space.fingerprint()
    assert list(copy.iter_grid()) == list(space.iter_grid())
