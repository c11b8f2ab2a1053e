"""The paper-trading loop over a basket: one replay feed per symbol on one bus
(:class:`BasketPaperLoop`, which the console hosts; :func:`replay_basket` runs one to the end).

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
import itertools
import math
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import msgspec
import numpy as np

from engine.backtest.enums import (
    DIR_BOTH,
    DIR_LONG,
    DIRECTIONS,
    EXIT_OPEN,
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
from engine.live.loop import LoopConfig, LoopState, PaperTradingLoop, _segment
from engine.live.records import EXIT_REASON_CODES, BarRecord, Fill
from engine.live.risk import RiskManager, RiskState
from engine.live.strategy import PrefixBuffer, signals_for
from engine.strategy.core import StrategyDef

#: Exit reason names by code: the kernel's, then the loop's own ``kill``.
_REASONS: tuple[str, ...] = tuple(sorted(EXIT_REASON_CODES, key=EXIT_REASON_CODES.__getitem__))
_KILL = EXIT_REASON_CODES["kill"]


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
class BasketMember:
    """One symbol of a running basket: its position and what it has earned so far."""

    symbol: str
    side: int
    units: float
    entry_price: float
    mark_price: float
    unrealized_pnl: float
    trades: int  # closed round trips
    realized_pnl: float


@dataclass(frozen=True, slots=True)
class BasketState:
    """The basket loop at one moment (what the console renders); ``bars_seen`` counts timeline rows
    (under ``split``, the furthest symbol's bars)."""

    running: bool
    paused: bool
    finished: bool
    strategy: str
    allocation: str
    bars_seen: int
    bars_total: int
    last_bar_ts: int | None
    start_cash: float
    cash: float
    equity: float
    realized_pnl: float
    drawdown: float
    equity_curve: tuple[float, ...]
    members: tuple[BasketMember, ...]
    fills: tuple[Fill, ...]
    risk: RiskState
    elapsed_s: float


@dataclass(frozen=True, slots=True)
class BasketLoopResult:
    """What a finished basket replay produced: trades (closed, then the open positions, reason ``open``)."""

    allocation: str
    symbols: tuple[str, ...]
    trades: tuple[BasketTrade, ...]
    final_equity: float
    cash: float
    elapsed_s: float
    bars: int
    state: BasketState


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
        self.last_bar: list[BarRecord | None] = [None] * m
        self.realized = [0.0] * m
        self.closed = [0] * m
        self.halted = False  # the kill switch: exits only
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
        self.realized[k] += float(record["pnl"])
        self.closed[k] += 1
        self.publish(Fill(0, bar.index, bar.ts, bar.symbol, -self.side[k], self.units[k], float(record["exit_price"]),
                          float(record["exit_fee"]), _REASONS[reason], False))  # type: ignore[arg-type]  # fmt: skip
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
            self.last_bar[k] = bar
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
            if want != 0 and not self.halted:
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

    def kill(self) -> None:
        """Close every open position at its last close and take no more entries."""
        self.halted = True
        for k, side in enumerate(self.side):
            bar = self.last_bar[k]
            if side != 0 and bar is not None:
                self._close(k, self.last_close[k], self.last_row[k], _KILL, bar)

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
        _REASONS[int(record["exit_reason"])],
    )  # fmt: skip


_names = itertools.count(1)


class BasketPaperLoop:
    """Paper-trades one strategy with the same parameters on every symbol of a basket, on one bus.

    The control surface of :class:`~engine.live.loop.PaperTradingLoop` (``run``, ``state``,
    ``pause``, ``resume``, ``kill``, ``stop``), so the engine's paper host drives either.
    ``bars_per_s`` paces the replay (timeline rows a second under ``shared``, each symbol's
    bars under ``split``); 0 replays as fast as possible. The loop owns the bus it creates.
    """

    def __init__(
        self,
        bars: Sequence[Bars] | Basket,
        strategy: str | StrategyDef,
        params: Mapping[str, Any] | None = None,
        config: LoopConfig | None = None,
        *,
        bus: EventBus | None = None,
        name: str | None = None,
        bars_per_s: float = 0.0,
    ) -> None:
        self.basket = bars if isinstance(bars, Basket) else align(bars)
        self.config = (config or LoopConfig()).validate()
        self.options = self.config.backtest
        self.allocation = self.options.allocation
        self.name = _segment(name) if name else f"basket-{next(_names)}"
        self._own_bus = bus is None
        self.bus = bus or EventBus()
        self._strategy = strategy
        self._params = params
        self._interval = 1.0 / bars_per_s if bars_per_s > 0 else 0.0
        self.strategy = signals_for(strategy, params).name
        self._resume = asyncio.Event()
        self._resume.set()
        self._stop_requested = False
        self._running = False
        self._finished = False
        self._t0 = 0.0
        self._elapsed = 0.0
        self._rows = 0
        self._last_ts: int | None = None
        self._peak = self.options.cash
        self._drawdown = 0.0
        self._curve: deque[float] = deque(maxlen=self.config.equity_points)
        self._fills: deque[Fill] = deque(maxlen=self.config.recent)
        self.risk = RiskManager(self.config.risk, self.options)
        self.book: _SharedBook | None = None
        self.loops: list[PaperTradingLoop] = []
        if self.allocation == "split":
            share = msgspec.structs.replace(
                self.config, backtest=BacktestOptions.of(self.options, cash=self.options.cash / self.basket.n_symbols)
            )
            self.loops = [
                PaperTradingLoop(ReplayFeed(member, bars_per_s=bars_per_s), signals_for(strategy, params), share,
                                 bus=self.bus, name=f"{self.name}-{member.symbol}")
                for member in self.basket.members
            ]  # fmt: skip
        else:
            self.book = _SharedBook(self.options, self.basket.n_symbols, self._publish_fill)

    # ---------------------------------------------------------------- commands
    def pause(self) -> None:
        self._resume.clear()
        for loop in self.loops:
            loop.pause()

    def resume(self) -> None:
        self._resume.set()
        for loop in self.loops:
            loop.resume()

    def stop(self) -> None:
        self._stop_requested = True
        self._resume.set()
        for loop in self.loops:
            loop.stop()

    def kill(self, reason: str = "kill switch") -> None:
        """Flatten every position at its last close and refuse every new entry."""
        self.risk.kill(reason)
        for loop in self.loops:
            loop.kill(reason)
        if self.book is not None:
            self.book.kill()
            self._mark()

    # -------------------------------------------------------------------- run
    async def run(self) -> BasketLoopResult:
        """Replay the basket to its end (or until stopped); returns the result."""
        if self._own_bus:
            await self.bus.start()
        self._running = True
        self._t0 = time.perf_counter()
        try:
            if self.loops:
                results = await asyncio.gather(*(loop.run() for loop in self.loops))
                trades = self._split_trades(results)
            else:
                await self._run_shared()
                assert self.book is not None  # made for "shared" in __init__
                records = self.book.records + self.book.open_records()
                trades = [_trade(self.basket.symbols[k], record) for k, record in records]
        finally:
            self._elapsed = time.perf_counter() - self._t0
            self._running = False
            self._finished = True
            if self._own_bus:
                await self.bus.stop(drain=True)
        state = self.state()
        return BasketLoopResult(self.allocation, self.basket.symbols, tuple(trades), state.equity, state.cash,
                                self._elapsed, state.bars_seen, state)  # fmt: skip

    def _split_trades(self, results: Sequence[Any]) -> list[BasketTrade]:
        basket = self.basket
        return [
            BasketTrade(symbol, int(rows[t.entry_idx]), int(rows[t.exit_idx]), t.direction, t.units, t.entry_price,
                        t.exit_price, t.entry_fee, t.exit_fee, t.pnl, t.ret, t.exit_reason)
            for symbol, rows, result in zip(basket.symbols, basket.rows, results, strict=True)
            for t in result.trades
        ]  # fmt: skip

    def _publish_fill(self, fill: Fill) -> None:
        self._fills.append(fill)
        self.bus.publish_nowait(f"fills.{self.name}", fill, HIGH)

    def _mark(self) -> None:
        assert self.book is not None
        equity = self.book.equity()
        self._curve.append(equity)
        self._peak = max(self._peak, equity)
        self._drawdown = 1.0 - equity / self._peak if self._peak > 0.0 else 0.0

    async def _run_shared(self) -> None:
        """One timestamp of the timeline at a time: its bars out on the bus, the book acting once all arrived."""
        basket, bus, name, book = self.basket, self.bus, self.name, self.book
        assert book is not None
        m = basket.n_symbols
        feeds = [ReplayFeed(member) for member in basket.members]
        sources = [signals_for(self._strategy, self._params) for _ in range(m)]
        buffers = [PrefixBuffer(max(len(member), 1_024)) for member in basket.members]
        topics = [f"market.bar.{_segment(symbol)}.{name}" for symbol in basket.symbols]
        index = {topic: k for k, topic in enumerate(topics)}
        arrived: dict[int, BarRecord] = {}
        signals: dict[int, tuple[bool, bool]] = {}
        waiting = 0
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
                book.step(self._rows, arrived, signals)
                settled.set()

        subscription = bus.subscribe(f"market.bar.*.{name}", on_bar, name=f"{name}.bars")
        heads = [feed.next_now() for feed in feeds]
        due = time.perf_counter()
        try:
            while any(head is not None for head in heads):
                if self._interval:
                    delay = due - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                if not self._resume.is_set():
                    await self._resume.wait()
                    due = time.perf_counter()  # a pause does not bunch up the rows behind it
                if self._stop_requested:
                    break
                due += self._interval
                ts = min(head.ts for head in heads if head is not None)
                now = [k for k, head in enumerate(heads) if head is not None and head.ts == ts]
                arrived.clear()
                signals.clear()
                settled.clear()
                waiting = len(now)
                for k in now:
                    bus.publish_nowait(topics[k], heads[k], NORMAL)
                    heads[k] = feeds[k].next_now()
                await settled.wait()
                self._rows += 1
                self._last_ts = ts
                self._mark()
        finally:
            bus.unsubscribe(subscription)

    # ------------------------------------------------------------------ state
    def state(self) -> BasketState:
        """An immutable snapshot for the console."""
        elapsed = time.perf_counter() - self._t0 if self._running else self._elapsed
        if self.loops:
            return self._split_state([loop.state() for loop in self.loops], elapsed)
        book = self.book
        assert book is not None
        members = tuple(
            BasketMember(
                symbol, book.side[k], book.units[k] if book.side[k] else 0.0,
                book.entry_price[k] if book.side[k] else 0.0, book.last_close[k],
                book.side[k] * book.units[k] * (book.last_close[k] - book.entry_price[k]) if book.side[k] else 0.0,
                book.closed[k], book.realized[k],
            )
            for k, symbol in enumerate(self.basket.symbols)
        )  # fmt: skip
        return BasketState(
            running=self._running, paused=not self._resume.is_set(), finished=self._finished,
            strategy=self.strategy, allocation=self.allocation, bars_seen=self._rows,
            bars_total=len(self.basket), last_bar_ts=self._last_ts, start_cash=self.options.cash,
            cash=book.cash, equity=book.equity(), realized_pnl=sum(book.realized), drawdown=self._drawdown,
            equity_curve=tuple(self._curve), members=members, fills=tuple(self._fills), risk=self.risk.state(),
            elapsed_s=elapsed,
        )  # fmt: skip

    def _split_state(self, states: list[LoopState], elapsed: float) -> BasketState:
        # Each symbol marks only its own bars: the portfolio curve sums the symbols' latest marks.
        n = min(len(s.equity_curve) for s in states)
        curve = tuple(sum(vals) for vals in zip(*(s.equity_curve[len(s.equity_curve) - n:] for s in states),
                                                     strict=True)) if n else ()  # fmt: skip
        equity = sum(s.equity for s in states)
        peak = max((*curve, self.options.cash))
        fills = sorted((f for s in states for f in s.fills), key=lambda f: f.ts)[-self.config.recent :]
        risks = [s.risk for s in states]
        message = next((r.message for r in risks if r.message), "")
        risk = replace(
            risks[0], kill_switch=any(r.kill_switch for r in risks), halted=any(r.halted for r in risks),
            breaker="open" if any(r.breaker == "open" for r in risks) else "closed", message=message,
            stops_hit=sum(r.stops_hit for r in risks),
        )  # fmt: skip
        stamps = [s.last_bar_ts for s in states if s.last_bar_ts is not None]
        members = tuple(
            BasketMember(symbol, s.side, s.units if s.side else 0.0, s.entry_price, s.mark_price, s.unrealized_pnl,
                         s.trades, s.realized_pnl)
            for symbol, s in zip(self.basket.symbols, states, strict=True)
        )  # fmt: skip
        return BasketState(
            running=any(s.running for s in states), paused=not self._resume.is_set(),
            finished=self._finished or all(s.finished for s in states), strategy=self.strategy,
            allocation=self.allocation, bars_seen=max(s.bars_seen for s in states), bars_total=len(self.basket),
            last_bar_ts=max(stamps) if stamps else None, start_cash=self.options.cash,
            cash=sum(s.cash for s in states), equity=equity, realized_pnl=sum(s.realized_pnl for s in states),
            drawdown=1.0 - equity / peak if peak > 0.0 else 0.0, equity_curve=curve, members=members,
            fills=tuple(fills), risk=risk, elapsed_s=elapsed,
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
    config = LoopConfig(backtest=BacktestOptions.of(options, **option_values))
    return await BasketPaperLoop(bars, strategy, params, config, bus=bus, name=name).run()
