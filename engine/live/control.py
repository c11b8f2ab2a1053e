"""The control surface a host drives a paper loop through: one symbol's loop or a basket's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from engine.live.basket import BasketState
from engine.live.loop import LoopState
from engine.live.risk import RiskState


class PaperStatus(Protocol):
    """What a host reads of a loop's state to decide whether to replay it again."""

    @property
    def running(self) -> bool: ...
    @property
    def paused(self) -> bool: ...
    @property
    def risk(self) -> RiskState: ...


class PaperOutcome(Protocol):
    """A finished replay, as a host logs it."""

    @property
    def bars(self) -> int: ...
    @property
    def trades(self) -> Sequence[object]: ...
    @property
    def final_equity(self) -> float: ...
    @property
    def state(self) -> PaperStatus: ...


class PaperLoop(Protocol):
    """:class:`~engine.live.loop.PaperTradingLoop` and :class:`~engine.live.basket.BasketPaperLoop`."""

    async def run(self) -> PaperOutcome: ...
    def state(self) -> LoopState | BasketState: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def stop(self) -> None: ...
    def kill(self, reason: str = ...) -> None: ...
