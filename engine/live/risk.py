"""The risk manager: per-position stop-loss / take-profit, a max-drawdown circuit
breaker that halts new orders, and a kill switch (flatten and halt).

Stops follow the backtester exactly: a position entered on an earlier bar is
checked against this bar's low/high; a long's stop at ``entry * (1 - stop_loss)``
fills at ``min(open, stop)`` (a gap through the stop fills at the open), the
take-profit at ``max(open, entry * (1 + take_profit))``; mirrored for shorts; the
stop wins when both are touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import msgspec

from engine.backtest.enums import EXIT_STOP_LOSS, EXIT_TAKE_PROFIT, EXIT_TRAILING_STOP
from engine.backtest.nb import trailing_stop_nb
from engine.backtest.options import BacktestOptions
from engine.errors import ConfigError
from engine.live.portfolio import Portfolio
from engine.live.records import BarRecord, StopTrigger

_STOP_REASONS: dict[int, Literal["stop_loss", "take_profit", "trailing_stop"]] = {
    EXIT_STOP_LOSS: "stop_loss", EXIT_TAKE_PROFIT: "take_profit", EXIT_TRAILING_STOP: "trailing_stop",
}  # the kernel's exit codes of its stop checks


class RiskConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The loop's own risk limits (0 disables a limit). Stop-loss and take-profit are
    backtest options (``BacktestOptions.stop_loss``/``take_profit``), as in a backtest."""

    max_drawdown: float = 0.0  # fraction below the equity peak that trips the breaker

    def validate(self, where: str = "risk") -> RiskConfig:
        if not 0.0 <= self.max_drawdown < 1.0:
            raise ConfigError(f"{where}.max_drawdown: expected a fraction in [0, 1), got {self.max_drawdown!r}")
        return self


@dataclass(frozen=True, slots=True)
class RiskState:
    """The risk manager at one moment."""

    breaker: Literal["closed", "open"]
    kill_switch: bool
    halted: bool
    message: str
    drawdown: float
    max_drawdown_limit: float
    stops_hit: int


class RiskManager:
    """Decides stop exits and whether new orders may open exposure."""

    def __init__(self, config: RiskConfig, options: BacktestOptions) -> None:
        self.config = config.validate()
        self.options = options
        self.breaker: Literal["closed", "open"] = "closed"
        self.kill_switch = False
        self.message = ""
        self.stops_hit = 0
        self.drawdown = 0.0

    @property
    def halted(self) -> bool:
        """No order may open or increase exposure."""
        return self.breaker == "open" or self.kill_switch

    def check_stops(self, bar: BarRecord, p: Portfolio) -> StopTrigger | None:
        """A stop, trailing stop or take-profit exit on ``bar`` for a position entered before it."""
        sl, tp = self.options.stop_loss, self.options.take_profit
        if p.side == 0 or p.entry_idx >= bar.index or not self.options.checks_stops:
            return None
        if self.options.trailing_stop > 0.0:
            return self._check_trailing(bar, p)
        entry = p.entry_price
        if p.side > 0:
            if sl > 0.0:
                stop = entry * (1.0 - sl)
                if bar.low <= stop:
                    return StopTrigger(bar.index, min(bar.open, stop), "stop_loss")
            if tp > 0.0:
                target = entry * (1.0 + tp)
                if bar.high >= target:
                    return StopTrigger(bar.index, max(bar.open, target), "take_profit")
        else:
            if sl > 0.0:
                stop = entry * (1.0 + sl)
                if bar.high >= stop:
                    return StopTrigger(bar.index, max(bar.open, stop), "stop_loss")
            if tp > 0.0:
                target = entry * (1.0 - tp)
                if bar.low <= target:
                    return StopTrigger(bar.index, min(bar.open, target), "take_profit")
        return None

    def _check_trailing(self, bar: BarRecord, p: Portfolio) -> StopTrigger | None:
        # The backtest kernel's own rule (the tighter of the fixed and the trailing
        # stop, the fixed one on a tie; the gap and same-bar rules of the fixed stop).
        o = self.options
        price, reason = trailing_stop_nb(
            p.side, p.entry_price, o.stop_loss, o.take_profit, o.trailing_stop, p.extreme, bar.open, bar.high, bar.low
        )
        return None if reason < 0 else StopTrigger(bar.index, price, _STOP_REASONS[int(reason)])

    def track(self, bar: BarRecord, p: Portfolio) -> None:
        """After this bar's stop check: its high (a long) or low (a short) moves the trailing stop."""
        if self.options.trailing_stop > 0.0 and p.side != 0:
            p.extreme = max(p.extreme, bar.high) if p.side > 0 else min(p.extreme, bar.low)

    def breaker_trips(self, p: Portfolio) -> bool:
        """Whether the drawdown after the latest mark newly trips the breaker."""
        self.drawdown = p.drawdown
        limit = self.config.max_drawdown
        return limit > 0.0 and self.breaker == "closed" and p.drawdown >= limit

    def open_breaker(self, detail: str) -> None:
        self.breaker = "open"
        self.message = detail

    def reset_breaker(self) -> None:
        self.breaker = "closed"
        self.message = ""

    def kill(self, detail: str) -> None:
        self.kill_switch = True
        self.message = detail

    def allow(self, target: int, side: int) -> int | None:
        """The target an order may have: unchanged, reduced to flat while halted, or
        ``None`` (refused: it would only open exposure)."""
        if not self.halted:
            return target
        if side != 0 and target != side:
            return 0  # closing is always allowed
        return None

    def state(self) -> RiskState:
        return RiskState(
            breaker=self.breaker,
            kill_switch=self.kill_switch,
            halted=self.halted,
            message=self.message,
            drawdown=self.drawdown,
            max_drawdown_limit=self.config.max_drawdown,
            stops_hit=self.stops_hit,
        )
