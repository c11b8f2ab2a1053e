"""The immutable telemetry snapshot the console renders.

:meth:`engine.runtime.Engine.telemetry` builds one :class:`Telemetry` from the
parts it owns (study, bus, paper loop, profiler, monitor); the console polls it
a few times a second and renders nothing else. Every record is a frozen,
slotted dataclass of plain values and tuples, so a snapshot can be compared,
cached and handed between threads without copying. A part that is not running
is ``None``: the console says so instead of showing made-up figures.

Times are seconds since the epoch (UTC) as floats, durations are seconds,
sizes are bytes unless a field name says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from engine.load_progress import LoadProgress
from engine.profile.caches import CacheStats
from engine.profile.stages import StageStats

if TYPE_CHECKING:
    from engine.backtest.inspect import TradeInspection

__all__ = [
    "AlertRow",
    "AllocationRow",
    "BusTelemetry",
    "CacheStats",
    "FunctionRow",
    "Heatmap",
    "LaneRow",
    "LoadProgress",
    "LogLine",
    "OrderRow",
    "PaperSymbolRow",
    "PositionRow",
    "ProcessRow",
    "ProfilerTelemetry",
    "StageStats",
    "StudyComparison",
    "StudyTelemetry",
    "SystemTelemetry",
    "Telemetry",
    "TelemetrySource",
    "TradeRow",
    "TradingTelemetry",
    "TrialDetail",
    "TrialRow",
    "ValidationTelemetry",
]

Params = tuple[tuple[str, float | int | str | bool], ...]
Figures = tuple[tuple[str, float], ...]
# The optimizer's own words (engine.store.records.StudyState) plus "stopping".
StudyState = Literal["created", "running", "paused", "stopping", "stopped", "complete", "failed"]
Severity = Literal["info", "warning", "critical"]


# --------------------------------------------------------------------- bus
@dataclass(frozen=True, slots=True)
class LaneRow:
    """One bus lane (a priority class or a topic family) over the last window."""

    name: str
    rate: float  # events/s
    delivered: int
    dropped: int
    depth: int
    high_water: int
    capacity: int
    p50_ms: float
    p99_ms: float


@dataclass(frozen=True, slots=True)
class BusTelemetry:
    """The event bus: per-lane figures and short histories for sparklines."""

    lanes: tuple[LaneRow, ...]
    rate: float  # events/s over all lanes
    p99_ms: float
    delivered: int
    dropped: int
    dead_letters: int
    rate_history: tuple[float, ...] = ()
    p99_history: tuple[float, ...] = ()


# ------------------------------------------------------------------- study
@dataclass(frozen=True, slots=True)
class DriverRow:
    """One driver of a study shared on PostgreSQL (``genesis trials --drivers``)."""

    host: str
    pid: int
    state: str
    trials: int
    trials_per_s: float


@dataclass(frozen=True, slots=True)
class TrialRow:
    """One finished trial as the leaderboard shows it."""

    number: int
    value: float | None
    params: Params
    metrics: Figures = ()
    state: str = "complete"
    duration_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Heatmap:
    """The best objective over a grid of two parameters (``None`` where untried)."""

    x_param: str
    y_param: str
    x_values: tuple[float, ...]
    y_values: tuple[float, ...]
    values: tuple[tuple[float | None, ...], ...]  # values[y][x]
    #: The surface smoothed over neighbouring cells, untried cells interpolated from the nearest
    #: tried ones (``None``: not computed); ``values`` says which cells were sampled.
    smoothed: tuple[tuple[float, ...], ...] | None = None


@dataclass(frozen=True, slots=True)
class ValidationTelemetry:
    """In-sample against out-of-sample figures of the best trial, and deflated Sharpe."""

    in_sample: Figures
    out_of_sample: Figures
    deflated_sharpe: float | None = None
    probability_overfit: float | None = None
    folds: int = 0
    trials_considered: int = 0


@dataclass(frozen=True, slots=True)
class StudyTelemetry:
    """A study's progress, leaderboard and charts."""

    name: str
    state: StudyState
    objective: str
    direction: Literal["maximize", "minimize"]
    sampler: str
    backend: str
    workers: int
    total: int
    done: int
    running: int
    failed: int
    pruned: int
    trials_per_s: float
    eta_s: float | None
    elapsed_s: float
    best_value: float | None
    best_trial: int | None
    leaderboard: tuple[TrialRow, ...] = ()
    convergence: tuple[float, ...] = ()  # best-so-far objective, one point per finished trial (thinned)
    best_equity: tuple[float, ...] = ()
    heatmap: Heatmap | None = None
    #: ``(parameter, share of the objective's variance it explains)``, largest first (engine.analysis).
    importance: tuple[tuple[str, float], ...] = ()
    validation: ValidationTelemetry | None = None
    checkpointed_at: float | None = None
    checkpoint_trials: int = 0
    drivers: tuple[DriverRow, ...] = ()  # several drivers on one PostgreSQL study; empty otherwise
    store: str = ""
    message: str = ""
    loading: LoadProgress | None = None  # the study's data download, until the trials start

    @property
    def fraction(self) -> float:
        """Trials done over the trial budget (0..1)."""
        return min(1.0, self.done / self.total) if self.total else 0.0


@dataclass(frozen=True, slots=True)
class TradeRow:
    """One closed trade of a backtest (entry and exit are bar indices)."""

    entry: int
    exit: int
    side: str
    entry_price: float
    exit_price: float
    units: float
    pnl: float
    ret: float


@dataclass(frozen=True, slots=True)
class SymbolRow:
    """One symbol of a basket trial: closed trades, its pnl over the starting cash, win rate, exposure."""

    symbol: str
    trades: int
    return_contribution: float
    win_rate: float
    exposure: float


@dataclass(frozen=True, slots=True)
class TrialDetail:
    """Everything the trial screen shows about one trial (``symbols``: a basket trial's per-symbol rows)."""

    study: str
    number: int
    value: float | None
    objective: str
    params: Params
    metrics: Figures
    equity: tuple[float, ...] = ()
    trades: tuple[TradeRow, ...] = ()
    state: str = "complete"
    note: str = ""
    symbols: tuple[SymbolRow, ...] = ()
    strategy: str = ""  # a user strategy's "file:line" ("" for a built-in)


# ----------------------------------------------------------------- trading
@dataclass(frozen=True, slots=True)
class PositionRow:
    symbol: str
    units: float
    avg_price: float
    mark: float
    unrealized_pnl: float


@dataclass(frozen=True, slots=True)
class OrderRow:
    """An order or a fill of the paper broker (``bar`` is the replay's bar index)."""

    ts: float | None
    bar: int
    symbol: str
    side: str  # "buy"/"sell" for fills; the target ("long", "flat", "short") for orders
    units: float | None
    price: float | None
    status: str  # "new", "pending", "filled", "rejected", "cancelled", "expired"
    order_id: int = 0


@dataclass(frozen=True, slots=True)
class PaperSymbolRow:
    """One symbol of a paper basket: its trades, what it earned and its position."""

    symbol: str
    trades: int  # closed round trips
    realized_pnl: float
    contribution: float  # realized + unrealized P&L over the basket's starting cash
    position: float  # signed units, 0 when flat


@dataclass(frozen=True, slots=True)
class TradingTelemetry:
    """The paper-trading loop: account, positions, orders, risk state (and, for a basket, its symbols)."""

    running: bool
    strategy: str
    symbol: str
    bars_seen: int
    cash: float
    equity: float
    realized_pnl: float
    drawdown: float  # fraction below the equity high, 0..1
    equity_curve: tuple[float, ...] = ()
    positions: tuple[PositionRow, ...] = ()
    orders: tuple[OrderRow, ...] = ()
    fills: tuple[OrderRow, ...] = ()
    circuit_breaker: str = "closed"  # "closed" (trading), "open" (halted), "half-open"
    kill_switch: bool = False
    risk_message: str = ""
    last_bar_ts: float | None = None
    symbols: tuple[PaperSymbolRow, ...] = ()  # a basket's symbols; empty for one symbol


# ---------------------------------------------------------------- profiler
@dataclass(frozen=True, slots=True)
class FunctionRow:
    """One function of a cProfile capture."""

    function: str  # "file:line(name)"
    calls: int
    total_s: float  # own time
    cumulative_s: float


@dataclass(frozen=True, slots=True)
class AllocationRow:
    """One allocation site of a tracemalloc capture."""

    site: str  # "file:line"
    size: int
    count: int


@dataclass(frozen=True, slots=True)
class ProfilerTelemetry:
    """Stage timings, the last capture and cache hit ratios."""

    enabled: bool
    stages: tuple[StageStats, ...] = ()
    functions: tuple[FunctionRow, ...] = ()
    allocations: tuple[AllocationRow, ...] = ()
    caches: tuple[CacheStats, ...] = ()
    capturing: bool = False
    capture_label: str = ""  # what the last capture covered, e.g. "5.0 s at 03:12:09"
    captures: int = 0


# ------------------------------------------------------------------ system
@dataclass(frozen=True, slots=True)
class ProcessRow:
    """One process of the engine (the console, a study worker, ...)."""

    pid: int
    role: str
    cpu_percent: float
    rss_mb: float
    status: str = "running"


@dataclass(frozen=True, slots=True)
class SystemTelemetry:
    """Host figures and their recent history (oldest first)."""

    cpu_count: int
    cpu_percent: float
    cpu_per_core: tuple[float, ...]
    memory_percent: float
    memory_used_mb: float
    memory_total_mb: float
    process_rss_mb: float
    cpu_history: tuple[float, ...] = ()
    core_history: tuple[tuple[float, ...], ...] = ()  # one history per core
    memory_history: tuple[float, ...] = ()  # used MB
    processes: tuple[ProcessRow, ...] = ()
    disk_free_mb: float | None = None
    load_average: tuple[float, float, float] | None = None


# ------------------------------------------------------------ alerts / log
@dataclass(frozen=True, slots=True)
class AlertRow:
    rule: str
    severity: Severity
    message: str
    raised_at: float
    cleared_at: float | None = None
    value: float | None = None

    @property
    def active(self) -> bool:
        return self.cleared_at is None


@dataclass(frozen=True, slots=True)
class LogLine:
    ts: float
    level: str  # "DEBUG" .. "CRITICAL"
    source: str
    message: str


# --------------------------------------------------------------- snapshot
@dataclass(frozen=True, slots=True)
class Telemetry:
    """Everything the console shows, at one moment."""

    seq: int
    taken_at: float
    workspace: str
    study: StudyTelemetry | None = None
    bus: BusTelemetry | None = None
    trading: TradingTelemetry | None = None
    profiler: ProfilerTelemetry | None = None
    system: SystemTelemetry | None = None
    alerts: tuple[AlertRow, ...] = ()
    log: tuple[LogLine, ...] = ()
    notes: tuple[str, ...] = field(default=())  # why a part is not running, one line each
    faults: tuple[str, ...] = ()  # errors nothing in the engine handled (its thread's), oldest first

    @property
    def active_alerts(self) -> tuple[AlertRow, ...]:
        """Alerts raised and not yet cleared, most severe first."""
        order = {"critical": 0, "warning": 1, "info": 2}
        return tuple(
            sorted((a for a in self.alerts if a.active), key=lambda a: (order[a.severity], -a.raised_at))
        )


@dataclass(frozen=True, slots=True)
class StudyComparison:
    """Studies of one store side by side, as ``genesis compare`` prints them: each row a
    label and one cell per study (in ``studies`` order)."""

    studies: tuple[str, ...]
    rows: tuple[tuple[str, tuple[str, ...]], ...]
    notes: tuple[str, ...] = ()


class TelemetrySource(Protocol):
    """What the console needs from an engine: a snapshot and a few commands."""

    def telemetry(self) -> Telemetry: ...

    async def start_study(self, path: str) -> str: ...

    async def pause(self) -> str: ...

    async def resume(self) -> str: ...

    async def stop(self) -> str: ...

    async def capture_profile(self, seconds: float = 5.0) -> str: ...

    async def toggle_paper(self) -> str: ...

    async def kill_switch(self) -> str: ...

    async def cycle_heatmap(self) -> str: ...

    async def open_trial(self, number: int) -> TrialDetail: ...

    async def compare_studies(self, names: tuple[str, ...]) -> StudyComparison: ...

    async def inspect_trial(self, number: int) -> TradeInspection: ...

    async def backtest_strategy(self, name: str) -> TradeInspection: ...

    async def close(self) -> None: ...
