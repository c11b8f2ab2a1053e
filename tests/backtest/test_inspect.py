"""The trade screen's record: exit reasons, breakdowns, overlays and the benchmark curve."""

from __future__ import annotations

import numpy as np
import pytest

from engine.backtest import BacktestOptions, buy_and_hold_equity, run
from engine.backtest.enums import EXIT_REASONS
from engine.backtest.inspect import REASON_LABELS, inspect, month_of
from engine.data import Bars
from engine.strategy import ta


def test_trades_carry_the_kernels_exit_reasons(random_bars: Bars) -> None:
    options = BacktestOptions(stop_loss=0.004, take_profit=0.006, fee=0.001)
    params = {"fast": 5, "slow": 20}
    inspection = inspect(random_bars, "sma_cross", params, options=options)
    raw = run(random_bars, "sma_cross", params, options=options, trades=True).trades
    assert raw is not None and len(inspection.trades) == len(raw) > 10
    assert [t.reason for t in inspection.trades] == [REASON_LABELS[EXIT_REASONS[r]] for r in raw["exit_reason"]]
    assert {"signal", "stop-loss", "take-profit"} <= {t.reason for t in inspection.trades}
    by_reason = {row.label: row for row in inspection.by_reason}
    assert sum(row.trades for row in by_reason.values()) == len(raw)
    stops = [t for t in inspection.trades if t.reason == "stop-loss"]
    assert by_reason["stop-loss"].trades == len(stops)
    assert by_reason["stop-loss"].pnl == pytest.approx(sum(t.pnl for t in stops))
    assert by_reason["stop-loss"].win_rate == sum(t.pnl > 0 for t in stops) / len(stops)


def test_months_group_trades_by_their_exit_time() -> None:
    assert month_of(np.datetime64("2026-03-31T23:59", "ns").astype(np.int64)) == "2026-03"
    assert month_of(np.datetime64("2026-04-01T00:00", "ns").astype(np.int64)) == "2026-04"


def test_breakdown_by_month_and_benchmark(random_bars: Bars) -> None:
    options = BacktestOptions(fee=0.001)
    inspection = inspect(random_bars, "sma_cross", {"fast": 5, "slow": 20}, options=options)
    assert sum(r.trades for r in inspection.by_month) == len(inspection.trades)
    assert sum(r.pnl for r in inspection.by_month) == pytest.approx(sum(t.pnl for t in inspection.trades))
    assert np.array_equal(inspection.benchmark, buy_and_hold_equity(random_bars, options))
    total = dict(inspection.metrics)["total_return"]
    assert inspection.excess_return == pytest.approx(total - inspection.buy_and_hold_return)
    assert inspection.trades[0].entry_ts == int(random_bars.ts[inspection.trades[0].entry])


def test_an_open_trade_ends_at_end_of_data() -> None:
    from tests.backtest.conftest import make_bars

    close = [10.0, 9.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0]
    inspection = inspect(make_bars(close), "sma_cross", {"fast": 2, "slow": 3})
    assert inspection.trades[-1].reason == "end of data"


def test_overlays_are_the_built_ins_indicators(random_bars: Bars) -> None:
    cross = inspect(random_bars, "sma_cross", {"fast": 5, "slow": 20})
    names = dict(cross.overlays)
    np.testing.assert_array_equal(names["fast"], ta.sma(random_bars.close, 5))
    np.testing.assert_array_equal(names["slow"], ta.sma(random_bars.close, 20))
    assert [n for n, _ in inspect(random_bars, "bollinger_breakout", {}).overlays] == ["mid", "upper"]
    assert inspect(random_bars, "rsi_reversion", {}).overlays == ()  # an oscillator is not on the price's scale
