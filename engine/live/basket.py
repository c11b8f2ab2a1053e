"""The paper-trading loop over a basket: one replay feed per symbol on one bus.

``allocation = "split"`` runs one :class:`~engine.live.loop.PaperTradingLoop` per
symbol on the shared bus, each on its share of the cash (exactly the basket
backtest's split semantics: each symbol trades alone on cash / N).
``allocation = "shared"`` runs one cash account: the feeds' bars go out on
``market.bar.<symbol>.<loop>`` one timestamp of the timeline at a time; each
symbol's handler evaluates its strategy on its own bars so far, and once every
bar of the timestamp has arrived the book acts in the basket kernel's order
(``engine/backtest/basket_nb.py::shared_nb``): signal exits, the equity taken
once, entries in symbol order up to ``max_positions``, then the stops (the other
way round under ``fill = "close"``). Fills go out on ``fills.<loop>`` (HIGH).
The book calls the kernels' own per-trade helpers, so fills and trades are the
backtest's.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.backtest.enums import (
    DIR_BOTH,
    DIR_LONG,
    DIRECTIONS,
    EXIT_OPEN,
    EXIT_REASONS,
    EXIT_SIGNAL,
    TRADE_DTYPE,
)
from engine.backtest.nb import (
    ACC_RECORDS,
    ACC_SIZE,
    _exit_nb,
    _record_trade_nb,
    _stop_nb,
    risk_per_unit_nb,
    trailing_stop_nb,
)
from engine.backtest.options import BacktestOptions
from engine.bus import HIGH, NORMAL, Event, EventBus
from engine.data.bars import Bars
from engine.data.basket import Basket, align
from engine.live.feed import ReplayFeed
from engine.live.loop import LoopConfig, PaperTradingLoop, _segment
from engine.live.records import BarRecord, Fill
from engine.live.strategy import PrefixBuffer, signals_for
from engine.strategy.core import StrategyDef


@dataclass(frozen=True, slots=True)
class BasketTrade:
    """A round trip of one symbol; ``entry_idx``/``exit_idx`` are rows of the basket's timeline."""

    symbol: str
    entry_idx: int
    exit_idx: int
    direction: int
    units: float
    entry_price: float
    exit_price: float
    entry_fee: float
    exit_fee: float
    pnl: float
    ret: float
    exit_reason: str


@dataclass(frozen=True, slots=True)
class BasketLoopResult:
    """What a finished basket replay produced: trades (closed, then the open positions, reason ``open``)."""

    allocation: str
    symbols: tuple[str, ...]
    trades: tuple[BasketTrade, ...]
    final_equity: float
    cash: float
    elapsed_s: float


def _want(entry: bool, exit_: bool, direction: int) -> int:
    if direction == DIR_LONG:
        return 1 if entry else 0
    if direction == DIR_BOTH:
        return 1 if entry else -1
    return 0 if entry else -1


class _SharedBook:
    """One cash account over the basket's symbols, acting once per timestamp (``shared_nb``'s order)."""

    def __init__(self, options: BacktestOptions, m: int, publish: Any) -> None:
        self.o = options
        self.direction = DIRECTIONS[options.direction]
        self.fill_close = options.fill == "close"
        self.max_positions = int(options.max_positions) or m
        self.risk = options.risk_fraction
        self.cash = options.cash
        self.side = [0] * m
        self.units = [0.0] * m
        self.entry_price = [0.0] * m
        self.entry_fee = [0.0] * m
        self.entry_idx = [-1] * m
        self.extreme = [0.0] * m
        self.last_close = [math.nan] * m
        self.last_row = [-1] * m
        self.pending = [(False, False)] * m
        self.open_count = 0
        self.acc = np.zeros((m, ACC_SIZE))
        self.one = np.empty(1, dtype=TRADE_DTYPE)
        self.records: list[tuple[int, Any]] = []
        self.publish = publish

    def _close(self, k: int, price: float, t: int, reason: int, bar: BarRecord) -> None:
        o = self.o
        self.acc[k, ACC_RECORDS] = 0.0  # the record goes to self.one[0]
        self.cash = float(_exit_nb(
            self.side[k], self.units[k], self.entry_price[k], self.entry_fee[k], self.entry_idx[k], price, t,
            reason, self.cash, o.fee, o.slippage, self.one, self.acc[k],
        ))  # fmt: skip
        record = self.one[0].copy()
        self.records.append((k, record))
        self.publish(Fill(0, bar.index, bar.ts, bar.symbol, -self.side[k], self.units[k], float(record["exit_price"]),
                          float(record["exit_fee"]), EXIT_REASONS[reason], False))  # type: ignore[arg-type]  # fmt: skip
        self.side[k] = 0
        self.units[k] = 0.0
        self.open_count -= 1

    def step(self, t: int, bars: dict[int, BarRecord], signals: dict[int, tuple[bool, bool]]) -> None:
        """Act on timeline row ``t``, where the symbols in ``bars`` have a bar (and ``signals`` on it)."""
        for phase in (0, 1):
            if (phase == 1) == self.fill_close:
                self._signals(t, bars, signals)
            elif self.o.stop_loss > 0.0 or self.o.take_profit > 0.0 or self.o.trailing_stop > 0.0:
                self._stops(t, bars)
        for k, bar in bars.items():
            self.last_close[k] = bar.close
            self.last_row[k] = t
            if not self.fill_close:
                self.pending[k] = signals[k]

    def _price(self, bar: BarRecord) -> float:
        return bar.close if self.fill_close else bar.open

    def _signals(self, t: int, bars: dict[int, BarRecord], signals: dict[int, tuple[bool, bool]]) -> None:
        o = self.o
        candidates: list[tuple[int, int]] = []
        for k in sorted(bars):
            entry, exit_ = signals[k] if self.fill_close else self.pending[k]
            if entry == exit_:
                continue
            want = _want(entry, exit_, self.direction)
            if want == self.side[k]:
                continue
            if self.side[k] != 0:
                self._close(k, self._price(bars[k]), t, EXIT_SIGNAL, bars[k])
            if want != 0:
                candidates.append((k, want))
        if not candidates:
            return
        value = self.cash
        for k in range(len(self.side)):
            if self.side[k] != 0:
                price = self._price(bars[k]) if k in bars else self.last_close[k]
                value += self.side[k] * self.units[k] * price
        target = value * o.size / self.max_positions
        for k, want in candidates:
            if self.open_count >= self.max_positions:
                break
            spend = min(target, self.cash)
            if spend <= 0.0:
                continue
            price = self._price(bars[k])
            fill = price * (1.0 + o.slippage) if want > 0 else price * (1.0 - o.slippage)
            amount = spend / (fill * (1.0 + o.fee))
            if self.risk > 0.0:
                amount = min(amount, self.risk * value / float(risk_per_unit_nb(want, fill, o.stop_loss, o.fee,
                                                                                  o.slippage)))  # fmt: skip
            notional = amount * fill
            fee_paid = notional * o.fee
            self.cash += -(notional + fee_paid) if want > 0 else notional - fee_paid
            self.side[k], self.units[k], self.entry_price[k], self.entry_fee[k] = want, amount, fill, fee_paid
            self.entry_idx[k] = t
            self.extreme[k] = fill
            self.open_count += 1
            bar = bars[k]
            self.publish(Fill(0, bar.index, bar.ts, bar.symbol, want, amount, fill, fee_paid, "signal", True))

    def _stops(self, t: int, bars: dict[int, BarRecord]) -> None:
        o = self.o
        for k in sorted(bars):
            bar = bars[k]
            if self.side[k] == 0:
                continue
            if self.entry_idx[k] < t:
                if o.trailing_stop > 0.0:
                    price, reason = trailing_stop_nb(
                        self.side[k], self.entry_price[k], o.stop_loss, o.take_profit, o.trailing_stop,
                        self.extreme[k], bar.open, bar.high, bar.low,
                    )  # fmt: skip
                else:
                    price, reason = _stop_nb(
                        self.side[k], self.entry_price[k], o.stop_loss, o.take_profit, bar.open, bar.high, bar.low
                    )
                if reason >= 0:
                    self._close(k, float(price), t, int(reason), bar)
                    continue
            if o.trailing_stop > 0.0:
                self.extreme[k] = max(self.extreme[k], bar.high) if self.side[k] > 0 else min(self.extreme[k], bar.low)

    def open_records(self) -> list[tuple[int, Any]]:
        """The positions still open, marked at their last close (as the backtest reports them)."""
        out = []
        for k, side in enumerate(self.side):
            if side != 0:
                self.acc[k, ACC_RECORDS] = 0.0
                _record_trade_nb(self.one, self.acc[k], side, self.units[k], self.entry_price[k], self.entry_fee[k],
                                 self.entry_idx[k], self.last_close[k], 0.0, self.last_row[k], EXIT_OPEN)  # fmt: skip
                out.append((k, self.one[0].copy()))
        return out

    def equity(self) -> float:
        return self.cash + sum(s * u * c for s, u, c in zip(self.side, self.units, self.last_close, strict=True) if s)


def _trade(symbol: str, record: Any, rows: np.ndarray | None = None) -> BasketTrade:
    def row(i: int) -> int:
        return int(rows[i]) if rows is not None else i

    return BasketTrade(
        symbol, row(int(record["entry_idx"])), row(int(record["exit_idx"])), int(record["direction"]),
        float(record["units"]), float(record["entry_price"]), float(record["exit_price"]),
        float(record["entry_fee"]), float(record["exit_fee"]), float(record["pnl"]), float(record["return"]),
        EXIT_REASONS[int(record["exit_reason"])],
    )  # fmt: skip


async def replay_basket(
    bars: Sequence[Bars] | Basket,
    strategy: str | StrategyDef,
    params: Mapping[str, Any] | None = None,
    *,
    options: BacktestOptions | None = None,
    bus: EventBus | None = None,
    name: str = "basket",
    **option_values: Any,
) -> BasketLoopResult:
    """Paper-trade ``strategy`` with the same ``params`` on every symbol of a basket, as fast as possible,
    with ``engine.backtest.run_portfolio``'s options (``allocation``, ``max_positions``, ...)."""
    basket = bars if isinstance(bars, Basket) else align(bars)
    config = BacktestOptions.of(options, **option_values)
    own_bus = bus is None
    bus = bus or EventBus()
    if own_bus:
        await bus.start()
    t0 = time.perf_counter()
    try:
        if config.allocation == "split":
            return await _split(basket, strategy, params, config, bus, _segment(name), t0)
        return await _shared(basket, strategy, params, config, bus, _segment(name), t0)
    finally:
        if own_bus:
            await bus.stop(drain=True)


async def _split(
    basket: Basket, strategy: str | StrategyDef, params: Mapping[str, Any] | None, options: BacktestOptions,
    bus: EventBus, name: str, t0: float,
) -> BasketLoopResult:
    share = BacktestOptions.of(options, cash=options.cash / basket.n_symbols)
    loops = [
        PaperTradingLoop(ReplayFeed(member), signals_for(strategy, params), LoopConfig(backtest=share), bus=bus,
                         name=f"{name}-{member.symbol}")
        for member in basket.members
    ]
    results = await asyncio.gather(*(loop.run() for loop in loops))
    trades = [
        BasketTrade(symbol, int(rows[t.entry_idx]), int(rows[t.exit_idx]), t.direction, t.units, t.entry_price,
                    t.exit_price, t.entry_fee, t.exit_fee, t.pnl, t.ret, t.exit_reason)
        for symbol, rows, result in zip(basket.symbols, basket.rows, results, strict=True)
        for t in result.trades
    ]
    return BasketLoopResult("split", basket.symbols, tuple(trades), sum(r.final_equity for r in results),
                            sum(r.cash for r in results), time.perf_counter() - t0)  # fmt: skip


async def _shared(
    basket: Basket, strategy: str | StrategyDef, params: Mapping[str, Any] | None, options: BacktestOptions,
    bus: EventBus, name: str, t0: float,
) -> BasketLoopResult:
    m = basket.n_symbols
    feeds = [ReplayFeed(member) for member in basket.members]
    sources = [signals_for(strategy, params) for _ in range(m)]
    buffers = [PrefixBuffer(max(len(member), 1_024)) for member in basket.members]
    topics = [f"market.bar.{_segment(symbol)}.{name}" for symbol in basket.symbols]
    fills_topic = f"fills.{name}"
    book = _SharedBook(options, m, lambda fill: bus.publish_nowait(fills_topic, fill, HIGH))
    index = {topic: k for k, topic in enumerate(topics)}
    arrived: dict[int, BarRecord] = {}
    signals: dict[int, tuple[bool, bool]] = {}
    waiting = 0
    row = 0
    settled = asyncio.Event()

    def on_bar(event: Event) -> None:
        nonlocal waiting
        k = index[event.topic]
        bar: BarRecord = event.payload
        buffers[k].append(bar.open, bar.high, bar.low, bar.close, bar.volume, bar.ts)
        signals[k] = sources[k].signal_at(buffers[k].view())
        arrived[k] = bar
        waiting -= 1
        if waiting == 0:
            book.step(row, arrived, signals)
            settled.set()

    subscription = bus.subscribe(f"market.bar.*.{name}", on_bar, name=f"{name}.bars")
    heads = [feed.next_now() for feed in feeds]
    try:
        while any(head is not None for head in heads):
            ts = min(head.ts for head in heads if head is not None)
            due = [k for k, head in enumerate(heads) if head is not None and head.ts == ts]
            arrived.clear()
            signals.clear()
            settled.clear()
            waiting = len(due)
            for k in due:
                bus.publish_nowait(topics[k], heads[k], NORMAL)
                heads[k] = feeds[k].next_now()
            await settled.wait()
            row += 1
    finally:
        bus.unsubscribe(subscription)
    records = book.records + book.open_records()
    trades = [_trade(basket.symbols[k], record) for k, record in records]
    return BasketLoopResult("shared", basket.symbols, tuple(trades), book.equity(), book.cash,
                            time.perf_counter() - t0)  # fmt: skip
