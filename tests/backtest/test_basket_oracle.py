"""The shared-allocation basket kernel against its frozen pre-rewrite copy
(``basket_oracle``): the flat-book jump and the held-stretch changes must not change a
single bit of the metrics, the equity curve, the trade records or the per-symbol
breakdown, for every fill, direction, stop, sizing, rank and position-limit option."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.basket import make_basket
from engine.backtest import basket_nb
from engine.backtest.enums import BASKET_TRADE_DTYPE, DIRECTIONS, N_METRICS, SYMBOL_DTYPE
from engine.data import align
from tests.backtest import gen
from tests.backtest.basket_oracle import oracle_shared_nb
from tests.backtest.test_stops_sizing import options as single_options

_NO_RANK = np.empty((0, 0), order="F")


def run_both(prices: tuple[np.ndarray, ...], entries: np.ndarray, exits: np.ndarray, rank: np.ndarray,
             options: dict[str, Any], max_positions: int) -> None:  # fmt: skip
    """Run the kernel (with and without the equity curve, with room for every trade record
    and with none) and the oracle on the same arguments; assert equal bits."""
    n, m = prices[3].shape
    args = (
        *prices, entries, exits, rank, options["fill"] == "close", DIRECTIONS[options["direction"]],
        options["fee"], options["slippage"], options["size"], options["cash"], options["stop_loss"],
        options["take_profit"], options["trailing_stop"], options["risk"], max_positions, 525_600.0,
    )  # fmt: skip

    def call(function: Any, write_equity: bool, capacity: int) -> tuple[int, bytes, bytes, bytes, bytes]:
        metrics = np.full(N_METRICS, -7.0)
        equity = np.full(n if write_equity else 0, -7.0)
        trades = np.zeros(capacity, dtype=BASKET_TRADE_DTYPE)
        symbols = np.zeros(m, dtype=SYMBOL_DTYPE)
        count = function(*args, equity, trades, symbols, metrics)
        kept = trades[: min(count, capacity)]
        return count, metrics.tobytes(), equity.tobytes(), kept.tobytes(), symbols.tobytes()

    full = n * m + m
    want = call(oracle_shared_nb, True, full)
    for write_equity in (True, False):
        for capacity in (full, 0):
            count, metrics, equity, trades, symbols = call(basket_nb.shared_nb, write_equity, capacity)
            assert count == want[0]
            assert metrics == want[1], (np.frombuffer(metrics), np.frombuffer(want[1]))
            if write_equity:
                got, expected = np.frombuffer(equity), np.frombuffer(want[2])
                assert equity == want[2], np.flatnonzero(got != expected)
            if capacity:
                assert trades == want[3]
            assert symbols == want[4]


@st.composite
def cases(draw: st.DrawFn) -> tuple[Any, ...]:
    """1-5 symbols on one timeline of up to 120 rows, each missing random rows (sometimes long
    leading or trailing runs), sparse signals (the book often flat for long runs) that are
    sometimes set on rows where the symbol has no bar, ranks with ties and NaN."""
    m = draw(st.integers(1, 5))
    n = draw(st.integers(1, 120))
    columns = [draw(gen.bars(n, n)) for _ in range(m)]
    o, h, lo, c = (np.asfortranarray(np.stack([getattr(b, name) for b in columns], axis=1))
                   for name in ("open", "high", "low", "close"))  # fmt: skip
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    for k in range(m):
        density = draw(st.sampled_from([1.0, 1.0, 0.9, 0.5]))
        missing = rng.random(n) >= density
        run = draw(st.sampled_from(["none", "none", "head", "tail"]))
        cut = draw(st.integers(0, n))
        if run == "head":
            missing[:cut] = True
        elif run == "tail":
            missing[cut:] = True
        for array in (o, h, lo, c):
            array[missing, k] = np.nan
    signal_density = draw(st.sampled_from([0.01, 0.03, 0.1, 0.3]))
    entries = np.asfortranarray(rng.random((n, m)) < signal_density)
    exits = np.asfortranarray(rng.random((n, m)) < signal_density)
    if draw(st.booleans()):  # signals only where a symbol has a bar (as run_basket scatters them)
        entries &= ~np.isnan(c)
        exits &= ~np.isnan(c)
    rank = _NO_RANK
    if draw(st.booleans()):
        rank = np.asfortranarray(rng.choice(np.array([np.nan, -1.0, 0.0, 0.0, 1.0, 2.5]), size=(n, m)))
    options = draw(single_options)
    max_positions = draw(st.integers(1, m + 1))
    return (o, h, lo, c), entries, exits, rank, options, max_positions


@settings(max_examples=800, deadline=None)
@given(cases())
def test_shared_kernel_equals_its_pre_rewrite_copy_bit_for_bit(case: tuple[Any, ...]) -> None:
    run_both(*case)


@pytest.mark.parametrize("fill", ["next_open", "close"])
@pytest.mark.parametrize("direction", ["long", "short", "both"])
@pytest.mark.parametrize("stops", [(0.0, 0.0, 0.0), (0.02, 0.04, 0.0), (0.0, 0.0, 0.01)])
@pytest.mark.parametrize("density", [0.0005, 0.004])
def test_long_random_baskets_equal_the_copy(
    fill: str, direction: str, stops: tuple[float, float, float], density: float
) -> None:
    """Realistic stretches: thousands of rows, positions held for hundreds, the book flat for
    long runs at the low density, a symbol listed late and one with holes."""
    rng = np.random.default_rng(5)
    n, m = 6000, 6
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.002, (n, m)), axis=0))
    open_ = np.vstack([close[:1], close[:-1]]) * (1.0 + rng.normal(0.0, 0.001, (n, m)))
    high = np.maximum(open_, close) * (1.0 + rng.uniform(0.0, 0.002, (n, m)))
    low = np.minimum(open_, close) * (1.0 - rng.uniform(0.0, 0.002, (n, m)))
    missing = np.zeros((n, m), dtype=np.bool_)
    missing[: n // 3, 1] = True
    missing[:, 2] = rng.random(n) < 0.2
    prices = tuple(np.asfortranarray(np.where(missing, np.nan, p)) for p in (open_, high, low, close))
    entries = np.asfortranarray((rng.random((n, m)) < density) & ~missing)
    exits = np.asfortranarray((rng.random((n, m)) < density) & ~missing)
    stop_loss, take_profit, trailing = stops
    options = {"fill": fill, "direction": direction, "fee": 0.001, "slippage": 0.0005, "size": 1.0,
               "cash": 10_000.0, "stop_loss": stop_loss, "take_profit": take_profit, "trailing_stop": trailing,
               "risk": 0.0}  # fmt: skip
    for max_positions in (m, 2):
        run_both(prices, entries, exits, _NO_RANK, options, max_positions)


def test_the_benchmark_basket_equals_the_copy() -> None:
    """The basket of ``benchmarks/basket.py`` (smaller): the figure the rewrite speeds up."""
    bars, entries, exits = make_basket(5000, 8)
    basket = align(bars)
    prices = (basket.open, basket.high, basket.low, basket.close)
    options = {"fill": "next_open", "direction": "long", "fee": 0.001, "slippage": 0.0, "size": 1.0,
               "cash": 10_000.0, "stop_loss": 0.02, "take_profit": 0.0, "trailing_stop": 0.0, "risk": 0.0}  # fmt: skip
    for stop_loss in (0.0, 0.02):
        run_both(prices, np.asfortranarray(entries), np.asfortranarray(exits), _NO_RANK,
                 {**options, "stop_loss": stop_loss}, 8)  # fmt: skip
