"""Study files (TOML): decoding, defaults and semantic validation.

:func:`load_study` reads a study file into a frozen :class:`StudySpec`. Every
table is a ``msgspec.Struct`` with ``forbid_unknown_fields=True``, so an unknown
key anywhere is an error; only ``[data]``, ``[strategy]`` and ``[space]`` are
required. Each error is one ``ConfigError`` line naming the file and the key
path (``study.toml: search.trials: expected int, got str``); exit code 2.

Beyond types, :func:`load_study` checks what a run would otherwise trip on
later: the strategy exists; every searched or fixed parameter is one the
strategy declares (or a backtest option such as ``stop_loss``) and lies within
its declared bounds; the space is not empty; ``trials`` is positive; the
sampler, the objective metric and the direction are known; constraints
reference known parameters; and some point of the space satisfies them.

Where parameters go: a parameter is named by its dotted path in ``[space]``
(``[space.risk] stop_loss`` is ``risk.stop_loss``). A name the strategy declares
is a strategy parameter; otherwise, if its last part is a backtest option
(:data:`BACKTEST_OPTIONS`), it sets that option for the trial (overriding
``[backtest]``); anything else is an error. :meth:`StudySpec.split` applies
this routing to one trial's parameters.

``[backtest]`` decodes directly into ``engine.backtest.BacktestOptions``, which
validates itself; a searched option's values are checked by the same rules
(``engine.backtest.options.OPTIONS``).
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

from engine.backtest.options import OPTION_NAMES, OPTIONS, BacktestOptions, OptionError
from engine.config import decode, parse_toml, read_text
from engine.errors import ConfigError, DataError
from engine.monitor.alert_spec import AlertsSpec
from engine.optimize.constraints import parse_constraint
from engine.optimize.space import Space, parse_space
from engine.paths import check_name

SAMPLERS = ("grid", "random", "genetic", "tpe")
DIRECTIONS = ("maximize", "minimize")
BACKENDS = ("inline", "process", "dask")
#: Backtest options a study may set in ``[backtest]`` or search in ``[space]``.
BACKTEST_OPTIONS = OPTION_NAMES
NOTIFY_EVENTS = ("finish", "failure", "critical")
#: Trials per sampler batch when ``execution.batch_size = 0`` (TPE: see the docs).
DEFAULT_BATCH = {"grid": 1024, "random": 1024, "tpe": 8}
DEFAULT_TRIALS = 1000  # non-grid samplers without ``search.trials``

_SCHEDULER = re.compile(r"^(local|(tcp|tls)://[A-Za-z0-9_.\-\[\]:]+:\d{1,5})$")
_ARTIFACTS = re.compile(r"^(all|none|top:[1-9]\d*)$")


class DataSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[data]``: where the bars come from: one ``spec`` (``engine.data.load``) or a basket's ``specs``
    (``engine.data.load_basket``; a spec naming several symbols, such as a folder, is a basket too)."""

    spec: str = ""
    specs: list[str] = msgspec.field(default_factory=list)

    @property
    def all(self) -> list[str]:
        """Every spec, in order."""
        return [self.spec] if self.spec else list(self.specs)


class StrategySpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[strategy]``: the strategy (built in, in the user's folder, or in ``file``) and the parameters held constant."""

    name: str
    fixed: dict[str, Any] = {}
    file: str | None = None  # a strategy file, relative to the study file


class SearchSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[search]``: the sampler, the budget and the objective."""

    sampler: str = "grid"
    trials: int | msgspec.UnsetType = msgspec.UNSET  # grid: the whole grid; others: DEFAULT_TRIALS
    seed: int = 0
    objective: str = "sharpe"
    direction: str = "maximize"
    prune: Literal["none", "halving"] = "none"
    min_fraction: float = 1 / 9  # halving: share of the bars in the first rung
    reduction_factor: int = 3  # halving: keep 1 in reduction_factor per rung
    population: int = 50  # genetic
    generations: int = 20  # genetic
    mutation_rate: float = 0.2  # genetic: per gene
    crossover_rate: float = 0.9  # genetic: per child
    elite: int = 2  # genetic: best carried over unevaluated
    tournament: int = 3  # genetic: tournament size
    startup_trials: int = 10  # tpe: random trials before the model is used


class ExecutionSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[execution]``: where and how trials run, and how often progress is saved."""

    backend: Literal["inline", "process", "dask"] = "process"
    workers: int = 0  # 0: one per core
    scheduler: str = "local"  # dask: "local" or "tcp://HOST:PORT"
    trial_timeout_s: float = 30.0
    max_consecutive_failures: int = 20
    max_in_flight: int = 0  # trials dispatched but not finished; 0: the executor chooses
    batch_size: int = 0  # trials per sampler batch; 0: per sampler (see the docs)
    checkpoint_every: int = 500  # trials ...
    checkpoint_interval_s: float = 1.0  # ... or seconds, whichever comes first
    artifacts: str = "top:20"  # all | top:N | none
    db: str | None = None  # the store (a SQLite path or a postgresql:// URL) when no --db is given


class ValidationSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[validation]``: hold-out and walk-forward checks against overfitting."""

    out_of_sample: float = 0.0  # fraction of the bars held out at the end
    walk_forward_folds: int = 0
    walk_forward_mode: Literal["rolling", "anchored"] = "rolling"
    walk_forward_train_ratio: float = 3.0  # rolling: train bars per test bar
    walk_forward_candidates: int = 100  # best trials re-selected per fold; 0: all
    top_k: int = 5  # best trials re-run out of sample
    blocks: int = 16  # equal time blocks each trial's in-sample returns are recorded on (CSCV, PBO); 0 disables


class NotifySpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[notify]``: a webhook called when the study ends."""

    webhook: str | None = None
    on: list[str] = msgspec.field(default_factory=lambda: list(NOTIFY_EVENTS))
    timeout_s: float = 10.0
    retries: int = 3


class ReportSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[report]``: where the Markdown and JSON report go (``None``: the runner's default)."""

    dir: str | None = None


class _StudyFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    data: DataSpec
    strategy: StrategySpec
    space: dict[str, Any]
    name: str | None = None
    backtest: BacktestOptions = BacktestOptions()
    search: SearchSpec = SearchSpec()
    execution: ExecutionSpec = ExecutionSpec()
    validation: ValidationSpec = ValidationSpec()
    alerts: AlertsSpec = AlertsSpec()
    notify: NotifySpec = NotifySpec()
    report: ReportSpec = ReportSpec()


class StudySpec(msgspec.Struct, frozen=True):
    """A validated study file. ``space`` is the parsed :class:`Space`."""

    name: str
    path: str
    data: DataSpec
    strategy: StrategySpec
    space: Space
    backtest: BacktestOptions
    search: SearchSpec
    execution: ExecutionSpec
    validation: ValidationSpec
    alerts: AlertsSpec
    notify: NotifySpec
    report: ReportSpec
    #: Each parameter name -> ("strategy", name) or ("backtest", option).
    routes: dict[str, tuple[str, str]]
    #: The strategy file's content when the strategy is not built in (what workers load).
    source: Any = None

    @property
    def trials(self) -> int:
        """The trial budget (``search.trials`` resolved: a grid's size when unset)."""
        assert isinstance(self.search.trials, int)
        return self.search.trials

    @property
    def batch_size(self) -> int:
        """Trials per sampler batch (``execution.batch_size`` or the sampler's default).

        The genetic sampler's batch is one generation (it never hands out more).
        """
        if self.execution.batch_size:
            return self.execution.batch_size
        if self.search.sampler == "genetic":
            return self.search.population
        return DEFAULT_BATCH[self.search.sampler]

    @property
    def maximize(self) -> bool:
        return self.search.direction == "maximize"

    def split(self, params: Mapping[str, Any]) -> tuple[dict[str, Any], BacktestOptions]:
        """``(strategy params, backtest options)`` of one trial; ``[backtest]`` is the base."""
        strategy: dict[str, Any] = {}
        overrides: dict[str, Any] = {}
        for name, value in params.items():
            target, key = self.routes.get(name, ("strategy", name))
            (strategy if target == "strategy" else overrides)[key] = value
        return strategy, self.backtest.replace(**overrides)


# --------------------------------------------------------------------------- loading


def load_study(path: str | Path) -> StudySpec:
    """Read and validate a study file; any problem is a one-line ``ConfigError``."""
    return load_study_with_text(path)[0]


def load_study_with_text(path: str | Path) -> tuple[StudySpec, str]:
    """:func:`load_study` and the file's text, from one read (a pipe gives its bytes once)."""
    path = Path(path)
    text = read_text(path)
    spec = study_from_dict(parse_toml(text, str(path)), where=str(path), default_name=path.stem, base=path.parent)
    return spec, text


def study_from_dict(
    raw: Mapping[str, Any], *, where: str = "study", default_name: str = "study", base: Path | None = None
) -> StudySpec:
    """Validate an already-decoded study table (``where`` names it in errors; ``base``: the
    folder a relative ``[strategy] file`` is found in)."""
    for table in ("data", "strategy", "space"):
        if table not in raw:
            raise ConfigError(f"{where}: [{table}]: missing (required table)")
    if not isinstance(raw.get("space"), dict):
        raise ConfigError(f"{where}: space: expected a table, got {type(raw['space']).__name__}")
    file = decode(dict(raw), _StudyFile, where)
    _check_data(file.data, where)
    record = _strategy_record(file.strategy, where, base)
    strategy = _strategy_info(record)
    fixed = dict(file.strategy.fixed)
    # A strategy constraint on a parameter neither searched nor fixed holds it
    # at the strategy's default (sma_cross searched on fast only: slow = 50).
    unconstrained = parse_space(
        {k: v for k, v in file.space.items() if k != "constraints"}, where, fixed=fixed
    )
    _routes(unconstrained, strategy, set(fixed), where)  # names, types and bounds first
    present = {*unconstrained.names, *unconstrained.fixed}
    for text in strategy.constraints:
        for name in parse_constraint(text, f"{where}: strategy constraint").names:
            if name not in present and name in strategy.defaults:
                fixed[name] = strategy.defaults[name]
    space = parse_space(file.space, where, fixed=fixed, constraints=strategy.constraints)
    routes = _routes(space, strategy, set(fixed), where)
    _check_search(file.search, where)
    _check_execution(file.execution, where)
    _check_validation(file.validation, where)
    _check_notify(file.notify, where)
    search = file.search
    if search.sampler == "grid":
        if not space.griddable:
            continuous = next(d.name for d in space.dims if d.grid_size is None)
            raise ConfigError(
                f"{where}: space.{continuous}: the grid sampler needs a step or a number of points"
                " for a continuous float range"
            )
        trials = search.trials if isinstance(search.trials, int) else space.grid_size
    else:
        trials = search.trials if isinstance(search.trials, int) else DEFAULT_TRIALS
    search = msgspec.structs.replace(search, trials=trials)
    space.check_feasible(f"{where}: space.constraints", grid=search.sampler == "grid")
    name = check_name(file.name if file.name is not None else default_name, f"{where}: name")
    return StudySpec(
        name=name,
        path=where,
        data=file.data,
        strategy=file.strategy,
        space=space,
        backtest=file.backtest,
        search=search,
        execution=file.execution,
        validation=file.validation,
        alerts=file.alerts,
        notify=file.notify,
        report=file.report,
        routes=routes,
        source=record.source,
    )


# --------------------------------------------------------------------------- strategies


class StrategyInfo(msgspec.Struct, frozen=True):
    """What a study needs to know of a registered strategy."""

    name: str
    #: Parameter name -> (kind "int"|"float"|"choice"|..., low or None, high or None, choices or None)
    params: dict[str, tuple[str, float | None, float | None, tuple[Any, ...] | None]]
    constraints: tuple[str, ...] = ()
    defaults: dict[str, Any] = {}


def _strategy_record(table: StrategySpec, where: str, base: Path | None) -> Any:
    """The strategy ``[strategy]`` names: in ``file`` (the user's code, imported), else built in or in the folder."""
    from engine.backtest.strategies import get_strategy
    from engine.errors import StrategyError
    from engine.strategy.loader import StrategySource, load_strategy

    try:
        if table.file is None:
            return get_strategy(table.name)
        path = Path(table.file).expanduser()
        if base is not None and not path.is_absolute():
            path = base / path
        return load_strategy(StrategySource.read(path), table.name)
    except StrategyError as error:
        key = "strategy.file" if table.file is not None else "strategy.name"
        raise ConfigError(f"{where}: {key}: {error}") from None


def _strategy_info(strategy: Any) -> StrategyInfo:
    params: dict[str, tuple[str, float | None, float | None, tuple[Any, ...] | None]] = {
        p.name: (p.kind, p.low, p.high, tuple(p.choices) or None) for p in strategy.params
    }
    return StrategyInfo(
        strategy.name, params, tuple(c.expr for c in strategy.constraints), strategy.defaults()
    )


def _routes(
    space: Space, strategy: StrategyInfo, from_strategy: set[str], where: str
) -> dict[str, tuple[str, str]]:
    routes: dict[str, tuple[str, str]] = {}
    owner: dict[str, str] = {}
    for name in (*space.names, *space.fixed):
        section = "strategy.fixed" if name in from_strategy else "space"
        key = f"{where}: {section}.{name}"
        leaf = name.rpartition(".")[2]
        if name in strategy.params:
            route = ("strategy", name)
            _check_bounds(name, space, strategy.params[name], key)
        elif leaf in BACKTEST_OPTIONS:
            route = ("backtest", leaf)
            _check_backtest_values(leaf, space, name, key)
        else:
            known = ", ".join(strategy.params) or "none"
            raise ConfigError(
                f"{key}: unknown parameter for strategy {strategy.name!r}"
                f" (its parameters: {known}; backtest options: {', '.join(BACKTEST_OPTIONS)})"
            )
        if route[0] == "backtest":
            if route[1] in owner:
                raise ConfigError(
                    f"{key}: sets backtest option {leaf!r}, as {owner[route[1]]!r} does"
                )
            owner[route[1]] = name
        routes[name] = route
    return routes


def _values(space: Space, name: str) -> tuple[list[Any], tuple[float, float] | None]:
    """Explicit values (fixed or choices) and numeric bounds of one parameter."""
    if name in space.fixed:
        value = space.fixed[name]
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return [value], (float(value), float(value)) if number else None
    dim = space.dim(name)
    values = list(dim.values) if dim.kind == "choice" else []  # type: ignore[union-attr]
    return values, dim.bounds


def _check_bounds(
    name: str,
    space: Space,
    declared: tuple[str, float | None, float | None, tuple[Any, ...] | None],
    key: str,
) -> None:
    kind, low, high, choices = declared
    values, bounds = _values(space, name)
    if choices is not None:
        for value in values or []:
            if value not in choices:
                raise ConfigError(f"{key}: {value!r} is not one of {list(choices)}")
        if name in space.names and space.dim(name).kind != "choice":
            raise ConfigError(f"{key}: expected a choice among {list(choices)}")
        return
    if kind == "int":
        if name in space.names and space.dim(name).kind == "float":
            raise ConfigError(f"{key}: the strategy takes an integer, not a float range")
        for value in values:
            if not (isinstance(value, int) and not isinstance(value, bool)) and not (
                isinstance(value, float) and value.is_integer()
            ):
                raise ConfigError(f"{key}: the strategy takes an integer, got {value!r}")
    if kind in ("int", "float"):
        for value in values:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{key}: the strategy takes a number, got {value!r}")
        if bounds is None:
            return
        lo, hi = bounds
        if low is not None and lo < low:
            raise ConfigError(f"{key}: {_fmt(lo)} is below the strategy's minimum {_fmt(low)}")
        if high is not None and hi > high:
            raise ConfigError(f"{key}: {_fmt(hi)} is above the strategy's maximum {_fmt(high)}")


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _check_backtest_values(option: str, space: Space, name: str, key: str) -> None:
    """A searched or fixed option's values (a range: both ends) against the option's own rules."""
    info = OPTIONS[option]
    values, bounds = _values(space, name)
    if info.choices and name in space.names and space.dim(name).kind != "choice":
        raise ConfigError(f"{key}: expected a choice among {list(info.choices)}")
    try:
        for value in (*values, *(bounds or ())):
            info.check(value)
    except OptionError as error:
        raise ConfigError(f"{key}: {error}") from None


# --------------------------------------------------------------------------- section checks


def _metric_names() -> tuple[str, ...]:
    from engine.backtest.enums import METRIC_NAMES

    return tuple(METRIC_NAMES)


def _optuna_available() -> bool:
    """Whether the optional optuna extra is importable (without importing it)."""
    try:
        return importlib.util.find_spec("optuna") is not None
    except (ImportError, ValueError):
        return False


def _check_data(data: DataSpec, where: str) -> None:
    """The data spec's syntax (the data itself is loaded when the study runs)."""
    from engine.data.spec import parse_spec

    if bool(data.spec) == bool(data.specs):
        raise ConfigError(f"{where}: [data]: expected spec = \"...\" or specs = [\"...\", ...] (one of them)")
    for index, text in enumerate(data.all):
        key = "data.spec" if data.spec else f"data.specs[{index}]"
        try:
            parse_spec(text)
        except DataError as error:
            raise ConfigError(f"{where}: {key}: {error}") from None


def _check_search(search: SearchSpec, where: str) -> None:
    if search.sampler not in SAMPLERS:
        raise ConfigError(
            f"{where}: search.sampler: unknown sampler {search.sampler!r} (expected one of: {', '.join(SAMPLERS)})"
        )
    if search.sampler == "tpe" and not _optuna_available():
        raise ConfigError(
            f"{where}: search.sampler: \"tpe\" needs optuna: pip install 'genesis-console[optuna]'"
        )
    if isinstance(search.trials, int) and search.trials <= 0:
        raise ConfigError(
            f"{where}: search.trials: expected a positive number of trials, got {search.trials}"
        )
    if search.direction not in DIRECTIONS:
        raise ConfigError(
            f"{where}: search.direction: expected maximize or minimize, got {search.direction!r}"
        )
    metrics = _metric_names()
    if search.objective not in metrics:
        raise ConfigError(
            f"{where}: search.objective: unknown metric {search.objective!r} (known: {', '.join(metrics)})"
        )
    if search.seed < 0 or search.seed >= 2**63:
        raise ConfigError(
            f"{where}: search.seed: expected an integer in [0, 2**63), got {search.seed}"
        )
    checks = (
        ("min_fraction", 0.0 < search.min_fraction < 1.0, "a fraction in (0, 1)"),
        ("reduction_factor", search.reduction_factor >= 2, "an integer >= 2"),
        ("population", search.population >= 2, "an integer >= 2"),
        ("generations", search.generations >= 1, "an integer >= 1"),
        ("mutation_rate", 0.0 <= search.mutation_rate <= 1.0, "a probability in [0, 1]"),
        ("crossover_rate", 0.0 <= search.crossover_rate <= 1.0, "a probability in [0, 1]"),
        ("elite", 0 <= search.elite < search.population, "an integer in [0, population)"),
        ("tournament", search.tournament >= 1, "an integer >= 1"),
        ("startup_trials", search.startup_trials >= 1, "an integer >= 1"),
    )
    for field, ok, expected in checks:
        if not ok:
            raise ConfigError(
                f"{where}: search.{field}: expected {expected}, got {getattr(search, field)!r}"
            )


def _check_execution(execution: ExecutionSpec, where: str) -> None:
    checks = (
        ("workers", execution.workers >= 0, "an integer >= 0 (0: one per core)"),
        ("trial_timeout_s", execution.trial_timeout_s > 0, "a positive number of seconds"),
        ("max_consecutive_failures", execution.max_consecutive_failures >= 1, "an integer >= 1"),
        ("max_in_flight", execution.max_in_flight >= 0, "an integer >= 0 (0: automatic)"),
        ("batch_size", execution.batch_size >= 0, "an integer >= 0 (0: automatic)"),
        ("checkpoint_every", execution.checkpoint_every >= 1, "an integer >= 1"),
        (
            "checkpoint_interval_s",
            execution.checkpoint_interval_s > 0,
            "a positive number of seconds",
        ),
    )
    for field, ok, expected in checks:
        if not ok:
            raise ConfigError(
                f"{where}: execution.{field}: expected {expected}, got {getattr(execution, field)!r}"
            )
    if not _SCHEDULER.match(execution.scheduler):
        raise ConfigError(
            f'{where}: execution.scheduler: expected "local" or "tcp://HOST:PORT" (tls:// with TLS), '
            f"got {execution.scheduler!r}"
        )
    if not _ARTIFACTS.match(execution.artifacts):
        raise ConfigError(
            f'{where}: execution.artifacts: expected "all", "none" or "top:N", got {execution.artifacts!r}'
        )


def _check_validation(validation: ValidationSpec, where: str) -> None:
    checks = (
        (
            "out_of_sample",
            0.0 <= validation.out_of_sample < 1.0,
            "a fraction in [0, 1) (0 disables)",
        ),
        ("walk_forward_folds", validation.walk_forward_folds >= 0, "an integer >= 0 (0 disables)"),
        ("walk_forward_train_ratio", validation.walk_forward_train_ratio > 0, "a positive number"),
        (
            "walk_forward_candidates",
            validation.walk_forward_candidates >= 0,
            "an integer >= 0 (0: all)",
        ),
        ("top_k", validation.top_k >= 1, "an integer >= 1"),
        (
            "blocks",
            validation.blocks == 0 or (2 <= validation.blocks <= 64 and validation.blocks % 2 == 0),
            "an even integer from 2 to 64 (0 disables)",
        ),
    )
    for field, ok, expected in checks:
        if not ok:
            raise ConfigError(
                f"{where}: validation.{field}: expected {expected}, got {getattr(validation, field)!r}"
            )


def _check_notify(notify: NotifySpec, where: str) -> None:
    if notify.webhook is not None and not re.match(r"^https?://[^\s/]+", notify.webhook):
        raise ConfigError(
            f"{where}: notify.webhook: expected an http:// or https:// URL, got {notify.webhook!r}"
        )
    for i, event in enumerate(notify.on):
        if event not in NOTIFY_EVENTS:
            raise ConfigError(
                f"{where}: notify.on[{i}]: unknown event {event!r} (expected: {', '.join(NOTIFY_EVENTS)})"
            )
    if notify.timeout_s <= 0:
        raise ConfigError(
            f"{where}: notify.timeout_s: expected a positive number, got {notify.timeout_s!r}"
        )
    if notify.retries < 0:
        raise ConfigError(
            f"{where}: notify.retries: expected an integer >= 0, got {notify.retries!r}"
        )
