"""Numba kernels of the backtester: signal rules, the signal-to-position state
machine with its streaming metrics (the indicator kernels live in
``engine.strategy.nb`` and are re-exported here).

Every function here is pure, takes and returns numpy arrays or scalars, and is
compiled lazily on its first call (``cache=True`` keeps the machine code on disk,
so a second process starts warm). ``docs/backtest.md`` states the conventions in
prose; the tests in ``tests/backtest`` pin them against pure-Python references.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from llvmlite import ir  # type: ignore[import-untyped]
from numba import carray, types
from numba.core import cgutils
from numba.extending import intrinsic

from engine.backtest.enums import (
    DIR_BOTH,
    DIR_LONG,
    DIR_SHORT,
    EXIT_OPEN,
    EXIT_SIGNAL,
    EXIT_STOP_LOSS,
    EXIT_TAKE_PROFIT,
    EXIT_TRAILING_STOP,
    KIND_BAND,
    KIND_CHANNEL,
    KIND_CROSS,
    KIND_OSC,
    KIND_SIGNALS,
    KIND_ZSCORE,
    M_AVG_TRADE,
    M_CAGR,
    M_CALMAR,
    M_EXPOSURE,
    M_FINAL_VALUE,
    M_FUNDING_PAID,
    M_MAX_DRAWDOWN,
    M_PROFIT_FACTOR,
    M_SHARPE,
    M_SORTINO,
    M_TOTAL_RETURN,
    M_TRADES,
    M_VOLATILITY,
    M_WIN_RATE,
)
from engine.strategy.nb import (  # noqa: F401  (re-exported)
    _rsi_value,
    atr_nb,
    bollinger_nb,
    donchian_nb,
    ema_nb,
    kernel,
    rolling_max_nb,
    rolling_min_nb,
    rolling_std_nb,
    rsi_nb,
    sma_nb,
    true_range_nb,
    zscore_nb,
)

# --------------------------------------------------------------------------
# Signal rules. Signals are evaluated on a bar's close; crossings are strict
# (a[t-1] < b[t-1] and a[t] > b[t]) and every comparison with NaN is false, so
# nothing fires while an indicator is still warming up.
# --------------------------------------------------------------------------


@kernel
def rule_nb(
    kind: int,
    a_prev: float,
    a_now: float,
    b_prev: float,
    b_now: float,
    c_prev: float,
    c_now: float,
    p0: float,
    p1: float,
) -> tuple[bool, bool]:
    """(entry, exit) of rule ``kind`` (see ``enums.KIND_*``) at one bar, from the
    indicator values ``a``/``b`` and the close ``c`` at this bar and the one before.

    Scalars only: a call with array arguments is not inlined by LLVM and would
    cost more than the whole bar's work in the simulation loop.
    """
    if kind == KIND_CROSS:
        return (a_prev < b_prev and a_now > b_now), (a_prev > b_prev and a_now < b_now)
    if kind == KIND_OSC:
        return (a_prev > p0 and a_now < p0), (a_prev < p1 and a_now > p1)
    if kind == KIND_BAND:
        upper_prev = a_prev + p0 * b_prev
        upper_now = a_now + p0 * b_now
        return (
            (c_prev < upper_prev and c_now > upper_now),
            (c_prev > a_prev and c_now < a_now),
        )
    if kind == KIND_CHANNEL:
        return c_now > a_prev, c_now < b_prev
    if kind == KIND_ZSCORE and b_prev > 0.0 and b_now > 0.0:  # z undefined on flat windows
        z_prev = (c_prev - a_prev) / b_prev
        z_now = (c_now - a_now) / b_now
        return (z_prev > -p0 and z_now < -p0), (z_prev < p1 and z_now > p1)
    return False, False


@kernel
def signals_nb(
    kind: int,
    close: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    p0: float,
    p1: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Entry and exit arrays of rule ``kind`` over every bar."""
    n = close.shape[0]
    entries = np.zeros(n, dtype=np.bool_)
    exits = np.zeros(n, dtype=np.bool_)
    if kind == KIND_SIGNALS:
        return entries, exits
    for i in range(1, n):
        entry, exit_ = rule_nb(kind, a[i - 1], a[i], b[i - 1], b[i], close[i - 1], close[i], p0, p1)
        entries[i] = entry
        exits[i] = exit_
    return entries, exits


# --------------------------------------------------------------------------
# The state machine.
# --------------------------------------------------------------------------

# Slots of the trade accumulator ``acc`` (touched only when a trade closes).
ACC_CLOSED = 0
ACC_WINS = 1
ACC_GROSS_PROFIT = 2
ACC_GROSS_LOSS = 3
ACC_SUM_RETURN = 4
ACC_RECORDS = 5
ACC_SIZE = 6


@kernel
def _record_trade_nb(
    trades: np.ndarray,
    acc: np.ndarray,
    side: int,
    units: float,
    entry_price: float,
    entry_fee: float,
    entry_idx: int,
    exit_price: float,
    exit_fee: float,
    exit_idx: int,
    reason: int,
    funding: float = 0.0,
) -> None:
    pnl = side * units * (exit_price - entry_price) - entry_fee - exit_fee - funding
    notional = units * entry_price
    ret = pnl / notional if notional > 0.0 else 0.0
    if reason != EXIT_OPEN:
        acc[ACC_CLOSED] += 1.0
        acc[ACC_SUM_RETURN] += ret
        if pnl > 0.0:
            acc[ACC_WINS] += 1.0
            acc[ACC_GROSS_PROFIT] += pnl
        else:
            acc[ACC_GROSS_LOSS] -= pnl
    k = int(acc[ACC_RECORDS])
    if k < trades.shape[0]:
        rec = trades[k]
        rec["entry_idx"] = entry_idx
        rec["exit_idx"] = exit_idx
        rec["direction"] = side
        rec["units"] = units
        rec["entry_price"] = entry_price
        rec["exit_price"] = exit_price
        rec["entry_fee"] = entry_fee
        rec["exit_fee"] = exit_fee
        rec["pnl"] = pnl
        rec["return"] = ret
        rec["exit_reason"] = reason
        rec["funding"] = funding
        acc[ACC_RECORDS] = k + 1


@kernel
def _exit_nb(
    side: int,
    units: float,
    entry_price: float,
    entry_fee: float,
    entry_idx: int,
    price: float,
    i: int,
    reason: int,
    cash: float,
    fee: float,
    slippage: float,
    trades: np.ndarray,
    acc: np.ndarray,
    funding: float = 0.0,
) -> float:
    """Close the whole position at ``price`` (before slippage); returns the new cash.
    ``funding``: what the trade paid in funding while open (already out of the cash)."""
    if side > 0:
        fill = price * (1.0 - slippage)
        notional = units * fill
        fee_paid = notional * fee
        cash += notional - fee_paid
    else:
        fill = price * (1.0 + slippage)
        notional = units * fill
        fee_paid = notional * fee
        cash -= notional + fee_paid
    _record_trade_nb(
        trades, acc, side, units, entry_price, entry_fee, entry_idx, fill, fee_paid, i, reason, funding
    )
    return cash


@kernel
def _act_nb(
    entry: bool,
    exit_: bool,
    direction: int,
    price: float,
    i: int,
    cash: float,
    side: int,
    units: float,
    entry_price: float,
    entry_fee: float,
    entry_idx: int,
    size: float,
    fee: float,
    slippage: float,
    trades: np.ndarray,
    acc: np.ndarray,
    risk: float = 0.0,
    stop_loss: float = 0.0,
    funding: float = 0.0,
) -> tuple[float, int, float, float, float, int]:
    """Apply one bar's signals at ``price``; returns the new position state.

    ``risk > 0`` sizes an entry so that a stop-loss fill loses ``risk`` of the
    cash (see :func:`risk_per_unit_nb`), never more units than ``size`` buys."""
    if entry == exit_:  # nothing, or conflicting signals: no action
        return cash, side, units, entry_price, entry_fee, entry_idx
    if direction == DIR_LONG:
        want = 1 if entry else 0
    elif direction == DIR_BOTH:
        want = 1 if entry else -1
    else:  # short: the exit signal opens a short, the entry signal covers it
        want = 0 if entry else -1
    if want == side:
        return cash, side, units, entry_price, entry_fee, entry_idx
    if side != 0:
        cash = _exit_nb(
            side, units, entry_price, entry_fee, entry_idx, price, i, np.int64(EXIT_SIGNAL),
            cash, fee, slippage, trades, acc, funding,
        )
        side = np.int64(0)
        units = 0.0
    if want != 0 and cash > 0.0:
        fill = price * (1.0 + slippage) if want > 0 else price * (1.0 - slippage)
        units = cash * size / (fill * (1.0 + fee))
        if risk > 0.0:
            units = min(units, risk * cash / risk_per_unit_nb(want, fill, stop_loss, fee, slippage))
        notional = units * fill
        fee_paid = notional * fee
        if want > 0:
            cash -= notional + fee_paid
        else:
            cash += notional - fee_paid
        return cash, want, units, fill, fee_paid, i
    return cash, side, units, entry_price, entry_fee, entry_idx


@kernel
def risk_per_unit_nb(side: int, fill: float, stop_loss: float, fee: float, slippage: float) -> float:
    """What one unit entered at ``fill`` loses when its stop-loss fills at its level:
    entry fee, the move to the stop, the stop fill's slippage and its fee."""
    if side > 0:
        return fill * (1.0 + fee) - fill * (1.0 - stop_loss) * (1.0 - slippage) * (1.0 - fee)
    return fill * (1.0 + stop_loss) * (1.0 + slippage) * (1.0 + fee) - fill * (1.0 - fee)


@kernel
def _stop_nb(
    side: int,
    entry_price: float,
    stop_loss: float,
    take_profit: float,
    open_: float,
    high: float,
    low: float,
) -> tuple[float, int]:
    """(price before slippage, exit reason) if this bar hits the stop-loss or the
    take-profit of a position entered at ``entry_price``, else (0.0, -1).

    A bar that opens beyond a level fills at its open; when both levels are
    touched in one bar the stop wins (the conservative reading of a bar)."""
    if side > 0:
        if stop_loss > 0.0:
            stop = entry_price * (1.0 - stop_loss)
            if low <= stop:
                return min(open_, stop), EXIT_STOP_LOSS
        if take_profit > 0.0:
            target = entry_price * (1.0 + take_profit)
            if high >= target:
                return max(open_, target), EXIT_TAKE_PROFIT
    else:
        if stop_loss > 0.0:
            stop = entry_price * (1.0 + stop_loss)
            if high >= stop:
                return max(open_, stop), EXIT_STOP_LOSS
        if take_profit > 0.0:
            target = entry_price * (1.0 - take_profit)
            if low <= target:
                return min(open_, target), EXIT_TAKE_PROFIT
    return 0.0, -1


@kernel
def trailing_stop_nb(
    side: int,
    entry_price: float,
    stop_loss: float,
    take_profit: float,
    trailing_stop: float,
    extreme: float,
    open_: float,
    high: float,
    low: float,
) -> tuple[float, int]:
    """:func:`_stop_nb` with a trailing stop ``trailing_stop`` below ``extreme`` (the
    highest price since the entry, for a long; above the lowest, for a short).

    The tighter of the fixed and the trailing stop is the stop (the fixed one on a
    tie); the gap and same-bar rules are those of the fixed stop."""
    if side > 0:
        level = entry_price * (1.0 - stop_loss) if stop_loss > 0.0 else 0.0
        reason = EXIT_STOP_LOSS
        trail = extreme * (1.0 - trailing_stop)
        if trail > level:
            level = trail
            reason = EXIT_TRAILING_STOP
        if low <= level:
            return min(open_, level), reason
        if take_profit > 0.0:
            target = entry_price * (1.0 + take_profit)
            if high >= target:
                return max(open_, target), EXIT_TAKE_PROFIT
    else:
        level = entry_price * (1.0 + stop_loss) if stop_loss > 0.0 else np.inf
        reason = EXIT_STOP_LOSS
        trail = extreme * (1.0 + trailing_stop)
        if trail < level:
            level = trail
            reason = EXIT_TRAILING_STOP
        if high >= level:
            return max(open_, level), reason
        if take_profit > 0.0:
            target = entry_price * (1.0 - take_profit)
            if low <= target:
                return min(open_, target), EXIT_TAKE_PROFIT
    return 0.0, -1


@kernel
def _next_opening_bar_nb(
    kind: int,
    a: np.ndarray,
    b: np.ndarray,
    close: np.ndarray,
    p0: float,
    p1: float,
    entries: np.ndarray,
    exits: np.ndarray,
    fill_close: bool,
    direction: int,
    start: int,
    n: int,
) -> int:
    """The first bar from ``start`` (``n`` if none) whose signals would open a position
    from flat: entry without exit (long or both), exit without entry (short or both).

    The signals of bar ``i`` are those :func:`simulate_nb` acts on there (bar ``i``'s
    under close fills, bar ``i - 1``'s under next-open fills)."""
    shift = 0 if fill_close else 1
    opens_long = direction != DIR_SHORT
    opens_short = direction != DIR_LONG
    for i in range(start, n):
        j = i - shift
        if j < 0:
            continue
        if kind == KIND_SIGNALS:
            entry = entries[j]
            exit_ = exits[j]
        elif j > 0:
            entry, exit_ = rule_nb(kind, a[j - 1], a[j], b[j - 1], b[j], close[j - 1], close[j], p0, p1)
        else:
            continue
        if (opens_long and entry and not exit_) or (opens_short and exit_ and not entry):
            return i
    return n


def _make_simulate(generic: bool, fixed_fill_close: bool, fixed_check_stops: bool) -> Any:
    """The simulation kernel, generic or with the fill convention and the stop
    switch frozen as compile-time constants (closure cells: LLVM folds the
    branches of the other configurations away, about 10% faster per bar).
    numba caches each closure on disk under a key that includes its cells."""

    def simulate_nb(
        open_: np.ndarray,
        high: np.ndarray,
        low: np.ndarray,
        close: np.ndarray,
        kind: int,
        a: np.ndarray,
        b: np.ndarray,
        p0: float,
        p1: float,
        entries: np.ndarray,
        exits: np.ndarray,
        fill_close: bool,
        direction: int,
        fee: float,
        slippage: float,
        size: float,
        cash: float,
        stop_loss: float,
        take_profit: float,
        periods_per_year: float,
        equity_out: np.ndarray,
        trades_out: np.ndarray,
        metrics_out: np.ndarray,
        trailing_stop: float = 0.0,
        risk: float = 0.0,
        funding: np.ndarray | None = None,
    ) -> int:
        """Run one backtest over the bars; returns the number of trade records written.

        Signals come from rule ``kind`` over indicator arrays ``a``/``b`` and levels
        ``p0``/``p1`` (or from ``entries``/``exits`` with ``KIND_SIGNALS``). Each bar:
        (1) with next-open fills, the previous bar's signals fill at this open;
        (2) a position entered on an earlier bar is checked against stop-loss and
        take-profit (this bar's open, low, high; the stop wins a tie);
        (3) with close fills, this bar's signals fill at this close;
        (4) equity = cash + position marked at this close.

        ``equity_out`` (length n, or 0 to skip) receives the equity curve,
        ``trades_out`` (any capacity) the trade records, ``metrics_out`` the metrics
        in ``enums.METRIC_NAMES`` order.

        ``trailing_stop`` (a fraction, 0 disables) and ``risk`` (risk sizing: the
        fraction of the cash a stop-loss fill loses, 0 for fraction sizing) come
        last with defaults: a call that omits them compiles with both as
        constants 0, so those branches fold away and the loop is today's.

        ``funding`` (one rate per bar: the sum of the funding events settled at
        that bar's close, see ``api.funding_per_bar``) charges the position held
        at each close ``side * units * close * rate`` through the cash; omitted,
        numba prunes the branch and the loop is unchanged.
        """
        if not generic:  # compile-time constants of this variant: the other branches fold away
            fill_close = fixed_fill_close
        check_stops = (
            (stop_loss > 0.0 or take_profit > 0.0 or trailing_stop > 0.0) if generic else fixed_check_stops
        )
        n = close.shape[0]
        acc = np.zeros(ACC_SIZE)
        write_equity = equity_out.shape[0] == n
        start_cash = cash

        # np.int64(...) rather than bare literals: a literal-typed argument makes
        # numba compile every helper a second time for that literal type.
        side = np.int64(0)
        units = 0.0
        entry_price = 0.0
        entry_fee = 0.0
        entry_idx = np.int64(-1)
        extreme = 0.0  # highest high (long) or lowest low (short) since the entry: the trailing stop's anchor
        funding_paid = 0.0
        trade_funding = 0.0  # funding paid by the open trade so far (goes into its record)

        prev_equity = cash
        peak = cash
        max_dd = 0.0
        sum_r = 0.0
        sum_r2 = 0.0
        sum_down2 = 0.0
        exposed = np.int64(0)

        i = 0
        while i < n:
            # The signals acted on at this bar: the previous bar's (next-open fills)
            # or this bar's (close fills). One call site keeps rule_nb inlined.
            j = i if fill_close else i - 1
            entry = exit_ = False
            if j >= 0:
                if kind == KIND_SIGNALS:
                    entry = entries[j]
                    exit_ = exits[j]
                elif j > 0:
                    entry, exit_ = rule_nb(
                        kind, a[j - 1], a[j], b[j - 1], b[j], close[j - 1], close[j], p0, p1
                    )
            # Two phases per bar. Next-open fills: act at the open, then check the
            # stops. Close fills: check the stops, then act at the close. (One call
            # site each keeps the compiled loop small.)
            for phase in range(2):
                if (phase == 1) == fill_close:
                    if entry != exit_:
                        price = close[i] if fill_close else open_[i]
                        cash, side, units, entry_price, entry_fee, entry_idx = _act_nb(
                            entry, exit_, direction, price, i, cash, side, units, entry_price,
                            entry_fee, entry_idx, size, fee, slippage, trades_out, acc,
                            risk, stop_loss, trade_funding,
                        )
                        if trailing_stop > 0.0 and entry_idx == i:
                            extreme = entry_price
                        if funding is not None and entry_idx == i:
                            trade_funding = 0.0
                else:
                    if check_stops and side != 0 and entry_idx < i:
                        if trailing_stop > 0.0:
                            price, reason = trailing_stop_nb(
                                side, entry_price, stop_loss, take_profit, trailing_stop, extreme,
                                open_[i], high[i], low[i],
                            )
                        else:
                            price, reason = _stop_nb(
                                side, entry_price, stop_loss, take_profit, open_[i], high[i], low[i]
                            )
                        if reason >= 0:
                            cash = _exit_nb(
                                side, units, entry_price, entry_fee, entry_idx, price, i, reason,
                                cash, fee, slippage, trades_out, acc, trade_funding,
                            )
                            side = np.int64(0)
                            units = 0.0
                    # After the check: this bar's extreme moves the stop for the next bars
                    # (under next-open fills the entry bar's own high counts: it came after the fill).
                    if trailing_stop > 0.0 and side != 0:
                        extreme = max(extreme, high[i]) if side > 0 else min(extreme, low[i])

            # A test of its own: numba prunes `if funding is not None` when funding is omitted.
            if funding is not None:  # noqa: SIM102
                if side != 0 and funding[i] != 0.0:
                    payment = side * units * close[i] * funding[i]
                    cash -= payment
                    funding_paid += payment
                    trade_funding += payment
            equity = cash + side * units * close[i]
            if write_equity:
                equity_out[i] = equity
            r = equity / prev_equity - 1.0 if prev_equity > 0.0 else 0.0
            sum_r += r
            sum_r2 += r * r
            down = min(r, 0.0)
            sum_down2 += down * down
            # Branch-free on purpose: these tests are unpredictable on market data.
            peak = max(peak, equity)
            max_dd = max(max_dd, 1.0 - equity / peak)
            exposed += side != 0
            prev_equity = equity
            i += 1
            if side == 0:
                # Flat (no stop, trailing anchor or funding applies): until a signal opens a
                # position the equity stays `equity`, so each bar's return is exactly 0.0 and
                # no sum, peak, drawdown or exposure changes. Jump to that bar.
                quiet = i
                i = _next_opening_bar_nb(kind, a, b, close, p0, p1, entries, exits, fill_close, direction, i, n)
                if write_equity:
                    equity_out[quiet:i] = equity

        if side != 0:
            _record_trade_nb(
                trades_out, acc, side, units, entry_price, entry_fee, entry_idx,
                close[n - 1], 0.0, n - 1, np.int64(EXIT_OPEN), trade_funding,
            )
        _finish_metrics_nb(
            metrics_out, prev_equity, start_cash, n, periods_per_year, sum_r, sum_r2, sum_down2,
            max_dd, exposed, acc, funding_paid,
        )
        return int(acc[ACC_RECORDS])

    return kernel(_distinct(simulate_nb, "generic" if generic else _variant_name(fixed_fill_close, fixed_check_stops)))


def _variant_name(fill_close: bool, check_stops: bool) -> str:
    return f"{'close' if fill_close else 'next_open'}{'_stops' if check_stops else ''}"


def _distinct(function: Any, suffix: str) -> Any:
    """``function`` (a closure) with a qualified name of its own.

    numba names compiled code after the qualified name and a per-process
    counter, and merges equally named functions when it links a kernel's
    callees: two closures of one ``def`` compiled in different processes can
    carry the same name in the on-disk cache, and a kernel calling one of them
    would then run the other. A distinct name per closure rules that out (and
    gives each its own cache file).
    """
    function.__qualname__ = f"{function.__qualname__}_{suffix}"
    return function


#: The kernel taking every switch at run time: one compiled version for every
#: configuration (callable from other kernels, e.g. in a ``prange`` over sets).
simulate_nb = _make_simulate(True, False, False)
_VARIANTS = {
    (fill, stops): _make_simulate(False, fill, stops) for fill in (False, True) for stops in (False, True)
}


def simulate_variant(fill_close: bool, check_stops: bool, *, cross_long: bool = False) -> Any:
    """The kernel specialised for one configuration; same arguments as
    :func:`simulate_nb`, whose ``fill_close`` must equal the one given here and
    whose stop levels must satisfy
    ``check_stops == (stop_loss > 0 or take_profit > 0 or trailing_stop > 0)``.

    ``cross_long`` (a ``KIND_CROSS`` rule, long only, without trailing stop, risk
    sizing or funding: none of the trailing arguments) picks the variant compiled
    for that case (:func:`_make_simulate_cross_long`)."""
    if cross_long:
        return _CROSS_LONG_VARIANTS[bool(fill_close), bool(check_stops)]
    return _VARIANTS[bool(fill_close), bool(check_stops)]


# --------------------------------------------------------------------------
# The common study case compiled on its own: a crossing rule, long only.
# --------------------------------------------------------------------------


@intrinsic
def _prefetch_nb(typingctx: Any, array: Any, index: Any) -> Any:
    """Ask the CPU to bring ``array[index]`` into the cache (no load, no fault past the end)."""
    if not isinstance(array, types.Array) or not isinstance(index, types.Integer):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        pointer = builder.gep(data, [args[1]])
        name = "llvm.prefetch.p0"
        if str(pointer.type) != "ptr":  # an llvmlite with typed pointers (numba < 0.61)
            pointer = builder.bitcast(pointer, cgutils.voidptr_t)
            name = "llvm.prefetch.p0i8"
        i32 = ir.IntType(32)
        function = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [pointer.type, i32, i32, i32]), name
        )
        builder.call(function, [pointer, i32(0), i32(3), i32(1)])  # read, keep in all levels, data
        return context.get_dummy_value()

    return types.none(array, index), codegen


@kernel
def _next_cross_up_nb(a: np.ndarray, b: np.ndarray, shift: int, start: int, n: int, prices: np.ndarray) -> int:
    """:func:`_next_opening_bar_nb` for ``KIND_CROSS`` long only: the first bar from
    ``start`` (``n`` if none) acting on a crossing above (a crossing above is never
    also one below). The previous bar's values stay in registers, as in a bare loop.
    Under next-open fills (``shift`` 1) ``prices[t]`` is prefetched along the way: the
    entry reads it."""
    j = max(start - shift, 1)
    if j + shift >= n:
        return n
    a_prev = a[j - 1]
    b_prev = b[j - 1]
    while j + shift < n:
        # An unsigned index: no negative-index wraparound on the load (j >= 1).
        a_now = a[np.uint64(j)]
        b_now = b[np.uint64(j)]
        if shift:  # next-open fills: the entry reads an open the scan did not load
            _prefetch_nb(prices, np.uint64(j + shift))
        if a_prev < b_prev and a_now > b_now:
            return j + shift
        a_prev = a_now
        b_prev = b_now
        j += 1
    return n


@kernel
def _enter_long_nb(cash: float, size: float, fee: float, slippage: float, price: float) -> tuple[float, float, float, float]:
    """A long entry from flat at ``price`` (before slippage), :func:`_act_nb`'s arithmetic:
    (cash, units, fill, fee paid)."""
    fill = price * (1.0 + slippage)
    units = cash * size / (fill * (1.0 + fee))
    notional = units * fill
    fee_paid = notional * fee
    cash -= notional + fee_paid
    return cash, units, fill, fee_paid


def _make_simulate_cross_long(fixed_fill_close: bool, fixed_check_stops: bool) -> Any:
    """:func:`simulate_nb` for ``KIND_CROSS``, long only, without trailing stop, risk
    sizing or funding, with the fill convention and the stop switch frozen (closure
    cells, as for :func:`simulate_variant`).

    The same arithmetic in the same order as the per-bar state machine, so the
    same bits; the loop takes the bare loop's form instead: a flat scan that
    tests one crossing per bar, a held loop that tests the other and updates the
    streaming metrics, the previous bar's indicator values kept in registers.
    The rule kind, direction and per-bar action branches are gone from both."""

    def simulate_cross_long_nb(
        open_: np.ndarray,
        high: np.ndarray,
        low: np.ndarray,
        close: np.ndarray,
        kind: int,
        a: np.ndarray,
        b: np.ndarray,
        p0: float,
        p1: float,
        entries: np.ndarray,
        exits: np.ndarray,
        fill_close: bool,
        direction: int,
        fee: float,
        slippage: float,
        size: float,
        cash: float,
        stop_loss: float,
        take_profit: float,
        periods_per_year: float,
        equity_out: np.ndarray,
        trades_out: np.ndarray,
        metrics_out: np.ndarray,
    ) -> int:
        """:func:`simulate_nb`'s arguments and result (``kind``, ``direction``, the
        levels and explicit signals are ignored: the variant fixes them)."""
        fill_close = fixed_fill_close
        check_stops = fixed_check_stops
        shift = 0 if fill_close else 1
        n = close.shape[0]
        acc = np.zeros(ACC_SIZE)
        write_equity = equity_out.shape[0] == n
        start_cash = cash

        side = np.int64(0)
        units = 0.0
        entry_price = 0.0
        entry_fee = 0.0
        entry_idx = np.int64(-1)

        # Bar 0 acts on no signal: its equity is the cash, its return 0.0 (no sum,
        # peak or drawdown changes), as for every flat bar after it.
        equity = cash + side * units * close[0] if n > 0 else cash
        prev_equity = cash
        peak = cash
        max_dd = 0.0
        sum_r = 0.0
        sum_r2 = 0.0
        sum_down2 = 0.0
        exposed = np.int64(0)

        quiet = 0
        i = _next_cross_up_nb(a, b, shift, 1, n, close if fill_close else open_)
        while i < n:
            if write_equity:
                equity_out[quiet:i] = equity
            price = close[i] if fill_close else open_[i]
            if cash > 0.0:
                cash, units, entry_price, entry_fee = _enter_long_nb(cash, size, fee, slippage, price)
                side = np.int64(1)
                entry_idx = np.int64(i)
            # Held from bar i (the entry's own bar is marked at its close) to the bar
            # acting on the crossing below; that bar is accounted after the exit.
            j = i - shift
            a_prev = a[j]
            b_prev = b[j]
            held_from = i
            while True:
                # units is 0.0 when flat: the same bits as side * units * close[i].
                # Unsigned indices (i, j >= 0): no negative-index wraparound per load.
                equity = cash + units * close[np.uint64(i)]
                if write_equity:
                    equity_out[np.uint64(i)] = equity
                r = equity / prev_equity - 1.0 if prev_equity > 0.0 else 0.0
                sum_r += r
                sum_r2 += r * r
                down = min(r, 0.0)
                sum_down2 += down * down
                peak = max(peak, equity)
                max_dd = max(max_dd, 1.0 - equity / peak)
                prev_equity = equity
                i += 1
                if side == 0 or i >= n:
                    break
                j += 1
                a_now = a[np.uint64(j)]
                b_now = b[np.uint64(j)]
                # Used at an exit only, where a load alone would miss the cache (next-open
                # fills; the close is read every bar): prefetched on every bar.
                if not fill_close:
                    _prefetch_nb(open_, np.uint64(i))
                price = close[np.uint64(i)] if fill_close else open_[np.uint64(i)]
                # The state machine's order: next-open fills act on the signal at the open,
                # then check the stops; close fills check the stops, then act at the close
                # (after a stop, a crossing above on that bar enters again at its close).
                stop_price, reason = 0.0, -1
                if check_stops and fill_close:
                    stop_price, reason = _stop_nb(
                        side, entry_price, stop_loss, take_profit, open_[i], high[i], low[i]
                    )
                if reason >= 0:
                    cash = _exit_nb(
                        side, units, entry_price, entry_fee, entry_idx, stop_price, i, reason,
                        cash, fee, slippage, trades_out, acc, 0.0,
                    )
                    side = np.int64(0)
                    units = 0.0
                    if a_prev < b_prev and a_now > b_now and cash > 0.0:
                        cash, units, entry_price, entry_fee = _enter_long_nb(cash, size, fee, slippage, close[i])
                        side = np.int64(1)
                        entry_idx = np.int64(i)
                elif a_prev > b_prev and a_now < b_now:
                    cash = _exit_nb(
                        side, units, entry_price, entry_fee, entry_idx, price, i, np.int64(EXIT_SIGNAL),
                        cash, fee, slippage, trades_out, acc, 0.0,
                    )
                    side = np.int64(0)
                    units = 0.0
                elif check_stops and not fill_close:
                    stop_price, reason = _stop_nb(
                        side, entry_price, stop_loss, take_profit, open_[i], high[i], low[i]
                    )
                    if reason >= 0:
                        cash = _exit_nb(
                            side, units, entry_price, entry_fee, entry_idx, stop_price, i, reason,
                            cash, fee, slippage, trades_out, acc, 0.0,
                        )
                        side = np.int64(0)
                        units = 0.0
                a_prev = a_now
                b_prev = b_now
            # Every bar accounted in the loop was held but the exit's own (the last one).
            exposed += i - held_from - (side == 0)
            quiet = i
            i = _next_cross_up_nb(a, b, shift, i, n, close if fill_close else open_)
        if write_equity:
            equity_out[quiet:n] = equity

        if side != 0:
            _record_trade_nb(
                trades_out, acc, side, units, entry_price, entry_fee, entry_idx,
                close[n - 1], 0.0, n - 1, np.int64(EXIT_OPEN), 0.0,
            )
        _finish_metrics_nb(
            metrics_out, prev_equity, start_cash, n, periods_per_year, sum_r, sum_r2, sum_down2,
            max_dd, exposed, acc, 0.0,
        )
        return int(acc[ACC_RECORDS])

    suffix = _variant_name(fixed_fill_close, fixed_check_stops)
    return kernel(_distinct(simulate_cross_long_nb, suffix))


_CROSS_LONG_VARIANTS = {
    (fill, stops): _make_simulate_cross_long(fill, stops) for fill in (False, True) for stops in (False, True)
}


#: Per-bar return spread that is float rounding, not risk (docs/backtest.md, metrics).
NOISE_STD = 1e-15


@kernel
def _finish_metrics_nb(
    out: np.ndarray,
    final: float,
    start_cash: float,
    n: int,
    periods_per_year: float,
    sum_r: float,
    sum_r2: float,
    sum_down2: float,
    max_dd: float,
    exposed: int,
    acc: np.ndarray,
    funding_paid: float = 0.0,
) -> None:
    """Fill ``out`` from the streaming sums (one return per bar, the first one
    against the starting cash)."""
    growth = final / start_cash
    years = n / periods_per_year
    if growth <= 0.0:
        cagr = -1.0
    elif years > 0.0:
        cagr = growth ** (1.0 / years) - 1.0
    else:
        cagr = 0.0
    mean = sum_r / n
    var = (sum_r2 - sum_r * mean) / (n - 1) if n > 1 else 0.0
    # Below NOISE_STD the per-bar returns are rounding noise of an unchanged equity
    # (a flat market, a basket's sum): no volatility, not a Sharpe of 1e14.
    std = np.sqrt(var) if var > NOISE_STD * NOISE_STD else 0.0
    ann = np.sqrt(periods_per_year)
    downside = np.sqrt(sum_down2 / n)
    if downside <= NOISE_STD:
        downside = 0.0
    closed = acc[ACC_CLOSED]
    gross_profit = acc[ACC_GROSS_PROFIT]
    gross_loss = acc[ACC_GROSS_LOSS]

    out[M_FINAL_VALUE] = final
    out[M_TOTAL_RETURN] = growth - 1.0
    out[M_CAGR] = cagr
    out[M_VOLATILITY] = std * ann
    out[M_SHARPE] = mean / std * ann if std > 0.0 else 0.0
    out[M_SORTINO] = mean / downside * ann if downside > 0.0 else 0.0
    out[M_MAX_DRAWDOWN] = max_dd
    out[M_CALMAR] = cagr / max_dd if max_dd > 0.0 else 0.0
    out[M_TRADES] = closed
    out[M_WIN_RATE] = acc[ACC_WINS] / closed if closed > 0.0 else 0.0
    if gross_loss > 0.0:
        out[M_PROFIT_FACTOR] = gross_profit / gross_loss
    else:
        out[M_PROFIT_FACTOR] = np.inf if gross_profit > 0.0 else 0.0
    out[M_AVG_TRADE] = acc[ACC_SUM_RETURN] / closed if closed > 0.0 else 0.0
    out[M_EXPOSURE] = exposed / n
    out[M_FUNDING_PAID] = funding_paid


@kernel
def block_bounds_nb(n: int, blocks: int) -> np.ndarray:
    """The last bar of each of ``blocks`` equal time blocks of ``n`` bars (the last block takes the rest)."""
    out = np.empty(blocks, dtype=np.int64)
    for s in range(blocks):
        out[s] = (s + 1) * n // blocks - 1
    return out


@kernel
def _block_log_return_nb(value: float, prev: float) -> float:
    """One block's figure for :func:`block_log_returns_nb`: from ``prev`` to ``value``."""
    if prev > 0.0:
        return np.log(max(value, prev * 1e-12) / prev)
    return 0.0


@kernel
def block_log_returns_nb(equity: np.ndarray, bounds: np.ndarray, start: float, out: np.ndarray) -> None:
    """``out[s]``: the log return of the equity over block ``s`` (from the previous block's last bar,
    or ``start``, to ``bounds[s]``).

    Log returns add up: a run of blocks' figure is their sum (the CSCV halves
    combine blocks this way). A ruined account is floored at 1e-12 of the
    previous value, so the figures stay finite.
    """
    prev = start
    for s in range(bounds.shape[0]):
        value = equity[bounds[s]]
        out[s] = _block_log_return_nb(value, prev)
        prev = value


# --------------------------------------------------------------------------
# Many parameter sets in one call.
# --------------------------------------------------------------------------

# The four specialised kernels under plain module names: the batched kernels
# pick theirs by closure constants (a closure capturing a dispatcher itself
# could not be cached on disk: numba keys the cache on the pickled cells).
_simulate_open = _VARIANTS[False, False]
_simulate_open_stops = _VARIANTS[False, True]
_simulate_close = _VARIANTS[True, False]
_simulate_close_stops = _VARIANTS[True, True]
_simulate_open_cross_long = _CROSS_LONG_VARIANTS[False, False]
_simulate_open_cross_long_stops = _CROSS_LONG_VARIANTS[False, True]
_simulate_close_cross_long = _CROSS_LONG_VARIANTS[True, False]
_simulate_close_cross_long_stops = _CROSS_LONG_VARIANTS[True, True]


@intrinsic
def _address_nb(typingctx: Any, address: Any) -> Any:
    """An int64 memory address as a ``void*`` (for :func:`numba.carray`)."""
    if not isinstance(address, types.Integer):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return types.voidptr(address), codegen


# --------------------------------------------------------------------------
# Several cross/long sets in lockstep: one vector instruction per operation for
# LANES sets (docs/backtest.md, "Sets in lockstep").
# --------------------------------------------------------------------------

#: Sets simulated in lockstep by the batched cross/long kernel (one 512-bit vector of float64;
#: at most 8: a lane's crossings are one bit of a byte per bar).
LANES = 8
#: Bars whose crossings are found in one pass before the lanes walk them (a group's lines for
#: one tile, 16 x 32 KB at most, stay in L2 for the entries and exits that read them again).
TILE = 4096
# The lanes' state, one row of LANES values each, in one array (fixed offsets: no aliasing).
_CASH, _UNITS, _PREV, _PEAK, _MAX_DD, _SUM_R, _SUM_R2, _SUM_DOWN2 = range(8)
_STATE_ROWS = 8


@intrinsic
def _lanes_bars_nb(typingctx: Any, state: Any, close: Any, start: Any, stop: Any) -> Any:
    """Bars ``start .. stop - 1`` of every lane's streaming metrics, as vector operations with
    the state in registers: the held loop's arithmetic of :func:`_make_simulate_cross_long`
    (equity, return, three sums, peak, drawdown) in its order, ``max``/``min`` as selects
    (no NaN reaches them). ``state``: float64, C-contiguous, ``_STATE_ROWS * LANES`` values;
    ``close``: float64, C-contiguous, ``stop <= len(close)``."""
    if not (
        isinstance(state, types.Array) and state.layout == "C" and isinstance(close, types.Array)
        and close.layout == "C" and isinstance(start, types.Integer) and isinstance(stop, types.Integer)
    ):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        prices = context.make_array(signature.args[1])(context, builder, args[1]).data
        i64 = ir.IntType(64)
        vector = ir.VectorType(ir.DoubleType(), LANES)
        pointers = [
            builder.bitcast(builder.gep(data, [ir.Constant(i64, row * LANES)]), vector.as_pointer())
            for row in range(_STATE_ROWS)
        ]
        # Allocas in the entry block: LLVM keeps them in registers across the loop.
        slots = [cgutils.alloca_once(builder, vector) for _ in range(_STATE_ROWS)]
        for pointer, slot in zip(pointers, slots, strict=True):
            builder.store(builder.load(pointer, align=8, typ=vector), slot)
        zero = ir.Constant(vector, [0.0] * LANES)
        one = ir.Constant(vector, [1.0] * LANES)
        first = context.cast(builder, args[2], signature.args[2], types.int64)
        last = context.cast(builder, args[3], signature.args[3], types.int64)
        with cgutils.for_range(builder, last, start=first, intp=i64) as loop:
            price = builder.load(builder.gep(prices, [loop.index]), typ=ir.DoubleType())
            c = ir.Constant(vector, ir.Undefined)
            for lane in range(LANES):
                c = builder.insert_element(c, price, ir.Constant(ir.IntType(32), lane))
            cash, units, prev, peak, max_dd, sum_r, sum_r2, sum_down2 = (
                builder.load(slot, typ=vector) for slot in slots
            )
            equity = builder.fadd(cash, builder.fmul(units, c))
            r = builder.fsub(builder.fdiv(equity, prev), one)
            r = builder.select(builder.fcmp_ordered(">", prev, zero), r, zero)
            sum_r = builder.fadd(sum_r, r)
            sum_r2 = builder.fadd(sum_r2, builder.fmul(r, r))
            down = builder.select(builder.fcmp_ordered("<", r, zero), r, zero)
            sum_down2 = builder.fadd(sum_down2, builder.fmul(down, down))
            peak = builder.select(builder.fcmp_ordered(">", equity, peak), equity, peak)
            drawdown = builder.fsub(one, builder.fdiv(equity, peak))
            max_dd = builder.select(builder.fcmp_ordered(">", drawdown, max_dd), drawdown, max_dd)
            for row, value in ((_PREV, equity), (_PEAK, peak), (_MAX_DD, max_dd), (_SUM_R, sum_r),
                               (_SUM_R2, sum_r2), (_SUM_DOWN2, sum_down2)):  # fmt: skip
                builder.store(value, slots[row])
        for pointer, slot in zip(pointers, slots, strict=True):
            builder.store(builder.load(slot, typ=vector), pointer, align=8)
        return context.get_dummy_value()

    return types.none(state, close, start, stop), codegen


@kernel
def _mark_crossings_nb(
    a: np.ndarray, b: np.ndarray, shift: int, t0: int, t1: int, bit: int, masks: np.ndarray
) -> None:
    """Set ``bit`` in ``masks[e - t0]`` for each bar ``e`` in ``[t0, t1)`` whose signal bar
    ``e - shift`` crosses either way (strict; NaN never crosses). ``t0 - shift >= 1``.
    No branch per bar: the compares run as vector instructions."""
    first = t0 - shift
    for q in range(t1 - t0):
        j = np.uint64(first + q)
        h = np.uint64(first + q - 1)
        crossed = ((a[h] < b[h]) & (a[j] > b[j])) | ((a[h] > b[h]) & (a[j] < b[j]))
        masks[np.uint64(q)] |= np.uint8(crossed * bit)


@kernel
def _event_bars_nb(masks: np.ndarray, words: np.ndarray, t0: int, t1: int, events: np.ndarray) -> None:
    """``events``: the bars ``t0 + q`` with ``masks[q] != 0``, in order, then ``t1``
    (``words``: ``masks`` as uint64, zero past ``t1 - t0``; events are rare, so whole
    words are skipped)."""
    count = 0
    for w in range((t1 - t0 + 7) // 8):
        if words[w] != 0:
            for q in range(8 * w, 8 * w + 8):
                events[count] = t0 + q
                count += masks[q] != 0
    events[count] = t1


def _make_simulate_lanes(fixed_fill_close: bool) -> Any:
    """The batched cross/long kernel's lockstep form for one fill convention (no stops)."""

    def simulate_lanes_nb(
        open_: np.ndarray,
        close: np.ndarray,
        addresses: np.ndarray,
        a_rows: np.ndarray,
        b_rows: np.ndarray,
        fee: np.ndarray,
        slippage: np.ndarray,
        size: np.ndarray,
        cash: np.ndarray,
        sets: np.ndarray,
        periods_per_year: float,
        no_trades: np.ndarray,
        metrics_out: np.ndarray,
        bounds: np.ndarray,
        blocks_out: np.ndarray,
    ) -> None:
        """Sets ``sets`` (at most ``LANES``) of :func:`simulate_many_nb` (cross/long, no stops)
        walked together bar by bar: every lane's metrics on every bar in vector
        operations, a lane's entry or exit in scalar code with
        :func:`_make_simulate_cross_long`'s arithmetic.

        A flat lane's bar changes nothing: its equity is its cash (``cash + 0.0 * close``),
        equal to the previous bar's, so its return is ``+0.0`` (the sums keep their
        bits), its peak already covers it and its drawdown is the exit bar's."""
        fill_close = fixed_fill_close
        shift = 0 if fill_close else 1
        n = close.shape[0]
        # LANES, not a constant to LLVM: the scalar loops over lanes stay loops (compile time).
        lanes = sets.shape[0]
        state = np.zeros(_STATE_ROWS * LANES)
        side = np.zeros(LANES, dtype=np.int64)
        entry_price = np.zeros(LANES)
        entry_fee = np.zeros(LANES)
        entry_idx = np.full(LANES, -1, dtype=np.int64)
        held_from = np.zeros(LANES, dtype=np.int64)
        exposed = np.zeros(LANES, dtype=np.int64)
        acc = np.zeros((LANES, ACC_SIZE))
        events = np.empty(TILE + 1, dtype=np.int64)
        masks = np.zeros(TILE + 8, dtype=np.uint8)  # bit l: lane l's signal crosses
        words = masks.view(np.uint64)
        n_bounds = bounds.shape[0]
        at_bounds = np.empty((LANES, n_bounds))
        for lane in range(LANES):
            # Lanes past the sets idle flat on a cash of 1.0 (their results are not read).
            value = cash[sets[lane]] if lane < lanes else 1.0
            state[_CASH * LANES + lane] = value
            state[_PREV * LANES + lane] = value
            state[_PEAK * LANES + lane] = value

        # Bars before the first that can act on a crossing are flat for every lane.
        start = 1 + shift
        s_bound = 0
        while s_bound < n_bounds and bounds[s_bound] < start:
            for lane in range(lanes):
                at_bounds[lane, s_bound] = state[_PREV * LANES + lane]
            s_bound += 1
        for t0 in range(start, n, TILE):
            t1 = min(t0 + TILE, n)
            masks[:] = 0
            for lane in range(lanes):
                k = sets[lane]
                a = carray(_address_nb(addresses[a_rows[k]]), n, np.float64)
                b = carray(_address_nb(addresses[b_rows[k]]), n, np.float64)
                _mark_crossings_nb(a, b, shift, t0, t1, 1 << lane, masks)
            _event_bars_nb(masks, words, t0, t1, events)
            s = t0
            next_event = 0
            while s < t1:
                e = events[next_event]
                stop = e
                if s_bound < n_bounds:
                    stop = min(stop, bounds[s_bound] + 1)
                _lanes_bars_nb(state, close, s, stop)
                s = stop
                while s_bound < n_bounds and bounds[s_bound] < s:
                    for lane in range(lanes):
                        at_bounds[lane, s_bound] = state[_PREV * LANES + lane]
                    s_bound += 1
                if s != e or e >= t1:
                    continue
                # Bar e: the lanes whose signal bar crosses act before the bar is accounted.
                next_event += 1
                mask = masks[e - t0]
                j = e - shift
                price = close[e] if fill_close else open_[e]
                for lane in range(lanes):
                    if not (mask >> lane) & 1:
                        continue
                    k = sets[lane]
                    a = carray(_address_nb(addresses[a_rows[k]]), n, np.float64)
                    b = carray(_address_nb(addresses[b_rows[k]]), n, np.float64)
                    if side[lane] == 0:
                        if a[j - 1] < b[j - 1] and a[j] > b[j] and state[_CASH * LANES + lane] > 0.0:
                            lane_cash, units, entry_price[lane], entry_fee[lane] = _enter_long_nb(
                                state[_CASH * LANES + lane], size[k], fee[k], slippage[k], price
                            )
                            state[_CASH * LANES + lane] = lane_cash
                            state[_UNITS * LANES + lane] = units
                            side[lane] = 1
                            entry_idx[lane] = e
                            held_from[lane] = e
                    elif a[j - 1] > b[j - 1] and a[j] < b[j]:
                        state[_CASH * LANES + lane] = _exit_nb(
                            side[lane], state[_UNITS * LANES + lane], entry_price[lane], entry_fee[lane],
                            entry_idx[lane], price, e, np.int64(EXIT_SIGNAL), state[_CASH * LANES + lane],
                            fee[k], slippage[k], no_trades, acc[lane], 0.0,
                        )
                        state[_UNITS * LANES + lane] = 0.0
                        side[lane] = 0
                        exposed[lane] += e - held_from[lane]

        for lane in range(lanes):
            k = sets[lane]
            if side[lane] != 0:
                _record_trade_nb(
                    no_trades, acc[lane], side[lane], state[_UNITS * LANES + lane], entry_price[lane],
                    entry_fee[lane], entry_idx[lane], close[n - 1], 0.0, n - 1, np.int64(EXIT_OPEN), 0.0,
                )
                exposed[lane] += n - held_from[lane]
            _finish_metrics_nb(
                metrics_out[k], state[_PREV * LANES + lane], cash[k], n, periods_per_year,
                state[_SUM_R * LANES + lane], state[_SUM_R2 * LANES + lane], state[_SUM_DOWN2 * LANES + lane],
                state[_MAX_DD * LANES + lane], exposed[lane], acc[lane], 0.0,
            )
            prev = cash[k]
            for s_ in range(n_bounds):
                blocks_out[k, s_] = _block_log_return_nb(at_bounds[lane, s_], prev)
                prev = at_bounds[lane, s_]

    return kernel(_distinct(simulate_lanes_nb, "close" if fixed_fill_close else "next_open"))


_simulate_lanes_open = _make_simulate_lanes(False)
_simulate_lanes_close = _make_simulate_lanes(True)


def _make_simulate_many(fixed_fill_close: bool, fixed_check_stops: bool, fixed_cross_long: bool) -> Any:
    """The batched kernel of one configuration (its callee chosen by closure constants;
    ``fixed_cross_long``: every set is ``KIND_CROSS`` long only, the cross/long variants,
    which it links alone, so a cold cache compiles the common case's kernels only; without
    stops those sets run in lockstep groups, :func:`_make_simulate_lanes`)."""
    lockstep = fixed_cross_long and not fixed_check_stops

    def simulate_many_nb(
        open_: np.ndarray,
        high: np.ndarray,
        low: np.ndarray,
        close: np.ndarray,
        kind: int,
        addresses: np.ndarray,
        a_rows: np.ndarray,
        b_rows: np.ndarray,
        p0: np.ndarray,
        p1: np.ndarray,
        direction: np.ndarray,
        fee: np.ndarray,
        slippage: np.ndarray,
        size: np.ndarray,
        cash: np.ndarray,
        stop_loss: np.ndarray,
        take_profit: np.ndarray,
        periods_per_year: float,
        no_signals: np.ndarray,
        no_equity: np.ndarray,
        no_trades: np.ndarray,
        metrics_out: np.ndarray,
        bounds: np.ndarray,
        blocks_out: np.ndarray,
    ) -> None:
        """Backtest set ``k`` of many into ``metrics_out[k]`` (one specialised
        :func:`simulate_nb` per set, without trade records; cross/long sets without
        stops in lockstep groups of ``LANES`` consecutive sets instead).

        With ``bounds`` (the blocks' last bars, :func:`block_bounds_nb`; empty
        to skip) ``no_equity`` is a scratch curve of one value per bar and
        ``blocks_out[k]`` receives set ``k``'s per-block log returns.

        ``addresses`` holds the data addresses of the distinct indicator arrays
        (float64, C-contiguous, one value per bar, kept alive by the caller);
        set ``k`` reads its ``a``/``b`` from ``addresses[a_rows[k]]`` and
        ``addresses[b_rows[k]]``. Every other per-set argument is an array with
        one value per set.
        """
        n = close.shape[0]
        m = a_rows.shape[0]
        if lockstep:
            # Groups of LANES consecutive sets in lockstep (the last one may be short): the
            # caller puts sets that share a line next to each other (api.run_many).
            for first in range(0, m, LANES):
                if fixed_fill_close:
                    _simulate_lanes_close(
                        open_, close, addresses, a_rows, b_rows, fee, slippage, size, cash,
                        np.arange(first, min(first + LANES, m)), periods_per_year, no_trades, metrics_out,
                        bounds, blocks_out,
                    )
                else:
                    _simulate_lanes_open(
                        open_, close, addresses, a_rows, b_rows, fee, slippage, size, cash,
                        np.arange(first, min(first + LANES, m)), periods_per_year, no_trades, metrics_out,
                        bounds, blocks_out,
                    )
            return
        for k in range(m):
            a = carray(_address_nb(addresses[a_rows[k]]), n, np.float64)
            b = carray(_address_nb(addresses[b_rows[k]]), n, np.float64)
            if fixed_cross_long:
                if fixed_fill_close:
                    if fixed_check_stops:
                        _simulate_close_cross_long_stops(
                            open_, high, low, close, kind, a, b, p0[k], p1[k], no_signals, no_signals,
                            True, direction[k], fee[k], slippage[k], size[k], cash[k], stop_loss[k],
                            take_profit[k], periods_per_year, no_equity, no_trades, metrics_out[k],
                        )
                    else:
                        _simulate_close_cross_long(
                            open_, high, low, close, kind, a, b, p0[k], p1[k], no_signals, no_signals,
                            True, direction[k], fee[k], slippage[k], size[k], cash[k], stop_loss[k],
                            take_profit[k], periods_per_year, no_equity, no_trades, metrics_out[k],
                        )
                elif fixed_check_stops:
                    _simulate_open_cross_long_stops(
                        open_, high, low, close, kind, a, b, p0[k], p1[k], no_signals, no_signals,
                        False, direction[k], fee[k], slippage[k], size[k], cash[k], stop_loss[k],
                        take_profit[k], periods_per_year, no_equity, no_trades, metrics_out[k],
                    )
                else:
                    _simulate_open_cross_long(
                        open_, high, low, close, kind, a, b, p0[k], p1[k], no_signals, no_signals,
                        False, direction[k], fee[k], slippage[k], size[k], cash[k], stop_loss[k],
                        take_profit[k], periods_per_year, no_equity, no_trades, metrics_out[k],
                    )
            elif fixed_fill_close:
                if fixed_check_stops:
                    _simulate_close_stops(
                        open_, high, low, close, kind, a, b, p0[k], p1[k], no_signals, no_signals,
                        True, direction[k], fee[k], slippage[k], size[k], cash[k], stop_loss[k],
                        take_profit[k], periods_per_year, no_equity, no_trades, metrics_out[k],
                    )
                else:
                    _simulate_close(
                        open_, high, low, close, kind, a, b, p0[k], p1[k], no_signals, no_signals,
                        True, direction[k], fee[k], slippage[k], size[k], cash[k], stop_loss[k],
                        take_profit[k], periods_per_year, no_equity, no_trades, metrics_out[k],
                    )
            elif fixed_check_stops:
                _simulate_open_stops(
                    open_, high, low, close, kind, a, b, p0[k], p1[k], no_signals, no_signals,
                    False, direction[k], fee[k], slippage[k], size[k], cash[k], stop_loss[k],
                    take_profit[k], periods_per_year, no_equity, no_trades, metrics_out[k],
                )
            else:
                _simulate_open(
                    open_, high, low, close, kind, a, b, p0[k], p1[k], no_signals, no_signals,
                    False, direction[k], fee[k], slippage[k], size[k], cash[k], stop_loss[k],
                    take_profit[k], periods_per_year, no_equity, no_trades, metrics_out[k],
                )
            if bounds.shape[0] > 0:
                block_log_returns_nb(no_equity, bounds, cash[k], blocks_out[k])

    suffix = _variant_name(fixed_fill_close, fixed_check_stops) + ("_cross_long" if fixed_cross_long else "")
    return kernel(_distinct(simulate_many_nb, suffix))


_MANY_VARIANTS = {
    (fill, stops, cross_long): _make_simulate_many(fill, stops, cross_long)
    for fill in (False, True)
    for stops in (False, True)
    for cross_long in (False, True)
}


def simulate_many_variant(fill_close: bool, check_stops: bool, *, cross_long: bool = False) -> Any:
    """The batched kernel for one configuration (every set in the call shares
    ``fill_close``, ``check_stops`` and ``cross_long``, as for :func:`simulate_variant`)."""
    return _MANY_VARIANTS[bool(fill_close), bool(check_stops), bool(cross_long)]
