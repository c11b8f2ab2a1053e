"""Worker-side evaluation of trials: one chunk at a time, one indicator cache per worker.

An :class:`Evaluator` is built once per worker (process, thread or Dask
worker) from the market data and a :class:`WorkerSetup`; it then evaluates
chunks of :class:`~engine.store.records.TrialTask`. A chunk goes to
``engine.backtest.run_many`` in sub-batches of up to :data:`KERNEL_BATCH`
trials (one per data prefix under successive halving): each sub-batch is one
numba call per kernel configuration (usually exactly one) over indicators
shared through the worker's cache, with results bit-identical to
``engine.backtest.run``. Trials that keep artifacts, fault-injected chunks and
re-runs after a worker died go one at a time through ``run``. Either way a
trial that raises is recorded failed with the reason and the chunk goes on.

The watchdog of the ``process`` backend reads a tiny shared slot per worker
(:class:`Slot`): the trial in hand, when it started, and its time budget.

Test hook: when ``GENESIS_TEST_FAULTS`` is set (tests only), it maps trial
numbers to faults, e.g. ``"3:raise,7:hang,11:exit"``: the trial raises, sleeps
forever, or calls ``os._exit(13)`` in its worker. It is read from the
orchestrating process's environment when the study starts and travels to the
workers in the :class:`WorkerSetup` (a fork server started earlier would not
see a later change of the environment).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# The package, not its functions: run/run_many are looked up at call time, so a test's
# monkeypatch of engine.backtest.run_many reaches the workers it runs inline.
from engine import backtest
from engine.backtest.enums import METRIC_NAMES
from engine.backtest.indicators import IndicatorCache
from engine.backtest.metrics import Metrics
from engine.backtest.options import OPTIONS, BacktestOptions, override
from engine.data.bars import Bars
from engine.data.basket import Basket
from engine.profile import profiler
from engine.store.artifacts import encode_array
from engine.store.records import TrialResult, TrialState, TrialTask, clean_objective
from engine.store.result_batch import ResultBatch
from engine.strategy.core import StrategyDef
from engine.strategy.loader import StrategySource

FAULTS_ENV = "GENESIS_TEST_FAULTS"

#: Sub-batch size of the batched kernel path: one ``run_many`` call, one numba call per
#: kernel configuration, one watchdog budget. Chunks are sized for about 0.25 s of work
#: (some hundreds of trials on 100,000 bars), so a chunk is usually a single call.
KERNEL_BATCH = 1024


@dataclass(frozen=True, slots=True)
class WorkerSetup:
    """What every worker needs besides the data: strategy, fixed settings, objective."""

    strategy: str
    #: The strategy file's content when the strategy is not built in: workers import it by
    #: content (never a pickled function), so numba's disk cache is keyed by the content.
    source: StrategySource | None = None
    fixed: dict[str, Any] = field(default_factory=dict)
    #: The study's ``[backtest]`` record, as loaded; a trial's searched options override it.
    backtest: BacktestOptions = field(default_factory=BacktestOptions)
    objective: str = "sharpe"
    maximize: bool = True
    trial_timeout_s: float = 30.0
    #: Parameter name -> ("strategy", name) or ("backtest", option), as the study spec routes it.
    routes: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: Whether the orchestrator's profiler is on: workers then time their stages and ship them back.
    profile: bool = False
    #: Equal time blocks each full-data trial records its log returns on (0: none; CSCV/PBO).
    blocks: int = 0
    #: The test-only fault hook, read from the orchestrator's environment when the setup is made.
    faults: str | None = field(default_factory=lambda: os.environ.get(FAULTS_ENV))


#: An artifact encoded by the worker: ``(dtype, shape, zlib blob)`` (see :func:`encode_array`).
Encoded = tuple[str, str, bytes]


@dataclass(frozen=True, slots=True)
class ChunkOutput:
    """A chunk's results, its encoded artifacts (when asked for) and cache counters."""

    batch: ResultBatch
    artifacts: dict[int, dict[str, Encoded]]
    cache_hits: int = 0
    cache_misses: int = 0
    profile: dict[str, Any] | None = None  # a worker's profiler export (deltas), when shipped


class Slot:
    """A worker's watchdog slot: three float64 cells in shared memory (or a local list).

    ``(number, started_monotonic, budget_s)``; number ``-1`` means a sub-batch
    whose culprit cannot be told apart, ``nan`` means idle.
    """

    __slots__ = ("_cells",)

    def __init__(self, cells: Any) -> None:
        self._cells = cells

    def begin(self, number: int, budget_s: float) -> None:
        self._cells[2] = budget_s
        self._cells[1] = time.monotonic()
        self._cells[0] = float(number)

    def idle(self) -> None:
        self._cells[0] = math.nan

    def read(self) -> tuple[float, float, float]:
        return float(self._cells[0]), float(self._cells[1]), float(self._cells[2])


def parse_faults(text: str | None) -> dict[int, str]:
    """``"3:raise,7:hang"`` -> ``{3: "raise", 7: "hang"}`` (the test-only fault hook)."""
    faults: dict[int, str] = {}
    for item in (text or "").split(","):
        if ":" in item:
            number, _, kind = item.partition(":")
            faults[int(number)] = kind.strip()
    return faults


def _inject_fault(kind: str) -> None:
    if kind == "raise":
        raise RuntimeError("injected failure (GENESIS_TEST_FAULTS)")
    if kind == "hang":
        while True:
            time.sleep(3600)
    if kind == "exit":
        os._exit(13)


def _error_line(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    where = f" at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno}" if frames else ""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}{where}"[:500]


def split_params(params: dict[str, Any], setup: WorkerSetup) -> tuple[dict[str, Any], dict[str, Any]]:
    """Strategy parameters and backtest option overrides of one trial.

    The overrides are the options the trial sets to a value other than
    ``setup.backtest``'s (so a trial that sets none shares the base record).
    """
    base = setup.backtest
    overrides: dict[str, Any] = {}
    strategy_params = {}
    for name, value in ({**setup.fixed, **params} if setup.fixed else params).items():
        route = setup.routes.get(name)
        if route is None:
            leaf = name.rpartition(".")[2]
            route = ("backtest", leaf) if leaf in OPTIONS else ("strategy", name)
        if route[0] == "backtest":
            if getattr(base, route[1]) != value:
                overrides[route[1]] = value
        else:
            strategy_params[route[1]] = value
    return strategy_params, overrides


class Evaluator:
    """Evaluates chunks of trials on one worker's copy of the data."""

    def __init__(
        self,
        bars: Bars | Basket,
        setup: WorkerSetup,
        *,
        worker: str = "inline",
        slot: Slot | None = None,
        ship_profile: bool = False,
    ) -> None:
        self.bars = bars
        self.setup = setup
        self.worker = worker
        self.slot = slot or Slot([math.nan, 0.0, 0.0])
        self.strategy = backtest.resolve_strategy(setup.strategy, setup.source)
        self.cache = IndicatorCache()
        #: A basket: one indicator cache per symbol, and every trial runs the portfolio.
        self.caches = [IndicatorCache() for _ in bars.members] if isinstance(bars, Basket) else None
        self._prefixes: dict[int, Bars | Basket] = {}
        self._faults = parse_faults(setup.faults)
        self._batched = _batched_entry(setup, self.strategy)
        self._variants: dict[Any, BacktestOptions] = {}  # setup.backtest with each distinct trial override
        self._mean_trial_s: float | None = None
        self._ship_profile = ship_profile and setup.profile
        if self._ship_profile:
            profiler.enabled = True

    def warm_up(self) -> None:
        """Load the compiled kernels (numba's cache) on a tiny prefix, so the first chunk does not pay it."""
        with contextlib.suppress(Exception):
            bars = self.bars.slice(0, min(len(self.bars), 64))
            defaults = {p.name: p.default for p in self.strategy.params}
            if isinstance(bars, Basket):
                backtest.run_portfolio(bars, self.strategy, defaults, options=self.setup.backtest)
            else:
                backtest.run_many(bars, self.strategy, [defaults], options=self.setup.backtest)

    # -- data prefixes (successive halving) ---------------------------------

    def _bars_for(self, stop: int | None) -> Bars | Basket:
        if stop is None or stop >= len(self.bars):
            return self.bars
        bars = self._prefixes.get(stop)
        if bars is None:
            bars = self._prefixes[stop] = self.bars.slice(0, stop)
        return bars

    # -- evaluation ---------------------------------------------------------

    def evaluate(
        self, tasks: Sequence[TrialTask], *, artifacts: bool = False, isolate: bool = False
    ) -> ChunkOutput:
        """Evaluate ``tasks``; with ``artifacts`` also return each trial's equity curve and trades, encoded.

        ``isolate`` forces one trial at a time (used when re-running the chunk
        of a worker that died, so that a culprit is told apart).
        """
        parts: list[ResultBatch] = []
        encoded: dict[int, dict[str, Encoded]] = {}
        # The whole evaluation, kernel and all: what it spends beside its inner stages (parameters,
        # indicator lookups, results) is the per-trial overhead a profile should show.
        with profiler.stage("optimize.trials"):
            if artifacts:
                parts.append(ResultBatch.from_results([self._evaluate_one(t, keep=encoded) for t in tasks], self.worker))
            elif not isolate and not self._faults and self.caches is None:
                for start in range(0, len(tasks), KERNEL_BATCH):
                    parts.append(self._evaluate_batched(tasks[start : start + KERNEL_BATCH]))
            else:
                parts.append(ResultBatch.from_results([self._evaluate_one(task) for task in tasks], self.worker))
        self.slot.idle()
        caches = self.caches or [self.cache]
        return ChunkOutput(
            ResultBatch.concat(parts) if parts else ResultBatch.empty(self.worker),
            encoded,
            cache_hits=sum(int(cache.counters.hits) for cache in caches),
            cache_misses=sum(int(cache.counters.misses) for cache in caches),
            profile=self._export_profile(),
        )

    def _export_profile(self) -> dict[str, Any] | None:
        if not self._ship_profile:
            return None
        return profiler.export(reset=True)

    def _evaluate_one(
        self, task: TrialTask, keep: dict[int, dict[str, Encoded]] | None = None
    ) -> TrialResult:
        started = time.time()
        t0 = time.perf_counter()
        self.slot.begin(task.number, self.setup.trial_timeout_s)
        try:
            fault = self._faults.get(task.number)
            if fault:
                _inject_fault(fault)
            figures = self._blocks_for(task)
            metrics, full = self._run(task, equity=keep is not None or figures, trades=keep is not None)
            blocks = None
            if figures and full.equity is not None:
                cash = override(self.setup.backtest, split_params(task.params, self.setup)[1], self._variants).cash
                blocks = _pack(backtest.block_returns(full.equity, self.setup.blocks, cash))
            if keep is not None:
                arrays = {}
                for name in ("equity", "trades", "per_symbol"):
                    value = getattr(full, name, None)
                    if isinstance(value, np.ndarray):
                        arrays[name] = encode_array(value)
                if isinstance(self.bars, Basket):  # a basket trial's result names its symbols
                    arrays["symbols"] = encode_array(np.array(full.symbols, dtype=np.str_))
                keep[task.number] = arrays
        except Exception as error:
            return TrialResult(
                task.number,
                TrialState.FAILED,
                None,
                None,
                started,
                time.perf_counter() - t0,
                self.worker,
                _error_line(error),
                task.step,
            )
        duration = time.perf_counter() - t0
        return self._result(task, metrics, started, duration, blocks)

    def _blocks_for(self, task: TrialTask) -> bool:
        """Whether ``task`` records per-block figures (only on the whole in-sample data, not on a prefix)."""
        n = len(self.bars)
        return 0 < self.setup.blocks <= n and (task.stop is None or task.stop >= n)

    def _result(
        self, task: TrialTask, metrics: dict[str, float], started: float, duration: float,
        blocks: bytes | None = None,
    ) -> TrialResult:
        if self.setup.objective not in metrics:
            return TrialResult(
                task.number,
                TrialState.FAILED,
                metrics,
                None,
                started,
                duration,
                self.worker,
                f"objective {self.setup.objective!r} is not a metric of this backtest",
                task.step,
            )
        objective = clean_objective(metrics[self.setup.objective])
        return TrialResult(
            task.number,
            TrialState.COMPLETE,
            metrics,
            objective,
            started,
            duration,
            self.worker,
            None,
            task.step,
            blocks,
        )

    def _run(self, task: TrialTask, *, equity: bool, trades: bool) -> tuple[dict[str, float], Any]:
        strategy_params, overrides = split_params(task.params, self.setup)
        bars = self._bars_for(task.stop)
        if isinstance(bars, Basket):
            # Same parameters on every symbol; the objective reads the portfolio's metrics.
            portfolio = backtest.run_portfolio(
                bars, self.strategy, strategy_params,
                options=override(self.setup.backtest, overrides, self._variants),
                equity=equity, trades=trades, caches=self.caches if task.stop is None else None,
            )  # fmt: skip
            return _metrics_dict(portfolio.metrics), portfolio
        result = backtest.run(
            bars,
            self.strategy,
            strategy_params,
            options=override(self.setup.backtest, overrides, self._variants),
            equity=equity,
            trades=trades,
            cache=self.cache,
        )
        return _metrics_dict(result.metrics), result

    def _evaluate_batched(self, tasks: Sequence[TrialTask]) -> ResultBatch:
        started = time.time()
        t0 = time.perf_counter()
        # A sub-batch's budget: generous against the measured trial time, never above n timeouts.
        # When it runs out, the watchdog kills the worker and the chunk is re-run one trial at a time.
        n = len(tasks)
        budget = self.setup.trial_timeout_s * n
        if self._mean_trial_s is not None:
            budget = min(budget, self.setup.trial_timeout_s + 8.0 * self._mean_trial_s * n)
        self.slot.begin(-1, budget)
        try:
            table, figures = self._batched(self, tasks)
        except Exception:
            # Tell the culprit apart: one trial at a time.
            return ResultBatch.from_results([self._evaluate_one(task) for task in tasks], self.worker)
        duration = (time.perf_counter() - t0) / max(1, n)
        self._mean_trial_s = duration if self._mean_trial_s is None else 0.8 * self._mean_trial_s + 0.2 * duration
        return ResultBatch.from_columns(
            [t.number for t in tasks], [t.step for t in tasks], METRIC_NAMES, table, self.setup.objective,
            started=started, duration_s=duration, worker=self.worker, int_metrics=_INT_METRICS, blocks=figures,
        )


def _pack(figures: np.ndarray) -> bytes:
    """Per-block figures as stored: float32, little-endian."""
    return np.asarray(figures, dtype="<f4").tobytes()


def _metrics_dict(metrics: Metrics) -> dict[str, float]:
    return {name: _plain(value) for name, value in metrics.as_dict().items()}


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


#: Metrics that are counts (stored as integers).
_INT_METRICS = frozenset({"trades"}) & frozenset(METRIC_NAMES)

#: A batched sub-chunk's metric table (one row per task, columns :data:`METRIC_NAMES`) and its
#: per-block figures (float32 rows, or ``None``).
Table = tuple[np.ndarray, np.ndarray | None]


def _batched_entry(setup: WorkerSetup, strategy: StrategyDef) -> Callable[[Evaluator, Sequence[TrialTask]], Table]:
    """The backtest engine's many-sets entry point (``run_many``): indicators shared through the cache."""

    def evaluate(evaluator: Evaluator, tasks: Sequence[TrialTask]) -> Table:
        groups: dict[int | None, list[int]] = {}
        for index, task in enumerate(tasks):
            groups.setdefault(task.stop, []).append(index)
        table = np.empty((len(tasks), len(METRIC_NAMES)))
        packed: np.ndarray | None = None
        for stop, indices in groups.items():
            sets = []
            for index in indices:
                strategy_params, overrides = split_params(tasks[index].params, setup)
                sets.append({**strategy_params, **overrides} if overrides else strategy_params)
            figures = np.empty((len(sets), setup.blocks)) if evaluator._blocks_for(tasks[indices[0]]) else None
            bars = evaluator._bars_for(stop)
            assert isinstance(bars, Bars)  # a basket's chunks go one trial at a time (Evaluator.evaluate)
            rows = np.asarray(indices)
            table[rows] = backtest.run_many(
                bars, strategy, sets, options=setup.backtest, cache=evaluator.cache, blocks=figures,
            )
            if figures is not None:
                if len(groups) > 1:  # per-block figures only on the whole data: one group in practice
                    raise ValueError("per-block figures asked for a chunk over several data prefixes")
                packed = figures.astype("<f4")
        return table, packed

    return evaluate
