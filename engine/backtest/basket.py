"""``run_basket()``: one set of signals over a basket of symbols, cash split or shared.

A thin wrapper over the kernels of ``basket_nb``: it aligns the symbols on one
timeline (``engine.data.align``), validates the options, puts the signals on the
timeline and calls one kernel. Conventions: ``docs/backtest.md`` ("Baskets").
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.backtest import basket_nb
from engine.backtest.enums import (
    ALLOCATIONS,
    BASKET_TRADE_DTYPE,
    DIRECTIONS,
    FILL_CLOSE,
    FILLS,
    N_METRICS,
    SYMBOL_DTYPE,
)
from engine.backtest.metrics import Metrics
from engine.backtest.options import BacktestOptions
from engine.data import Bars, Basket, align, periods_per_year
from engine.errors import InputError
from engine.profile import profiler

_NO_EQUITY = np.empty(0, dtype=np.float64)
_NO_RANK = np.empty((0, 0), dtype=np.float64, order="F")

#: Signals of a basket: one (timestamps, symbols) array on the timeline, or one
#: array per symbol with a value per own bar.
Signals = np.ndarray | Sequence[np.ndarray]


@dataclass(frozen=True, slots=True)
class BasketResult:
    """The outcome of one basket backtest; ``equity`` and ``trades`` only when asked for.

    ``per_symbol`` (``SYMBOL_DTYPE``, one row per symbol in ``symbols`` order):
    closed trades, return contribution, win rate, exposure. ``trades``
    (``BASKET_TRADE_DTYPE``): symbol index, bar indices as rows of ``ts``.
    """

    allocation: str
    symbols: tuple[str, ...]
    metrics: Metrics
    per_symbol: np.ndarray
    ts: np.ndarray
    equity: np.ndarray | None = None
    trades: np.ndarray | None = None
    elapsed_s: float = 0.0

    def symbol_dicts(self) -> dict[str, dict[str, float | int]]:
        """Symbol -> its breakdown as plain Python numbers."""
        return {
            symbol: {name: row[name].item() for name in SYMBOL_DTYPE.names or ()}
            for symbol, row in zip(self.symbols, self.per_symbol, strict=True)
        }


def _on_timeline(basket: Basket, values: Signals, dtype: type, name: str) -> np.ndarray:
    """``values`` as a column-major (timestamps, symbols) array of ``dtype``."""
    n, m = len(basket), basket.n_symbols
    if isinstance(values, np.ndarray) and values.ndim == 2:
        if values.shape != (n, m):
            raise InputError(f"{name} must have shape (timestamps, symbols) = {(n, m)}, got {values.shape}")
        return np.asfortranarray(values, dtype=dtype)
    columns = list(values)
    if len(columns) != m:
        raise InputError(f"{name}: expected one array per symbol ({m}), got {len(columns)}")
    out = np.zeros((n, m), dtype=dtype, order="F") if dtype is np.bool_ else np.full((n, m), np.nan, order="F")
    for k, column in enumerate(columns):
        column = np.asarray(column, dtype=dtype)
        if column.shape != basket.rows[k].shape:
            raise InputError(
                f"{name} of symbol {basket.symbols[k]} must have one value per bar "
                f"({basket.rows[k].shape[0]}), got shape {column.shape}"
            )
        if column.shape[0] == n:
            out[:, k] = column  # every bar: a contiguous copy, no scatter (a fifth of a study trial otherwise)
        else:
            out[basket.rows[k], k] = column
    return out


def run_basket(
    bars: Basket | Sequence[Bars],
    entries: Signals,
    exits: Signals,
    *,
    rank: Signals | None = None,
    allocation: str = "split",
    max_positions: int | None = None,
    fee: float = 0.0,
    slippage: float = 0.0,
    fill: str = "next_open",
    direction: str = "long",
    size: float = 1.0,
    sizing: str = "fraction",
    risk: float = 0.0,
    cash: float = 10_000.0,
    stop_loss: float = 0.0,
    take_profit: float = 0.0,
    trailing_stop: float = 0.0,
    equity: bool = False,
    trades: bool = False,
) -> BasketResult:
    """Backtest boolean ``entries``/``exits`` (long-side signals, as for ``run_signals``)
    over a basket under ``allocation`` ``"split"`` or ``"shared"``.

    ``bars`` is a ``Basket`` or a list of ``Bars`` (aligned here). Signals and
    ``rank`` (shared only: entries at one timestamp go highest rank first) are
    (timestamps, symbols) arrays or one array per symbol over its own bars.
    ``max_positions`` (shared only) defaults to the number of symbols.
    ``sizing="risk"`` sizes each entry so that a stop-loss fill loses ``risk``
    of equity (needs ``stop_loss``). Raises ``InputError`` (``DataError`` for
    the basket) with one line.
    """
    start = time.perf_counter()
    basket = bars if isinstance(bars, Basket) else align(bars)
    n, m = len(basket), basket.n_symbols
    options = BacktestOptions.of(
        None, fee=fee, slippage=slippage, fill=fill, direction=direction, size=size, cash=cash,
        stop_loss=stop_loss, take_profit=take_profit, trailing_stop=trailing_stop, sizing=sizing, risk=risk,
    )
    if allocation not in ALLOCATIONS:
        raise InputError(f"allocation must be one of {', '.join(ALLOCATIONS)}, got {allocation!r}")
    trailing_stop = options.trailing_stop
    risk = options.risk_fraction
    if max_positions is None:
        max_positions = m
    if isinstance(max_positions, bool) or not isinstance(max_positions, (int, np.integer)) or max_positions < 1:
        raise InputError(f"max_positions must be a whole number >= 1, got {max_positions!r}")
    if rank is not None and allocation != "shared":
        raise InputError("rank orders the entries of a shared allocation; allocation is 'split'")
    entries_2d = _on_timeline(basket, entries, np.bool_, "entries")
    exits_2d = _on_timeline(basket, exits, np.bool_, "exits")
    rank_2d = _NO_RANK if rank is None else _on_timeline(basket, rank, np.float64, "rank")

    equity_out = np.empty(n) if equity else _NO_EQUITY
    capacity = min(n * m + m, 1024 + n * m // 32) if trades else 0
    symbols_out = np.zeros(m, dtype=SYMBOL_DTYPE)
    metrics_out = np.empty(N_METRICS)
    fill_close = FILLS[options.fill] == FILL_CLOSE
    ppy = float(periods_per_year(basket.timeframe))
    prices = (basket.open, basket.high, basket.low, basket.close)
    common = (DIRECTIONS[options.direction], options.fee, options.slippage, options.size, options.cash,
              options.stop_loss, options.take_profit, trailing_stop, risk)  # fmt: skip

    def call(trades_out: np.ndarray) -> int:
        with profiler.stage("backtest.kernel"):
            if allocation == "split":
                check_stops = options.stop_loss > 0.0 or options.take_profit > 0.0 or trailing_stop > 0.0
                kernel = basket_nb.split_variant(fill_close, check_stops)
                return kernel(*prices, entries_2d, exits_2d, *common, ppy, equity_out, trades_out, symbols_out,
                              metrics_out)  # fmt: skip
            d, fee_, slip, size_, cash_, sl, tp, trail, risk_ = common
            return basket_nb.shared_nb(
                *prices, entries_2d, exits_2d, rank_2d, fill_close, d, fee_, slip, size_, cash_, sl, tp, trail,
                risk_, int(max_positions), ppy, equity_out, trades_out, symbols_out, metrics_out,
            )  # fmt: skip

    trades_out = np.empty(capacity, dtype=BASKET_TRADE_DTYPE)
    count = call(trades_out)
    if trades and count > capacity:
        trades_out = np.empty(count, dtype=BASKET_TRADE_DTYPE)
        count = call(trades_out)
    records = None
    if trades:
        records = trades_out[:count].copy()
        records.flags.writeable = False
    curve = None
    if equity:
        equity_out.flags.writeable = False
        curve = equity_out
    symbols_out.flags.writeable = False
    return BasketResult(
        allocation=allocation,
        symbols=basket.symbols,
        metrics=Metrics.from_array(metrics_out),
        per_symbol=symbols_out,
        ts=basket.ts,
        equity=curve,
        trades=records,
        elapsed_s=time.perf_counter() - start,
    )
