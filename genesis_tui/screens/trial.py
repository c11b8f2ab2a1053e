"""One trial: its parameters, metrics, equity curve, a basket's symbols and its trades."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Label

from engine.telemetry import TrialDetail
from genesis_tui import format as fmt
from genesis_tui.widgets import LineChart, RowTable

SYMBOL_COLUMNS = ("symbol", "trades", "return", "win rate", "exposure")
TRADE_COLUMNS = ("entry bar", "exit bar", "side", "entry px", "exit px", "units", "P&L", "return")


class TrialScreen(ModalScreen[None]):
    """The detail of one trial; escape closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "dismiss", "Close"),
        Binding("t", "trades", "Trades on the chart"),
    ]

    def __init__(self, detail: TrialDetail) -> None:
        super().__init__()
        self.detail = detail

    def compose(self) -> ComposeResult:
        d = self.detail
        with Vertical(id="trial-body") as body:
            body.border_title = f"{d.study} · trial #{d.number} · {d.objective} {fmt.metric(d.objective, d.value, 4)}"
            body.border_subtitle = "t: trades on the chart · escape to close"
            yield Label(f"{d.state} · {fmt.params(d.params)}" + (f" · {d.note}" if d.note else ""), id="trial-summary")
            if d.strategy:
                yield Label(f"strategy file {d.strategy}", id="trial-strategy")
            with Horizontal(id="trial-top"):
                yield RowTable("name", "value", right=("value",), id="trial-metrics")
                yield LineChart("equity", colors=("chart-1",), empty="no equity curve stored", id="trial-equity")
            if d.symbols:
                yield RowTable(*SYMBOL_COLUMNS, right=SYMBOL_COLUMNS[1:], id="trial-symbols")
            yield RowTable(*TRADE_COLUMNS, right=TRADE_COLUMNS[:2] + TRADE_COLUMNS[3:], id="trial-trades")

    def on_mount(self) -> None:
        d = self.detail
        self.query_one("#trial-metrics", RowTable).set_rows(
            [(k, fmt.param(v)) for k, v in d.params] + [(k, fmt.metric(k, v)) for k, v in d.metrics]
        )
        self.query_one("#trial-equity", LineChart).set_series(d.equity)
        if d.symbols:  # a basket trial: each symbol's share of the portfolio
            table = self.query_one("#trial-symbols", RowTable)
            table.set_rows([
                (r.symbol, fmt.count(r.trades), fmt.pct(r.return_contribution, 2), fmt.pct(r.win_rate, 1),
                 fmt.pct(r.exposure, 1))
                for r in d.symbols
            ])
            table.border_title = f"{len(d.symbols)} symbols (return: each one's P&L over the portfolio's cash)"
        trades = self.query_one("#trial-trades", RowTable)
        trades.set_rows(
            [
                (fmt.count(t.entry), fmt.count(t.exit), t.side, fmt.num(t.entry_price), fmt.num(t.exit_price),
                 fmt.num(t.units, 4), fmt.signed(t.pnl), fmt.pct(t.ret, 2))
                for t in d.trades
            ]
        )
        trades.border_title = f"{len(d.trades)} trades"

    async def action_trades(self) -> None:
        """Re-run this trial and open its trades on the price chart (the app's action)."""
        await self.run_action(f"app.inspect_trial({self.detail.number})")
