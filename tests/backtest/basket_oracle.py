"""Test-only: a frozen copy of the shared-allocation basket kernel as it was before the
flat-book jump and the held-stretch changes (``engine.backtest.basket_nb.shared_nb`` at
commit d02af54).

It is the oracle of that rewrite: ``test_basket_oracle.py`` asserts that today's
kernel gives the same metrics, equity curve, trade records and per-symbol breakdown
as this loop, bit for bit. Do not "fix" or speed up this copy; the helpers it calls
(``_want_nb``, ``_before_nb``, ``_scan_stop_nb``, ``_add_record_nb``,
``equity_metrics_nb`` and the single-symbol ``_exit_nb``, ``_record_trade_nb``,
``risk_per_unit_nb``) were not changed by the rewrite and are imported.
"""

from __future__ import annotations

import numpy as np

from engine.backtest.basket_nb import (
    _SCAN_FIRST,
    _SCAN_MAX,
    _add_record_nb,
    _before_nb,
    _scan_stop_nb,
    _want_nb,
    equity_metrics_nb,
)
from engine.backtest.enums import EXIT_OPEN, EXIT_SIGNAL, TRADE_DTYPE
from engine.backtest.nb import (
    ACC_CLOSED,
    ACC_RECORDS,
    ACC_SIZE,
    ACC_WINS,
    _exit_nb,
    _record_trade_nb,
    kernel,
    risk_per_unit_nb,
)


@kernel
def oracle_shared_nb(
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
    """The pre-rewrite loop: the arguments and the result of ``basket_nb.shared_nb``.

    One cash account for every symbol; returns the number of trade records.

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
    next_stop_row = n  # no open position needs a stop look before this row
    last_close = np.full(m, np.nan)
    last_row = np.full(m, -1, dtype=np.int64)
    pending_entry = np.zeros(m, dtype=np.bool_)
    pending_exit = np.zeros(m, dtype=np.bool_)
    pending_rank = np.zeros(m)
    acc = np.zeros((m, ACC_SIZE))
    pnl = np.zeros(m)
    own_bars = np.zeros(m, dtype=np.int64)
    held_bars = np.zeros(m, dtype=np.int64)
    one = np.empty(1, dtype=TRADE_DTYPE)
    candidates = np.empty(m, dtype=np.int64)
    wants = np.empty(m, dtype=np.int64)
    keys = np.empty(m)
    no_rows = np.empty(0, dtype=np.int64)
    equity = equity_out if equity_out.shape[0] == n else np.empty(n)
    start_cash = cash
    count = np.int64(0)
    open_count = 0
    exposed = 0
    for t in range(n):
        for phase in range(2):
            if (phase == 1) == fill_close:
                # Signal exits (and the exit half of a reversal), collecting the entries.
                n_candidates = 0
                for k in range(m):
                    if np.isnan(close[t, k]):
                        continue
                    if fill_close:
                        entry, exit_ = entries[t, k], exits[t, k]
                        key = rank[t, k] if use_rank else 0.0
                    else:
                        entry, exit_ = pending_entry[k], pending_exit[k]
                        key = pending_rank[k]
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
                        side[k] = 0
                        units[k] = 0.0
                        open_count -= 1
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
                for k in range(m):
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
                    entry_price[k] = fill
                    entry_fee[k] = fee_paid
                    entry_idx[k] = t
                    extreme[k] = fill
                    hit[k] = -1
                    # Under close fills this row's stop check ran before the entry: scan from the next.
                    scanned[k] = t + 1 if fill_close else t
                    scan_len[k] = _SCAN_FIRST
                    next_stop_row = min(next_stop_row, scanned[k])
                    open_count += 1
            elif check_stops and t >= next_stop_row:
                next_stop_row = n
                for k in range(m):
                    if side[k] == 0:
                        continue
                    if hit[k] < 0 and scanned[k] <= t:
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
                        side[k] = 0
                        units[k] = 0.0
                        open_count -= 1
                    else:
                        next_stop_row = min(next_stop_row, hit[k] if hit[k] >= 0 else scanned[k])
        # Mark at the close (a symbol without a bar here: its last close).
        value = cash
        for k in range(m):
            c = close[t, k]
            if not np.isnan(c):
                last_close[k] = c
                last_row[k] = t
                own_bars[k] += 1
                held_bars[k] += side[k] != 0
                if not fill_close:
                    pending_entry[k] = entries[t, k]
                    pending_exit[k] = exits[t, k]
                    pending_rank[k] = rank[t, k] if use_rank else 0.0
            if side[k] != 0:
                value += side[k] * units[k] * last_close[k]
        equity[t] = value
        exposed += open_count > 0

    total = np.zeros(ACC_SIZE)
    for k in range(m):
        if side[k] != 0:
            acc[k, ACC_RECORDS] = 0.0
            _record_trade_nb(
                one, acc[k], side[k], units[k], entry_price[k], entry_fee[k], entry_idx[k],
                last_close[k], 0.0, last_row[k], np.int64(EXIT_OPEN),
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
