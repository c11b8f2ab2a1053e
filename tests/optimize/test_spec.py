"""Study files: defaults, routing, and one clear ConfigError line for every bad file."""

from __future__ import annotations

import math
from pathlib import Path

import msgspec
import pytest

from engine.backtest import BacktestOptions
from engine.errors import EXIT_BAD_INPUT, ConfigError
from engine.optimize.spec import (
    SAMPLERS,
    StudySpec,
    load_study,
)

ROOT = Path(__file__).resolve().parents[2]

Sections = dict[str, list[str]]


def base() -> Sections:
    """A minimal valid study, section by section ("" is the top level)."""
    return {
        "": ['name = "t"'],
        "data": ['spec = "synthetic:bars=500,seed=1"'],
        "strategy": ['name = "sma_cross"'],
        "space": [
            "fast = { int = [5, 20], step = 5 }",
            "slow = { int = [30, 60], step = 10 }",
            'constraints = ["fast < slow"]',
        ],
    }


def render(sections: Sections) -> str:
    lines = list(sections.get("", []))
    for name, body in sections.items():
        if name:
            lines += ["", f"[{name}]", *body]
    return "\n".join(lines) + "\n"


def edit(sections: Sections, section: str, line: str | None, *, drop: str | None = None) -> Sections:
    """Set ``line`` (``key = value``) in ``section``, replacing the same key; ``drop`` removes a key."""
    out = {k: list(v) for k, v in sections.items()}
    body = out.setdefault(section, [])
    for key in (drop, line.split("=")[0].strip() if line else None):
        if key:
            body[:] = [entry for entry in body if entry.split("=")[0].strip() != key]
    if line is not None:
        body.append(line)
    return out


def write(tmp_path: Path, sections: Sections | str, name: str = "study.toml") -> Path:
    path = tmp_path / name
    path.write_text(sections if isinstance(sections, str) else render(sections))
    return path


def error_of(tmp_path: Path, sections: Sections | str) -> str:
    path = write(tmp_path, sections)
    with pytest.raises(ConfigError) as caught:
        load_study(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: "), message
    assert caught.value.exit_code == EXIT_BAD_INPUT
    return message


# --------------------------------------------------------------------------- good files


def test_minimal_study_gets_every_default(tmp_path: Path) -> None:
    spec = load_study(write(tmp_path, base()))
    assert isinstance(spec, StudySpec)
    assert spec.name == "t"
    assert spec.search.sampler == "grid" and spec.search.seed == 0
    assert spec.search.objective == "sharpe" and spec.search.direction == "maximize"
    assert spec.search.prune == "none"
    # A grid without trials runs the whole grid (4 * 4 points before constraints).
    assert spec.trials == 16 == spec.space.grid_size
    assert spec.execution.backend == "process" and spec.execution.workers == 0
    assert spec.execution.scheduler == "local"
    assert spec.execution.checkpoint_every == 500 and spec.execution.checkpoint_interval_s == 1.0
    assert spec.execution.artifacts == "top:20"
    assert spec.batch_size == 1024
    assert spec.backtest.fill == "next_open" and spec.backtest.direction == "long"
    assert spec.validation.out_of_sample == 0.0 and spec.validation.walk_forward_folds == 0
    assert spec.notify.webhook is None and spec.notify.on == ["finish", "failure", "critical"]
    assert spec.report.dir is None
    assert spec.alerts.memory_mb.critical == 2048.0


def test_name_defaults_to_the_file_stem(tmp_path: Path) -> None:
    sections = base()
    del sections[""]
    spec = load_study(write(tmp_path, sections, "nightly-run.toml"))
    assert spec.name == "nightly-run"


def test_specs_are_frozen(tmp_path: Path) -> None:
    spec = load_study(write(tmp_path, base()))
    with pytest.raises(AttributeError):
        spec.name = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        spec.search.trials = 3  # type: ignore[misc]


def test_non_grid_sampler_default_budget_and_batches(tmp_path: Path) -> None:
    spec = load_study(write(tmp_path, edit(base(), "search", 'sampler = "random"')))
    assert spec.trials == 1000
    genetic = load_study(write(tmp_path, edit(edit(base(), "search", 'sampler = "genetic"'), "search", "population = 12")))
    assert genetic.batch_size == 12
    tpe = load_study(write(tmp_path, edit(base(), "search", 'sampler = "tpe"')))
    assert tpe.batch_size == 8
    explicit = load_study(write(tmp_path, edit(base(), "execution", "batch_size = 64")))
    assert explicit.batch_size == 64


def test_the_readme_example_loads() -> None:
    spec = load_study(ROOT / "examples" / "sma-nightly.toml")
    assert spec.name == "sma-nightly"
    assert spec.strategy.name == "sma_cross"
    assert spec.space.names == ("fast", "slow", "stop_loss")
    assert spec.validation.out_of_sample == 0.25
    assert spec.space.feasible_grid_size() == sum(
        1 for f in range(5, 51, 5) for s in range(20, 201, 10) for _ in range(3) if f < s
    )


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.toml")), ids=lambda p: p.name)
def test_every_example_study_loads(path: Path) -> None:
    """Each example loads as written: its name, strategy and every searched parameter (nested
    tables as dotted names), none dropped or renamed on the way."""
    import tomllib

    raw = tomllib.loads(path.read_text())
    searched: list[str] = []
    for key, value in raw["space"].items():
        if key == "constraints":
            continue
        nested = isinstance(value, dict) and all(isinstance(v, dict) for v in value.values())
        searched += [f"{key}.{sub}" for sub in value] if nested else [key]
    spec = load_study(path)
    assert spec.name == raw["name"] == path.stem
    assert spec.strategy.name == raw["strategy"]["name"]
    assert sorted(spec.space.names) == sorted(searched)


def test_routing_of_strategy_params_and_backtest_options(tmp_path: Path) -> None:
    sections = edit(base(), "space", "size = 0.5")
    sections = edit(sections, "space.risk", "stop_loss = { choice = [0.0, 0.02] }")
    sections = edit(sections, "backtest", "fee = 0.001")
    spec = load_study(write(tmp_path, sections))
    assert spec.routes == {
        "fast": ("strategy", "fast"),
        "slow": ("strategy", "slow"),
        "risk.stop_loss": ("backtest", "stop_loss"),
        "size": ("backtest", "size"),
    }
    params = spec.space.grid_point(1)
    strategy, options = spec.split(params)
    assert strategy == {"fast": 5, "slow": 30}
    assert options == BacktestOptions(fee=0.001, size=0.5, stop_loss=0.02)
    assert spec.split({"fast": 5, "slow": 30})[1] is spec.backtest  # no override: the record itself


def test_strategy_fixed_values_join_every_point(tmp_path: Path) -> None:
    sections = edit(base(), "space", None, drop="slow")
    sections = edit(sections, "space", 'constraints = ["fast < slow"]')
    sections = edit(sections, "strategy", "fixed = { slow = 40 }")
    spec = load_study(write(tmp_path, sections))
    assert spec.space.fixed == {"slow": 40}
    assert [p["slow"] for p in spec.space.iter_grid()] == [40] * 4


def test_strategy_constraints_apply_without_being_written(tmp_path: Path) -> None:
    sections = edit(base(), "space", 'constraints = []')
    spec = load_study(write(tmp_path, sections))
    assert [c.text for c in spec.space.constraints] == ["fast < slow"]


def test_strategy_constraint_holds_an_unsearched_parameter_at_its_default(tmp_path: Path) -> None:
    sections = base()
    sections["space"] = ["fast = { int = [5, 60], step = 5 }"]
    spec = load_study(write(tmp_path, sections))
    assert spec.space.fixed == {"slow": 50}  # sma_cross's default
    assert [p["fast"] for p in spec.space.iter_grid()] == list(range(5, 50, 5))
    assert spec.routes["slow"] == ("strategy", "slow")
    sections["space"] = ["fast = { int = [60, 90], step = 5 }"]
    assert "'fast < slow' (with slow = 50 held fixed)" in error_of(tmp_path, sections)


def test_float_range_on_a_float_parameter(tmp_path: Path) -> None:
    sections = base()
    sections["strategy"] = ['name = "rsi_reversion"']
    sections["space"] = [
        "window = { int = [5, 30], step = 5 }",
        "lower = { float = [10.0, 40.0], step = 10.0 }",
        "upper = { float = [60.0, 90.0], points = 4 }",
    ]
    spec = load_study(write(tmp_path, sections))
    assert spec.space.grid_size == 6 * 4 * 4
    assert spec.routes["lower"] == ("strategy", "lower")


# --------------------------------------------------------------------------- bad files

UNKNOWN_KEYS = [
    ("", "colour = 1", "colour"),
    ("data", "format = 1", "data.format"),
    ("strategy", "version = 2", "strategy.version"),
    ("backtest", "leverage = 2.0", "backtest.leverage"),
    ("search", "trails = 100", "search.trails"),
    ("execution", "threads = 4", "execution.threads"),
    ("validation", "holdout = 0.2", "validation.holdout"),
    ("alerts", "cpu = 1", "alerts.cpu"),
    ("alerts.memory_mb", "fatal = 3.0", "alerts.memory_mb.fatal"),
    ("notify", "email = \"a@b\"", "notify.email"),
    ("report", "format = \"md\"", "report.format"),
    ("space", "fast = { int = [5, 20], stpe = 5 }", "space.fast.stpe"),
    ("space.risk", "stop_loss = { choice = [0.0], log = true }", "space.risk.stop_loss.log"),
]


@pytest.mark.parametrize(("section", "line", "key"), UNKNOWN_KEYS, ids=[k for _, _, k in UNKNOWN_KEYS])
def test_unknown_key_at_every_level(tmp_path: Path, section: str, line: str, key: str) -> None:
    message = error_of(tmp_path, edit(base(), section, line))
    assert f": {key}: unknown key" in message, message


WRONG_TYPES = [
    ("search", 'trials = "many"', "search.trials", "expected `int`"),
    ("search", "seed = 1.5", "search.seed", "expected `int`"),
    ("backtest", 'fee = "low"', "backtest.fee", "expected `float`"),
    ("backtest", 'fill = "tomorrow"', "backtest.fill", "invalid enum value"),
    ("execution", "workers = true", "execution.workers", "expected `int`"),
    ("execution", 'backend = "gpu"', "execution.backend", "invalid enum value"),
    ("validation", 'walk_forward_mode = "sideways"', "validation.walk_forward_mode", "invalid enum value"),
    ("notify", 'on = "finish"', "notify.on", "expected `array`"),
    ("alerts.memory_mb", 'warning = "high"', "alerts.memory_mb.warning", "expected `float | null`"),
    ("data", "spec = 5", "data.spec", "expected `str`"),
    ("space", "fast = { int = [5.5, 20] }", "space.fast.int", "expected [low, high] as two ints"),
    ("space", "fast = { int = [5, 20], step = 0 }", "space.fast.step", "integer >= 1"),
    ("space", "fast = { int = [20, 5] }", "space.fast.int", "low 20 is above high 5"),
    ("space", "fast = 2020-01-01", "space.fast", "expected a table"),
    ("space", "fast = { choice = 5 }", "space.fast.choice", "expected a list"),
    ("space", "fast = { int = [5, 20], choice = [1] }", "space.fast", "choose one of"),
]


@pytest.mark.parametrize(("section", "line", "key", "text"), WRONG_TYPES, ids=[f"{k}:{t}" for _, _, k, t in WRONG_TYPES])
def test_wrong_type(tmp_path: Path, section: str, line: str, key: str, text: str) -> None:
    message = error_of(tmp_path, edit(base(), section, line))
    assert f": {key}: " in message and text in message, message


SEMANTIC = [
    ("search", "trials = -5", "search.trials", "expected a positive number of trials, got -5"),
    ("search", "trials = 0", "search.trials", "got 0"),
    ("search", 'sampler = "annealing"', "search.sampler", "unknown sampler 'annealing' (expected one of: grid, random, genetic, tpe)"),
    ("search", 'objective = "happiness"', "search.objective", "unknown metric 'happiness' (known: final_value"),
    ("search", 'direction = "up"', "search.direction", "expected maximize or minimize"),
    ("search", "elite = 50", "search.elite", "expected an integer in [0, population)"),
    ("search", "mutation_rate = 1.5", "search.mutation_rate", "probability"),
    ("strategy", 'name = "moon_phase"', "strategy.name", "unknown strategy 'moon_phase' (known: "),
    ("space", "fast = { int = [1, 20] }", "space.fast", "1 is below the strategy's minimum 2"),
    ("space", "slow = { int = [30, 2000], step = 10 }", "space.slow", "above the strategy's maximum 1000"),
    ("space", "fast = { float = [5.0, 20.0], step = 5.0 }", "space.fast", "takes an integer, not a float range"),
    ("space", 'fast = { choice = [5, "ten"] }', "space.fast", "takes an integer, got 'ten'"),
    ("space", "window = { int = [5, 20] }", "space.window", "unknown parameter for strategy 'sma_cross' (its parameters: fast, slow"),
    ("space", 'constraints = ["fast < slwo"]', "space", "unknown parameter 'slwo'"),
    ("space", 'constraints = ["fast <> slow"]', "space.constraints[0]", "expected one comparison"),
    ("space", 'constraints = ["fast < slow", "fast > 40"]', "space.constraints", "no point of the space satisfies"),
    ("space", "stop_loss = { float = [0.0, 0.05] }", "space.stop_loss", "grid sampler needs a step or a number of points"),
    ("space", "stop_loss = { choice = [-0.1, 0.02] }", "space.stop_loss", "stop_loss must be a number in [0, 1), got -0.1"),
    ("space", "fee = { float = [0.0, 1.0], step = 0.5 }", "space.fee", "fee must be a number in [0, 1), got 1.0"),
    ("space", 'direction = { choice = ["long", "sideways"] }', "space.direction", "direction must be one of long, short, both, got 'sideways'"),
    ("space", "fast = { choice = [5, 5.0] }", "space.fast", "listed twice"),
    ("space", "fast = { choice = [] }", "space.fast.choice", "an empty list of choices"),
    ("space.risk", "foo = 1", "space.risk.foo", "unknown parameter"),
    ("execution", 'scheduler = "dask://x"', "execution.scheduler", 'expected "local" or "tcp://HOST:PORT"'),
    ("execution", 'artifacts = "best"', "execution.artifacts", "top:N"),
    ("execution", "workers = -1", "execution.workers", "expected an integer >= 0"),
    ("validation", "out_of_sample = 1.0", "validation.out_of_sample", "fraction in [0, 1)"),
    ("validation", "top_k = 0", "validation.top_k", "expected an integer >= 1"),
    ("notify", 'webhook = "ftp://x"', "notify.webhook", "http:// or https:// URL"),
    ("notify", 'on = ["finish", "lunch"]', "notify.on[1]", "unknown event 'lunch'"),
    ("backtest", "size = 1.5", "backtest", "size must be a number in (0, 1], got 1.5"),
    ("backtest", "fee = nan", "backtest.fee", "expected a finite number, got nan"),
    ("backtest", "cash = inf", "backtest.cash", "expected a finite number, got inf"),
    ("data", 'spec = "ftp:prices"', "data.spec", "unknown source 'ftp:'"),
]


@pytest.mark.parametrize(("section", "line", "key", "text"), SEMANTIC, ids=[f"{k}:{t[:24]}" for _, _, k, t in SEMANTIC])
def test_semantic_error(tmp_path: Path, section: str, line: str, key: str, text: str) -> None:
    message = error_of(tmp_path, edit(base(), section, line))
    assert f": {key}" in message and text in message, message


def test_empty_space(tmp_path: Path) -> None:
    sections = base()
    sections["space"] = []
    assert "space: no parameter to search (the space is empty)" in error_of(tmp_path, sections)


def test_space_of_only_fixed_values_is_empty(tmp_path: Path) -> None:
    sections = base()
    sections["space"] = ["fast = 5", "slow = 30"]
    assert "the space is empty" in error_of(tmp_path, sections)


def test_empty_group(tmp_path: Path) -> None:
    sections = edit(base(), "space", "risk = {}")
    assert "space.risk: empty group" in error_of(tmp_path, sections)


def test_missing_required_tables(tmp_path: Path) -> None:
    for table in ("data", "strategy", "space"):
        sections = base()
        del sections[table]
        assert f"[{table}]: missing" in error_of(tmp_path, sections)


def test_missing_required_key(tmp_path: Path) -> None:
    sections = base()
    sections["strategy"] = []
    message = error_of(tmp_path, sections)
    assert "strategy: object missing required field `name`" in message


def test_fixed_and_searched_at_once(tmp_path: Path) -> None:
    sections = edit(base(), "strategy", "fixed = { fast = 5 }")
    assert "strategy.fixed.fast: 'fast' is both fixed and in [space]" in error_of(tmp_path, sections)


def test_two_names_for_one_backtest_option(tmp_path: Path) -> None:
    sections = edit(base(), "space", "stop_loss = { choice = [0.0, 0.01] }")
    sections = edit(sections, "space.risk", "stop_loss = 0.02")
    assert "sets backtest option 'stop_loss'" in error_of(tmp_path, sections)


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    assert "invalid TOML" in error_of(tmp_path, "name = \n")
    with pytest.raises(ConfigError, match="file not found"):
        load_study(tmp_path / "nope.toml")


def test_impossible_constraint_on_continuous_ranges(tmp_path: Path) -> None:
    sections = base()
    sections["strategy"] = ['name = "rsi_reversion"']
    sections["space"] = [
        "lower = { float = [40.0, 60.0] }",
        "upper = { float = [10.0, 30.0] }",
    ]
    sections["search"] = ['sampler = "random"']
    # rsi_reversion declares lower < upper: interval reasoning proves it impossible.
    assert "no point of the space satisfies the constraints 'lower < upper'" in error_of(tmp_path, sections)


def test_cli_run_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from genesis_tui.cli import main

    path = write(tmp_path, edit(base(), "search", "trials = -1"))
    code = main(["run", str(path), "--headless", "--db", str(tmp_path / "s.db")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "search.trials" in err and "Traceback" not in err
    assert not (tmp_path / "s.db").exists()


def test_spec_is_a_msgspec_struct_tree(tmp_path: Path) -> None:
    spec = load_study(write(tmp_path, edit(base(), "search", "seed = 9")))
    builtins = msgspec.to_builtins(spec.search)
    assert builtins["seed"] == 9 and builtins["sampler"] in SAMPLERS
    assert math.isclose(spec.search.min_fraction, 1 / 9)


def test_tpe_without_optuna_is_a_config_error(tmp_path: Path) -> None:
    """Optuna hidden from a child interpreter: loading a TPE study fails with one line."""
    import subprocess
    import sys

    path = write(tmp_path, edit(base(), "search", 'sampler = "tpe"'))
    code = (
        "import sys\n"
        "sys.modules['optuna'] = None  # import optuna now raises ImportError\n"
        "from engine.errors import ConfigError\n"
        "from engine.optimize.spec import load_study\n"
        "from engine.optimize.samplers import TPESampler\n"
        "from engine.optimize.space import parse_space\n"
        "try:\n"
        f"    load_study({str(path)!r})\n"
        "except ConfigError as error:\n"
        "    print(error)\n"
        "try:\n"
        "    TPESampler(parse_space({'a': {'int': [0, 3]}}, 's'))\n"
        "except ConfigError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = result.stdout.splitlines()
    assert lines[0] == f"{path}: search.sampler: \"tpe\" needs optuna: pip install 'genesis-console[optuna]'"
    assert lines[1].startswith('search.sampler: "tpe" needs optuna')
