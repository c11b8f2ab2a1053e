"""The signal-to-position state machine: hand-computed cases and the reference simulator."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.backtest import EXIT_REASONS, run_signals
from engine.data import Bars, periods_per_year
from tests.backtest import gen
from tests.backtest import reference as ref
from tests.backtest.conftest import make_bars


def signal_arrays(n: int, entries: dict[int, bool] | list[int], exits: list[int] = ()) -> tuple[np.ndarray, np.ndarray]:
    e = np.zeros(n, dtype=bool)
    x = np.zeros(n, dtype=bool)
    e[list(entries)] = True
    x[list(exits)] = True
    return e, x


# ---------------------------------------------------------------- hand cases


def test_close_fill_with_fee_by_hand() -> None:
    """Buy at close 10 with fee 0.1%: units = 10000 / (10 * 1.001); sell at 12 paying 0.1%."""
    bars = make_bars([10.0, 11.0, 12.0, 11.0])
    e, x = signal_arrays(4, [0], [2])
    result = run_signals(bars, e, x, fill="close", fee=0.001, equity=True, trades=True)
    units = 10_000.0 / (10.0 * 1.001)
    assert result.trades.shape == (1,)
    trade = result.trades[0]
    assert trade["units"] == pytest.approx(units, rel=1e-12)
    assert trade["entry_fee"] == pytest.approx(units * 10.0 * 0.001, rel=1e-12)
    assert trade["exit_fee"] == pytest.approx(units * 12.0 * 0.001, rel=1e-12)
    final = 10_000.0 * 12.0 * 0.999 / 10.01  # = 11976.0239760...
    assert result.metrics.final_value == pytest.approx(final, rel=1e-12)
    # equity: bar 0 holds units at 10 (cash 0), bar 1 at 11, bar 2 and 3 the sale proceeds
    np.testing.assert_allclose(result.equity, [units * 10.0, units * 11.0, final, final], rtol=1e-12)
    assert trade["pnl"] == pytest.approx(final - 10_000.0, rel=1e-12)
    assert result.metrics.trades == 1
    assert result.metrics.win_rate == 1.0


def test_next_open_fill_with_slippage_by_hand() -> None:
    """Signal at bar 0's close fills at bar 1's open, slipped up 1%; the exit at bar 3's open, slipped down."""
    bars = make_bars(close=[10.0, 11.0, 12.0, 13.0, 14.0], open_=[10.0, 10.5, 11.5, 12.5, 13.5])
    e, x = signal_arrays(5, [0], [2])
    result = run_signals(bars, e, x, slippage=0.01, trades=True)
    trade = result.trades[0]
    assert (trade["entry_idx"], trade["exit_idx"]) == (1, 3)
    assert trade["entry_price"] == pytest.approx(10.5 * 1.01, rel=1e-12)
    assert trade["exit_price"] == pytest.approx(12.5 * 0.99, rel=1e-12)
    assert result.metrics.final_value == pytest.approx(10_000.0 / (10.5 * 1.01) * 12.5 * 0.99, rel=1e-12)


def test_signal_on_last_bar_is_dropped_under_next_open() -> None:
    bars = make_bars([10.0, 11.0, 12.0])
    e, x = signal_arrays(3, [2])
    result = run_signals(bars, e, x, trades=True)
    assert result.trades.shape == (0,)
    assert result.metrics.final_value == 10_000.0
    # ... but under close fills it executes at the last close and stays open
    result = run_signals(bars, e, x, fill="close", fee=0.01, trades=True)
    assert result.trades["exit_reason"].tolist() == [EXIT_REASONS.index("open")]
    assert result.metrics.final_value == pytest.approx(10_000.0 / 1.01, rel=1e-12)
    assert result.metrics.trades == 0  # open trades are not counted


def test_half_size_keeps_half_the_cash() -> None:
    bars = make_bars([10.0, 20.0])
    e, x = signal_arrays(2, [0])
    result = run_signals(bars, e, x, fill="close", size=0.5, equity=True)
    # 5000 buys 500 units at 10 (no fee); at 20 they are worth 10000, plus 5000 cash
    np.testing.assert_allclose(result.equity, [10_000.0, 15_000.0], rtol=1e-12)


def test_short_cash_accounting_by_hand() -> None:
    """Short: the exit signal opens, the entry signal covers. Sell at 10 with a 1% fee,
    cover at 8 with a 1% fee."""
    bars = make_bars([10.0, 9.0, 8.0])
    e, x = signal_arrays(3, [2], [0])
    result = run_signals(bars, e, x, fill="close", direction="short", fee=0.01, equity=True, trades=True)
    units = 10_000.0 / (10.0 * 1.01)
    cash_after_entry = 10_000.0 + units * 10.0 * (1 - 0.01)
    assert result.equity[1] == pytest.approx(cash_after_entry - units * 9.0, rel=1e-12)
    final = cash_after_entry - units * 8.0 * 1.01
    assert result.metrics.final_value == pytest.approx(final, rel=1e-12)
    trade = result.trades[0]
    assert trade["direction"] == -1
    assert trade["pnl"] == pytest.approx(units * (10.0 - 8.0) - units * 10.0 * 0.01 - units * 8.0 * 0.01, rel=1e-12)


def test_both_reverses_the_position() -> None:
    bars = make_bars([10.0, 12.0, 9.0, 9.0])
    e, x = signal_arrays(4, [0], [1])
    result = run_signals(bars, e, x, fill="close", direction="both", trades=True)
    directions = result.trades["direction"].tolist()
    assert directions == [1, -1]  # long closed at 12, short opened at 12 and still open
    units_long = 10_000.0 / 10.0
    cash = units_long * 12.0
    units_short = cash / 12.0
    assert result.metrics.final_value == pytest.approx(cash + units_short * (12.0 - 9.0), rel=1e-12)


def test_conflicting_signals_do_nothing() -> None:
    bars = make_bars([10.0, 11.0, 12.0])
    e, x = signal_arrays(3, [0], [0])
    assert run_signals(bars, e, x, fill="close").metrics.final_value == 10_000.0


def test_stop_loss_fills_at_level_then_gap_at_open() -> None:
    """Entry at 100 (close fill). Bar 1 dips to 94: a 5% stop fills at 95.
    Second run: bar 1 opens at 90, below the stop: it fills at the open."""
    bars = make_bars(close=[100.0, 97.0], open_=[100.0, 99.0], high=[100.0, 99.5], low=[100.0, 94.0])
    e, x = signal_arrays(2, [0])
    result = run_signals(bars, e, x, fill="close", stop_loss=0.05, trades=True)
    assert result.trades[0]["exit_price"] == pytest.approx(95.0)
    assert result.trades[0]["exit_reason"] == EXIT_REASONS.index("stop_loss")
    assert result.metrics.final_value == pytest.approx(9_500.0)

    gapped = make_bars(close=[100.0, 92.0], open_=[100.0, 90.0], high=[100.0, 93.0], low=[100.0, 89.0])
    result = run_signals(gapped, e, x, fill="close", stop_loss=0.05, trades=True)
    assert result.trades[0]["exit_price"] == pytest.approx(90.0)
    assert result.metrics.final_value == pytest.approx(9_000.0)


def test_stop_wins_when_both_levels_are_touched() -> None:
    bars = make_bars(close=[100.0, 100.0], open_=[100.0, 100.0], high=[100.0, 120.0], low=[100.0, 80.0])
    e, x = signal_arrays(2, [0])
    result = run_signals(bars, e, x, fill="close", stop_loss=0.1, take_profit=0.1, trades=True)
    assert result.trades[0]["exit_reason"] == EXIT_REASONS.index("stop_loss")
    assert result.metrics.final_value == pytest.approx(9_000.0)


def test_take_profit_and_short_stop_with_slippage() -> None:
    # long: target 110 touched by the high; fill 110 slipped down 1%
    bars = make_bars(close=[100.0, 105.0], open_=[100.0, 101.0], high=[100.0, 111.0], low=[100.0, 100.5])
    e, x = signal_arrays(2, [0])
    result = run_signals(bars, e, x, fill="close", take_profit=0.1, trades=True)
    assert result.trades[0]["exit_reason"] == EXIT_REASONS.index("take_profit")
    assert result.metrics.final_value == pytest.approx(11_000.0)
    # short entered at 100 slipped to 99; stop 5% above the fill: 103.95, filled slipped up
    bars = make_bars(close=[100.0, 101.0], open_=[100.0, 100.0], high=[100.0, 104.0], low=[100.0, 99.0])
    e, x = signal_arrays(2, [], [0])
    result = run_signals(bars, e, x, fill="close", direction="short", slippage=0.01, stop_loss=0.05, trades=True)
    trade = result.trades[0]
    assert trade["entry_price"] == pytest.approx(99.0)
    assert trade["exit_price"] == pytest.approx(99.0 * 1.05 * 1.01)


def test_stops_are_checked_from_the_bar_after_the_entry() -> None:
    """Next-open entry at bar 1's open; bar 1's own low breaches the stop but is not checked."""
    bars = make_bars(close=[100.0, 100.0, 100.0], open_=[100.0, 100.0, 100.0], high=[100.0, 100.0, 100.0],
                     low=[100.0, 50.0, 100.0])
    e, x = signal_arrays(3, [0])
    result = run_signals(bars, e, x, stop_loss=0.1, trades=True)
    assert result.trades[0]["exit_reason"] == EXIT_REASONS.index("open")


# ---------------------------------------------------------------- the reference simulator


def check_against_reference(
    bars: Bars, entries: np.ndarray, exits: np.ndarray, options: dict, **funding: object
) -> None:
    """The kernel equals the reference; ``funding`` (closes=, events=) goes to the reference."""
    o, h, l, c = (getattr(bars, name).tolist() for name in ("open", "high", "low", "close"))  # noqa: E741
    equity, trades, held = ref.simulate(o, h, l, c, entries.tolist(), exits.tolist(), **options, **funding)
    result = run_signals(bars, entries, exits, equity=True, trades=True, **options)
    scale = max(abs(v) for v in [*equity, options["cash"]])
    np.testing.assert_allclose(result.equity, equity, rtol=1e-9, atol=1e-9 * scale)

    assert len(result.trades) == len(trades)
    for got, want in zip(result.trades, trades, strict=True):
        for key in ("entry_idx", "exit_idx", "direction"):
            assert got[key] == want[key], key
        assert EXIT_REASONS[got["exit_reason"]] == want["exit_reason"]
        for key in ("units", "entry_price", "exit_price", "entry_fee", "exit_fee", "pnl", "return", "funding"):
            assert got[key] == pytest.approx(want[key], rel=1e-9, abs=1e-9 * scale), key

    expected = ref.metrics(equity, options["cash"], trades, held, periods_per_year(bars.timeframe))
    for key, value in result.metrics.as_dict().items():
        if math.isinf(expected[key]):
            assert value == expected[key], key
        else:
            assert value == pytest.approx(expected[key], rel=1e-7, abs=1e-9), key


@settings(max_examples=300, deadline=None)
@given(st.data(), gen.bars(), gen.options)
def test_kernel_matches_reference_simulator(data: st.DataObject, bars: Bars, options: dict) -> None:
    entries, exits = data.draw(gen.signals(len(bars)))
    check_against_reference(bars, entries, exits, options)


@pytest.mark.parametrize("fill", ["next_open", "close"])
@pytest.mark.parametrize("direction", ["long", "short", "both"])
def test_long_random_run_matches_reference(random_bars: Bars, rng: np.random.Generator, fill: str, direction: str) -> None:
    n = len(random_bars)
    entries, exits = rng.random(n) < 0.03, rng.random(n) < 0.03
    options = dict(fill=fill, direction=direction, fee=0.0007, slippage=0.0003, size=0.9, cash=10_000.0,
                   stop_loss=0.01, take_profit=0.02)
    check_against_reference(random_bars, entries, exits, options)


def test_trade_records_beyond_the_first_allocation() -> None:
    """A run with more trades than the initial record buffer still returns all of them."""
    n = 3_000
    close = 100.0 + np.sin(np.arange(n))  # a new direction every bar or two
    bars = make_bars(close.tolist())
    entries = np.zeros(n, dtype=bool)
    exits = np.zeros(n, dtype=bool)
    entries[0::2] = True
    exits[1::2] = True
    result = run_signals(bars, entries, exits, fill="close", direction="both", trades=True)
    assert len(result.trades) == n  # n - 1 closed reversals and the open one
    assert result.metrics.trades == n - 1
    assert np.all(result.trades["exit_idx"][:-1] == np.arange(1, n))


def test_rounding_noise_of_an_unchanged_equity_is_no_volatility() -> None:
    """Returns of ±1 ulp (a basket's equity summed in another order) give Sharpe 0, not 1e14."""
    from engine.backtest.enums import M_SHARPE, M_SORTINO, M_VOLATILITY, N_METRICS
    from engine.backtest.nb import ACC_SIZE, _finish_metrics_nb

    r = np.array([2.2e-16, -1.1e-16, 0.0, -2.2e-16, 1.1e-16, -1.1e-16])
    out = np.zeros(N_METRICS)
    _finish_metrics_nb(out, 10_000.0, 10_000.0, len(r), 252.0, r.sum(), (r * r).sum(),
                       (np.minimum(r, 0.0) ** 2).sum(), 0.0, 0, np.zeros(ACC_SIZE))
    assert out[M_SHARPE] == 0.0 and out[M_SORTINO] == 0.0 and out[M_VOLATILITY] == 0.0
    assert ref.metrics([10_000.0] * 3, 10_000.0, [], [False] * 3, 252.0)["sharpe"] == 0.0
