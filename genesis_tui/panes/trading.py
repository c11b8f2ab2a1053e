"""Trading pane: the paper account, positions, equity curve, orders and fills, risk state;
for a basket, one row per symbol and the portfolio's equity."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal

from engine.telemetry import OrderRow, TradingTelemetry
from genesis_tui import format as fmt
from genesis_tui.panes._base import Pane, section, set_title
from genesis_tui.widgets import LineChart, RowTable, Stat

ORDER_COLUMNS = ("time", "bar", "id", "symbol", "side", "units", "price", "status")
ORDER_FIGURES = ("bar", "id", "units", "price")
#: Left out (symbol first) before the status is cut ("filled (stop_loss)"): the loop trades one
#: symbol, named in the Positions title, and the time says when better than the bar index.
ORDER_OPTIONAL = ("bar", "symbol")
#: A basket's orders and fills need their symbol more than their bar index.
BASKET_ORDER_OPTIONAL = ("symbol", "bar")


def _order_rows(orders: tuple[OrderRow, ...]) -> list[tuple[str, ...]]:
    return [
        (fmt.clock(o.ts), fmt.count(o.bar), str(o.order_id), o.symbol, o.side, fmt.num(o.units, 4),
         fmt.num(o.price, 2), o.status)
        for o in reversed(orders)
    ]


class TradingPane(Pane):
    """The paper-trading loop."""

    TITLE = "Trading"
    PART = "trading"
    NOT_RUNNING = "paper loop not running (t or ctrl+p → 'Toggle paper loop')"

    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="stats"):
            yield Stat("equity", id="tr-equity")
            yield Stat("cash", id="tr-cash")
            yield Stat("realized P&L", id="tr-pnl")
            yield Stat("drawdown", id="tr-dd")
            yield Stat("risk", id="tr-risk")
        with section("Positions", id="positions-box"):
            yield RowTable(
                "symbol", "units", "avg price", "mark", "unrealized",
                right=("units", "avg price", "mark", "unrealized"), zebra=False, id="positions",
            )
            # a basket's symbols, under its open positions; hidden for one symbol (its view is unchanged)
            symbols = RowTable(
                "symbol", "trades", "realized", "contribution", "position",
                right=("trades", "realized", "contribution", "position"), zebra=False, id="paper-symbols",
            )
            symbols.display = False
            yield symbols
        with section("Equity", id="paper-equity-box"):
            yield LineChart(colors=("chart-1",), empty="equity: waiting for bars", id="paper-equity")
        with section("Orders", id="orders-box"):
            yield RowTable(*ORDER_COLUMNS, right=ORDER_FIGURES, optional=ORDER_OPTIONAL, id="orders")
        with section("Fills", id="fills-box"):
            yield RowTable(*ORDER_COLUMNS, right=ORDER_FIGURES, optional=ORDER_OPTIONAL, id="fills")

    def render_part(self, tr: TradingTelemetry) -> None:
        loop = "running" if tr.running else "paused"
        # the bar count goes in the equity box's title: beside the loop state it was cut at 80 columns
        self.query_one("#tr-equity", Stat).set(fmt.num(tr.equity), loop, state="ok" if tr.running else "off")
        equity = "Portfolio equity" if tr.symbols else "Equity"
        set_title(self.query_one("#paper-equity-box"), f"{equity} · {fmt.count(tr.bars_seen)} bars")
        self.query_one("#tr-cash", Stat).set(fmt.num(tr.cash))
        self.query_one("#tr-pnl", Stat).set(fmt.signed(tr.realized_pnl), state="ok" if tr.realized_pnl >= 0 else "bad")
        self.query_one("#tr-dd", Stat).set(fmt.pct(tr.drawdown), state="warn" if tr.drawdown > 0.1 else "")
        if tr.kill_switch:
            self.query_one("#tr-risk", Stat).set("KILL SWITCH", tr.risk_message, state="bad")
        else:
            breaker = tr.circuit_breaker
            self.query_one("#tr-risk", Stat).set(
                f"breaker {breaker}", tr.risk_message, state="ok" if breaker == "closed" else "warn"
            )
        set_title(self.query_one("#positions-box"), f"Positions · {tr.strategy} on {tr.symbol}")
        self.query_one("#positions", RowTable).set_rows(
            [
                (p.symbol, fmt.num(p.units, 4), fmt.num(p.avg_price), fmt.num(p.mark), fmt.signed(p.unrealized_pnl))
                for p in tr.positions
            ],
        )
        symbols = self.query_one("#paper-symbols", RowTable)
        symbols.display = bool(tr.symbols)
        symbols.set_rows(
            [
                (r.symbol, fmt.count(r.trades), fmt.signed(r.realized_pnl), fmt.pct(r.contribution, 2),
                 fmt.num(r.position, 4))
                for r in tr.symbols
            ],
        )  # fmt: skip
        self.query_one("#paper-equity", LineChart).set_series(tr.equity_curve)
        optional = BASKET_ORDER_OPTIONAL if tr.symbols else ORDER_OPTIONAL
        for name, rows in (("#orders", tr.orders), ("#fills", tr.fills)):
            table = self.query_one(name, RowTable)
            table.set_optional(optional)
            table.set_rows(_order_rows(rows))
