"""``run()``: one backtest of a strategy (built in or the user's) over ``Bars``; ``run_many()`` for sweeps.

The conventions (fills, fees, slippage, sizing, shorts, stops, metrics) are in
``docs/backtest.md``; the kernel is ``nb.simulate_nb``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.backtest import nb
from engine.backtest.enums import (
    DIR_LONG,
    DIRECTIONS,
    FILL_CLOSE,
    FILLS,
    KIND_CROSS,
    KIND_SIGNALS,
    N_METRICS,
    TRADE_DTYPE,
)
from engine.backtest.indicators import IndicatorCache
from engine.backtest.metrics import Metrics
from engine.backtest.options import OPTIONS, BacktestOptions, override
from engine.backtest.strategies import KernelInputs, get_strategy, signal_inputs
from engine.data.funding import FundingRates
from engine.data.timeframes import periods_per_year, timeframe_ns
from engine.errors import InputError
from engine.profile import profiler

if TYPE_CHECKING:
    from engine.backtest.basket import BasketResult
    from engine.data import Bars, Basket
    from engine.strategy import StrategyDef

_NO_SIGNALS = np.zeros(0, dtype=np.bool_)
_NO_EQUITY = np.empty(0, dtype=np.float64)
_NO_TRADES = np.empty(0, dtype=TRADE_DTYPE)
_NO_BOUNDS = np.empty(0, dtype=np.int64)
_NO_BLOCKS = np.empty((0, 0), dtype=np.float64)


def block_returns(equity: np.ndarray, blocks: int, start: float) -> np.ndarray:
    """Per-block log returns of an equity curve over ``blocks`` equal time blocks (``start``: the cash)."""
    out = np.empty(blocks)
    nb.block_log_returns_nb(np.asarray(equity, dtype=np.float64), nb.block_bounds_nb(len(equity), blocks), start, out)
    return out


@dataclass(frozen=True, slots=True)
class BacktestResult:
    """The outcome of one backtest; ``equity`` and ``trades`` only when asked for."""

    strategy: str
    params: Mapping[str, Any]
    options: BacktestOptions
    metrics: Metrics
    equity: np.ndarray | None = None
    trades: np.ndarray | None = None
    elapsed_s: float = 0.0
    n_bars: int = field(default=0)


def simulate(
    bars: Bars,
    inputs: KernelInputs,
    options: BacktestOptions,
    *,
    entries: np.ndarray = _NO_SIGNALS,
    exits: np.ndarray = _NO_SIGNALS,
    equity: bool = False,
    trades: bool = False,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Run the kernel once: (metrics array, equity curve or None, trade records or None)."""
    n = len(bars)
    equity_out = np.empty(n) if equity else _NO_EQUITY
    # Room for a typical run; a run that trades more is simply run again with
    # room for the worst case (one trade per bar) rather than always
    # allocating 88 bytes per bar.
    capacity = min(n + 1, 1024 + n // 32)
    trades_out = np.empty(capacity, dtype=TRADE_DTYPE) if trades else _NO_TRADES
    metrics_out = np.empty(N_METRICS)
    fill_close = FILLS[options.fill] == FILL_CLOSE
    # A trailing stop, risk sizing and funding are trailing arguments: left out, the kernel
    # is compiled without them (the loop the other options need, at its full speed).
    rates = funding_per_bar(bars) if uses_funding(bars, options) else None
    extra: tuple[Any, ...] = ()
    if options.trailing_stop or options.risk_fraction or rates is not None:
        extra = (options.trailing_stop, options.risk_fraction)
    if rates is not None:
        extra = (*extra, rates)
    cross_long = inputs.kind == KIND_CROSS and DIRECTIONS[options.direction] == DIR_LONG and not extra
    kernel = nb.simulate_variant(fill_close, options.checks_stops, cross_long=cross_long)

    def call(trades_out: np.ndarray) -> int:
        # A dispatcher's first call compiles it or loads it from the on-disk cache.
        stage = "backtest.kernel" if kernel.signatures else "numba.compile"
        with profiler.stage(stage):
            return kernel(
                bars.open, bars.high, bars.low, bars.close,
                inputs.kind, inputs.a, inputs.b, inputs.p0, inputs.p1, entries, exits,
                fill_close, DIRECTIONS[options.direction],
                options.fee, options.slippage, options.size, options.cash,
                options.stop_loss, options.take_profit, periods_per_year(bars.timeframe),
                equity_out, trades_out, metrics_out, *extra,
            )  # fmt: skip

    count = call(trades_out)
    if trades and count == capacity < n + 1:
        trades_out = np.empty(n + 1, dtype=TRADE_DTYPE)
        count = call(trades_out)
    equity_curve = None
    if equity:
        equity_out.flags.writeable = False
        equity_curve = equity_out
    records = None
    if trades:
        records = trades_out[:count].copy()
        records.flags.writeable = False
    return metrics_out, equity_curve, records


def uses_funding(bars: Bars, options: BacktestOptions) -> bool:
    """Whether a backtest of ``bars`` applies funding: ``funding = "true"`` (bars without
    funding rates are then an error), or ``"auto"`` and the bars carry rates."""
    rates = bars.meta.get("funding")
    carried = isinstance(rates, FundingRates) and len(rates) > 0
    if options.funding == "true" and not carried:
        raise InputError(
            f"funding = true, but the data of {bars.symbol or 'the backtest'} carries no funding rates "
            "(binance:SYMBOL,market=um has them)"
        )
    return carried and options.funding != "false"


def funding_per_bar(bars: Bars) -> np.ndarray:
    """The funding rate settled at each bar's close: the sum of the events at or after
    that close and before the next one (events before the first close or after the
    last one fall outside the bars). The close of bar ``i`` is its open time plus one
    timeframe."""
    rates = bars.meta["funding"]
    assert isinstance(rates, FundingRates)
    closes = bars.ts + timeframe_ns(bars.timeframe)
    out = np.zeros(len(bars))
    if len(bars) == 0:
        return out
    at = np.searchsorted(closes, rates.ts, side="right") - 1
    inside = (at >= 0) & (rates.ts <= closes[-1])
    np.add.at(out, at[inside], rates.rate[inside])
    return out


def run_portfolio(
    bars: Sequence[Bars] | Basket,
    strategy: str | StrategyDef,
    params: Mapping[str, Any] | None = None,
    *,
    options: BacktestOptions | None = None,
    equity: bool = False,
    trades: bool = False,
    caches: Sequence[IndicatorCache] | None = None,
    **option_values: Any,
) -> BasketResult:
    """``strategy`` with the same ``params`` on every symbol of a basket (several ``Bars`` of
    one timeframe, or a ``Basket`` aligned once), under ``options.allocation``; the portfolio's
    metrics and each symbol's. ``caches`` (one per symbol) serve many calls over the same basket."""
    from engine.backtest.basket import run_basket
    from engine.data.basket import Basket, align

    spec = get_strategy(strategy)
    values = spec.validate(params)
    options = BacktestOptions.of(options, **option_values)
    basket = bars if isinstance(bars, Basket) else align(bars)
    entries, exits = [], []
    with profiler.stage("backtest.indicators"):
        for k, one in enumerate(basket.members):
            e, x = spec.signals(one, values, caches[k] if caches is not None else IndicatorCache())
            entries.append(e)
            exits.append(x)
    return run_basket(
        basket, entries, exits, allocation=options.allocation,
        max_positions=int(options.max_positions) or None, fee=options.fee, slippage=options.slippage,
        fill=options.fill, direction=options.direction, size=options.size, sizing=options.sizing,
        risk=options.risk, cash=options.cash, stop_loss=options.stop_loss, take_profit=options.take_profit,
        trailing_stop=options.trailing_stop, equity=equity, trades=trades,
    )  # fmt: skip


def run(
    bars: Bars,
    strategy: str | StrategyDef,
    params: Mapping[str, Any] | None = None,
    *,
    options: BacktestOptions | None = None,
    equity: bool = False,
    trades: bool = False,
    cache: IndicatorCache | None = None,
    **option_values: Any,
) -> BacktestResult:
    """Backtest ``strategy`` with ``params`` (defaults filled in) over ``bars``.

    ``strategy`` is a built-in's name, ``"PATH.py:NAME"``, the name of a strategy
    in the user's strategies folder, or a strategy record (``@strategy``).
    Raises ``StrategyError`` for an unknown strategy or a bad parameter
    (``StrategyCodeError``, naming the file and line, when its code fails) and
    ``InputError`` for a bad option, each with one line saying what was expected.
    The options are ``options`` (a :class:`BacktestOptions`, passed on as is)
    and/or any of its fields as keywords (``fee=0.001``), which override it.
    Pass one ``cache`` to many calls over the same bars to compute each
    indicator once.
    """
    start = time.perf_counter()
    spec = get_strategy(strategy)
    values = spec.validate(params)
    options = BacktestOptions.of(options, **option_values)
    inputs, entries, exits = signal_inputs(spec, bars, values, cache if cache is not None else IndicatorCache())
    metrics_out, equity_curve, records = simulate(
        bars, inputs, options, entries=entries, exits=exits, equity=equity, trades=trades
    )
    with profiler.stage("backtest.metrics"):
        metrics = Metrics.from_array(metrics_out)
    return BacktestResult(
        strategy=spec.name,
        params=values,
        options=options,
        metrics=metrics,
        equity=equity_curve,
        trades=records,
        elapsed_s=time.perf_counter() - start,
        n_bars=len(bars),
    )


def run_signals(
    bars: Bars,
    entries: np.ndarray,
    exits: np.ndarray,
    *,
    options: BacktestOptions | None = None,
    equity: bool = False,
    trades: bool = False,
    **option_values: Any,
) -> BacktestResult:
    """Backtest explicit entry/exit boolean arrays (one per bar, acted on at each
    bar's close under the same conventions and with the same options as :func:`run`)."""
    start = time.perf_counter()
    opts = BacktestOptions.of(options, **option_values)
    n = len(bars)
    entries = np.ascontiguousarray(entries, dtype=np.bool_)
    exits = np.ascontiguousarray(exits, dtype=np.bool_)
    if entries.shape != (n,) or exits.shape != (n,):
        raise InputError(f"entries and exits must have one value per bar ({n}), got {entries.shape} and {exits.shape}")
    inputs = KernelInputs(KIND_SIGNALS, bars.close, bars.close, 0.0, 0.0)
    metrics_out, equity_curve, records = simulate(
        bars, inputs, opts, entries=entries, exits=exits, equity=equity, trades=trades
    )
    return BacktestResult(
        strategy="signals",
        params={},
        options=opts,
        metrics=Metrics.from_array(metrics_out),
        equity=equity_curve,
        trades=records,
        elapsed_s=time.perf_counter() - start,
        n_bars=n,
    )


def run_many(
    bars: Bars,
    strategy: str | StrategyDef,
    param_sets: Iterable[Mapping[str, Any]],
    *,
    options: BacktestOptions | None = None,
    cache: IndicatorCache | None = None,
    blocks: np.ndarray | None = None,
    **option_values: Any,
) -> np.ndarray:
    """Metrics of many parameter sets of one strategy: an array of shape
    (len(param_sets), len(METRIC_NAMES)), rows in input order, each row equal
    bit for bit to ``run(bars, strategy, set, **options).metrics``.

    Every set is validated first (a bad one raises before any backtest runs).
    Indicators come from one shared cache, so each distinct window is computed
    once; the sets then run in one numba call per configuration (fill
    convention, stops on or off), typically one call for the whole batch.
    ``options`` and ``option_values`` are as for :func:`run`; a parameter set
    may also carry any option key (``stop_loss`` searched by a study, say),
    which overrides them for that set (each distinct override is validated once).

    ``blocks`` (an array of shape (len(param_sets), S), optional) receives each
    set's log returns over S equal time blocks of the bars
    (:func:`block_returns` of its equity curve), at almost no extra cost.
    """
    spec = get_strategy(strategy)
    cache = cache if cache is not None else IndicatorCache()
    base = BacktestOptions.of(options, **option_values)
    sets = list(param_sets)
    out = np.empty((len(sets), N_METRICS))
    if not sets:
        return out
    n = len(bars)
    variants: dict[Any, BacktestOptions] = {}
    groups: dict[tuple[int, bool, bool, bool], _Group] = {}
    arrays: dict[int, int] = {}  # id(indicator array) -> its row in `keep`
    keep: list[np.ndarray] = []  # holds every array whose address the kernel reads until it returns
    for row, raw in enumerate(sets):
        opts = override(base, {k: v for k, v in raw.items() if k in OPTIONS}, variants)
        values = spec.validate({k: v for k, v in raw.items() if k not in OPTIONS})
        inputs, entries, exits = signal_inputs(spec, bars, values, cache)
        a_row = _indicator_row(inputs.a, n, arrays, keep)
        b_row = _indicator_row(inputs.b, n, arrays, keep)
        if (
            inputs.kind == KIND_SIGNALS or a_row < 0 or b_row < 0 or opts.trailing_stop or opts.risk_fraction
            or uses_funding(bars, opts)
        ):
            # Not batchable (explicit signals, an indicator that is not a float64 array of
            # one value per bar, a trailing stop, risk sizing or funding): the per-set kernel call.
            metrics, curve, _ = simulate(bars, inputs, opts, entries=entries, exits=exits, equity=blocks is not None)
            out[row] = metrics
            if blocks is not None and curve is not None:
                blocks[row] = block_returns(curve, blocks.shape[1], opts.cash)
            continue
        cross_long = inputs.kind == KIND_CROSS and DIRECTIONS[opts.direction] == DIR_LONG
        key = (inputs.kind, opts.fill == "close", opts.stop_loss > 0.0 or opts.take_profit > 0.0, cross_long)
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group()
        group.add(row, a_row, b_row, inputs, opts)
    if groups:
        addresses = np.array([array.ctypes.data for array in keep], dtype=np.int64)
        ppy = float(periods_per_year(bars.timeframe))
        whole = len(groups) == 1 and len(next(iter(groups.values())).rows) == len(sets)
        bounds = _NO_BOUNDS if blocks is None else nb.block_bounds_nb(n, blocks.shape[1])
        scratch = _NO_EQUITY if blocks is None else np.empty(n)
        for (kind, fill_close, check_stops, cross_long), group in groups.items():
            columns = group.arrays()
            rows: Any = group.rows
            if cross_long and not check_stops:
                order = _lockstep_order(columns[0], columns[1])
                columns = tuple(column[order] for column in columns)
                rows = np.asarray(rows)[order]
                whole = whole and bool(np.all(order == np.arange(len(order))))
            target = out if whole else np.empty((len(group.rows), N_METRICS))
            figures = _NO_BLOCKS if blocks is None else np.empty((len(group.rows), blocks.shape[1]))
            kernel = nb.simulate_many_variant(fill_close, check_stops, cross_long=cross_long)
            # A dispatcher's first call compiles it or loads it from the on-disk cache.
            compiled = bool(kernel.signatures)
            started = time.perf_counter()
            with profiler.stage("numba.compile") if not compiled else contextlib.nullcontext():
                kernel(
                    bars.open, bars.high, bars.low, bars.close, kind, addresses,
                    *columns, ppy, _NO_SIGNALS, scratch, _NO_TRADES, target, bounds, figures,
                )  # fmt: skip
            if compiled and profiler.enabled:
                # One sample per backtest, the call's time split evenly: the stage reads
                # per backtest (and counts backtests) as it does for run().
                share = (time.perf_counter() - started) / len(group.rows)
                for _ in group.rows:
                    profiler.record("backtest.kernel", share)
            if not whole:
                out[rows] = target
            if blocks is not None:
                blocks[rows] = figures
    return out


def _lockstep_order(a_rows: np.ndarray, b_rows: np.ndarray) -> np.ndarray:
    """The order in which the batched cross/long kernel gets its sets: it runs groups of
    ``nb.LANES`` consecutive sets in lockstep, and a group whose sets share a line streams
    fewer lines, so sets are sorted by the side with fewer distinct lines, then the other
    (stable)."""
    if np.unique(a_rows).size <= np.unique(b_rows).size:
        return np.lexsort((b_rows, a_rows))
    return np.lexsort((a_rows, b_rows))


def _indicator_row(array: np.ndarray, n: int, rows: dict[int, int], keep: list[np.ndarray]) -> int:
    """The row of ``array`` among the batch's distinct indicator arrays (-1: cannot be batched)."""
    row = rows.get(id(array))
    if row is not None:
        return row
    if not (
        isinstance(array, np.ndarray)
        and array.dtype == np.float64
        and array.shape == (n,)
        and array.flags.c_contiguous
    ):
        return -1
    rows[id(array)] = row = len(keep)
    keep.append(array)  # also keeps the id from being recycled during the batch
    return row


class _Group:
    """The sets of one batched kernel call, as per-set columns."""

    __slots__ = ("a_rows", "b_rows", "opts", "p0", "p1", "rows")

    def __init__(self) -> None:
        self.rows: list[int] = []
        self.a_rows: list[int] = []
        self.b_rows: list[int] = []
        self.p0: list[float] = []
        self.p1: list[float] = []
        self.opts: list[BacktestOptions] = []

    def add(self, row: int, a_row: int, b_row: int, inputs: KernelInputs, opts: BacktestOptions) -> None:
        self.rows.append(row)
        self.a_rows.append(a_row)
        self.b_rows.append(b_row)
        self.p0.append(inputs.p0)
        self.p1.append(inputs.p1)
        self.opts.append(opts)

    def arrays(self) -> tuple[np.ndarray, ...]:
        """a_rows, b_rows, p0, p1, direction, fee, slippage, size, cash, stop_loss, take_profit."""
        m = len(self.rows)
        first = self.opts[0]
        same = all(o is first for o in self.opts)

        def column(name: str, dtype: type) -> np.ndarray:
            if same:
                value = getattr(first, name)
                return np.full(m, DIRECTIONS[value] if name == "direction" else value, dtype=dtype)
            if name == "direction":
                return np.array([DIRECTIONS[o.direction] for o in self.opts], dtype=dtype)
            return np.array([getattr(o, name) for o in self.opts], dtype=dtype)

        return (
            np.array(self.a_rows, dtype=np.int64),
            np.array(self.b_rows, dtype=np.int64),
            np.array(self.p0, dtype=np.float64),
            np.array(self.p1, dtype=np.float64),
            column("direction", np.int64),
            *(column(name, np.float64) for name in ("fee", "slippage", "size", "cash", "stop_loss", "take_profit")),
        )
