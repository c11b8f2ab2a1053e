"""The paper broker: fills orders with the backtester's exact fee, slippage and
sizing arithmetic (``engine/backtest/nb.py``: ``_act_nb`` and ``_exit_nb``).

- A buy fills at ``price * (1 + slippage)``, a sell at ``price * (1 - slippage)``.
- ``fee`` is a fraction of the filled notional, paid from cash on both sides.
- An entry spends ``cash * size`` fee included: ``units = cash * size / (fill * (1 + fee))``;
  no entry when cash is not positive. An exit closes the whole position.
- Moving to a new target first exits the current position, then enters at the
  same price; a target equal to the current side does nothing.
"""

from __future__ import annotations

import itertools

from engine.backtest.nb import risk_per_unit_nb
from engine.backtest.options import BacktestOptions
from engine.live.portfolio import Portfolio
from engine.live.records import ExitReason, Fill


class PaperBroker:
    """Executes target-position orders against a :class:`Portfolio`."""

    def __init__(self, portfolio: Portfolio, options: BacktestOptions) -> None:
        self.portfolio = portfolio
        self.options = options
        self.fee, self.slippage, self.size = options.fee, options.slippage, options.size
        self._ids = itertools.count(1)

    def next_order_id(self) -> int:
        return next(self._ids)

    def move_to(self, target: int, price: float, index: int, ts: int, order_id: int) -> list[Fill]:
        """Bring the position to ``target`` at ``price`` (before slippage)."""
        p = self.portfolio
        if target == p.side:
            return []
        fills: list[Fill] = []
        if p.side != 0:
            fills.append(self.exit(price, index, ts, order_id, "signal"))
        if target != 0 and p.cash > 0.0:
            slip, fee = self.slippage, self.fee
            fill = price * (1.0 + slip) if target > 0 else price * (1.0 - slip)
            units = p.cash * self.size / (fill * (1.0 + fee))
            risk = self.options.risk_fraction
            if risk > 0.0:  # a fill at the stop loses risk of the cash, as in the backtest kernel
                units = min(units, risk * p.cash / risk_per_unit_nb(target, fill, self.options.stop_loss, fee, slip))
            notional = units * fill
            fee_paid = notional * fee
            if target > 0:
                p.cash -= notional + fee_paid
            else:
                p.cash += notional - fee_paid
            p.open_position(target, units, fill, fee_paid, index)
            fills.append(
                Fill(order_id, index, ts, p.symbol, target, units, fill, fee_paid, "signal", True)
            )
        return fills

    def exit(self, price: float, index: int, ts: int, order_id: int, reason: ExitReason) -> Fill:
        """Close the whole position at ``price`` (before slippage)."""
        p = self.portfolio
        side, units = p.side, p.units
        if side > 0:
            fill = price * (1.0 - self.slippage)
            notional = units * fill
            fee_paid = notional * self.fee
            p.cash += notional - fee_paid
        else:
            fill = price * (1.0 + self.slippage)
            notional = units * fill
            fee_paid = notional * self.fee
            p.cash -= notional + fee_paid
        p.close_position(fill, fee_paid, index, reason)
        return Fill(order_id, index, ts, p.symbol, -side, units, fill, fee_paid, reason, False)
