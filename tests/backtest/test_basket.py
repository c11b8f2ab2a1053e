"""Basket backtests: both allocations against the pure-Python reference, split against
single-symbol runs and vectorbt, hand cases, and the bad inputs of a basket."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.backtest import EXIT_REASONS, METRIC_NAMES, run_signals
from engine.backtest.basket import run_basket
from engine.data import Bars, Basket, align, periods_per_year
from engine.errors import DataError, InputError
from tests.backtest import basket_reference as bref
from tests.backtest import gen
from tests.backtest import reference as ref
from tests.backtest.conftest import make_bars
from tests.backtest.test_stops_sizing import options as single_options


def subset(bars: Bars, keep: np.ndarray, symbol: str) -> Bars:
    return Bars(bars.ts[keep], bars.open[keep], bars.high[keep], bars.low[keep], bars.close[keep],
                bars.volume[keep], symbol=symbol, timeframe=bars.timeframe)  # fmt: skip


@st.composite
def baskets(draw: st.DrawFn, max_symbols: int = 4) -> list[Bars]:
    """2-4 symbols on a common grid, each missing random bars (all share one row, so they overlap)."""
    m = draw(st.integers(1, max_symbols))
    length = draw(st.integers(2, 40))
    common = draw(st.integers(0, length - 1))
    out = []
    for k in range(m):
        full = draw(gen.bars(length, length))
        density = draw(st.sampled_from([1.0, 0.9, 0.5]))
        seed = draw(st.integers(0, 2**32 - 1))
        keep = np.random.default_rng(seed).random(length) < density
        keep[common] = True
        out.append(subset(full, keep, f"S{k}"))
    return out


def grids(basket: Basket, entries: list[np.ndarray], exits: list[np.ndarray], rank: list[np.ndarray] | None):
    """Prices and signals as [t][k] lists with None where a symbol has no bar."""
    n, m = len(basket), basket.n_symbols
    has = basket.has_bar

    def grid(values: np.ndarray) -> list[list[Any]]:
        return [[values[t, k].item() if has[t, k] else None for k in range(m)] for t in range(n)]

    prices = [grid(getattr(basket, name)) for name in ("open", "high", "low", "close")]
    signal_grids = [grid(np.stack([basket.scatter(k, s[k], False) for k in range(m)], axis=1)) for s in (entries, exits)]
    rank_grid = None if rank is None else grid(np.stack([basket.scatter(k, rank[k]) for k in range(m)], axis=1))
    return prices, signal_grids, rank_grid


def check(outcome: bref.Outcome, result: Any, cash: float, timeframe: str) -> None:
    scale = max(abs(v) for v in [*outcome.equity, cash])
    np.testing.assert_allclose(result.equity, outcome.equity, rtol=1e-9, atol=1e-9 * scale)
    assert len(result.trades) == len(outcome.trades)
    for got, want in zip(result.trades, outcome.trades, strict=True):
        for key in ("symbol", "entry_idx", "exit_idx", "direction"):
            assert got[key] == want[key], key
        assert EXIT_REASONS[got["exit_reason"]] == want["exit_reason"]
        for key in ("units", "entry_price", "exit_price", "entry_fee", "exit_fee", "pnl", "return"):
            assert got[key] == pytest.approx(want[key], rel=1e-9, abs=1e-9 * scale), key
    expected = ref.metrics(outcome.equity, cash, outcome.trades, outcome.held, periods_per_year(timeframe))
    for key in METRIC_NAMES:
        got = getattr(result.metrics, key)
        if math.isinf(expected[key]):
            assert got == expected[key], key
        else:
            assert got == pytest.approx(expected[key], rel=1e-7, abs=1e-9), key
    for got, want in zip(result.per_symbol, outcome.per_symbol, strict=True):
        assert got["trades"] == want["trades"]
        for key in ("return_contribution", "win_rate", "exposure"):
            assert got[key] == pytest.approx(want[key], rel=1e-9, abs=1e-9 * scale / cash), key


def draw_case(data: st.DataObject, bars_list: list[Bars], ranked: bool):
    entries, exits = zip(*(data.draw(gen.signals(len(b))) for b in bars_list), strict=True)
    rank = None
    if ranked:
        rank = [data.draw(st.lists(st.one_of(st.floats(-3, 3), st.just(float("nan")), st.just(1.0)),
                                   min_size=len(b), max_size=len(b))) for b in bars_list]  # fmt: skip
        rank = [np.array(r) for r in rank]
    return list(entries), list(exits), rank


@settings(max_examples=200, deadline=None)
@given(st.data(), baskets(), single_options)
def test_split_matches_reference(data: st.DataObject, bars_list: list[Bars], options: dict) -> None:
    basket = align(bars_list)
    entries, exits, _ = draw_case(data, bars_list, False)
    (o, h, l, c), (e, x), _ = grids(basket, entries, exits, None)  # noqa: E741
    outcome = bref.split(o, h, l, c, e, x, **options)
    sizing = "risk" if options["risk"] > 0 else "fraction"
    result = run_basket(basket, entries, exits, allocation="split", sizing=sizing, equity=True, trades=True, **options)
    check(outcome, result, options["cash"], basket.timeframe)


@settings(max_examples=300, deadline=None)
@given(st.data(), baskets(), single_options, st.booleans())
def test_shared_matches_reference(data: st.DataObject, bars_list: list[Bars], options: dict, ranked: bool) -> None:
    basket = align(bars_list)
    entries, exits, rank = draw_case(data, bars_list, ranked)
    max_positions = data.draw(st.one_of(st.none(), st.integers(1, len(bars_list))))
    (o, h, l, c), (e, x), r = grids(basket, entries, exits, rank)  # noqa: E741
    outcome = bref.shared(o, h, l, c, e, x, r, max_positions=max_positions, **options)
    sizing = "risk" if options["risk"] > 0 else "fraction"
    result = run_basket(basket, entries, exits, rank=rank, allocation="shared", max_positions=max_positions,
                        sizing=sizing, equity=True, trades=True, **options)  # fmt: skip
    check(outcome, result, options["cash"], basket.timeframe)


@pytest.mark.parametrize("fill", ["next_open", "close"])
@pytest.mark.parametrize("direction", ["long", "short", "both"])
@pytest.mark.parametrize("trailing_stop", [0.0, 0.03])
def test_shared_stops_held_for_hundreds_of_bars_match_reference(fill: str, direction: str, trailing_stop: float) -> None:
    # The hypothesis baskets are short; here stops are hit tens to hundreds of bars after the entry,
    # across several of the kernel's look-ahead windows, with gaps where a symbol has no bar.
    rng = np.random.default_rng(11)
    n, m = 4000, 4
    closes = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.002, (n, m)), axis=0))
    opens = np.vstack([closes[:1], closes[:-1]]) * (1.0 + rng.normal(0.0, 0.001, (n, m)))
    highs = np.maximum(opens, closes) * (1.0 + rng.uniform(0.0, 0.002, (n, m)))
    lows = np.minimum(opens, closes) * (1.0 - rng.uniform(0.0, 0.002, (n, m)))
    bars_list = []
    for k in range(m):
        full = make_bars(closes[:, k].tolist(), opens[:, k].tolist(), highs[:, k].tolist(), lows[:, k].tolist())
        keep = rng.random(n) < (1.0 if k == 0 else 0.8)
        bars_list.append(subset(full, keep, f"S{k}"))
    entries = [rng.random(len(b)) < 0.004 for b in bars_list]
    exits = [rng.random(len(b)) < 0.004 for b in bars_list]
    options = {"fill": fill, "direction": direction, "fee": 0.001, "slippage": 0.0005, "stop_loss": 0.03,
               "take_profit": 0.06, "trailing_stop": trailing_stop, "cash": 10_000.0}  # fmt: skip
    basket = align(bars_list)
    (o, h, l, c), (e, x), _ = grids(basket, entries, exits, None)  # noqa: E741
    outcome = bref.shared(o, h, l, c, e, x, **options)
    result = run_basket(basket, entries, exits, allocation="shared", equity=True, trades=True, **options)
    stopped = [t for t in result.trades if EXIT_REASONS[t["exit_reason"]] not in ("signal", "open")]
    assert max(int(t["exit_idx"] - t["entry_idx"]) for t in stopped) > 48  # past the first two windows (16, 32 rows)
    check(outcome, result, options["cash"], basket.timeframe)


@settings(max_examples=100, deadline=None)
@given(st.data(), baskets(), gen.options)
def test_split_equals_single_symbol_runs_with_cash_over_n(data: st.DataObject, bars_list: list[Bars], options: dict) -> None:
    entries, exits, _ = draw_case(data, bars_list, False)
    result = run_basket(bars_list, entries, exits, equity=True, trades=True, **options)
    m = len(bars_list)
    singles = [
        run_signals(b, e, x, trades=True, **{**options, "cash": options["cash"] / m})
        for b, e, x in zip(bars_list, entries, exits, strict=True)
    ]
    final = sum(s.metrics.final_value for s in singles)
    assert result.metrics.final_value == pytest.approx(final, rel=1e-12, abs=1e-12 * options["cash"])
    for k, single in enumerate(singles):
        mine = result.trades[result.trades["symbol"] == k]
        assert mine["pnl"].tobytes() == single.trades["pnl"].tobytes()  # the same kernel: bit for bit
        assert result.per_symbol[k]["trades"] == single.metrics.trades
        assert result.per_symbol[k]["exposure"] == single.metrics.exposure


# ---------------------------------------------------------------- hand cases


def two_symbols(a_close: list[float], b_close: list[float], b_rows: list[int] | None = None) -> list[Bars]:
    a = make_bars(a_close)
    b = make_bars(b_close)
    if b_rows is not None:
        full = make_bars([b_close[0]] * len(a_close))
        b = Bars(full.ts[b_rows], b.open, b.high, b.low, b.close, b.volume, timeframe="1d")
    return [Bars(*a.columns().values(), symbol="A", timeframe="1d"), Bars(*b.columns().values(), symbol="B", timeframe="1d")]


def test_shared_cash_target_and_max_positions_by_hand() -> None:
    """Close fills, cash 10,000, size 1, max_positions 2, fee 1%. Bar 0: A and B enter;
    equity 10,000, target 5,000 each: units 5000 / (10 * 1.01). Bar 1: A exits at 12
    (proceeds units * 12 * 0.99); B stays open to the end (marked, no exit fee)."""
    bars_list = two_symbols([10.0, 12.0, 12.0], [20.0, 25.0, 30.0])
    entries = [np.array([True, False, False]), np.array([True, False, False])]
    exits = [np.array([False, True, False]), np.array([False, False, False])]
    result = run_basket(bars_list, entries, exits, allocation="shared", fill="close", fee=0.01, equity=True, trades=True)
    ua, ub = 5_000.0 / (10.0 * 1.01), 5_000.0 / (20.0 * 1.01)
    assert result.trades["units"].tolist() == pytest.approx([ua, ub], rel=1e-12)
    cash = ua * 12.0 * 0.99
    np.testing.assert_allclose(result.equity, [ua * 10 + ub * 20, cash + ub * 25, cash + ub * 30], rtol=1e-12)
    assert result.per_symbol["return_contribution"].tolist() == pytest.approx(
        [(ua * 12 * 0.99 - 5_000.0) / 10_000.0, (ub * 30 - 5_000.0) / 10_000.0], rel=1e-12
    )


def test_shared_rank_decides_who_enters_when_one_slot_is_free() -> None:
    """max_positions 1: both signal on bar 0; B ranks higher and takes all the cash."""
    bars_list = two_symbols([10.0, 11.0], [20.0, 21.0])
    entries = [np.array([True, False]), np.array([True, False])]
    no = [np.zeros(2, bool), np.zeros(2, bool)]
    result = run_basket(bars_list, entries, no, allocation="shared", fill="close", max_positions=1,
                        rank=[np.array([1.0, 0.0]), np.array([2.0, 0.0])], trades=True)  # fmt: skip
    assert result.trades["symbol"].tolist() == [1]
    assert result.metrics.final_value == pytest.approx(10_000.0 / 20.0 * 21.0, rel=1e-12)
    # without a rank: symbol order, A first
    result = run_basket(bars_list, entries, no, allocation="shared", fill="close", max_positions=1, trades=True)
    assert result.trades["symbol"].tolist() == [0]


def test_shared_equity_for_the_target_marks_at_this_open_and_the_last_close() -> None:
    """Next-open fills, max_positions 2. A enters at bar 1's open (10): 500 units, cash 5,000.
    B (no bar at row 1) signals on row 2 and fills at row 3's open (40), when A opens at 14:
    equity = 5,000 + 500 * 14 = 12,000, target 6,000 > cash: B spends the 5,000 left."""
    a = make_bars([10.0, 12.0, 13.0, 15.0], open_=[10.0, 10.0, 12.0, 14.0])
    b = make_bars([40.0, 40.0, 40.0, 40.0])
    b = Bars(b.ts[[0, 2, 3]], b.open[:3], b.high[:3], b.low[:3], b.close[:3], b.volume[:3], symbol="B", timeframe="1d")
    a = Bars(*a.columns().values(), symbol="A", timeframe="1d")
    entries = [np.array([True, False, False, False]), np.array([False, True, False])]
    no = [np.zeros(4, bool), np.zeros(3, bool)]
    result = run_basket([a, b], entries, no, allocation="shared", max_positions=2, equity=True, trades=True)
    assert result.trades["entry_idx"].tolist() == [1, 3]
    assert result.trades["units"].tolist() == pytest.approx([500.0, 5_000.0 / 40.0], rel=1e-12)
    # row 1: B has no bar, its value before it trades is nothing; A marked at 12
    np.testing.assert_allclose(result.equity, [10_000.0, 5_000.0 + 6_000.0, 5_000 + 6_500.0, 7_500.0 + 5_000.0])


def test_next_open_fills_at_the_symbols_own_next_bar() -> None:
    """B signals at its row 0; it has no bar at row 1, so it fills at row 2's open (split)."""
    bars_list = two_symbols([10.0, 10.0, 10.0], [20.0, 22.0], b_rows=[0, 2])
    entries = [np.zeros(3, bool), np.array([True, False])]
    exits = [np.zeros(3, bool), np.zeros(2, bool)]
    result = run_basket(bars_list, entries, exits, trades=True, equity=True)
    assert result.trades["entry_idx"].tolist() == [2]
    assert result.trades["entry_price"].tolist() == [22.0]
    assert result.per_symbol["exposure"].tolist() == [0.0, 0.5]


def test_split_maps_a_gappy_symbol_between_complete_ones_to_its_timeline_rows() -> None:
    """Complete, gappy (no first or last bar), complete: the middle symbol's bars are gathered and its
    trades and equity mapped back through its rows, the others run on their columns; each equals its
    single-symbol run bit for bit (a stale or missing row map would shift the middle one)."""
    rng = np.random.default_rng(5)
    n = 300
    full = [make_bars(list(100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02, n))))) for _ in range(3)]
    keep = rng.random(n) < 0.7
    keep[0] = keep[-1] = False
    keep[1] = True
    bars_list = [subset(full[0], np.ones(n, bool), "A"), subset(full[1], keep, "B"), subset(full[2], np.ones(n, bool), "C")]
    entries = [rng.random(len(b)) < 0.05 for b in bars_list]
    exits = [rng.random(len(b)) < 0.05 for b in bars_list]
    result = run_basket(bars_list, entries, exits, fee=0.001, equity=True, trades=True)
    rows = align(bars_list).rows
    expected_equity = np.zeros(n)
    for k, (b, e, x) in enumerate(zip(bars_list, entries, exits, strict=True)):
        single = run_signals(b, e, x, fee=0.001, cash=10_000.0 / 3, equity=True, trades=True)
        mine = result.trades[result.trades["symbol"] == k]
        assert len(single.trades) > 3
        assert mine["entry_idx"].tolist() == rows[k][single.trades["entry_idx"]].tolist()
        assert mine["exit_idx"].tolist() == rows[k][single.trades["exit_idx"]].tolist()
        assert mine["pnl"].tobytes() == single.trades["pnl"].tobytes()
        held = np.full(n, np.nan)
        held[rows[k]] = single.equity
        held[0] = 10_000.0 / 3 if np.isnan(held[0]) else held[0]
        for t in range(1, n):  # forward-filled where the symbol has no bar
            held[t] = held[t - 1] if np.isnan(held[t]) else held[t]
        expected_equity += held
    assert result.equity.tobytes() == expected_equity.tobytes()


def test_risk_sizing_in_a_shared_basket_is_capped_by_the_target() -> None:
    """Risk 1% of 10,000 with a 1% stop would buy 10,000 of A; the target (5,000) caps it."""
    bars_list = two_symbols([10.0, 10.0], [20.0, 20.0])
    entries = [np.array([True, False]), np.zeros(2, bool)]
    no = [np.zeros(2, bool), np.zeros(2, bool)]
    result = run_basket(bars_list, entries, no, allocation="shared", fill="close", sizing="risk", risk=0.01,
                        stop_loss=0.01, trades=True)  # fmt: skip
    assert result.trades["units"].tolist() == pytest.approx([500.0], rel=1e-12)
    result = run_basket(bars_list, entries, no, allocation="shared", fill="close", sizing="risk", risk=0.002,
                        stop_loss=0.01, trades=True)  # fmt: skip
    assert result.trades["units"].tolist() == pytest.approx([20.0 / (10.0 * 0.01)], rel=1e-12)


# ---------------------------------------------------------------- bad input


def test_bad_baskets_are_one_line_errors_naming_the_symbol() -> None:
    a = Bars(*make_bars([1.0, 2.0]).columns().values(), symbol="A", timeframe="1d")
    hourly = Bars(*make_bars([1.0, 2.0]).columns().values(), symbol="H", timeframe="1h")
    far = make_bars([1.0] * 30)
    b = Bars(*far.slice(0, 10).columns().values(), symbol="B", timeframe="1d")
    late = Bars(*far.slice(20, 30).columns().values(), symbol="LATE", timeframe="1d")
    cases = [([], "no symbols"), ([a, hourly], "symbol H has timeframe 1h"), ([a, b, late], "symbol LATE has no bar"),
             ([a, a], "symbol A appears twice")]  # fmt: skip
    for bars_list, text in cases:
        with pytest.raises(DataError) as info:
            align(bars_list)
        assert text in str(info.value) and "\n" not in str(info.value)
        assert info.value.exit_code == 2


def test_risk_without_a_stop_loss_is_bad_input() -> None:
    bars_list = two_symbols([10.0, 11.0], [20.0, 21.0])
    no = [np.zeros(2, bool), np.zeros(2, bool)]
    with pytest.raises(InputError, match="needs a stop_loss") as info:
        run_basket(bars_list, no, no, sizing="risk", risk=0.01)
    assert info.value.exit_code == 2
    with pytest.raises(InputError, match="max_positions"):
        run_basket(bars_list, no, no, allocation="shared", max_positions=0)
    with pytest.raises(InputError, match="one value per bar"):
        run_basket(bars_list, [np.zeros(3, bool), np.zeros(2, bool)], no)


# ---------------------------------------------------------------- vectorbt


def test_split_equals_vectorbt_group_by_without_cash_sharing(rng: np.random.Generator) -> None:
    vbt = pytest.importorskip("vectorbt", reason="vectorbt (the bench extra) is not installed")
    import pandas as pd

    n, m = 500, 4
    closes = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, (n, m)), axis=0))
    bars_list = [Bars(*make_bars(closes[:, k].tolist()).columns().values(), symbol=f"S{k}", timeframe="1d")
                 for k in range(m)]  # fmt: skip
    entries, exits = rng.random((n, m)) < 0.05, rng.random((n, m)) < 0.05
    result = run_basket(bars_list, entries, exits, fill="close", fee=0.001, cash=40_000.0, equity=True)
    index = pd.RangeIndex(n)
    pf = vbt.Portfolio.from_signals(
        pd.DataFrame(closes, index=index), pd.DataFrame(entries, index=index), pd.DataFrame(exits, index=index),
        fees=0.001, init_cash=10_000.0, group_by=np.zeros(m, dtype=int), cash_sharing=False, freq="1D",
    )  # fmt: skip
    np.testing.assert_allclose(result.equity, pf.value().to_numpy().ravel(), rtol=1e-9)
