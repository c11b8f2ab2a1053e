"""One backtest opened up for reading: bars, indicator overlays, trades with exit reasons,
equity beside buy-and-hold, and breakdowns by month and by exit reason (the trade screen's record)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.backtest import enums
from engine.backtest.api import run
from engine.backtest.benchmark import buy_and_hold_equity
from engine.backtest.options import BacktestOptions
from engine.backtest.strategies import get_strategy
from engine.strategy.cache import IndicatorCache

if TYPE_CHECKING:
    from engine.data import Bars
    from engine.strategy import StrategyDef

#: What a person reads for each kernel exit code (``enums.EXIT_REASONS``).
REASON_LABELS = {
    "signal": "signal",
    "stop_loss": "stop-loss",
    "take_profit": "take-profit",
    "trailing_stop": "trailing stop",
    "open": "end of data",
}

Series = tuple[tuple[str, np.ndarray], ...]


@dataclass(frozen=True, slots=True)
class InspectedTrade:
    """One trade: bar indices and times (ns UTC) of its fills, and why it ended."""

    entry: int
    exit: int
    entry_ts: int
    exit_ts: int
    side: str
    entry_price: float
    exit_price: float
    units: float
    pnl: float
    ret: float
    reason: str


@dataclass(frozen=True, slots=True)
class BreakdownRow:
    """Trades grouped under one label (a month, an exit reason)."""

    label: str
    trades: int
    win_rate: float
    pnl: float
    avg_return: float


@dataclass(frozen=True, slots=True)
class TradeInspection:
    """A backtest as the trade screen shows it (arrays are read-only, one value per bar)."""

    title: str
    source: str  # "file.py:LINE" of a user strategy; "" for a built-in
    symbol: str
    timeframe: str
    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    overlays: Series
    trades: tuple[InspectedTrade, ...]
    equity: np.ndarray
    benchmark: np.ndarray
    metrics: tuple[tuple[str, float], ...]
    buy_and_hold_return: float
    excess_return: float
    by_month: tuple[BreakdownRow, ...]
    by_reason: tuple[BreakdownRow, ...]


def price_overlays(strategy: StrategyDef, bars: Bars, values: Mapping[str, Any]) -> Series:
    """The indicators a strategy draws on the price's scale, named: a built-in's moving
    averages, bands or channels (read from its fused rule); none for an oscillator (RSI)
    or a user strategy (the strategy API has no way to expose its series)."""
    if strategy.fused is None:
        return ()
    k = strategy.kernel_inputs(bars, values, IndicatorCache())
    if k.kind == enums.KIND_CROSS:
        return (("fast", k.a), ("slow", k.b))
    if k.kind == enums.KIND_BAND:
        return (("mid", k.a), ("upper", k.a + k.p0 * k.b))
    if k.kind == enums.KIND_CHANNEL:
        return (("upper", k.a), ("lower", k.b))
    if k.kind == enums.KIND_ZSCORE:
        return (("lower", k.a - k.p0 * k.b), ("mid", k.a), ("exit", k.a + k.p1 * k.b))
    return ()


def _frozen(array: np.ndarray) -> np.ndarray:
    out = np.array(array, dtype=np.float64)
    out.flags.writeable = False
    return out


def _trades(records: np.ndarray, ts: np.ndarray) -> tuple[InspectedTrade, ...]:
    return tuple(
        InspectedTrade(
            entry=int(t["entry_idx"]),
            exit=int(t["exit_idx"]),
            entry_ts=int(ts[int(t["entry_idx"])]),
            exit_ts=int(ts[min(int(t["exit_idx"]), len(ts) - 1)]),
            side="long" if int(t["direction"]) > 0 else "short",
            entry_price=float(t["entry_price"]),
            exit_price=float(t["exit_price"]),
            units=float(t["units"]),
            pnl=float(t["pnl"]),
            ret=float(t["return"]),
            reason=REASON_LABELS[enums.EXIT_REASONS[int(t["exit_reason"])]],
        )
        for t in records
    )


def breakdown(trades: tuple[InspectedTrade, ...], label: Any) -> tuple[BreakdownRow, ...]:
    """Trades grouped by ``label(trade)``, in order of first appearance."""
    groups: dict[str, list[InspectedTrade]] = {}
    for trade in trades:
        groups.setdefault(label(trade), []).append(trade)
    return tuple(
        BreakdownRow(
            label=name,
            trades=len(group),
            win_rate=sum(t.pnl > 0 for t in group) / len(group),
            pnl=float(sum(t.pnl for t in group)),
            avg_return=float(sum(t.ret for t in group) / len(group)),
        )
        for name, group in groups.items()
    )


def month_of(ts_ns: int) -> str:
    """``2026-03``: the UTC month of a time in ns."""
    return str(np.datetime64(int(ts_ns), "ns").astype("datetime64[M]"))


def inspect(
    bars: Bars,
    strategy: str | StrategyDef,
    params: Mapping[str, Any] | None = None,
    *,
    options: BacktestOptions | None = None,
    title: str = "",
) -> TradeInspection:
    """Backtest ``strategy`` over ``bars`` with its equity and trades, and everything the trade screen shows."""
    spec = get_strategy(strategy)
    values = spec.validate(params)
    result = run(bars, spec, values, options=options, equity=True, trades=True)
    opts = result.options
    held = buy_and_hold_equity(bars, opts)
    trades = _trades(result.trades if result.trades is not None else np.empty(0, enums.TRADE_DTYPE), bars.ts)
    bh_return = float(held[-1] / opts.cash - 1.0) if len(held) else 0.0
    by_reason = breakdown(trades, lambda t: t.reason)
    ts = np.array(bars.ts, dtype=np.int64)
    ts.flags.writeable = False
    return TradeInspection(
        title=title or spec.label(values),
        source="" if spec.builtin else spec.where,
        symbol=bars.symbol,
        timeframe=bars.timeframe,
        ts=ts,
        open=_frozen(bars.open),
        high=_frozen(bars.high),
        low=_frozen(bars.low),
        close=_frozen(bars.close),
        overlays=tuple((name, _frozen(series)) for name, series in price_overlays(spec, bars, values)),
        trades=trades,
        equity=_frozen(result.equity if result.equity is not None else np.empty(0)),
        benchmark=_frozen(held),
        metrics=tuple((k, float(v)) for k, v in result.metrics.as_dict().items()),
        buy_and_hold_return=bh_return,
        excess_return=float(result.metrics.total_return) - bh_return,
        by_month=breakdown(trades, lambda t: month_of(t.exit_ts)),
        by_reason=tuple(sorted(by_reason, key=lambda row: -row.trades)),
    )
