"""Trailing stops and risk sizing in the single-symbol kernel: hand cases and the reference."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.backtest import EXIT_REASONS, METRIC_NAMES, nb, run_signals
from engine.backtest.enums import DIRECTIONS, FILLS, KIND_SIGNALS, N_METRICS, TRADE_DTYPE
from engine.data import Bars, periods_per_year
from tests.backtest import gen
from tests.backtest import reference as ref
from tests.backtest.conftest import make_bars
from tests.backtest.test_simulate import signal_arrays


def simulate(bars: Bars, entries: np.ndarray, exits: np.ndarray, *, fill: str = "next_open",
             direction: str = "long", fee: float = 0.0, slippage: float = 0.0, size: float = 1.0,
             cash: float = 10_000.0, stop_loss: float = 0.0, take_profit: float = 0.0,
             trailing_stop: float = 0.0, risk: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(metrics, equity, trades) of the specialised kernel with the new arguments."""
    n = len(bars)
    fill_close = FILLS[fill] == 1
    kernel = nb.simulate_variant(fill_close, stop_loss > 0 or take_profit > 0 or trailing_stop > 0)
    metrics, equity, trades = np.empty(N_METRICS), np.empty(n), np.empty(n + 1, dtype=TRADE_DTYPE)
    count = kernel(
        bars.open, bars.high, bars.low, bars.close, KIND_SIGNALS, bars.close, bars.close, 0.0, 0.0,
        entries, exits, fill_close, DIRECTIONS[direction], fee, slippage, size, cash, stop_loss,
        take_profit, periods_per_year(bars.timeframe), equity, trades, metrics, trailing_stop, risk,
    )  # fmt: skip
    return metrics, equity, trades[:count]


REASON = {name: code for code, name in enumerate(EXIT_REASONS)}


# ---------------------------------------------------------------- trailing stop by hand


def test_trailing_stop_follows_the_highest_high_under_next_open() -> None:
    """Entry at bar 1's open (100); bar 1's high 110 (after the fill, so it counts) puts a
    5% trailing stop at 104.5; bar 2's low 104 hits it."""
    bars = make_bars(close=[100.0, 108.0, 105.0, 105.0], open_=[100.0, 100.0, 107.0, 105.0],
                     high=[100.0, 110.0, 107.0, 105.0], low=[100.0, 100.0, 104.0, 105.0])
    e, x = signal_arrays(4, [0])
    metrics, _, trades = simulate(bars, e, x, trailing_stop=0.05)
    assert trades[0]["exit_reason"] == REASON["trailing_stop"]
    assert (trades[0]["entry_idx"], trades[0]["exit_idx"]) == (1, 2)
    assert trades[0]["exit_price"] == pytest.approx(104.5, rel=1e-12)
    assert metrics[0] == pytest.approx(10_000.0 / 100.0 * 104.5, rel=1e-12)


def test_trailing_stop_ignores_the_entry_bar_under_close_fills_and_this_bars_high() -> None:
    """Close fill at 100 on bar 0 (its high 120 came before the fill). Bar 1 reaches 103
    then falls to 98: the stop of bar 1 is still 100 * 0.98 = 98 (bar 1's own high moves
    it only from bar 2 on), so bar 1's low 98 hits it at 98."""
    bars = make_bars(close=[100.0, 99.0, 99.0], open_=[100.0, 100.0, 99.0],
                     high=[120.0, 103.0, 99.0], low=[100.0, 98.0, 99.0])
    e, x = signal_arrays(3, [0])
    _, _, trades = simulate(bars, e, x, fill="close", trailing_stop=0.02)
    assert trades[0]["exit_idx"] == 1
    assert trades[0]["exit_price"] == pytest.approx(98.0, rel=1e-12)
    # With bar 1's low at 98.5 nothing fires on bar 1; bar 2 is checked against 103 * 0.98.
    bars = make_bars(close=[100.0, 99.0, 99.0], open_=[100.0, 100.0, 99.0],
                     high=[120.0, 103.0, 101.0], low=[100.0, 98.5, 99.0])
    _, _, trades = simulate(bars, e, x, fill="close", trailing_stop=0.02)
    assert trades[0]["exit_idx"] == 2
    assert trades[0]["exit_price"] == pytest.approx(min(99.0, 103.0 * 0.98), rel=1e-12)  # gapped: the open


def test_short_trailing_stop_and_the_tighter_stop_wins() -> None:
    """Short at 100 (close fill), fixed stop 10% (110), trailing 5% above the lowest low.
    Bar 1's low 90 moves the trailing level to 94.5 (tighter than 110); bar 2 reaches 95."""
    bars = make_bars(close=[100.0, 92.0, 94.0], open_=[100.0, 99.0, 93.0],
                     high=[100.0, 99.0, 95.0], low=[100.0, 90.0, 92.0])
    e, x = signal_arrays(3, [], [0])
    _, _, trades = simulate(bars, e, x, fill="close", direction="short", stop_loss=0.10, trailing_stop=0.05)
    assert trades[0]["exit_reason"] == REASON["trailing_stop"]
    assert trades[0]["exit_price"] == pytest.approx(94.5, rel=1e-12)
    # Bar 1 reaching 102: the fixed stop (101) is tighter than the trailing one (105): a stop-loss.
    bars = make_bars(close=[100.0, 92.0, 94.0], open_=[100.0, 99.0, 93.0],
                     high=[100.0, 102.0, 95.0], low=[100.0, 90.0, 92.0])
    _, _, trades = simulate(bars, e, x, fill="close", direction="short", stop_loss=0.01, trailing_stop=0.05)
    assert trades[0]["exit_reason"] == REASON["stop_loss"]
    assert (trades[0]["exit_idx"], trades[0]["exit_price"]) == (1, pytest.approx(101.0, rel=1e-12))


def test_trailing_stop_loses_to_nothing_when_take_profit_is_touched_alone() -> None:
    bars = make_bars(close=[100.0, 100.0], open_=[100.0, 100.0], high=[100.0, 111.0], low=[100.0, 99.0])
    e, x = signal_arrays(2, [0])
    _, _, trades = simulate(bars, e, x, fill="close", take_profit=0.1, trailing_stop=0.02)
    assert trades[0]["exit_reason"] == REASON["take_profit"]
    _, _, trades = simulate(bars, e, x, fill="close", take_profit=0.1, trailing_stop=0.01)
    assert trades[0]["exit_reason"] == REASON["trailing_stop"]  # both touched: the stop wins


# ---------------------------------------------------------------- risk sizing by hand


def test_risk_sizing_loses_risk_of_equity_at_the_stop() -> None:
    """Entry 100, stop 5% (95), fee 0.1%, slippage 0, risk 1% of 10,000: one unit loses
    100 * 1.001 - 95 * 0.999 = 5.195, so 100 / 5.195 units; the stop-out loses exactly 100."""
    bars = make_bars(close=[100.0, 94.0], open_=[100.0, 99.0], high=[100.0, 99.0], low=[100.0, 94.0])
    e, x = signal_arrays(2, [0])
    metrics, _, trades = simulate(bars, e, x, fill="close", fee=0.001, stop_loss=0.05, risk=0.01)
    assert trades[0]["units"] == pytest.approx(100.0 / 5.195, rel=1e-12)
    assert trades[0]["pnl"] == pytest.approx(-100.0, rel=1e-12)
    assert metrics[0] == pytest.approx(9_900.0, rel=1e-12)


def test_risk_sizing_short_with_slippage() -> None:
    """Short sold at 100 * 0.99 = 99; stop 2% above: 100.98, filled slipped at 101.9898;
    with fee 0.2% one unit loses 101.9898 * 1.002 - 99 * 0.998; risk 2% of 5,000 = 100."""
    bars = make_bars(close=[100.0, 100.0], open_=[100.0, 100.0], high=[100.0, 102.0], low=[100.0, 100.0])
    e, x = signal_arrays(2, [], [0])
    _, _, trades = simulate(bars, e, x, fill="close", direction="short", fee=0.002, slippage=0.01,
                            stop_loss=0.02, risk=0.02, cash=5_000.0)
    per_unit = 99.0 * 1.02 * 1.01 * 1.002 - 99.0 * 0.998
    assert trades[0]["units"] == pytest.approx(100.0 / per_unit, rel=1e-12)
    assert trades[0]["pnl"] == pytest.approx(-100.0, rel=1e-12)


def test_risk_sizing_is_capped_by_the_cash() -> None:
    """Risk 50% with a 1% stop would buy fifty times the cash: capped at what `size` buys."""
    bars = make_bars([100.0, 110.0])
    e, x = signal_arrays(2, [0])
    _, equity, trades = simulate(bars, e, x, fill="close", fee=0.001, stop_loss=0.01, risk=0.5, size=0.5)
    assert trades[0]["units"] == pytest.approx(5_000.0 / 100.1, rel=1e-12)
    assert equity[0] == pytest.approx(5_000.0 + 5_000.0 / 100.1 * 100.0, rel=1e-12)


# ---------------------------------------------------------------- the reference simulator

#: gen.options plus a trailing stop and risk sizing (risk needs a stop-loss: 5% when none was drawn).
options = st.tuples(
    gen.options,
    st.fixed_dictionaries(
        {
            "trailing_stop": st.one_of(st.just(0.0), st.floats(0.005, 0.3)),
            "risk": st.one_of(st.just(0.0), st.floats(0.001, 0.5)),
        }
    ),
).map(lambda pair: {**pair[0], **pair[1], "stop_loss": pair[0]["stop_loss"] or 0.05 * (pair[1]["risk"] > 0)})


def check(bars: Bars, entries: np.ndarray, exits: np.ndarray, options: dict[str, Any]) -> None:
    o, h, l, c = (getattr(bars, name).tolist() for name in ("open", "high", "low", "close"))  # noqa: E741
    equity, trades, held = ref.simulate(o, h, l, c, entries.tolist(), exits.tolist(), **options)
    metrics, got_equity, got_trades = simulate(bars, entries, exits, **options)
    scale = max(abs(v) for v in [*equity, options["cash"]])
    np.testing.assert_allclose(got_equity, equity, rtol=1e-9, atol=1e-9 * scale)
    assert len(got_trades) == len(trades)
    for got, want in zip(got_trades, trades, strict=True):
        for key in ("entry_idx", "exit_idx", "direction"):
            assert got[key] == want[key], key
        assert EXIT_REASONS[got["exit_reason"]] == want["exit_reason"]
        for key in ("units", "entry_price", "exit_price", "entry_fee", "exit_fee", "pnl", "return"):
            assert got[key] == pytest.approx(want[key], rel=1e-9, abs=1e-9 * scale), key
    expected = ref.metrics(equity, options["cash"], trades, held, periods_per_year(bars.timeframe))
    for i, key in enumerate(METRIC_NAMES):
        if math.isinf(expected[key]):
            assert metrics[i] == expected[key], key
        else:
            assert metrics[i] == pytest.approx(expected[key], rel=1e-7, abs=1e-9), key


@settings(max_examples=300, deadline=None)
@given(st.data(), gen.bars(), options)
def test_kernel_matches_reference_with_trailing_stop_and_risk(data: st.DataObject, bars: Bars, options: dict) -> None:
    entries, exits = data.draw(gen.signals(len(bars)))
    check(bars, entries, exits, options)


def test_stops_off_give_todays_results_bit_for_bit(random_bars: Bars, rng: np.random.Generator) -> None:
    """Passing trailing_stop = risk = 0 explicitly equals the call that omits them."""
    n = len(random_bars)
    e, x = rng.random(n) < 0.03, rng.random(n) < 0.03
    kwargs = dict(fill="next_open", direction="both", fee=0.001, slippage=0.0005, stop_loss=0.01, take_profit=0.02)
    explicit = simulate(random_bars, e, x, **kwargs)
    omitted = run_signals(random_bars, e, x, equity=True, trades=True, **kwargs)
    assert explicit[1].tobytes() == omitted.equity.tobytes()
    assert explicit[2].tobytes() == omitted.trades.tobytes()
