"""Buy-and-hold against hand-computed figures, and in ``genesis backtest``'s output."""

from __future__ import annotations

import json

import pytest

from engine.backtest import BacktestOptions, benchmark, buy_and_hold_equity, buy_and_hold_return
from engine.data import load
from genesis_tui.cli import main
from tests.backtest.conftest import make_bars


def test_buy_and_hold_by_hand_next_open_with_fee_and_slippage() -> None:
    bars = make_bars([101.0, 90.0, 121.0], open_=[100.0, 101.0, 90.0])
    options = BacktestOptions(fee=0.01, slippage=0.1, cash=1000.0)
    # Fill at the first open moved 10 % against the buyer: 110; units = 1000 / (110 * 1.01).
    units = 1000.0 / (110.0 * 1.01)
    assert buy_and_hold_equity(bars, options).tolist() == pytest.approx([units * 101, units * 90, units * 121])
    assert buy_and_hold_return(bars, options) == pytest.approx(units * 121 / 1000 - 1)  # +8.91 %
    assert buy_and_hold_return(bars, options) == pytest.approx(0.0891089, abs=1e-6)


def test_buy_and_hold_fills_at_the_first_close_under_close_fill() -> None:
    bars = make_bars([50.0, 75.0], open_=[40.0, 50.0])
    assert buy_and_hold_return(bars, BacktestOptions(fill="close")) == pytest.approx(0.5)
    assert buy_and_hold_return(bars, BacktestOptions()) == pytest.approx(75 / 40 - 1)


def test_excess_is_the_strategy_return_minus_buy_and_hold() -> None:
    bars = make_bars([100.0, 80.0], open_=[100.0, 100.0])
    result = benchmark(bars, 0.05)
    assert result.buy_and_hold_return == pytest.approx(-0.2)
    assert result.excess_return == pytest.approx(0.25)
    assert result.as_dict() == {"buy_and_hold_return": result.buy_and_hold_return, "excess_return": result.excess_return}


def test_backtest_json_and_table_carry_the_benchmark(capsys: pytest.CaptureFixture[str]) -> None:
    spec = "synthetic:bars=2000,seed=3"
    args = ["backtest", "--data", spec, "--strategy", "sma_cross", "--fee", "0.001"]
    assert main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    held = buy_and_hold_return(load(spec), BacktestOptions(fee=0.001))
    assert report["benchmark"]["buy_and_hold_return"] == pytest.approx(held)
    assert report["benchmark"]["excess_return"] == pytest.approx(report["metrics"]["total_return"] - held)
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "buy_and_hold_return" in out and "excess_return" in out
    assert f"{held * 100:,.2f} %" in out
