"""Test-only: a frozen copy of the simulation kernel as it was before the flat-stretch
fast path (``engine.backtest.nb.simulate_nb``, generic variant, at commit ab45af4).

It is the oracle of that rewrite: ``test_kernel_oracle.py`` asserts that today's
kernel gives the same metrics, equity curve and trade records as this loop, bit
for bit. Do not "fix" or speed up this copy; the per-bar helpers it calls
(``rule_nb``, ``_act_nb``, ``_exit_nb``, ``_stop_nb``, ``trailing_stop_nb``,
``_record_trade_nb``, ``_finish_metrics_nb``) were not changed by the rewrite and
are imported from the kernel module.
"""

from __future__ import annotations

import numpy as np

from engine.backtest.enums import EXIT_OPEN, KIND_SIGNALS
from engine.backtest.nb import (
    ACC_RECORDS,
    ACC_SIZE,
    _act_nb,
    _exit_nb,
    _finish_metrics_nb,
    _record_trade_nb,
    _stop_nb,
    kernel,
    rule_nb,
    trailing_stop_nb,
)


@kernel
def oracle_simulate_nb(
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
    """The pre-rewrite loop: the arguments and the result of ``nb.simulate_nb``."""
    check_stops = stop_loss > 0.0 or take_profit > 0.0 or trailing_stop > 0.0
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

    for i in range(n):
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

