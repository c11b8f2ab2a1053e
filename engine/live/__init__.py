"""The paper-trading loop: a bar feed, a strategy, an order manager, a paper broker
with the backtester's fill semantics, a portfolio and a risk manager, on one EventBus."""

from __future__ import annotations

from engine.live.basket import (
    BasketLoopResult,
    BasketMember,
    BasketPaperLoop,
    BasketState,
    BasketTrade,
    replay_basket,
)
from engine.live.broker import PaperBroker
from engine.live.control import PaperLoop, PaperOutcome, PaperStatus
from engine.live.feed import PollingFeed, ReplayFeed
from engine.live.loop import (
    LoopConfig,
    LoopResult,
    LoopState,
    LoopTopics,
    OrderView,
    PaperTradingLoop,
    load_loop_config,
    replay,
)
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
from engine.live.strategy import (
    ArraySignals,
    PrefixBuffer,
    RegistrySignals,
    RuleSignals,
    SignalSource,
    UserSignals,
    signals_for,
)

__all__ = [
    "ArraySignals",
    "BarRecord",
    "BasketLoopResult",
    "BasketMember",
    "BasketPaperLoop",
    "BasketState",
    "BasketTrade",
    "Control",
    "Fill",
    "LoopConfig",
    "LoopResult",
    "LoopState",
    "LoopTopics",
    "Order",
    "OrderView",
    "PaperBroker",
    "PaperLoop",
    "PaperOutcome",
    "PaperStatus",
    "PaperTradingLoop",
    "PollingFeed",
    "Portfolio",
    "PrefixBuffer",
    "RegistrySignals",
    "ReplayFeed",
    "RiskAction",
    "RiskConfig",
    "RiskManager",
    "RiskState",
    "RuleSignals",
    "Signal",
    "SignalSource",
    "StopTrigger",
    "Trade",
    "UserSignals",
    "load_loop_config",
    "replay",
    "replay_basket",
    "signals_for",
]
