"""The records the paper-trading loop puts on the bus (immutable ``msgspec`` structs).

Each loop's topics carry its name (see ``loop.LoopTopics``): ``market.bar.<symbol>.<loop>``
(NORMAL), ``signals.<loop>``, ``orders.<loop>.new``, ``orders.<loop>.rejected``,
``fills.<loop>`` (HIGH), ``risk.<loop>.stop``, ``risk.<loop>.breaker``,
``control.<loop>.<command>`` (CRITICAL), ``telemetry.paper.<loop>`` (LOW).
"""

from __future__ import annotations

from typing import Literal

import msgspec

ExitReason = Literal["signal", "stop_loss", "take_profit", "open", "trailing_stop", "kill"]
#: The kernel's codes (``engine.backtest.enums.EXIT_*``), and one of the loop's own.
EXIT_REASON_CODES: dict[str, int] = {
    "signal": 0,
    "stop_loss": 1,
    "take_profit": 2,
    "open": 3,
    "trailing_stop": 4,
    "kill": 5,
}


class BarRecord(msgspec.Struct, frozen=True, gc=False):
    """One bar of the feed (``index`` counts from 0 within the replay)."""

    index: int
    ts: int  # ns UTC
    open: float
    high: float
    low: float
    close: float
    volume: float
    symbol: str
    last: bool = False  # no bar follows (a replay's final bar)


class Signal(msgspec.Struct, frozen=True, gc=False):
    """A strategy's entry/exit signals evaluated on bar ``index``'s close."""

    strategy: str
    index: int
    entry: bool
    exit: bool


class Order(msgspec.Struct, frozen=True, gc=False):
    """Move the position to ``target`` (+1 long, 0 flat, -1 short)."""

    order_id: int
    index: int  # bar whose signal created it
    symbol: str
    target: int
    fill: Literal["next_open", "close"]
    reason: ExitReason = "signal"


class Fill(msgspec.Struct, frozen=True, gc=False):
    """One execution: ``side`` +1 buys, -1 sells; ``price`` includes slippage."""

    order_id: int
    index: int  # bar it filled on
    ts: int
    symbol: str
    side: int
    units: float
    price: float
    fee: float
    reason: ExitReason
    opens: bool  # True for an entry, False for an exit


class Trade(msgspec.Struct, frozen=True, gc=False):
    """A round trip, with the same fields as the backtester's ``TRADE_DTYPE``."""

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
    exit_reason: ExitReason
    funding: float = 0.0  # funding paid while open (negative: received), already in pnl


class StopTrigger(msgspec.Struct, frozen=True, gc=False):
    """The risk manager's order to close a position at ``price`` (before slippage)."""

    index: int
    price: float
    reason: Literal["stop_loss", "take_profit", "trailing_stop"]


class RiskAction(msgspec.Struct, frozen=True, gc=False):
    """A risk state change: the circuit breaker tripping or the kill switch."""

    action: Literal["breaker_open", "breaker_closed", "kill"]
    index: int
    detail: str


class Control(msgspec.Struct, frozen=True, gc=False):
    """An operator command: pause, resume, stop, kill."""

    command: Literal["pause", "resume", "stop", "kill"]
    reason: str = ""
