"""Slow, obviously-correct pure-Python references of the basket backtests.

Written from ``docs/backtest.md`` ("Baskets"): plain lists, one timestamp at a
time. Prices are lists of lists ``[t][k]`` with ``None`` where symbol ``k`` has
no bar at timestamp ``t``. ``split`` runs the single-symbol reference on each
symbol's own bars; ``shared`` keeps one cash account.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from tests.backtest import reference as ref

Grid = list[list[float | None]]


@dataclass
class Outcome:
    equity: list[float]
    trades: list[dict]  # with "symbol"; entry_idx/exit_idx are timeline rows
    held: list[bool]  # any position open at each timestamp's close
    per_symbol: list[dict] = field(default_factory=list)


def _breakdown(trades: list[dict], own_held: list[list[bool]], cash: float) -> list[dict]:
    out = []
    for k, held in enumerate(own_held):
        mine = [t for t in trades if t["symbol"] == k]
        closed = [t for t in mine if t["exit_reason"] != "open"]
        out.append(
            {
                "trades": len(closed),
                "return_contribution": sum(t["pnl"] for t in mine) / cash,
                "win_rate": sum(t["pnl"] > 0 for t in closed) / len(closed) if closed else 0.0,
                "exposure": sum(held) / len(held) if held else 0.0,
            }
        )
    return out


def split(o: Grid, h: Grid, l: Grid, c: Grid, entries: Grid, exits: Grid, *, cash: float, **options) -> Outcome:  # noqa: E741
    """Each symbol: the single-symbol reference on its own bars with cash / symbols."""
    n, m = len(c), len(c[0])
    share = cash / m
    equity = [0.0] * n
    held = [False] * n
    trades: list[dict] = []
    own_held = []
    for k in range(m):
        rows = [t for t in range(n) if c[t][k] is not None]
        col = [[grid[t][k] for t in rows] for grid in (o, h, l, c, entries, exits)]
        eq, tr, hd = ref.simulate(*col, cash=share, **options)
        own_held.append(hd)
        for trade in tr:
            trades.append({**trade, "symbol": k, "entry_idx": rows[trade["entry_idx"]], "exit_idx": rows[trade["exit_idx"]]})
        value, holding, j = share, False, 0
        for t in range(n):
            if j < len(rows) and rows[j] == t:
                value, holding = eq[j], hd[j]
                j += 1
            equity[t] += value
            held[t] = held[t] or holding
    return Outcome(equity, trades, held, _breakdown(trades, own_held, cash))


class _Slot:
    """One symbol's position in the shared account (what ``ref._check_stops`` needs)."""

    def __init__(self, book: _Book, k: int) -> None:
        self.book, self.k = book, k
        self.position: ref.Position | None = None

    def close(self, price: float, bar: int, reason: str) -> None:
        b, p = self.book, self.position
        assert p is not None
        fill = price * (1 - b.slippage) if p.side > 0 else price * (1 + b.slippage)
        notional = p.units * fill
        fee_paid = notional * b.fee
        if p.side > 0:
            b.cash += notional - fee_paid
        else:
            b.cash -= notional + fee_paid
        b.record(self.k, p, fill, fee_paid, bar, reason)
        self.position = None


@dataclass
class _Book:
    cash: float
    fee: float
    slippage: float
    trades: list[dict] = field(default_factory=list)

    def record(self, k: int, p: ref.Position, exit_price: float, exit_fee: float, bar: int, reason: str) -> None:
        pnl = p.side * p.units * (exit_price - p.entry_price) - p.entry_fee - exit_fee
        self.trades.append(
            {"symbol": k, "entry_idx": p.entry_idx, "exit_idx": bar, "direction": p.side, "units": p.units,
             "entry_price": p.entry_price, "exit_price": exit_price, "entry_fee": p.entry_fee,
             "exit_fee": exit_fee, "pnl": pnl, "return": pnl / (p.units * p.entry_price), "exit_reason": reason}
        )  # fmt: skip


def _want(entry: bool, exit_: bool, direction: str) -> int:
    if direction == "long":
        return 1 if entry else 0
    if direction == "both":
        return 1 if entry else -1
    return 0 if entry else -1


def shared(
    o: Grid, h: Grid, l: Grid, c: Grid, entries: Grid, exits: Grid, rank: Grid | None = None, *,  # noqa: E741
    fill: str = "next_open", direction: str = "long", fee: float = 0.0, slippage: float = 0.0, size: float = 1.0,
    cash: float = 10_000.0, stop_loss: float = 0.0, take_profit: float = 0.0, trailing_stop: float = 0.0,
    risk: float = 0.0, max_positions: int | None = None,
) -> Outcome:
    """One cash account: per timestamp, signal exits, then entries ranked (highest first)
    or in symbol order while fewer than ``max_positions`` are open, each spending
    min(equity * size / max_positions, cash); stops as for one symbol."""
    n, m = len(c), len(c[0])
    max_positions = max_positions or m
    book = _Book(cash, fee, slippage)
    slots = [_Slot(book, k) for k in range(m)]
    sizer = ref.Account(0.0, fee, slippage, size, risk, stop_loss)  # for loss_at_stop only
    last_close: list[float | None] = [None] * m
    last_row = [-1] * m
    pending: list[tuple[bool, bool, float]] = [(False, False, 0.0)] * m
    own_held: list[list[bool]] = [[] for _ in range(m)]
    equity, held = [], []

    def signal_phase(t: int, prices: Grid) -> None:
        candidates = []
        for k in range(m):
            if c[t][k] is None:
                continue
            if fill == "close":
                entry, exit_, key = entries[t][k], exits[t][k], (rank[t][k] if rank else 0.0)
            else:
                entry, exit_, key = pending[k]
            if entry == exit_:
                continue
            want = _want(entry, exit_, direction)
            side = slots[k].position.side if slots[k].position else 0
            if want == side:
                continue
            if side != 0:
                slots[k].close(prices[t][k], t, "signal")
            if want != 0:
                candidates.append((k, want, key))
        if not candidates:
            return
        value = book.cash
        for k in range(m):
            p = slots[k].position
            if p is not None:
                price = prices[t][k] if prices[t][k] is not None else last_close[k]
                value += p.side * p.units * price
        if rank:
            candidates.sort(key=lambda cand: (math.isnan(cand[2]), -cand[2] if not math.isnan(cand[2]) else 0.0))
        target = value * size / max_positions
        for k, want, _ in candidates:
            if sum(s.position is not None for s in slots) >= max_positions:
                break
            spend = min(target, book.cash)
            if spend <= 0.0:
                continue
            price = prices[t][k]
            fill_price = price * (1 + slippage) if want > 0 else price * (1 - slippage)
            units = spend / (fill_price * (1 + fee))
            if risk > 0:
                units = min(units, risk * value / sizer.loss_at_stop(want, fill_price))
            notional = units * fill_price
            fee_paid = notional * fee
            if want > 0:
                book.cash -= notional + fee_paid
            else:
                book.cash += notional - fee_paid
            slots[k].position = ref.Position(want, units, fill_price, fee_paid, t, fill_price)

    def stop_phase(t: int) -> None:
        for k in range(m):
            if c[t][k] is not None:
                ref._check_stops(slots[k], o[t][k], h[t][k], l[t][k], t, stop_loss, take_profit, trailing_stop)

    for t in range(n):
        if fill == "next_open":
            signal_phase(t, o)
            stop_phase(t)
        else:
            stop_phase(t)
            signal_phase(t, c)
        value = book.cash
        for k in range(m):
            if c[t][k] is not None:
                last_close[k], last_row[k] = c[t][k], t
                own_held[k].append(slots[k].position is not None)
                pending[k] = (entries[t][k], exits[t][k], rank[t][k] if rank else 0.0)
            p = slots[k].position
            if p is not None:
                value += p.side * p.units * last_close[k]
        equity.append(value)
        held.append(any(s.position is not None for s in slots))
    for k in range(m):
        p = slots[k].position
        if p is not None:
            book.record(k, p, last_close[k], 0.0, last_row[k], "open")
    return Outcome(equity, book.trades, held, _breakdown(book.trades, own_held, cash))
