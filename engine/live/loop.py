"""The paper-trading loop: feed -> strategy -> order manager -> paper broker ->
portfolio, with a risk manager on the CRITICAL lane, all over one ``EventBus``.

One bar's life (the order mirrors ``engine/backtest/nb.py::simulate_nb``); topics
carry the loop's name (``LoopTopics``) so several loops can share a bus:

1. the feed's bar goes out on ``market.bar.<symbol>.<loop>`` (NORMAL); its handler
   a. fills the order left by the previous bar's signal at this open
      (``fill = "next_open"``),
   b. asks the risk manager for a stop-loss / take-profit on the position and
      publishes it on ``risk.<loop>.stop`` (CRITICAL),
   c. evaluates the strategy on the bars so far and publishes ``signals.<loop>`` (HIGH);
2. the stop (CRITICAL, so before any signal) closes the position;
3. the signal -> the order manager publishes ``orders.<loop>.new`` (HIGH), or
   ``orders.<loop>.rejected`` when the circuit breaker or kill switch forbids it;
4. the order -> the broker fills at this close (``fill = "close"``) or keeps it
   for the next open; fills go out on ``fills.<loop>`` (HIGH);
5. when nothing the bar caused is still in flight, the portfolio marks equity at
   the close, the risk manager may trip the drawdown breaker
   (``risk.<loop>.breaker``, CRITICAL), telemetry goes out on
   ``telemetry.paper.<loop>`` (LOW), and the feed sends the next bar.

Operator commands arrive on ``control.<loop>.pause|resume|stop|kill`` (CRITICAL).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import AsyncIterable, Mapping, Sized
from dataclasses import dataclass
from typing import Any

import msgspec

from engine.backtest.api import funding_per_bar, uses_funding
from engine.backtest.options import BacktestOptions
from engine.bus import CRITICAL, HIGH, LOW, NORMAL, Event, EventBus, Subscription
from engine.data.bars import Bars
from engine.errors import ConfigError
from engine.live.broker import PaperBroker
from engine.live.feed import ReplayFeed
from engine.live.portfolio import Portfolio
from engine.live.records import (
    BarRecord,
    Control,
    Fill,
    Order,
    RiskAction,
    Signal,
    StopTrigger,
    Trade,
)
from engine.live.risk import RiskConfig, RiskManager, RiskState
from engine.live.strategy import PrefixBuffer, SignalSource, signals_for
from engine.profile import profiler
from engine.strategy.core import StrategyDef


class LoopConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The loop's settings: the backtest options it trades with, passed on unchanged to
    the broker and the risk manager (``[paper.backtest]``), and the loop's own."""

    backtest: BacktestOptions = BacktestOptions()
    risk: RiskConfig = RiskConfig()
    equity_points: int = 2_000  # equity marks kept for the console
    recent: int = 50  # orders and fills kept for the console
    telemetry_every: int = 1  # bars between telemetry.portfolio events (0: never)

    def validate(self, where: str = "paper") -> LoopConfig:
        """The loop's own settings checked (the backtest options validate themselves)."""
        if self.equity_points < 1 or self.recent < 1 or self.telemetry_every < 0:
            raise ConfigError(
                f"{where}: equity_points and recent must be >= 1, telemetry_every >= 0"
            )
        self.risk.validate(f"{where}.risk")
        return self


_names = itertools.count(1)


def _segment(text: str) -> str:
    """``text`` as one topic segment (dots and wildcards replaced)."""
    out = "".join(c if c.isalnum() or c in "-_" else "_" for c in text.strip()) or "x"
    return out.lower()


@dataclass(frozen=True, slots=True)
class LoopTopics:
    """The bus topics of one loop: its name is part of each, so several loops can
    share a bus (observers subscribe to ``orders.#``, ``fills.*``, ``risk.#``, ...)."""

    bar: str  # market.bar.<symbol>.<loop>, NORMAL
    signal: str  # signals.<loop>, HIGH
    order: str  # orders.<loop>.new, HIGH
    rejected: str  # orders.<loop>.rejected, HIGH
    fill: str  # fills.<loop>, HIGH
    stop: str  # risk.<loop>.stop, CRITICAL
    breaker: str  # risk.<loop>.breaker, CRITICAL
    control: str  # control.<loop> (+ .pause/.resume/.stop/.kill), CRITICAL
    telemetry: str  # telemetry.paper.<loop>, LOW

    @classmethod
    def of(cls, loop: str, symbol: str) -> LoopTopics:
        return cls(
            bar=f"market.bar.{_segment(symbol)}.{loop}",
            signal=f"signals.{loop}",
            order=f"orders.{loop}.new",
            rejected=f"orders.{loop}.rejected",
            fill=f"fills.{loop}",
            stop=f"risk.{loop}.stop",
            breaker=f"risk.{loop}.breaker",
            control=f"control.{loop}",
            telemetry=f"telemetry.paper.{loop}",
        )


def load_loop_config() -> LoopConfig:
    """The ``[paper]`` table of the global config (defaults when absent), validated;
    its backtest options are in ``[paper.backtest]``, as a study's are in ``[backtest]``."""
    from engine.config import config_path, config_section

    return config_section("paper", LoopConfig).validate(f"{config_path()}: [paper]")


@dataclass(frozen=True, slots=True)
class OrderView:
    """An order as the console lists it."""

    order_id: int
    index: int
    target: int
    status: str  # "new", "pending", "filled", "rejected", "cancelled", "expired"
    detail: str = ""


@dataclass(frozen=True, slots=True)
class LoopState:
    """The loop at one moment (what the console renders)."""

    running: bool
    paused: bool
    finished: bool
    strategy: str
    symbol: str
    bars_seen: int
    bars_total: int
    last_bar_ts: int | None
    cash: float
    equity: float
    realized_pnl: float
    unrealized_pnl: float
    drawdown: float
    max_drawdown: float
    side: int
    units: float
    entry_price: float
    mark_price: float
    trades: int
    equity_curve: tuple[float, ...]
    orders: tuple[OrderView, ...]
    fills: tuple[Fill, ...]
    risk: RiskState
    elapsed_s: float
    bars_per_s: float


@dataclass(frozen=True, slots=True)
class LoopResult:
    """What a finished replay produced."""

    strategy: str
    bars: int
    trades: tuple[Trade, ...]  # closed round trips, then the open position (reason "open")
    final_equity: float
    cash: float
    elapsed_s: float
    state: LoopState

    @property
    def bars_per_s(self) -> float:
        return self.bars / self.elapsed_s if self.elapsed_s > 0 else 0.0


class PaperTradingLoop:
    """Runs ``source``'s signals over a feed through a paper broker on ``bus``.

    The loop owns the bus it creates; pass ``bus`` to share one (the loop then
    only subscribes and unsubscribes, and expects it to be running).
    """

    WATCH_S = 0.25  # how often a bar lost to a flooded NORMAL lane is looked for

    def __init__(
        self,
        feed: AsyncIterable[BarRecord],
        source: SignalSource,
        config: LoopConfig | None = None,
        *,
        bus: EventBus | None = None,
        symbol: str = "",
        bars_total: int = 0,
        name: str | None = None,
    ) -> None:
        self.config = (config or LoopConfig()).validate()
        cfg = self.config
        self.feed = feed
        self.source = source
        self.symbol = symbol or getattr(feed, "symbol", "") or "SYM"
        self.bars_total = bars_total or (len(feed) if isinstance(feed, Sized) else 0)
        self.name = _segment(name) if name else f"{_segment(source.name)}-{next(_names)}"
        self.topics = LoopTopics.of(self.name, self.symbol)
        self._own_bus = bus is None
        self.bus = bus or EventBus()
        self.portfolio = Portfolio(cfg.backtest.cash, self.symbol, cfg.equity_points)
        self.broker = PaperBroker(self.portfolio, cfg.backtest)
        self.risk = RiskManager(cfg.risk, cfg.backtest)
        self.buffer = PrefixBuffer(max(self.bars_total, 1_024))
        self._orders: deque[OrderView] = deque(maxlen=cfg.recent)
        self._fills: deque[Fill] = deque(maxlen=cfg.recent)
        self._pending: Order | None = None
        self._bar: BarRecord | None = None
        self._marked = -1
        self._outstanding = 0
        self._bar_done = asyncio.Event()
        self._bar_done.set()  # no bar in flight
        self._finished_event = asyncio.Event()
        self._pump = False
        self._held: BarRecord | None = None
        self._replay: ReplayFeed | None = None  # the feed, when the loop pulls its bars (pump mode)
        self._resume = asyncio.Event()
        self._resume.set()
        self._stop_requested = False
        self._running = False
        self._finished = False
        self._subs: list[Subscription] = []
        self._sent: BarRecord | None = None
        self._dropped_at_send = 0
        self._watchdog: asyncio.TimerHandle | None = None
        self.bars_resent = 0
        self._t0 = 0.0
        self._elapsed = 0.0
        self._bars = 0
        # Funding rates per bar, when a replayed perpetual carries them (as in the backtest).
        self._funding: list[float] | None = None
        if isinstance(feed, ReplayFeed) and uses_funding(feed.bars, cfg.backtest):
            self._funding = funding_per_bar(feed.bars).tolist()
        direction = cfg.backtest.direction
        self._want = {
            "long": {True: 1, False: 0},
            "both": {True: 1, False: -1},
            "short": {True: 0, False: -1},
        }[direction]

    # ---------------------------------------------------------------- commands
    def pause(self) -> None:
        self.bus.publish_nowait(self.topics.control + ".pause", Control("pause"), CRITICAL)

    def resume(self) -> None:
        self.bus.publish_nowait(self.topics.control + ".resume", Control("resume"), CRITICAL)

    def stop(self) -> None:
        self.bus.publish_nowait(self.topics.control + ".stop", Control("stop"), CRITICAL)

    def kill(self, reason: str = "kill switch") -> None:
        """Flatten the position at the last close and refuse every new order."""
        self.bus.publish_nowait(self.topics.control + ".kill", Control("kill", reason), CRITICAL)

    # -------------------------------------------------------------------- run
    async def run(self) -> LoopResult:
        """Replay the feed to its end (or until stopped); returns the result."""
        bus = self.bus
        if self._own_bus:
            await bus.start()
        sub = bus.subscribe
        t = self.topics
        self._subs = [
            sub(t.bar, self._on_bar, name=f"{self.name}.bar"),
            sub(t.stop, self._on_stop, name=f"{self.name}.risk_stop"),
            sub(t.breaker, self._on_breaker, name=f"{self.name}.breaker"),
            sub(t.signal, self._on_signal, name=f"{self.name}.orders"),
            sub(t.order, self._on_order, name=f"{self.name}.broker"),
            sub(t.rejected, self._on_observed, name=f"{self.name}.rejected"),
            sub(t.fill, self._on_fill, name=f"{self.name}.fills"),
            sub(t.control + ".*", self._on_control, name=f"{self.name}.control"),
        ]
        self._running = True
        self._t0 = time.perf_counter()
        topic = t.bar
        watchdog = asyncio.get_running_loop().call_later(self.WATCH_S, self._watch)
        try:
            if isinstance(self.feed, ReplayFeed) and self.feed.immediate:
                # Unpaced replay: each settled bar pulls the next one from inside the
                # dispatcher (no task switch per bar); this task only waits for the end.
                self._replay = self.feed
                self._pump = True
                with profiler.stage("live.replay"):
                    self._advance()
                    await self._finished_event.wait()
            else:
                await self._iterate(topic)
        finally:
            (self._watchdog or watchdog).cancel()
            self._elapsed = time.perf_counter() - self._t0
            self._running = False
            self._finished = True
            for s in self._subs:
                bus.unsubscribe(s)
            if self._own_bus:
                await bus.stop(drain=True)
        return self._result()

    async def _iterate(self, topic: str) -> None:
        """Paced or polled feeds: publish a bar, wait until it has settled, repeat."""
        bus = self.bus
        with profiler.stage("live.replay"):
            async for bar in self.feed:
                if not self._resume.is_set():
                    await self._resume.wait()
                if self._stop_requested:
                    break
                self._bar_done.clear()
                self._sent = bar
                self._dropped_at_send = bus.dropped(NORMAL)
                self._emit(topic, bar, NORMAL)
                await self._bar_done.wait()
                if self._stop_requested:
                    break

    def _advance(self) -> None:
        """Pump mode: publish the next bar if none is in flight, unless paused or done."""
        if not self._bar_done.is_set() or self._finished_event.is_set():
            return
        if self._stop_requested:
            self._finished_event.set()
            return
        if not self._resume.is_set():
            return  # the resume command advances
        assert self._replay is not None  # pump mode is for an unpaced replay only
        bar, self._held = self._held or self._replay.next_now(), None
        if bar is None:
            self._finished_event.set()
            return
        self._bar_done.clear()
        self._sent = bar
        self._dropped_at_send = self.bus.dropped(NORMAL)
        self._emit(self.topics.bar, bar, NORMAL)

    def _watch(self) -> None:
        """Re-send a bar that a flooded NORMAL lane dropped before its handler ran
        (a shared bus can drop the oldest market data; the loop must not hang)."""
        sent = self._sent
        if (
            self._running
            and sent is not None
            and not self._bar_done.is_set()
            and (self._bar is None or self._bar.index != sent.index)
            and self.bus.dropped(NORMAL) > self._dropped_at_send
        ):
            self.bars_resent += 1
            self._dropped_at_send = self.bus.dropped(NORMAL)
            self.bus.publish_nowait(self.topics.bar, sent, NORMAL)  # counted once already
        if self._running:
            self._watchdog = asyncio.get_running_loop().call_later(self.WATCH_S, self._watch)

    def _result(self) -> LoopResult:
        if self._pending is not None:
            self._orders.append(
                OrderView(
                    self._pending.order_id,
                    self._pending.index,
                    self._pending.target,
                    "expired",
                    "no bar left to fill on",
                )
            )
            self._pending = None
        trades = list(self.portfolio.trades)
        open_trade = self.portfolio.open_trade()
        if open_trade is not None:
            trades.append(open_trade)
        state = self.state()
        return LoopResult(
            strategy=self.source.name,
            bars=self._bars,
            trades=tuple(trades),
            final_equity=self.portfolio.equity,
            cash=self.portfolio.cash,
            elapsed_s=self._elapsed,
            state=state,
        )

    # --------------------------------------------------------------- plumbing
    def _emit(self, topic: str, payload: Any, lane: int) -> None:
        self._outstanding += 1
        try:
            self.bus.publish_nowait(topic, payload, lane)
        except Exception:
            self._outstanding -= 1
            raise

    def _settle(self) -> None:
        self._outstanding -= 1
        if self._outstanding == 0:
            self._bar_complete()

    def _bar_complete(self) -> None:
        bar = self._bar
        if bar is not None and self._marked != bar.index:
            self._marked = bar.index
            p = self.portfolio
            if self._funding is not None:  # settled at the close, after the bar's fills and stops
                p.pay_funding(bar.close, self._funding[bar.index])
            p.mark(bar.close, bar.index)
            self._bars += 1
            if self.risk.breaker_trips(p):
                detail = f"drawdown {p.drawdown:.2%} >= limit {self.risk.config.max_drawdown:.2%}"
                self._emit(
                    self.topics.breaker, RiskAction("breaker_open", bar.index, detail), CRITICAL
                )
                return
            every = self.config.telemetry_every
            if every and bar.index % every == 0:
                self.bus.publish_nowait(self.topics.telemetry, self._telemetry(bar), LOW)
        first = not self._bar_done.is_set()
        self._bar_done.set()
        if self._pump and first:
            self._advance()

    def _telemetry(self, bar: BarRecord) -> dict[str, Any]:
        p = self.portfolio
        return {
            "index": bar.index,
            "equity": p.equity,
            "cash": p.cash,
            "side": p.side,
            "drawdown": p.drawdown,
        }

    # --------------------------------------------------------------- handlers
    def _on_bar(self, ev: Event) -> None:
        try:
            bar: BarRecord = ev.payload
            if self._pump and (self._stop_requested or not self._resume.is_set()):
                # A command published while the previous bar settled takes effect
                # before this bar, as with an iterated feed: hold the bar back.
                self._held = bar
                return
            self._bar = bar
            pending = self._pending
            if pending is not None:
                self._pending = None
                self._execute(pending, bar.open, bar)
            trigger = self.risk.check_stops(bar, self.portfolio)
            if trigger is not None:
                self._emit(self.topics.stop, trigger, CRITICAL)
            else:
                self.risk.track(bar, self.portfolio)
            self.buffer.append(bar.open, bar.high, bar.low, bar.close, bar.volume, bar.ts)
            with profiler.stage("live.signal"):
                entry, exit_ = self.source.signal_at(self.buffer.view())
            if entry != exit_:
                self._emit(
                    self.topics.signal,
                    Signal(self.source.name, bar.index, entry, exit_),
                    HIGH,
                )
        finally:
            self._settle()

    def _on_stop(self, ev: Event) -> None:
        try:
            trig: StopTrigger = ev.payload
            p = self.portfolio
            if p.side != 0:
                bar = self._bar
                fill = self.broker.exit(
                    trig.price,
                    trig.index,
                    bar.ts if bar else 0,
                    self.broker.next_order_id(),
                    trig.reason,
                )
                self.risk.stops_hit += 1
                self._emit(self.topics.fill, fill, HIGH)
        finally:
            self._settle()

    def _on_breaker(self, ev: Event) -> None:
        try:
            action: RiskAction = ev.payload
            self.risk.open_breaker(action.detail)
            self._cancel_pending_if_forbidden("circuit breaker open")
        finally:
            self._settle()

    def _on_signal(self, ev: Event) -> None:
        try:
            sig: Signal = ev.payload
            p = self.portfolio
            want = self._want[sig.entry]
            if want == p.side:
                return
            allowed = self.risk.allow(want, p.side)
            order_id = self.broker.next_order_id()
            if allowed is None:
                view = OrderView(
                    order_id, sig.index, want, "rejected", self.risk.message or "halted"
                )
                self._orders.append(view)
                self._emit(self.topics.rejected, view, HIGH)
                return
            order = Order(order_id, sig.index, self.symbol, allowed, self.config.backtest.fill)
            self._emit(self.topics.order, order, HIGH)
        finally:
            self._settle()

    def _on_order(self, ev: Event) -> None:
        try:
            order: Order = ev.payload
            bar = self._bar
            if order.fill == "close" and bar is not None:
                self._execute(order, bar.close, bar)
            else:
                self._pending = order
                self._orders.append(OrderView(order.order_id, order.index, order.target, "pending"))
        finally:
            self._settle()

    def _on_observed(self, ev: Event) -> None:
        self._settle()

    def _on_fill(self, ev: Event) -> None:
        try:
            self._fills.append(ev.payload)
        finally:
            self._settle()

    def _on_control(self, ev: Event) -> None:
        command: Control = ev.payload
        if command.command == "pause":
            self._resume.clear()
        elif command.command == "resume":
            self._resume.set()
            if self._pump:
                self._advance()
        elif command.command == "stop":
            self._stop_requested = True
            self._resume.set()
            if self._pump:
                self._advance()  # ends now if no bar is in flight, else when it settles
        elif command.command == "kill":
            self._kill(command.reason or "kill switch")

    # -------------------------------------------------------------- execution
    def _execute(self, order: Order, price: float, bar: BarRecord) -> None:
        target = self.risk.allow(order.target, self.portfolio.side)
        if target is None or target == self.portfolio.side:
            status = "cancelled" if target is None else "filled"
            self._orders.append(
                OrderView(order.order_id, order.index, order.target, status, self.risk.message)
            )
            return
        fills = self.broker.move_to(target, price, bar.index, bar.ts, order.order_id)
        self._orders.append(OrderView(order.order_id, order.index, target, "filled"))
        for fill in fills:
            self._emit(self.topics.fill, fill, HIGH)

    def _cancel_pending_if_forbidden(self, why: str) -> None:
        pending = self._pending
        if pending is not None and self.risk.allow(pending.target, self.portfolio.side) is None:
            self._pending = None
            self._orders.append(
                OrderView(pending.order_id, pending.index, pending.target, "cancelled", why)
            )

    def _kill(self, reason: str) -> None:
        self.risk.kill(reason)
        p = self.portfolio
        bar = self._bar
        if p.side != 0 and bar is not None:
            fill = self.broker.exit(
                bar.close, bar.index, bar.ts, self.broker.next_order_id(), "kill"
            )
            self._emit(self.topics.fill, fill, HIGH)
            p.mark(bar.close, bar.index)
        if self._pending is not None:
            self._cancel_pending_if_forbidden(reason)
            if self._pending is not None:  # a closing order: the position is flat already
                self._pending = None

    # ------------------------------------------------------------------ state
    def state(self) -> LoopState:
        """An immutable snapshot for the console."""
        p = self.portfolio
        bar = self._bar
        elapsed = time.perf_counter() - self._t0 if self._running else self._elapsed
        return LoopState(
            running=self._running,
            paused=not self._resume.is_set(),
            finished=self._finished,
            strategy=self.source.name,
            symbol=self.symbol,
            bars_seen=self._bars,
            bars_total=self.bars_total,
            last_bar_ts=bar.ts if bar is not None else None,
            cash=p.cash,
            equity=p.equity,
            realized_pnl=p.realized_pnl,
            unrealized_pnl=p.unrealized_pnl,
            drawdown=p.drawdown,
            max_drawdown=p.max_drawdown,
            side=p.side,
            units=p.units,
            entry_price=p.entry_price if p.side else 0.0,
            mark_price=p.mark_price,
            trades=len(p.trades),
            equity_curve=tuple(p.equity_curve),
            orders=tuple(self._orders),
            fills=tuple(self._fills),
            risk=self.risk.state(),
            elapsed_s=elapsed,
            bars_per_s=self._bars / elapsed if elapsed > 0 else 0.0,
        )


async def replay(
    bars: Bars,
    strategy: str | StrategyDef,
    params: Mapping[str, Any] | None = None,
    *,
    options: BacktestOptions | None = None,
    max_drawdown: float = 0.0,
    speed: float = 0.0,
    bars_per_s: float = 0.0,
    bus: EventBus | None = None,
    **option_values: Any,
) -> LoopResult:
    """Paper-trade ``strategy`` (built in, or a user's: see :func:`signals_for`) over ``bars`` with ``engine.backtest.run``'s
    options (``options`` and/or its fields as keywords, as for ``run``), plus the
    drawdown breaker and the replay speed (0 = as fast as possible)."""
    config = LoopConfig(
        backtest=BacktestOptions.of(options, **option_values),
        risk=RiskConfig(max_drawdown=max_drawdown),
    )
    feed = ReplayFeed(bars, speed=speed, bars_per_s=bars_per_s)
    loop = PaperTradingLoop(
        feed, signals_for(strategy, params, symbol=bars.symbol, timeframe=bars.timeframe), config, bus=bus
    )
    return await loop.run()
