"""Fixed telemetry for the console's snapshot tests: no clocks, no randomness, no engine."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from engine.errors import GenesisError
from engine.telemetry import (
    AlertRow,
    AllocationRow,
    BusTelemetry,
    CacheStats,
    FunctionRow,
    Heatmap,
    LaneRow,
    LogLine,
    OrderRow,
    PositionRow,
    ProcessRow,
    ProfilerTelemetry,
    StageStats,
    StudyComparison,
    StudyTelemetry,
    SystemTelemetry,
    Telemetry,
    TradeRow,
    TradingTelemetry,
    TrialDetail,
    TrialRow,
    ValidationTelemetry,
)

if TYPE_CHECKING:
    from engine.backtest.inspect import TradeInspection

T0 = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC


def _wave(n: int, base: float, amp: float, period: float, phase: float = 0.0) -> tuple[float, ...]:
    return tuple(round(base + amp * math.sin(i / period + phase), 4) for i in range(n))


def _objective(fast: int, slow: int) -> float:
    return round(1.6 - ((fast - 20) / 25) ** 2 - ((slow - 110) / 80) ** 2, 4)


def study_fixture() -> StudyTelemetry:
    fasts = tuple(range(5, 55, 5))
    slows = tuple(range(20, 210, 20))
    heat = tuple(tuple(_objective(f, s) if f < s else None for f in fasts) for s in slows)
    ranked = sorted(((_objective(f, s), f, s) for f in fasts for s in slows if f < s), reverse=True)
    leaderboard = tuple(
        TrialRow(
            number=100 + 17 * i,
            value=value,
            params=(("fast", f), ("slow", s), ("stop_loss", 0.02)),
            metrics=(("sharpe", value), ("total_return", round(value / 4, 4)), ("max_drawdown", 0.12)),
            duration_s=0.012 + 0.001 * (i % 5),
        )
        for i, (value, f, s) in enumerate(ranked[:25])
    )
    best = 0.2
    convergence = []
    for i in range(300):
        best = max(best, 1.6 - 1.4 / (1 + i / 25) + 0.02 * math.sin(i))
        convergence.append(round(best, 4))
    return StudyTelemetry(
        name="sma-demo",
        state="running",
        objective="sharpe",
        direction="maximize",
        sampler="random",
        backend="process",
        workers=2,
        total=4000,
        done=1234,
        running=2,
        failed=3,
        pruned=0,
        trials_per_s=86.5,
        eta_s=31.4,
        elapsed_s=14.3,
        best_value=leaderboard[0].value,
        best_trial=leaderboard[0].number,
        leaderboard=leaderboard,
        convergence=tuple(convergence),
        best_equity=tuple(round(10_000 * (1 + 0.0009 * i) + 150 * math.sin(i / 9), 2) for i in range(400)),
        heatmap=Heatmap("fast", "slow", tuple(float(f) for f in fasts), tuple(float(s) for s in slows), heat),
        validation=ValidationTelemetry(
            in_sample=(("sharpe", 1.58), ("total_return", 0.412), ("max_drawdown", 0.118)),
            out_of_sample=(("sharpe", 0.94), ("total_return", 0.087), ("max_drawdown", 0.151)),
            deflated_sharpe=0.71,
            probability_overfit=0.22,
            trials_considered=1234,
        ),
        checkpointed_at=T0 + 12,
        checkpoint_trials=1000,
        store="/data/genesis.db",
    )


def bus_fixture() -> BusTelemetry:
    lanes = (
        LaneRow("critical", 12.0, 1_440, 0, 0, 3, 1024, 0.04, 0.21),
        LaneRow("market", 2_350.5, 282_060, 0, 14, 230, 8192, 0.08, 0.92),
        LaneRow("orders", 41.2, 4_944, 0, 0, 6, 1024, 0.05, 0.33),
        LaneRow("telemetry", 310.0, 37_200, 57, 120, 1024, 1024, 0.11, 2.4),
    )
    return BusTelemetry(
        lanes=lanes,
        rate=2_713.7,
        p99_ms=1.8,
        delivered=325_644,
        dropped=57,
        dead_letters=2,
        rate_history=_wave(60, 2600, 300, 4.0),
        p99_history=_wave(60, 1.5, 0.6, 6.0, 1.0),
    )


def trading_fixture() -> TradingTelemetry:
    # as the paper loop reports them: orders name the target position, fills the side and why an exit happened
    orders = tuple(
        OrderRow(T0 + 60 * i, 5_000 + i, "SYN", "long" if i % 2 == 0 else "flat", 0.85, 101.0 + i, "filled", order_id=i + 1)
        for i in range(15)
    )
    fills = tuple(
        OrderRow(o.ts, o.bar + 1, o.symbol, "buy" if o.side == "long" else "sell", o.units, o.price,
                 "filled" if o.side == "long" else ("filled (stop_loss)" if o.order_id % 4 == 0 else "filled (signal)"),
                 o.order_id)
        for o in orders[:-1]
    )
    return TradingTelemetry(
        running=True,
        strategy="sma_cross(fast=20, slow=110)",
        symbol="SYN",
        bars_seen=5_321,
        cash=1_250.4,
        equity=10_843.22,
        realized_pnl=612.9,
        drawdown=0.034,
        equity_curve=_wave(300, 10_500, 350, 25.0),
        positions=(PositionRow("SYN", 85.3, 112.4, 112.48, 6.82),),
        orders=orders,
        fills=fills,
        circuit_breaker="closed",
        kill_switch=False,
        risk_message="limits ok",
        last_bar_ts=T0 + 600,
    )


def profiler_fixture() -> ProfilerTelemetry:
    stages = (
        StageStats("backtest.kernel", 1234, 9.81, 0.00795, 0.0075, 0.0102, 0.0131, 0.021),
        StageStats("backtest.indicators", 1234, 2.10, 0.0017, 0.0016, 0.0024, 0.0031, 0.006),
        StageStats("optimize.store_write", 25, 0.41, 0.0164, 0.0151, 0.0222, 0.0260, 0.031),
        StageStats("bus.dispatch", 325_644, 0.98, 3.0e-6, 2.5e-6, 6.0e-6, 1.1e-5, 0.0004),
        StageStats("data.load", 1, 0.35, 0.35, 0.35, 0.35, 0.35, 0.35),
        # long names sharing a prefix: the key column must show them whole at 80 columns
        StageStats("optimize.artifact_encode", 35, 0.345, 0.00984, 0.00433, 0.05, 0.086, 0.086),
        StageStats("optimize.workers_start", 1, 0.765, 0.765, 0.765, 0.765, 0.765, 0.765),
    )
    return ProfilerTelemetry(
        enabled=True,
        stages=stages,
        functions=(
            FunctionRow("engine/live/loop.py:88(on_bar)", 5321, 0.41, 1.92),
            FunctionRow("engine/bus/bus.py:140(publish)", 21_400, 0.33, 0.71),
            FunctionRow("engine/optimize/study.py:210(_collect)", 1234, 0.12, 0.64),
            FunctionRow("{built-in method time.perf_counter_ns}", 98_000, 0.05, 0.05),
        ),
        allocations=(
            AllocationRow("engine/bus/lane.py:61", 1_204_224, 3_120),
            AllocationRow("engine/live/broker.py:77", 262_144, 512),
        ),
        caches=(
            CacheStats("data.bars", 41, 1, 0, 19_200_000, 1),
            CacheStats("backtest.indicators", 2_210, 258, 40, 6_400_000, 128),
            CacheStats("optimize.trial_keys", 0, 4_096, 0, 0, 1_024),
        ),
        capture_label="5.0 s at 00:00:30",
        captures=1,
    )


def system_fixture() -> SystemTelemetry:
    return SystemTelemetry(
        cpu_count=2,
        cpu_percent=93.0,
        cpu_per_core=(95.0, 91.0),
        memory_percent=41.0,
        memory_used_mb=3_310.0,
        memory_total_mb=8_000.0,
        process_rss_mb=142.0,
        cpu_history=_wave(60, 88, 8, 5.0),
        core_history=(_wave(60, 90, 8, 5.0), _wave(60, 86, 10, 4.0, 2.0)),
        memory_history=_wave(60, 3_300, 40, 9.0),
        processes=(
            ProcessRow(4101, "console", 6.0, 142.0),
            ProcessRow(4120, "worker 1", 97.0, 118.0),
            ProcessRow(4121, "worker 2", 96.0, 121.0),
        ),
        disk_free_mb=51_200.0,
        load_average=(2.1, 1.9, 1.4),
    )


def alerts_fixture() -> tuple[AlertRow, ...]:
    return (
        AlertRow("bus_p99_ms", "warning", "bus p99 142 ms above 100 ms", T0 + 40, None, 142.0),
        AlertRow("queue_drops", "critical", "telemetry lane dropped 57 events/min", T0 + 45, None, 57.0),
        AlertRow("memory_mb", "warning", "memory 1100 MB above 1024 MB", T0 + 5, T0 + 30, 1100.0),
    )


def log_fixture() -> tuple[LogLine, ...]:
    return tuple(
        LogLine(T0 + 3 * i, level, source, message)
        for i, (level, source, message) in enumerate(
            [
                ("INFO", "engine", "demo workspace ready"),
                ("INFO", "optimize", "study sma-demo: 4000 trials, random sampler, 2 workers"),
                ("INFO", "live", "paper loop started on SYN"),
                ("WARNING", "monitor", "memory 1100 MB above 1024 MB"),
                ("INFO", "optimize", "checkpoint at 1000 trials"),
                ("ERROR", "optimize", "trial 733 failed: StrategyError: slow <= fast"),
                ("INFO", "monitor", "memory back under 1024 MB"),
                ("WARNING", "monitor", "bus p99 142 ms above 100 ms"),
            ]
        )
    )


def telemetry_fixture() -> Telemetry:
    """A busy engine: a study half-way, the bus and paper loop running, two alerts open."""
    return Telemetry(
        seq=42,
        taken_at=T0 + 60,
        workspace="demo",
        study=study_fixture(),
        bus=bus_fixture(),
        trading=trading_fixture(),
        profiler=profiler_fixture(),
        system=system_fixture(),
        alerts=alerts_fixture(),
        log=log_fixture(),
    )


def idle_telemetry_fixture() -> Telemetry:
    """Nothing running: every pane must say so."""
    return Telemetry(
        seq=1,
        taken_at=T0,
        workspace="empty",
        notes=("study: no study file given", "trading: paper loop off"),
    )


def trial_detail_fixture() -> TrialDetail:
    study = study_fixture()
    row = study.leaderboard[0]
    return TrialDetail(
        study=study.name,
        number=row.number,
        value=row.value,
        objective="sharpe",
        params=row.params,
        metrics=row.metrics,
        equity=study.best_equity,
        trades=tuple(
            TradeRow(600 * i, 600 * i + 300, "long", 100 + i, 101.5 + i, 9.5, 14.25, 0.015)
            for i in range(6)
        ),
    )


def trade_inspection_fixture() -> TradeInspection:
    """A seeded synthetic market (1,500 hourly bars) and an SMA cross with stops: every exit reason but one."""
    from engine.backtest import BacktestOptions
    from engine.backtest.inspect import inspect
    from engine.data import load

    options = BacktestOptions(fee=0.001, stop_loss=0.01, take_profit=0.03)
    return inspect(
        load("synthetic:bars=1500,seed=5,timeframe=1h"), "sma_cross", {"fast": 8, "slow": 30},
        options=options, title="demo · trial #117 · sma_cross(fast=8, slow=30)",
    )  # fmt: skip


class FixedSource:
    """A telemetry source that always returns the same snapshot; commands are recorded."""

    def __init__(self, telemetry: Telemetry) -> None:
        self._telemetry = telemetry
        self.commands: list[str] = []
        self.closed = False

    def telemetry(self) -> Telemetry:
        return self._telemetry

    async def _record(self, name: str) -> str:
        self.commands.append(name)
        return f"{name}: ok"

    async def start_study(self, path: str) -> str:
        return await self._record(f"start_study {path}")

    async def pause(self) -> str:
        return await self._record("pause")

    async def resume(self) -> str:
        return await self._record("resume")

    async def stop(self) -> str:
        return await self._record("stop")

    async def capture_profile(self, seconds: float = 5.0) -> str:
        return await self._record("capture_profile")

    async def toggle_paper(self) -> str:
        return await self._record("toggle_paper")

    async def kill_switch(self) -> str:
        return await self._record("kill_switch")

    async def cycle_heatmap(self) -> str:
        return await self._record("cycle_heatmap")

    async def open_trial(self, number: int) -> TrialDetail:
        self.commands.append(f"open_trial {number}")
        detail = trial_detail_fixture()
        if number != detail.number:
            raise GenesisError(f"trial {number} not found")
        return detail

    async def compare_studies(self, names: tuple[str, ...]) -> StudyComparison:
        self.commands.append("compare_studies " + " ".join(names))
        comparison = comparison_fixture()
        if tuple(names) != comparison.studies:
            raise GenesisError(f"no study named {names[-1]!r}")
        return comparison

    async def inspect_trial(self, number: int) -> TradeInspection:
        self.commands.append(f"inspect_trial {number}")
        if number != trial_detail_fixture().number:
            raise GenesisError(f"trial {number} not found")
        return trade_inspection_fixture()

    async def backtest_strategy(self, name: str) -> TradeInspection:
        self.commands.append(f"backtest_strategy {name}")
        return trade_inspection_fixture()

    async def close(self) -> None:
        self.closed = True


def comparison_fixture() -> StudyComparison:
    """Two studies as ``genesis compare`` lays them out (the rows come from the command's own code)."""
    from engine.optimize.compare import comparison_rows

    def column(name: str, sampler: str, best: float, shift: float, validated: bool) -> dict[str, object]:
        return {
            "study": name, "state": "complete", "strategy": "sma_cross", "data": "synthetic:bars=200000,seed=7",
            "sampler": sampler, "objective": "sharpe", "direction": "maximize", "trials": 5000,
            "counts": {"complete": 4990, "failed": 10, "pruned": 0},
            "best": {"number": 4321, "objective": best, "params": {"fast": 12, "slow": 140, "stop_loss": 0.02},
                     "metrics": {"total_return": 0.4123, "max_drawdown": 0.1377, "trades": 1767}},
            "validation": {"best_in_sample": best, "best_out_of_sample": best * 0.55, "mean_in_sample": best * 0.9,
                           "mean_out_of_sample": best * 0.4, "retention": 0.55, "walk_forward_folds": 4,
                           "walk_forward_efficiency": 0.48, "deflated_sharpe": 0.91} if validated else None,
            "objective_distribution": {"count": 4990, "mean": -0.8 + shift, "min": -6.2 + shift,
                                       "p05": -3.9 + shift, "p25": -1.7 + shift, "p50": -0.6 + shift,
                                       "p75": 0.3 + shift, "p95": 1.1 + shift, "max": best},
        }

    comparison = {
        "studies": [column("sma-nightly", "random", 1.6123, 0.0, True),
                    column("sma-nightly-tpe-with-a-long-name", "tpe", 1.7342, 0.4, False)],
        "notes": [],
    }
    return StudyComparison(
        studies=tuple(c["study"] for c in comparison["studies"]),  # type: ignore[index]
        rows=tuple((label, tuple(cells)) for label, cells in comparison_rows(comparison)),
        notes=(),
    )
