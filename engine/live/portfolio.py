"""Cash, the open position, closed trades and the equity curve of one symbol."""

from __future__ import annotations

from collections import deque

from engine.live.records import ExitReason, Trade


class Portfolio:
    """The account the paper broker books fills into. One symbol, one position.

    The equity curve keeps the last ``equity_points`` marks (bounded memory);
    peak, drawdown and the final figures are tracked exactly.
    """

    def __init__(self, cash: float, symbol: str, equity_points: int = 2_000) -> None:
        self.symbol = symbol
        self.start_cash = float(cash)
        self.cash = float(cash)
        self.side = 0
        self.units = 0.0
        self.entry_price = 0.0
        self.entry_fee = 0.0
        self.entry_idx = -1
        self.extreme = 0.0  # highest high (long) or lowest low (short) since the entry: a trailing stop's anchor
        self.trade_funding = 0.0  # funding paid by the open position so far
        self.funding_paid = 0.0
        self.trades: list[Trade] = []
        self.realized_pnl = 0.0
        self.equity_curve: deque[float] = deque(maxlen=equity_points)
        self.equity = float(cash)
        self.peak = float(cash)
        self.drawdown = 0.0
        self.max_drawdown = 0.0
        self.mark_price = 0.0
        self.mark_index = -1
        self.marks = 0

    # ------------------------------------------------------------- bookings
    def open_position(self, side: int, units: float, price: float, fee: float, index: int) -> None:
        """Book an entry (cash already moved by the broker)."""
        self.side = side
        self.units = units
        self.entry_price = price
        self.entry_fee = fee
        self.entry_idx = index
        self.extreme = price
        self.trade_funding = 0.0

    def pay_funding(self, close: float, rate: float) -> None:
        """Settle one bar's funding on the open position at ``close``, through cash
        (``side * units * close * rate``: longs pay a positive rate), as the backtest does."""
        if self.side != 0 and rate != 0.0:
            payment = self.side * self.units * close * rate
            self.cash -= payment
            self.trade_funding += payment
            self.funding_paid += payment

    def close_position(self, price: float, fee: float, index: int, reason: ExitReason) -> Trade:
        """Book the exit of the whole position and record the round trip."""
        side, units = self.side, self.units
        pnl = side * units * (price - self.entry_price) - self.entry_fee - fee - self.trade_funding
        notional = units * self.entry_price
        trade = Trade(
            entry_idx=self.entry_idx,
            exit_idx=index,
            direction=side,
            units=units,
            entry_price=self.entry_price,
            exit_price=price,
            entry_fee=self.entry_fee,
            exit_fee=fee,
            pnl=pnl,
            ret=pnl / notional if notional > 0.0 else 0.0,
            exit_reason=reason,
            funding=self.trade_funding,
        )
        if reason != "open":
            self.trades.append(trade)
            self.realized_pnl += pnl
            self.side = 0
            self.units = 0.0
        return trade

    # -------------------------------------------------------------- marking
    def mark(self, close: float, index: int) -> float:
        """Equity = cash + position marked at bar ``index``'s ``close``; updates peak and drawdown."""
        self.mark_price = close
        self.mark_index = index
        equity = self.cash + self.side * self.units * close
        self.equity = equity
        self.equity_curve.append(equity)
        self.peak = max(self.peak, equity)
        self.drawdown = 1.0 - equity / self.peak if self.peak > 0.0 else 0.0
        self.max_drawdown = max(self.max_drawdown, self.drawdown)
        self.marks += 1
        return equity

    @property
    def unrealized_pnl(self) -> float:
        if self.side == 0:
            return 0.0
        return self.side * self.units * (self.mark_price - self.entry_price)

    def open_trade(self) -> Trade | None:
        """The open position as a trade marked at the last close (no exit fee), if any."""
        if self.side == 0:
            return None
        return self.close_position(self.mark_price, 0.0, self.mark_index, "open")
