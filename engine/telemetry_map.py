"""The telemetry mapping: the engine's parts' own records onto the console's frozen ones.

Pure functions, no I/O: the study store's trials and validation report, the
monitor's samples and alerts, the profiler's snapshot and the paper loop's
state become the :mod:`engine.telemetry` records. The runtime's ``Engine``
builds its snapshots with them and the headless reports and replay use the
same ones, so a figure reads the same in the console, a report and a replay.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.telemetry import (
    AlertRow,
    AllocationRow,
    FunctionRow,
    Heatmap,
    OrderRow,
    PaperSymbolRow,
    PositionRow,
    ProcessRow,
    ProfilerTelemetry,
    SymbolRow,
    SystemTelemetry,
    TradeRow,
    TradingTelemetry,
    TrialDetail,
    ValidationTelemetry,
)

if TYPE_CHECKING:
    from engine.live.basket import BasketState
    from engine.live.loop import LoopState
    from engine.live.records import Fill
    from engine.monitor.monitor import MonitorSnapshot
    from engine.monitor.system import SystemSnapshot
    from engine.profile.session import ProfileSnapshot
    from engine.store.records import TrialRecord

__all__ = [
    "CURVE_POINTS",
    "HEAT_MAX_CELLS",
    "HISTORY",
    "HeatPoints",
    "alerts_from_monitor",
    "build_heatmap",
    "figures",
    "profiler_from_snapshot",
    "system_from_snapshot",
    "thin_curve",
    "trading_from_state",
    "trial_detail",
    "validation_from_dict",
]

HISTORY = 120  # points kept for the console's time series (one per second)
CURVE_POINTS = 400
HEAT_MAX_CELLS = 16
MB = 1024 * 1024
TRADES_SHOWN = 200


def thin_curve(values: Sequence[float] | Any, limit: int = CURVE_POINTS) -> tuple[float, ...]:
    """At most ``limit`` evenly spaced points of a curve, always keeping the last."""
    n = len(values)
    if n <= limit:
        return tuple(float(v) for v in values)
    step = (n - 1) / (limit - 1)
    return tuple(float(values[round(i * step)]) for i in range(limit))


def figures(raw: object) -> tuple[tuple[str, float], ...]:
    """The numeric entries of a metrics dict as ``(name, value)`` pairs (anything else is skipped)."""
    if not isinstance(raw, dict):
        return ()
    return tuple(
        (str(k), float(v)) for k, v in raw.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
    )


# ------------------------------------------------------------------- study
@dataclass
class _Axis:
    """One heatmap axis: the distinct values, or equal-width bins labelled by their lower edge."""

    name: str
    values: list[float]
    binned: bool
    width: float = 1.0

    @classmethod
    def of(cls, name: str, distinct: set[float]) -> _Axis:
        values = sorted(distinct)
        if len(values) <= HEAT_MAX_CELLS:
            return cls(name, values, binned=False)
        lo, hi = values[0], values[-1]
        if all(v.is_integer() for v in values):
            # whole-number bins: no bin straddles half an integer, and the labels stay integers
            width = float(math.ceil((hi - lo + 1) / HEAT_MAX_CELLS))
            cells = math.ceil((hi - lo + 1) / width)
        else:
            width, cells = (hi - lo) / HEAT_MAX_CELLS, HEAT_MAX_CELLS
        return cls(name, [lo + i * width for i in range(cells)], binned=True, width=width)

    def index(self, value: float) -> int:
        if not self.binned:
            return self.values.index(value)
        return min(len(self.values) - 1, max(0, int((value - self.values[0]) // self.width)))

    def indices(self, column: Any) -> Any:
        """:meth:`index` of every value of a float64 array (each one of this axis's values, or in its range)."""
        import numpy as np

        if not self.binned:
            return np.searchsorted(np.asarray(self.values), column).astype(np.int64)
        # numpy's float floor division is Python's (the same bin for the same value)
        bins = np.floor_divide(column - self.values[0], self.width)
        return np.clip(bins, 0, len(self.values) - 1).astype(np.int64)


def _distinct_values(points: list[tuple[dict[str, Any], float]]) -> dict[str, set[float]]:
    """Each numeric parameter's distinct values over ``points``."""
    distinct: dict[str, set[float]] = {}
    for params, _ in points:
        for name, value in params.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                distinct.setdefault(name, set()).add(float(value))
    return distinct


def _varied(distinct: Mapping[str, set[float]]) -> list[str]:
    """The parameters with at least two values, those with most values first (ties: by name)."""
    return sorted((n for n, v in distinct.items() if len(v) >= 2), key=lambda n: (-len(distinct[n]), n))


def heatmap_pairs(points: list[tuple[dict[str, Any], float]]) -> list[tuple[str, str]]:
    """Every pair of numeric parameters a heatmap can show (each varied), the default pair first."""
    return _pairs(_distinct_values(points))


def _pairs(distinct: Mapping[str, set[float]]) -> list[tuple[str, str]]:
    names = _varied(distinct)
    pairs = [tuple(sorted((a, b))) for i, a in enumerate(names) for b in names[i + 1 :]]
    return [(a, b) for a, b in pairs]


def build_heatmap(
    points: list[tuple[dict[str, Any], float]], maximize: bool, axes: tuple[str, str] | None = None
) -> Heatmap | None:
    """The best objective over two numeric parameters: ``axes`` (x, y) when both vary, else the
    two with the most distinct values."""
    if len(points) < 4:
        return None
    heat = HeatPoints()
    heat.extend([p for p, _ in points], [v for _, v in points])
    return heat.heatmap(maximize, axes)


class HeatPoints:
    """Trials' numeric parameters and objectives as columns, appended a read at a time, and the
    heatmap kept from them incrementally.

    The study watch appends each read's new trials; :meth:`heatmap` folds only the
    rows added since its last call into the cells' best values while the axes stay
    the same (a new distinct value or bin edge changes them: then the cells are
    folded again from every row, vectorized). Either way the result is what
    :func:`build_heatmap` gives for the same rows in the same order: a cell holds
    the first of its best values. A parameter value that is not a number (or is a
    boolean) is no coordinate: its row is left out of heatmaps on that axis.
    """

    def __init__(self) -> None:
        self.count = 0
        self.distinct: dict[str, set[float]] = {}
        self._chunks: dict[str, list[Any]] = {}  # name -> float64 arrays (NaN: not a number here)
        self._value_chunks: list[Any] = []
        self._columns: dict[str, Any] = {}  # the chunks joined, until the next append
        self._values: Any = None
        self._axes: tuple[_Axis, _Axis, bool] | None = None  # the axes the cells below were folded on
        self._folded = 0  # rows folded into the cells
        self._cells: Any = None  # flat cell indices of the current winners
        self._best: Any = None  # their values

    def extend(self, params: Sequence[Mapping[str, Any]], values: Sequence[float]) -> None:
        """Append rows: each trial's parameters and its objective (finite)."""
        import numpy as np

        n = len(values)
        if n == 0:
            return
        for name in set().union(*params) | self._chunks.keys():
            raw = [p.get(name) for p in params]
            kinds = set(map(type, raw))
            if kinds <= {int, float}:
                column = np.array(raw, dtype=np.float64)
            else:
                column = np.array(
                    [float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan for v in raw],
                    dtype=np.float64,
                )
            chunks = self._chunks.get(name)
            if chunks is None:  # a parameter first seen now: not a number in the rows before
                chunks = self._chunks[name] = [np.full(self.count, math.nan)] if self.count else []
            chunks.append(column)
            present = column[~np.isnan(column)]
            if present.size:
                self.distinct.setdefault(name, set()).update(np.unique(present).tolist())
        self._value_chunks.append(np.asarray(values, dtype=np.float64))
        self.count += n
        self._columns.clear()
        self._values = None

    def column(self, name: str) -> Any:
        """Parameter ``name``'s values as float64, one per row (NaN: not a number)."""
        return self._column(name)

    def _column(self, name: str) -> Any:
        import numpy as np

        column = self._columns.get(name)
        if column is None:
            chunks = self._chunks[name]
            column = self._columns[name] = chunks[0] if len(chunks) == 1 else np.concatenate(chunks)
            self._chunks[name] = [column]
        return column

    def _objective(self) -> Any:
        import numpy as np

        if self._values is None:
            self._values = self._value_chunks[0] if len(self._value_chunks) == 1 else np.concatenate(self._value_chunks)
            self._value_chunks = [self._values]
        return self._values

    @property
    def names(self) -> list[str]:
        """Every parameter name any row has, sorted."""
        return sorted(self._chunks)

    def pairs(self) -> list[tuple[str, str]]:
        """Every pair of parameters a heatmap can show, the default pair first (as :func:`heatmap_pairs`)."""
        return _pairs(self.distinct)

    def heatmap(self, maximize: bool, axes: tuple[str, str] | None = None) -> Heatmap | None:
        """The heatmap of every row so far (as :func:`build_heatmap` gives it)."""
        import numpy as np

        if self.count < 4:
            return None
        distinct = self.distinct
        if axes is not None and all(len(distinct.get(name, ())) >= 2 for name in axes) and axes[0] != axes[1]:
            names = list(axes)
        else:
            names = _varied(distinct)[:2]
            if len(names) < 2:
                return None
            names.sort()  # stable axes: x is the first name alphabetically
        x_axis, y_axis = (_Axis.of(name, distinct[name]) for name in names)
        key = (x_axis, y_axis, maximize)
        if key != self._axes:  # new axes: fold every row again
            self._axes, self._folded = key, 0
            self._cells = np.empty(0, dtype=np.int64)
            self._best = np.empty(0, dtype=np.float64)
        start = self._folded
        if start < self.count:
            xs = self._column(x_axis.name)[start:]
            ys = self._column(y_axis.name)[start:]
            values = self._objective()[start:]
            kept = ~(np.isnan(xs) | np.isnan(ys))
            cells = y_axis.indices(ys[kept]) * len(x_axis.values) + x_axis.indices(xs[kept])
            # the cells' current winners come before every new row: a tie keeps them
            self._cells, self._best = _first_best(
                np.concatenate((self._cells, cells)), np.concatenate((self._best, values[kept])), maximize
            )
            self._folded = self.count
        width = len(x_axis.values)
        grid: list[list[float | None]] = [[None] * width for _ in y_axis.values]
        for cell, value in zip(self._cells.tolist(), self._best.tolist(), strict=True):
            grid[cell // width][cell % width] = value
        return Heatmap(
            x_param=x_axis.name,
            y_param=y_axis.name,
            x_values=tuple(x_axis.values),
            y_values=tuple(y_axis.values),
            values=tuple(tuple(row) for row in grid),
            smoothed=smooth_grid(grid),
        )


def _first_best(cells: Any, values: Any, maximize: bool) -> tuple[Any, Any]:
    """Each distinct cell once, with the first of its best values (the order given breaks ties)."""
    import numpy as np

    order = np.lexsort((np.arange(len(cells)), -values if maximize else values, cells))
    cells, values = cells[order], values[order]
    first = np.ones(len(cells), dtype=bool)
    first[1:] = cells[1:] != cells[:-1]
    return cells[first], values[first]


def smooth_grid(grid: Sequence[Sequence[float | None]]) -> tuple[tuple[float, ...], ...] | None:
    """Each cell: the mean of the tried cells within one step (itself included), or, for a cell with
    none that close, of the tried cells at the smallest distance that has some (Chebyshev rings).

    Random, genetic and TPE samplers leave most cells of a grid untried; this is
    the surface interpolated over them (and a plateau told from a spike).
    """
    rows, cols = len(grid), len(grid[0]) if grid else 0
    usable = [[v if v is not None and math.isfinite(v) else None for v in row] for row in grid]
    if all(v is None for row in usable for v in row):
        return None
    out: list[tuple[float, ...]] = []
    for y in range(rows):
        line = []
        for x in range(cols):
            radius = 1
            while True:
                # the window's cells row by row: the order (and so the sum) of a scan of every tried cell
                near = [
                    v
                    for row in usable[max(0, y - radius) : y + radius + 1]
                    for v in row[max(0, x - radius) : x + radius + 1]
                    if v is not None
                ]
                if near:
                    line.append(sum(near) / len(near))
                    break
                radius += 1
        out.append(tuple(line))
    return tuple(out)


def validation_from_dict(raw: dict[str, Any] | None, trials: int) -> ValidationTelemetry | None:
    """Map the optimizer's stored validation report (``ValidationReport.as_dict()``) onto
    the console's record: the best re-checked trial's in-sample and out-of-sample
    figures, the deflated Sharpe probability, the walk-forward fold count and the
    probability of backtest overfitting (``pbo``, stored when the study ends)."""
    if not raw:
        return None
    holdout = raw.get("holdout")
    checks = holdout.get("trials") if isinstance(holdout, dict) else None
    best = checks[0] if isinstance(checks, list) and checks and isinstance(checks[0], dict) else raw
    in_sample = figures(best.get("in_sample"))
    out_sample = figures(best.get("out_of_sample"))
    deflated = raw.get("deflated_sharpe")
    dsr = deflated.get("dsr") if isinstance(deflated, dict) else deflated
    n_trials = deflated.get("n_trials") if isinstance(deflated, dict) else None
    walk = raw.get("walk_forward")
    folds = walk.get("folds") if isinstance(walk, dict) else None
    cscv = raw.get("pbo")
    pbo = cscv.get("pbo") if isinstance(cscv, dict) else None
    if not in_sample and not out_sample and dsr is None and pbo is None:
        return None
    return ValidationTelemetry(
        in_sample=in_sample,
        out_of_sample=out_sample,
        deflated_sharpe=float(dsr) if isinstance(dsr, (int, float)) else None,
        probability_overfit=float(pbo) if isinstance(pbo, (int, float)) else None,
        folds=len(folds) if isinstance(folds, list) else 0,
        trials_considered=int(n_trials) if isinstance(n_trials, int) else trials,
    )


def trial_detail(study: str, objective: str, trial: TrialRecord, arrays: Mapping[str, Any]) -> TrialDetail:
    """One stored trial and its artifacts (equity, trades: the top trials only) as the trial view shows it."""
    equity = arrays.get("equity")
    raw = arrays.get("trades")
    trades: tuple[TradeRow, ...] = ()
    if raw is not None and getattr(raw, "dtype", None) is not None and raw.dtype.names:
        trades = tuple(
            TradeRow(
                entry=int(t["entry_idx"]),
                exit=int(t["exit_idx"]),
                side="long" if int(t["direction"]) > 0 else "short",
                entry_price=float(t["entry_price"]),
                exit_price=float(t["exit_price"]),
                units=float(t["units"]),
                pnl=float(t["pnl"]),
                ret=float(t["return"]),
            )
            for t in raw[-TRADES_SHOWN:]
        )
    per_symbol, names = arrays.get("per_symbol"), arrays.get("symbols")
    symbols: tuple[SymbolRow, ...] = ()
    if per_symbol is not None and names is not None and getattr(per_symbol.dtype, "names", None):
        symbols = tuple(
            SymbolRow(str(name), int(row["trades"]), float(row["return_contribution"]), float(row["win_rate"]),
                      float(row["exposure"]))
            for name, row in zip(names.tolist(), per_symbol, strict=True)
        )
    note = "" if equity is not None else "equity and trades are stored for the top trials only"
    if trial.error:
        note = trial.error.splitlines()[0]
    return TrialDetail(
        study=study,
        number=trial.number,
        value=trial.objective,
        objective=objective,
        params=tuple(sorted(trial.params.items())),
        metrics=figures(trial.metrics),
        equity=thin_curve(equity) if equity is not None else (),
        trades=trades,
        state=str(trial.state),
        note=note,
        symbols=symbols,
    )


# ------------------------------------------------------ profiler, monitor
def profiler_from_snapshot(snap: ProfileSnapshot) -> ProfilerTelemetry:
    """Map the profiler session's snapshot onto the console's record."""
    cpu = snap.cpu
    label = ""
    if cpu is not None:
        label = f"{cpu.label}, {cpu.duration_s:.1f} s at {time.strftime('%H:%M:%S', time.gmtime(cpu.started_at))} UTC"
    return ProfilerTelemetry(
        enabled=snap.enabled,
        stages=snap.stages,
        functions=tuple(
            FunctionRow(f.label, f.calls, f.own_s, f.cumulative_s) for f in (snap.top_functions(15) if cpu else ())
        ),
        allocations=tuple(
            AllocationRow(s.label, s.size_bytes, s.count) for s in (snap.memory.sites[:15] if snap.memory else ())
        ),
        caches=snap.caches,
        capturing=snap.capturing,
        capture_label=label,
        captures=snap.captures,
    )


def system_from_snapshot(system: SystemSnapshot) -> SystemTelemetry:
    """Map the monitor's :class:`~engine.monitor.system.SystemSnapshot` onto the console's record."""
    last = system.last
    assert last is not None, "system_from_snapshot needs at least one sample"
    total_mb = last.memory_total_bytes / MB
    used_mb = (last.memory_total_bytes - last.memory_available_bytes) / MB
    memory_history = tuple(p * total_mb / 100.0 for p in system.series.get("memory_percent", ())[-HISTORY:])
    processes = [ProcessRow(last.process.pid, "engine", last.process.cpu_percent, last.process.rss_bytes / MB)]
    processes += [
        ProcessRow(w.pid, w.name or "worker", w.cpu_percent, w.rss_bytes / MB) for w in last.workers
    ]
    return SystemTelemetry(
        cpu_count=len(last.cpu_per_core),
        cpu_percent=last.machine_cpu_percent,
        cpu_per_core=last.cpu_per_core,
        memory_percent=last.memory_percent,
        memory_used_mb=used_mb,
        memory_total_mb=total_mb,
        process_rss_mb=last.process.rss_bytes / MB,
        cpu_history=tuple(system.series.get("machine_cpu_percent", ())[-HISTORY:]),
        core_history=tuple(core[-HISTORY:] for core in system.cpu_per_core),
        memory_history=memory_history,
        processes=tuple(processes),
        disk_free_mb=None if last.disk_free_bytes is None else last.disk_free_bytes / MB,
        load_average=last.load_average,
    )


def alerts_from_monitor(monitor: MonitorSnapshot) -> tuple[AlertRow, ...]:
    """Pair each raise with its clear: one row per alert, with both times."""
    rows: dict[tuple[str, str, float], AlertRow] = {}
    for alert in monitor.history:
        key = (alert.rule, alert.level, alert.raised_at)
        if alert.state == "raised":
            rows.setdefault(key, AlertRow(alert.rule, alert.level, alert.message, alert.raised_at, None, alert.value))
        else:
            raised = rows.get(key)
            message = raised.message if raised else alert.message
            rows[key] = AlertRow(alert.rule, alert.level, message, alert.raised_at, alert.ts, alert.value)
    for alert in monitor.active:
        key = (alert.rule, alert.level, alert.raised_at)
        if key not in rows:
            rows[key] = AlertRow(alert.rule, alert.level, alert.message, alert.raised_at, None, alert.value)
    return tuple(sorted(rows.values(), key=lambda a: a.raised_at))


# -------------------------------------------------------------- paper loop
_TARGETS = {1: "long", 0: "flat", -1: "short"}


def _order_rows(state: LoopState) -> tuple[OrderRow, ...]:
    """One row per order in its latest status (the loop keeps one view per status change),
    with the time, units and price of its fill once it has one."""
    latest = {o.order_id: o for o in state.orders}  # dicts keep first-seen order, values the last view
    # a reversal fills one order twice (close, then open): its units add up, its price is their mean
    filled: dict[int, tuple[float, float, float]] = {}  # order id -> (ts, units, notional)
    for f in state.fills:
        _, units, notional = filled.get(f.order_id, (0.0, 0.0, 0.0))
        filled[f.order_id] = (f.ts / 1e9, units + f.units, notional + f.units * f.price)
    rows = []
    for o in latest.values():
        target = _TARGETS.get(o.target, str(o.target))
        fill = filled.get(o.order_id)
        if fill is None:  # not filled (yet): no time, units or price to show
            rows.append(OrderRow(None, o.index, state.symbol, target, None, None, o.status, o.order_id))
            continue
        ts, units, notional = fill
        price = notional / units if units else None
        rows.append(OrderRow(ts, o.index, state.symbol, target, units, price, o.status, o.order_id))
    return tuple(rows)


def trading_from_state(state: LoopState | BasketState) -> TradingTelemetry:
    """Map the paper loop's ``LoopState`` (or a basket loop's ``BasketState``) onto the console's record."""
    # imported by whoever made the state: no start-up cost here
    from engine.live.basket import BasketState

    if isinstance(state, BasketState):
        return _trading_from_basket(state)
    positions: tuple[PositionRow, ...] = ()
    if state.side:
        positions = (
            PositionRow(
                symbol=state.symbol,
                units=state.units * state.side,
                avg_price=state.entry_price,
                mark=state.mark_price,
                unrealized_pnl=state.unrealized_pnl,
            ),
        )
    orders = _order_rows(state)
    fills = _fill_rows(state.fills)
    risk = state.risk
    return TradingTelemetry(
        running=state.running and not state.paused,
        strategy=state.strategy,
        symbol=state.symbol,
        bars_seen=state.bars_seen,
        cash=state.cash,
        equity=state.equity,
        realized_pnl=state.realized_pnl,
        drawdown=state.drawdown,
        equity_curve=thin_curve(state.equity_curve),
        positions=positions,
        orders=orders[-20:],
        fills=fills[-20:],
        circuit_breaker=risk.breaker,
        kill_switch=risk.kill_switch,
        risk_message=risk.message,
        last_bar_ts=None if state.last_bar_ts is None else state.last_bar_ts / 1e9,
    )


def _fill_rows(fills: Sequence[Fill]) -> tuple[OrderRow, ...]:
    return tuple(
        OrderRow(
            f.ts / 1e9, f.index, f.symbol, "buy" if f.side > 0 else "sell", f.units, f.price,
            f"filled ({f.reason})" if not f.opens else "filled", f.order_id,
        )
        for f in fills
    )


def _trading_from_basket(state: BasketState) -> TradingTelemetry:
    """A basket: one position row per open symbol, one symbol row per symbol, the portfolio's account."""
    positions = tuple(
        PositionRow(m.symbol, m.units * m.side, m.entry_price, m.mark_price, m.unrealized_pnl)
        for m in state.members
        if m.side
    )
    cash = state.start_cash
    symbols = tuple(
        PaperSymbolRow(m.symbol, m.trades, m.realized_pnl,
                       (m.realized_pnl + m.unrealized_pnl) / cash if cash > 0 else 0.0, m.units * m.side)
        for m in state.members
    )  # fmt: skip
    risk = state.risk
    return TradingTelemetry(
        running=state.running and not state.paused,
        strategy=state.strategy,
        symbol=f"basket of {len(state.members)} ({state.allocation})",
        bars_seen=state.bars_seen,
        cash=state.cash,
        equity=state.equity,
        realized_pnl=state.realized_pnl,
        drawdown=state.drawdown,
        equity_curve=thin_curve(state.equity_curve),
        positions=positions,
        fills=_fill_rows(state.fills)[-20:],
        circuit_breaker=risk.breaker,
        kill_switch=risk.kill_switch,
        risk_message=risk.message,
        last_bar_ts=None if state.last_bar_ts is None else state.last_bar_ts / 1e9,
        symbols=symbols,
    )
