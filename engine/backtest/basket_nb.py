"""Numba kernels of basket backtests: one strategy's signals over several symbols on
one timeline, the cash split equally between the symbols or shared by them.

Inputs are (timestamps, symbols) arrays, column-major (each symbol's column
contiguous, as ``engine.data.Basket`` holds them), with NaN prices where a
symbol has no bar. ``docs/backtest.md`` ("Baskets") states the conventions;
``tests/backtest/test_basket.py`` pins them against a pure-Python reference.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.backtest import nb
from engine.backtest.enums import (
    DIR_BOTH,
    DIR_LONG,
    DIR_SHORT,
    EXIT_OPEN,
    EXIT_SIGNAL,
    KIND_SIGNALS,
    M_EXPOSURE,
    M_TRADES,
    M_WIN_RATE,
    N_METRICS,
    TRADE_DTYPE,
)
from engine.backtest.nb import (
    ACC_CLOSED,
    ACC_GROSS_LOSS,
    ACC_GROSS_PROFIT,
    ACC_RECORDS,
    ACC_SIZE,
    ACC_SUM_RETURN,
    ACC_WINS,
    _distinct,
    _exit_nb,
    _finish_metrics_nb,
    _record_trade_nb,
    _stop_nb,
    _variant_name,
    kernel,
    risk_per_unit_nb,
    trailing_stop_nb,
)

# The specialised single-symbol kernels under module names (a closure capturing a
# dispatcher could not be cached on disk; see nb._make_simulate_many).
_simulate_open = nb.simulate_variant(False, False)
_simulate_open_stops = nb.simulate_variant(False, True)
_simulate_close = nb.simulate_variant(True, False)
_simulate_close_stops = nb.simulate_variant(True, True)


@kernel
def equity_metrics_nb(
    equity: np.ndarray, start_cash: float, periods_per_year: float, exposed: int, acc: np.ndarray, out: np.ndarray
) -> None:
    """The metrics of an equity curve (``out``, ``METRIC_NAMES`` order) with the trade
    statistics of ``acc`` and ``exposed`` bars held: the single-symbol definitions."""
    n = equity.shape[0]
    prev = start_cash
    peak = start_cash
    max_dd = 0.0
    sum_r = 0.0
    sum_r2 = 0.0
    sum_down2 = 0.0
    for i in range(n):
        value = equity[i]
        r = value / prev - 1.0 if prev > 0.0 else 0.0
        sum_r += r
        sum_r2 += r * r
        down = min(r, 0.0)
        sum_down2 += down * down
        peak = max(peak, value)
        max_dd = max(max_dd, 1.0 - value / peak)
        prev = value
    _finish_metrics_nb(out, prev, start_cash, n, periods_per_year, sum_r, sum_r2, sum_down2, max_dd, exposed, acc)


@kernel
def _add_record_nb(out: np.ndarray, count: int, symbol: int, rec: Any, first: int, rows: np.ndarray) -> int:
    """Copy trade record ``rec`` into basket record ``count`` of ``out`` (if there is
    room), its bar indices mapped to timeline rows (``rows[idx]``, or ``idx`` when
    ``first`` < 0); returns ``count + 1``."""
    if count < out.shape[0]:
        dst = out[count]
        dst["symbol"] = symbol
        dst["entry_idx"] = rec["entry_idx"] if first < 0 else rows[rec["entry_idx"]]
        dst["exit_idx"] = rec["exit_idx"] if first < 0 else rows[rec["exit_idx"]]
        dst["direction"] = rec["direction"]
        dst["units"] = rec["units"]
        dst["entry_price"] = rec["entry_price"]
        dst["exit_price"] = rec["exit_price"]
        dst["entry_fee"] = rec["entry_fee"]
        dst["exit_fee"] = rec["exit_fee"]
        dst["pnl"] = rec["pnl"]
        dst["return"] = rec["return"]
        dst["exit_reason"] = rec["exit_reason"]
    return count + 1


@kernel
def _add_trade_stats_nb(acc: np.ndarray, rec: Any) -> None:
    """Count closed trade ``rec`` in ``acc`` (the trade slots of ``nb._record_trade_nb``)."""
    if rec["exit_reason"] == EXIT_OPEN:
        return
    pnl = rec["pnl"]
    acc[ACC_CLOSED] += 1.0
    acc[ACC_SUM_RETURN] += rec["return"]
    if pnl > 0.0:
        acc[ACC_WINS] += 1.0
        acc[ACC_GROSS_PROFIT] += pnl
    else:
        acc[ACC_GROSS_LOSS] -= pnl


def _make_split(fixed_fill_close: bool, fixed_check_stops: bool) -> Any:
    """The split kernel of one configuration (its single-symbol callee chosen by closure constants)."""

    def split_nb(
        open_: np.ndarray,
        high: np.ndarray,
        low: np.ndarray,
        close: np.ndarray,
        entries: np.ndarray,
        exits: np.ndarray,
        direction: int,
        fee: float,
        slippage: float,
        size: float,
        cash: float,
        stop_loss: float,
        take_profit: float,
        trailing_stop: float,
        risk: float,
        periods_per_year: float,
        equity_out: np.ndarray,
        trades_out: np.ndarray,
        symbols_out: np.ndarray,
        metrics_out: np.ndarray,
    ) -> int:
        """Each symbol runs the single-symbol kernel on its own bars with ``cash / symbols``;
        returns the number of trade records (``trades_out`` receives as many as fit).

        ``equity_out`` (length timestamps, or 0 to skip) receives the portfolio equity:
        the sum of the symbols' equities, each held at its last bar's value where it
        has no bar (its cash share before its first bar). ``symbols_out``
        (``SYMBOL_DTYPE``, one per symbol) receives the per-symbol breakdown and
        ``metrics_out`` the portfolio metrics.
        """
        n, m = close.shape
        share = cash / m
        equity = equity_out if equity_out.shape[0] == n else np.empty(n)
        equity[:] = 0.0
        held = np.zeros(n + 1, dtype=np.int64)  # +1 where a position opens, -1 where it closes
        acc = np.zeros(ACC_SIZE)
        rows = np.empty(n, dtype=np.int64)
        gather = np.empty((4, n))
        gather_signals = np.empty((2, n), dtype=np.bool_)
        symbol_equity = np.empty(n)
        records = np.empty(n + 1, dtype=TRADE_DTYPE)
        symbol_metrics = np.empty(N_METRICS)
        o_cols, h_cols, l_cols, c_cols = open_.T, high.T, low.T, close.T
        e_cols, x_cols = entries.T, exits.T
        count = np.int64(0)
        for k in range(m):
            # A count without stores vectorises: the rows are only written for a symbol with gaps
            # (writing them for every symbol cost about 1 ms of a 7 ms 20 x 100,000 split run).
            nk = 0
            for t in range(n):
                nk += not np.isnan(c_cols[k, t])
            complete = nk == n
            if complete:  # the columns themselves (contiguous), no copy
                o, h, lo, c = o_cols[k], h_cols[k], l_cols[k], c_cols[k]
                e, x = e_cols[k], x_cols[k]
            else:  # the symbol's own bars, gathered
                j = 0
                for t in range(n):
                    if np.isnan(close[t, k]):
                        continue
                    rows[j] = t
                    gather[0, j] = open_[t, k]
                    gather[1, j] = high[t, k]
                    gather[2, j] = low[t, k]
                    gather[3, j] = close[t, k]
                    gather_signals[0, j] = entries[t, k]
                    gather_signals[1, j] = exits[t, k]
                    j += 1
                o, h, lo, c = gather[0, :nk], gather[1, :nk], gather[2, :nk], gather[3, :nk]
                e, x = gather_signals[0, :nk], gather_signals[1, :nk]
            eq = symbol_equity[:nk]
            # Without a trailing stop or risk sizing the callee is the one run() uses (the
            # omitted arguments are compile-time zeros): the same loop, the same speed.
            extended = trailing_stop > 0.0 or risk > 0.0
            if fixed_fill_close:
                if fixed_check_stops and extended:
                    made = _simulate_close_stops(
                        o, h, lo, c, KIND_SIGNALS, c, c, 0.0, 0.0, e, x, True, direction, fee, slippage,
                        size, share, stop_loss, take_profit, periods_per_year, eq, records, symbol_metrics,
                        trailing_stop, risk,
                    )
                elif fixed_check_stops:
                    made = _simulate_close_stops(
                        o, h, lo, c, KIND_SIGNALS, c, c, 0.0, 0.0, e, x, True, direction, fee, slippage,
                        size, share, stop_loss, take_profit, periods_per_year, eq, records, symbol_metrics,
                    )
                else:
                    made = _simulate_close(
                        o, h, lo, c, KIND_SIGNALS, c, c, 0.0, 0.0, e, x, True, direction, fee, slippage,
                        size, share, stop_loss, take_profit, periods_per_year, eq, records, symbol_metrics,
                    )
            elif fixed_check_stops and extended:
                made = _simulate_open_stops(
                    o, h, lo, c, KIND_SIGNALS, c, c, 0.0, 0.0, e, x, False, direction, fee, slippage,
                    size, share, stop_loss, take_profit, periods_per_year, eq, records, symbol_metrics,
                    trailing_stop, risk,
                )
            elif fixed_check_stops:
                made = _simulate_open_stops(
                    o, h, lo, c, KIND_SIGNALS, c, c, 0.0, 0.0, e, x, False, direction, fee, slippage,
                    size, share, stop_loss, take_profit, periods_per_year, eq, records, symbol_metrics,
                )
            else:
                made = _simulate_open(
                    o, h, lo, c, KIND_SIGNALS, c, c, 0.0, 0.0, e, x, False, direction, fee, slippage,
                    size, share, stop_loss, take_profit, periods_per_year, eq, records, symbol_metrics,
                )
            if complete:
                for t in range(n):
                    equity[t] += eq[t]
            else:
                j = 0
                value = share
                for t in range(n):
                    if j < nk and rows[j] == t:
                        value = eq[j]
                        j += 1
                    equity[t] += value
            pnl = 0.0
            first = -1 if complete else 0
            for r in range(made):
                rec = records[r]
                pnl += rec["pnl"]
                _add_trade_stats_nb(acc, rec)
                count = _add_record_nb(trades_out, count, k, rec, first, rows)
                start = rec["entry_idx"] if complete else rows[rec["entry_idx"]]
                held[start] += 1
                if rec["exit_reason"] == EXIT_OPEN:
                    held[n] -= 1
                else:
                    held[rec["exit_idx"] if complete else rows[rec["exit_idx"]]] -= 1
            out = symbols_out[k]
            out["trades"] = np.int64(symbol_metrics[M_TRADES])
            out["return_contribution"] = pnl / cash
            out["win_rate"] = symbol_metrics[M_WIN_RATE]
            out["exposure"] = symbol_metrics[M_EXPOSURE]
        exposed = 0
        open_now = 0
        for t in range(n):
            open_now += held[t]
            exposed += open_now > 0
        equity_metrics_nb(equity, cash, periods_per_year, exposed, acc, metrics_out)
        return count

    return kernel(_distinct(split_nb, _variant_name(fixed_fill_close, fixed_check_stops)))


_SPLIT_VARIANTS = {(fill, stops): _make_split(fill, stops) for fill in (False, True) for stops in (False, True)}


def split_variant(fill_close: bool, check_stops: bool) -> Any:
    """The split kernel of one configuration (``check_stops`` as for ``nb.simulate_variant``)."""
    return _SPLIT_VARIANTS[bool(fill_close), bool(check_stops)]


@kernel
def _want_nb(entry: bool, exit_: bool, direction: int) -> int:
    """The position (+1, 0, -1) a bar's signals ask for (the single-symbol rules)."""
    if direction == DIR_LONG:
        return 1 if entry else 0
    if direction == DIR_BOTH:
        return 1 if entry else -1
    return 0 if entry else -1


@kernel
def _before_nb(a: float, b: float) -> bool:
    """Rank ``a`` enters before rank ``b``: higher first, NaN last."""
    return not np.isnan(a) and (np.isnan(b) or a > b)


#: Rows a stop scan looks ahead once a position is open past the row whose signals close it
#: (next-open fills across the symbol's gap); each later scan of the same position doubles it
#: (a position held L rows costs at most about 2L rows scanned).
_SCAN_FIRST = 16
_SCAN_MAX = 4096


@kernel
def _scan_stop_nb(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    k: int,
    side: int,
    entry_price: float,
    entry_idx: int,
    stop_loss: float,
    take_profit: float,
    trailing_stop: float,
    start: int,
    stop: int,
    extreme: np.ndarray,
    hit: np.ndarray,
    hit_price: np.ndarray,
    hit_reason: np.ndarray,
) -> None:
    """Look for symbol ``k``'s stop over rows ``start`` to ``stop`` (exclusive) of its own
    column (contiguous): the first row with a bar, after ``entry_idx``, where the position
    would be stopped goes to ``hit[k]`` with its price and reason; ``extreme[k]`` carries the
    trailing extreme, updated after each row's check as the per-timestamp loop did.

    A position's stop depends only on its own bars, so it is found ahead of the timeline,
    down one column, instead of reading four strided prices per symbol and timestamp."""
    for r in range(start, stop):
        if np.isnan(close[r, k]):
            continue
        if entry_idx < r:
            if trailing_stop > 0.0:
                price, reason = trailing_stop_nb(
                    side, entry_price, stop_loss, take_profit, trailing_stop, extreme[k],
                    open_[r, k], high[r, k], low[r, k],
                )
            else:
                price, reason = _stop_nb(side, entry_price, stop_loss, take_profit, open_[r, k], high[r, k], low[r, k])
            if reason >= 0:
                hit[k] = r
                hit_price[k] = price
                hit_reason[k] = reason
                return
        if trailing_stop > 0.0:
            extreme[k] = max(extreme[k], high[r, k]) if side > 0 else min(extreme[k], low[r, k])


@kernel
def _scan_end_nb(close: np.ndarray, entries: np.ndarray, exits: np.ndarray, side: int, start: int) -> int:
    """One past the first of rows ``start`` on (one symbol's columns) where the symbol has a bar
    and its signals close a position of ``side`` (exit without entry for a long, entry without
    exit for a short), or the columns' length: the position cannot be open after that row's
    stop check, so its stop scan need not look further."""
    n = close.shape[0]
    for r in range(start, n):
        closing = (exits[r] and not entries[r]) if side > 0 else (entries[r] and not exits[r])
        if closing and not np.isnan(close[r]):
            return r + 1
    return n


@kernel
def _action_rows_nb(
    close: np.ndarray, entries: np.ndarray, exits: np.ndarray, fill_close: bool, direction: int,
    own_bars: np.ndarray, flags: np.ndarray,
) -> None:
    """Mark the rows where some symbol's signals may act (``flags`` bit 1: entry differs from
    exit) and where they may open a position from flat (bit 2: entry without exit long or both,
    exit without entry short or both, the rule of ``nb._next_opening_bar_nb``); count each
    symbol's own bars into ``own_bars``.

    A superset is harmless (the row runs the full per-symbol logic and finds nothing to do);
    a missed row would change results. The signals acted on at row ``t`` are row ``t``'s
    under close fills, and under next-open fills those of the symbol's previous own bar:
    row ``t - 1`` for a symbol without gaps, found by a second pass for one with gaps."""
    n, m = close.shape
    long_bit = np.uint8(direction != DIR_SHORT)
    short_bit = np.uint8(direction != DIR_LONG)
    shift = 0 if fill_close else 1
    c_cols, e_cols, x_cols = close.T, entries.T, exits.T
    for k in range(m):
        c, e, x = c_cols[k], e_cols[k], x_cols[k]
        nk = 0
        for t in range(n):
            nk += not np.isnan(c[t])
        own_bars[k] = nk
        if nk == 0:
            continue
        # Branch-free byte arithmetic: this loop vectorises.
        for t in range(n - shift):
            ev = np.uint8(e[t])
            xv = np.uint8(x[t])
            act = ev ^ xv
            flags[t + shift] |= act | (act & ((ev & long_bit) | (xv & short_bit))) << np.uint8(1)
        if nk < n and not fill_close:
            armed = np.uint8(0)
            for t in range(n):
                if np.isnan(c[t]):
                    continue
                flags[t] |= armed
                ev = np.uint8(e[t])
                xv = np.uint8(x[t])
                act = ev ^ xv
                armed = act | (act & ((ev & long_bit) | (xv & short_bit))) << np.uint8(1)


@kernel
def _own_rows_nb(close: np.ndarray, k: int, start: int, stop: int, complete: bool) -> int:
    """How many of rows ``start`` to ``stop`` (exclusive) symbol ``k`` has a bar on."""
    if complete:
        return stop - start
    count = 0
    for r in range(start, stop):
        count += not np.isnan(close[r, k])
    return count


@kernel
def _open_symbols_nb(side: np.ndarray, held: np.ndarray) -> int:
    """Write the symbols with an open position into ``held``, in symbol order; returns how many."""
    count = 0
    for k in range(side.shape[0]):
        if side[k] != 0:
            held[count] = k
            count += 1
    return count


@kernel
def shared_nb(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    entries: np.ndarray,
    exits: np.ndarray,
    rank: np.ndarray,
    fill_close: bool,
    direction: int,
    fee: float,
    slippage: float,
    size: float,
    cash: float,
    stop_loss: float,
    take_profit: float,
    trailing_stop: float,
    risk: float,
    max_positions: int,
    periods_per_year: float,
    equity_out: np.ndarray,
    trades_out: np.ndarray,
    symbols_out: np.ndarray,
    metrics_out: np.ndarray,
) -> int:
    """One cash account for every symbol; returns the number of trade records.

    At each timestamp, for the symbols with a bar there: next-open fills act on
    each symbol's previous own bar's signals at this open (signal exits, then
    entries), then the stops; close fills check the stops, then act on this
    bar's signals at this close (signal exits, then entries). Entries go in
    symbol order, or by ``rank`` (same shape as the prices; the rank of the
    signal's bar, highest first, NaN last; a (0, 0) array for symbol order),
    while fewer than ``max_positions`` are open; each spends
    ``min(equity * size / max_positions, cash)``, equity taken once after the
    exits (positions marked at this moment's price, or their last close).
    Outputs as for the split kernel.

    Only what can change is computed (the same numbers, bit for bit, as the
    per-symbol-per-row loop of ``tests/backtest/basket_oracle.py``): the signal
    phase runs only on rows where some symbol's signals may act
    (``_action_rows_nb``), a row marks only the open positions (a flat symbol's
    mark added nothing), and while the whole book is flat the loop jumps to the
    next row where a signal could open a position (equity stays the cash).
    """
    n, m = close.shape
    use_rank = rank.shape[0] == n and rank.shape[1] == m
    check_stops = stop_loss > 0.0 or take_profit > 0.0 or trailing_stop > 0.0
    side = np.zeros(m, dtype=np.int64)
    units = np.zeros(m)
    entry_price = np.zeros(m)
    entry_fee = np.zeros(m)
    entry_idx = np.full(m, -1, dtype=np.int64)
    extreme = np.zeros(m)
    hit = np.full(m, -1, dtype=np.int64)  # the row of the open position's stop, once found
    hit_price = np.zeros(m)
    hit_reason = np.zeros(m, dtype=np.int64)
    scanned = np.zeros(m, dtype=np.int64)  # the first row the stop scan has not looked at
    scan_len = np.zeros(m, dtype=np.int64)
    scan_end = np.zeros(m, dtype=np.int64)  # the open position's stop scan need not reach this row
    next_stop_row = n  # no open position needs a stop look before this row
    signed = np.zeros(m)  # side * units of the open position (times +-1: exact)
    # An open position's last close (a flat symbol's is never read: an entry happens on a
    # row where the symbol has a bar, and that row's mark sets it).
    last_close = np.full(m, np.nan)
    acc = np.zeros((m, ACC_SIZE))
    pnl = np.zeros(m)
    own_bars = np.zeros(m, dtype=np.int64)
    held_bars = np.zeros(m, dtype=np.int64)  # own bars marked while open, counted when the position closes
    one = np.empty(1, dtype=TRADE_DTYPE)
    candidates = np.empty(m, dtype=np.int64)
    wants = np.empty(m, dtype=np.int64)
    keys = np.empty(m)
    held = np.empty(m, dtype=np.int64)  # the open symbols in symbol order (the mark's summation order)
    no_rows = np.empty(0, dtype=np.int64)
    c_cols, e_cols, x_cols = close.T, entries.T, exits.T
    flags = np.zeros(n, dtype=np.uint8)
    _action_rows_nb(close, entries, exits, fill_close, direction, own_bars, flags)
    complete = np.empty(m, dtype=np.bool_)
    for k in range(m):
        complete[k] = own_bars[k] == n
    equity = equity_out if equity_out.shape[0] == n else np.empty(n)
    start_cash = cash
    count = np.int64(0)
    open_count = 0
    n_held = 0
    exposed = 0
    t = 0
    while t < n:
        if open_count == 0:
            # The book is flat: until a signal could open a position nothing changes (no
            # stop to check, no mark) and the equity is the cash. Jump to that row.
            quiet = t
            while t < n and flags[t] & 2 == 0:
                t += 1
            equity[quiet:t] = cash
            if t == n:
                break
        changed = False
        for phase in range(2):
            if changed:  # the stop phase reads the open symbols the signal phase left
                n_held = _open_symbols_nb(side, held)
                changed = False
            if (phase == 1) == fill_close:
                if flags[t] == 0:
                    continue  # no symbol's signals differ here: nothing exits or enters
                # Signal exits (and the exit half of a reversal), collecting the entries.
                n_candidates = 0
                for k in range(m):
                    if np.isnan(close[t, k]):
                        continue
                    if fill_close:
                        entry, exit_ = entries[t, k], exits[t, k]
                        key = rank[t, k] if use_rank else 0.0
                    else:  # the signals of the symbol's previous own bar
                        j = t - 1
                        if not complete[k]:
                            while j >= 0 and np.isnan(close[j, k]):
                                j -= 1
                        if j < 0:
                            continue
                        entry, exit_ = entries[j, k], exits[j, k]
                        key = rank[j, k] if use_rank else 0.0
                    if entry == exit_:
                        continue
                    want = _want_nb(entry, exit_, direction)
                    if want == side[k]:
                        continue
                    if side[k] != 0:
                        price = close[t, k] if fill_close else open_[t, k]
                        acc[k, ACC_RECORDS] = 0.0
                        cash = _exit_nb(
                            side[k], units[k], entry_price[k], entry_fee[k], entry_idx[k], price, t,
                            np.int64(EXIT_SIGNAL), cash, fee, slippage, one, acc[k],
                        )
                        pnl[k] += one[0]["pnl"]
                        count = _add_record_nb(trades_out, count, k, one[0], -1, no_rows)
                        held_bars[k] += _own_rows_nb(close, k, entry_idx[k], t, complete[k])
                        side[k] = 0
                        units[k] = 0.0
                        open_count -= 1
                        changed = True
                    if want != 0:
                        # Insertion keeps the candidates ordered: by rank, then symbol.
                        j = n_candidates
                        while use_rank and j > 0 and _before_nb(key, keys[j - 1]):
                            candidates[j] = candidates[j - 1]
                            wants[j] = wants[j - 1]
                            keys[j] = keys[j - 1]
                            j -= 1
                        candidates[j] = k
                        wants[j] = want
                        keys[j] = key
                        n_candidates += 1
                if n_candidates == 0:
                    continue
                # Equity once, after the exits and before the entries.
                value = cash
                for i in range(n_held):
                    k = held[i]
                    if side[k] != 0:
                        price = close[t, k] if fill_close else open_[t, k]
                        if np.isnan(price):
                            price = last_close[k]
                        value += side[k] * units[k] * price
                target = value * size / max_positions
                for j in range(n_candidates):
                    if open_count >= max_positions:
                        break
                    spend = min(target, cash)
                    if spend <= 0.0:
                        continue
                    k = candidates[j]
                    want = wants[j]
                    price = close[t, k] if fill_close else open_[t, k]
                    fill = price * (1.0 + slippage) if want > 0 else price * (1.0 - slippage)
                    amount = spend / (fill * (1.0 + fee))
                    if risk > 0.0:
                        amount = min(amount, risk * value / risk_per_unit_nb(want, fill, stop_loss, fee, slippage))
                    notional = amount * fill
                    fee_paid = notional * fee
                    if want > 0:
                        cash -= notional + fee_paid
                    else:
                        cash += notional - fee_paid
                    side[k] = want
                    units[k] = amount
                    signed[k] = want * amount
                    entry_price[k] = fill
                    entry_fee[k] = fee_paid
                    entry_idx[k] = t
                    extreme[k] = fill
                    hit[k] = -1
                    # Under close fills this row's stop check ran before the entry: scan from the next.
                    scanned[k] = t + 1 if fill_close else t
                    scan_len[k] = _SCAN_FIRST
                    if check_stops:
                        # The signals that will close it: this row's act here under close fills
                        # (its own), the next row's under next-open fills (this row's).
                        scan_end[k] = _scan_end_nb(c_cols[k], e_cols[k], x_cols[k], want, scanned[k])
                    next_stop_row = min(next_stop_row, scanned[k])
                    open_count += 1
                    changed = True
            elif check_stops and t >= next_stop_row:
                next_stop_row = n
                for i in range(n_held):  # the open symbols, in symbol order
                    k = held[i]
                    if hit[k] < 0 and scanned[k] <= t:
                        # One scan up to the row whose signals close the position (nothing is
                        # scanned in vain); windows only past it (next-open fills across a gap).
                        # Any end is exact: a position still open past it is scanned on from there.
                        if scan_end[k] > t:
                            stop = scan_end[k]
                        else:
                            stop = min(n, max(scanned[k], t + 1) + scan_len[k])
                        _scan_stop_nb(
                            open_, high, low, close, k, side[k], entry_price[k], entry_idx[k], stop_loss,
                            take_profit, trailing_stop, scanned[k], stop, extreme, hit, hit_price, hit_reason,
                        )  # fmt: skip
                        scanned[k] = stop
                        scan_len[k] = min(2 * scan_len[k], _SCAN_MAX)
                    if hit[k] == t:
                        acc[k, ACC_RECORDS] = 0.0
                        cash = _exit_nb(
                            side[k], units[k], entry_price[k], entry_fee[k], entry_idx[k], hit_price[k], t,
                            hit_reason[k], cash, fee, slippage, one, acc[k],
                        )
                        pnl[k] += one[0]["pnl"]
                        count = _add_record_nb(trades_out, count, k, one[0], -1, no_rows)
                        held_bars[k] += _own_rows_nb(close, k, entry_idx[k], t, complete[k])
                        side[k] = 0
                        units[k] = 0.0
                        open_count -= 1
                        changed = True
                    else:
                        next_stop_row = min(next_stop_row, hit[k] if hit[k] >= 0 else scanned[k])
        if changed:
            n_held = _open_symbols_nb(side, held)
        # Mark the open positions at the close (a symbol without a bar here: its last close),
        # in symbol order as the full loop summed them.
        value = cash
        for i in range(n_held):
            k = held[i]
            c = close[t, k]
            if np.isnan(c):
                c = last_close[k]
            else:
                last_close[k] = c
            value += signed[k] * c
        equity[t] = value
        exposed += open_count > 0
        t += 1

    total = np.zeros(ACC_SIZE)
    for k in range(m):
        if side[k] != 0:
            held_bars[k] += _own_rows_nb(close, k, entry_idx[k], n, complete[k])
            last_row = n - 1  # the symbol's last own bar (its entry row is one)
            while np.isnan(close[last_row, k]):
                last_row -= 1
            acc[k, ACC_RECORDS] = 0.0
            _record_trade_nb(
                one, acc[k], side[k], units[k], entry_price[k], entry_fee[k], entry_idx[k],
                last_close[k], 0.0, last_row, np.int64(EXIT_OPEN),
            )
            pnl[k] += one[0]["pnl"]
            count = _add_record_nb(trades_out, count, k, one[0], -1, no_rows)
        for slot in range(ACC_SIZE):
            total[slot] += acc[k, slot]
        closed = acc[k, ACC_CLOSED]
        out = symbols_out[k]
        out["trades"] = np.int64(closed)
        out["return_contribution"] = pnl[k] / start_cash
        out["win_rate"] = acc[k, ACC_WINS] / closed if closed > 0.0 else 0.0
        out["exposure"] = held_bars[k] / own_bars[k] if own_bars[k] > 0 else 0.0
    equity_metrics_nb(equity, start_cash, periods_per_year, exposed, total, metrics_out)
    return count
