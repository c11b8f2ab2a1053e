"""The simulation kernel against its frozen pre-rewrite copy (``kernel_oracle``): the
flat-stretch fast path must not change a single bit of the metrics, the equity curve
or the trade records, for every rule kind, fill, direction, stop and sizing option."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.backtest import nb
from engine.backtest.enums import (
    DIR_LONG,
    DIRECTIONS,
    KIND_BAND,
    KIND_CHANNEL,
    KIND_CROSS,
    KIND_OSC,
    KIND_SIGNALS,
    KIND_ZSCORE,
    N_METRICS,
    TRADE_DTYPE,
)
from engine.data import Bars, load
from tests.backtest import gen
from tests.backtest.kernel_oracle import oracle_simulate_nb

KINDS = [KIND_SIGNALS, KIND_CROSS, KIND_OSC, KIND_BAND, KIND_CHANNEL, KIND_ZSCORE]


def run_both(bars: Bars, args: dict[str, Any], extra: tuple[Any, ...]) -> None:
    """Run the kernel (its specialised variant, the generic one, with and without the
    equity curve) and the oracle on the same arguments; assert equal bits."""
    n = len(bars)
    fill_close = args["fill_close"]
    check_stops = args["stop_loss"] > 0.0 or args["take_profit"] > 0.0 or (bool(extra) and extra[0] > 0.0)
    ordered = (
        bars.open, bars.high, bars.low, bars.close, args["kind"], args["a"], args["b"], args["p0"], args["p1"],
        args["entries"], args["exits"], fill_close, args["direction"], args["fee"], args["slippage"],
        args["size"], args["cash"], args["stop_loss"], args["take_profit"], 1.0,
    )  # fmt: skip

    def call(function: Any, write_equity: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        metrics = np.full(N_METRICS, -7.0)
        equity = np.full(n if write_equity else 0, -7.0)
        trades = np.zeros(n + 1, dtype=TRADE_DTYPE)
        count = function(*ordered, equity, trades, metrics, *extra)
        return metrics, equity, trades[:count]

    want = call(oracle_simulate_nb, True)
    kernels = [nb.simulate_variant(fill_close, check_stops), nb.simulate_nb]
    if args["kind"] == KIND_CROSS and args["direction"] == DIR_LONG and not extra:
        kernels.append(nb.simulate_variant(fill_close, check_stops, cross_long=True))
    for function in kernels:
        for write_equity in (True, False):
            metrics, equity, trades = call(function, write_equity)
            assert metrics.tobytes() == want[0].tobytes(), (metrics, want[0])
            if write_equity:
                assert equity.tobytes() == want[1].tobytes(), np.flatnonzero(equity != want[1])
            assert trades.tobytes() == want[2].tobytes(), (trades, want[2])


def _levels(draw: st.DrawFn, n: int, nonnegative: bool) -> np.ndarray:
    """An indicator on a coarse grid (frequent ties, flat runs) after a NaN warm-up."""
    warm = draw(st.integers(0, min(n, 6)))
    values = draw(st.lists(st.sampled_from([0.0, 0.5, 1.0, 1.0, 2.0, 2.0, 3.0]), min_size=n, max_size=n))
    array = np.array(values, dtype=np.float64)
    if not nonnegative:
        array -= 1.0
    array[:warm] = np.nan
    return array


@st.composite
def cases(draw: st.DrawFn, cross_long: bool = False) -> tuple[Bars, dict[str, Any], tuple[Any, ...]]:
    """A random backtest; ``cross_long``: one that the cross/long variant takes (plain)."""
    bars = draw(gen.bars(1, 60))
    n = len(bars)
    kind = KIND_CROSS if cross_long else draw(st.sampled_from(KINDS))
    options = draw(gen.options)
    if cross_long:
        options = {**options, "direction": "long"}
    entries, exits = draw(gen.signals(n))
    if kind == KIND_SIGNALS:
        a = b = bars.close
    elif draw(st.booleans()):
        a, b = _levels(draw, n, False), _levels(draw, n, kind in (KIND_BAND, KIND_ZSCORE))
    else:  # price-like lines (channel and band rules read them against the close)
        a = bars.close * draw(st.sampled_from([0.99, 1.0, 1.01]))
        b = np.roll(bars.close, draw(st.integers(0, 3)))
    args = {
        "kind": kind, "a": np.ascontiguousarray(a), "b": np.ascontiguousarray(b),
        "p0": draw(st.sampled_from([0.0, 0.5, 1.0, 2.0])), "p1": draw(st.sampled_from([0.0, 1.0, 2.0])),
        "entries": entries, "exits": exits, "fill_close": options["fill"] == "close",
        "direction": DIRECTIONS[options["direction"]], "fee": options["fee"], "slippage": options["slippage"],
        "size": options["size"], "cash": options["cash"], "stop_loss": options["stop_loss"],
        "take_profit": options["take_profit"],
    }  # fmt: skip
    extra: tuple[Any, ...] = ()
    form = "plain" if cross_long else draw(st.sampled_from(["plain", "trailing_risk", "funding"]))
    if form != "plain":
        extra = (
            draw(st.one_of(st.just(0.0), st.floats(0.005, 0.2))),
            draw(st.sampled_from([0.0, 0.01, 0.2])),
        )
    if form == "funding":
        rates = draw(st.lists(st.one_of(st.just(0.0), st.floats(-0.01, 0.01)), min_size=n, max_size=n))
        extra = (*extra, np.array(rates, dtype=np.float64))
    return bars, args, extra


@settings(max_examples=600, deadline=None)
@given(cases())
def test_kernel_equals_its_pre_rewrite_copy_bit_for_bit(case: tuple[Bars, dict[str, Any], tuple[Any, ...]]) -> None:
    run_both(*case)


@settings(max_examples=400, deadline=None)
@given(cases(cross_long=True))
def test_cross_long_variant_equals_the_copy_bit_for_bit(case: tuple[Bars, dict[str, Any], tuple[Any, ...]]) -> None:
    """The variants compiled for a crossing rule, long only, with and without stops (run_both adds them)."""
    run_both(*case)


@pytest.mark.parametrize("fill_close", [False, True])
@pytest.mark.parametrize("direction", ["long", "short", "both"])
@pytest.mark.parametrize("stops", [(0.0, 0.0, 0.0), (0.01, 0.02, 0.0), (0.0, 0.0, 0.01)])
def test_sma_cross_on_long_synthetic_data_equals_the_copy(
    fill_close: bool, direction: str, stops: tuple[float, float, float]
) -> None:
    """Realistic stretches: thousands of bars between crossings of two SMAs."""
    bars = load("synthetic:bars=20000,seed=3,timeframe=1m")
    stop_loss, take_profit, trailing = stops
    args = {
        "kind": KIND_CROSS, "a": nb.sma_nb(bars.close, 40), "b": nb.sma_nb(bars.close, 150), "p0": 0.0,
        "p1": 0.0, "entries": np.zeros(0, dtype=np.bool_), "exits": np.zeros(0, dtype=np.bool_),
        "fill_close": fill_close, "direction": DIRECTIONS[direction], "fee": 0.001, "slippage": 0.0005,
        "size": 1.0, "cash": 10_000.0, "stop_loss": stop_loss, "take_profit": take_profit,
    }  # fmt: skip
    run_both(bars, args, (trailing, 0.0) if trailing else ())


@pytest.mark.parametrize("fill_close", [False, True])
def test_cross_long_reentry_after_a_stop_on_a_crossing_bar(fill_close: bool) -> None:
    """A stop fills on the bar whose crossing above enters again (close fills: stop, then the
    entry at its close); the lines touch without crossing below in between, so the position is
    still open there. Random cases rarely build this."""
    close = [100.0] * 8
    low = [100.0, 100.0, 100.0, 100.0, 100.0, 90.0, 100.0, 100.0]
    bars = gen.make_bars(close, close, [101.0] * 8, low)
    args = {
        "kind": KIND_CROSS, "a": np.array([0.0, 2.0, 1.0, 1.0, 0.0, 2.0, 2.0, 2.0]), "b": np.ones(8),
        "p0": 0.0, "p1": 0.0, "entries": np.zeros(0, dtype=np.bool_), "exits": np.zeros(0, dtype=np.bool_),
        "fill_close": fill_close, "direction": DIRECTIONS["long"], "fee": 0.001, "slippage": 0.0,
        "size": 1.0, "cash": 10_000.0, "stop_loss": 0.05, "take_profit": 0.0,
    }  # fmt: skip
    run_both(bars, args, ())
    trades = np.zeros(9, dtype=TRADE_DTYPE)
    count = nb.simulate_variant(fill_close, True, cross_long=True)(
        bars.open, bars.high, bars.low, bars.close, KIND_CROSS, args["a"], args["b"], 0.0, 0.0,
        args["entries"], args["exits"], fill_close, DIRECTIONS["long"], 0.001, 0.0, 1.0, 10_000.0,
        0.05, 0.0, 1.0, np.empty(0), trades, np.empty(N_METRICS),
    )  # fmt: skip
    # close fills: stopped out at bar 5 and in again at its close (open at the end);
    # next-open fills: the crossing at bar 5 enters at bar 6's open, after the stop at bar 5.
    want = [(1, 5), (5, 7)] if fill_close else [(2, 5), (6, 7)]
    assert [(int(t["entry_idx"]), int(t["exit_idx"])) for t in trades[:count]] == want



def _check_batched(
    bars: Bars, lines: list[np.ndarray], rows: list[tuple[int, int]], fill_close: bool,
    stops: tuple[float, float], blocks: int, data: st.DataObject,
) -> None:
    """Run the batched cross/long kernel over ``rows`` (pairs of ``lines``) and assert each
    set's metrics and per-block figures equal the oracle's for that set alone, bit for bit."""
    n = len(bars)
    m = len(rows)
    a_rows = np.array([a for a, _ in rows], dtype=np.int64)
    b_rows = np.array([b for _, b in rows], dtype=np.int64)
    addresses = np.array([line.ctypes.data for line in lines], dtype=np.int64)
    fee = np.array(data.draw(st.lists(st.sampled_from([0.0, 0.001, 0.01]), min_size=m, max_size=m)))
    slippage = np.array(data.draw(st.lists(st.sampled_from([0.0, 0.0005]), min_size=m, max_size=m)))
    size = np.array(data.draw(st.lists(st.sampled_from([1.0, 0.5]), min_size=m, max_size=m)))
    cash = np.array(data.draw(st.lists(st.sampled_from([10_000.0, 1.0]), min_size=m, max_size=m)))
    stop_loss, take_profit = np.full(m, stops[0]), np.full(m, stops[1])
    zeros = np.zeros(m)
    blocks = blocks if blocks <= n else 0
    bounds = nb.block_bounds_nb(n, blocks) if blocks else np.empty(0, dtype=np.int64)
    metrics = np.full((m, N_METRICS), -7.0)
    figures = np.full((m, blocks), -7.0)
    no_signals = np.zeros(0, dtype=np.bool_)
    check_stops = stops != (0.0, 0.0)
    nb.simulate_many_variant(fill_close, check_stops, cross_long=True)(
        bars.open, bars.high, bars.low, bars.close, KIND_CROSS, addresses, a_rows, b_rows, zeros, zeros,
        np.full(m, DIR_LONG, dtype=np.int64), fee, slippage, size, cash, stop_loss, take_profit, 1.0,
        no_signals, np.empty(n if blocks else 0), np.zeros(0, dtype=TRADE_DTYPE), metrics, bounds, figures,
    )  # fmt: skip
    for k in range(m):
        want = np.full(N_METRICS, -7.0)
        equity = np.full(n, -7.0)
        oracle_simulate_nb(
            bars.open, bars.high, bars.low, bars.close, KIND_CROSS, lines[a_rows[k]], lines[b_rows[k]], 0.0, 0.0,
            no_signals, no_signals, fill_close, DIR_LONG, fee[k], slippage[k], size[k], cash[k], stop_loss[k],
            take_profit[k], 1.0, equity, np.zeros(n + 1, dtype=TRADE_DTYPE), want,
        )  # fmt: skip
        assert metrics[k].tobytes() == want.tobytes(), (k, metrics[k], want)
        if blocks:
            expected = np.empty(blocks)
            nb.block_log_returns_nb(equity, bounds, cash[k], expected)
            assert figures[k].tobytes() == expected.tobytes(), (k, figures[k], expected)


_SETS = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=2 * nb.LANES + 1)


@settings(max_examples=150, deadline=None)
@given(
    gen.bars(2, 60),
    _SETS,
    st.booleans(),
    st.sampled_from([(0.0, 0.0), (0.05, 0.0), (0.0, 0.03)]),
    st.sampled_from([0, 2, 4]),
    st.data(),
)
def test_batched_cross_long_kernel_equals_the_copy_per_set(
    bars: Bars, rows: list[tuple[int, int]], fill_close: bool, stops: tuple[float, float], blocks: int,
    data: st.DataObject,
) -> None:
    """The batched kernel's cross/long path (what ``run_many`` and the study call): sets read
    their lines by address from a few shared arrays (sets that share a window, odd counts),
    each set's metrics and per-block figures equal the oracle's for that set alone. Without
    stops the sets run in lockstep groups of ``nb.LANES`` (the last one short):
    1 .. 2 * LANES + 1 sets cover a short group, one, two and a remainder."""
    n = len(bars)
    lines = [np.ascontiguousarray(_levels(data.draw, n, False)) for _ in range(2)]
    lines += [np.ascontiguousarray(bars.close * 1.0), np.ascontiguousarray(np.roll(bars.close, 2))]
    _check_batched(bars, lines, rows, fill_close, stops, blocks, data)


def _edge_line(draw: st.DrawFn, n: int, near: list[int]) -> np.ndarray:
    """A line of -1/0/+1 after a NaN warm-up that changes sign (or ties at 0) at bars drawn
    near ``near`` and anywhere: crossings of the zero line on and next to the tiles' edges."""
    flips = set(draw(st.lists(st.sampled_from(near), max_size=8)))
    flips |= set(draw(st.lists(st.integers(1, n - 1), max_size=12)))
    value = draw(st.sampled_from([-1.0, 1.0]))
    line = np.empty(n)
    for i in range(n):
        if i in flips:
            value = -value if value != 0.0 else draw(st.sampled_from([-1.0, 1.0]))
            if draw(st.integers(0, 4)) == 0:
                value = 0.0  # a tie: no strict crossing through it
        line[i] = value
    line[: draw(st.integers(0, 3))] = np.nan
    return line


@settings(max_examples=40, deadline=None)
@given(st.booleans(), st.integers(1, 2 * nb.LANES + 1), st.sampled_from([0, 3, 16]), st.data())
def test_batched_lockstep_groups_across_tile_edges(fill_close: bool, m: int, blocks: int, data: st.DataObject) -> None:
    """The lockstep groups find a tile's crossings in one pass: entries and exits on the first
    bars (the first tile starts at bar ``1 + shift``) and on the bar before, at and after each
    tile edge, block bounds anywhere, sets sharing lines, equal the oracle per set."""
    n = 2 * nb.TILE + 40
    bars = load(f"synthetic:bars={n},seed=5,timeframe=1m")
    shift = 0 if fill_close else 1
    near = [1, 2, 3] + [1 + shift + t * nb.TILE + d for t in (1, 2) for d in (-2, -1, 0, 1)]
    lines = [np.zeros(n)] + [_edge_line(data.draw, n, near) for _ in range(4)]
    lines.append(np.ascontiguousarray(bars.close * 1.0))
    rows = data.draw(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), min_size=m, max_size=m))
    _check_batched(bars, lines, rows, fill_close, (0.0, 0.0), blocks, data)
