"""A backtest's trades on the price: candles, overlays, markers, the trades table and breakdowns."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, TabbedContent, TabPane

from genesis_tui import format as fmt
from genesis_tui.widgets import CandleChart, LineChart, RowTable
from genesis_tui.widgets._candles import OVERLAY_COLORS

if TYPE_CHECKING:
    from engine.backtest.inspect import BreakdownRow, TradeInspection

TRADE_COLUMNS = ("entry", "exit", "bars", "side", "P&L", "return", "exit reason")
BREAKDOWN_COLUMNS = ("trades", "win", "P&L", "avg")
EQUITY_POINTS = 1_000  # the equity chart's points (a 1M-bar curve is thinned to this)


def time_format(ts: np.ndarray, timeframe: str) -> str:
    """How a trade's time reads: the date for daily bars, else month-day and time (with
    the year only when the data spans more than one)."""
    if timeframe.endswith(("d", "w", "M")):
        return "%Y-%m-%d"
    years = {str(np.datetime64(int(t), "ns").astype("datetime64[Y]")) for t in (ts[0], ts[-1])} if len(ts) else set()
    return "%m-%d %H:%M" if len(years) <= 1 else "%Y-%m-%d %H:%M"


def format_time(ts_ns: int, pattern: str) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts_ns / 1e9, tz=dt.UTC).strftime(pattern)


def thin(series: np.ndarray, points: int = EQUITY_POINTS) -> tuple[float, ...]:
    """At most ``points`` values, evenly spaced, the last one kept."""
    if len(series) <= points:
        return tuple(float(v) for v in series)
    index = np.linspace(0, len(series) - 1, points).round().astype(np.int64)
    return tuple(float(v) for v in series[index])


def _breakdown_rows(rows: tuple[BreakdownRow, ...]) -> list[tuple[str, ...]]:
    return [(r.label, fmt.count(r.trades), fmt.pct(r.win_rate, 0), fmt.signed(r.pnl), fmt.pct(r.avg_return, 2))
            for r in rows]  # fmt: skip


class TradesScreen(ModalScreen[None]):
    """One backtest's trades: ``+``/``-`` zoom, arrows scroll, enter on a trade shows it, escape closes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "dismiss", "Close"),
        # The chart's keys work wherever the focus is (the trades table keeps up/down/enter).
        Binding("plus,equals_sign", "chart('zoom(0.5)')", "Zoom in", priority=True),
        Binding("minus", "chart('zoom(2)')", "Zoom out", priority=True),
        Binding("left", "chart('scroll_bars(-1)')", "Earlier", priority=True, show=False),
        Binding("right", "chart('scroll_bars(1)')", "Later", priority=True, show=False),
        Binding("home", "chart('to_edge(-1)')", "First bars", priority=True, show=False),
        Binding("end", "chart('to_edge(1)')", "Last bars", priority=True, show=False),
        Binding("t", "tab('trades')", "Trades"),
        Binding("e", "tab('equity')", "Equity"),
        Binding("m", "tab('months')", "By month"),
        Binding("x", "tab('exits')", "By exit reason"),
    ]

    AUTO_FOCUS = "#trades-table"

    DEFAULT_CSS = """
    TradesScreen #trades-body {
        width: 100%;
        height: 100%;
        border: thick $accent;
        background: $surface;
        padding: 0 1;
    }
    TradesScreen #trades-summary { width: 100%; height: auto; }
    TradesScreen #trades-candles { height: 1fr; min-height: 6; }
    TradesScreen #trades-tabs { height: 45%; min-height: 8; }
    TradesScreen #trades-tabs TabPane { padding: 0; }
    TradesScreen #trades-tabs RowTable { max-height: 100%; }
    """

    def __init__(self, inspection: TradeInspection) -> None:
        super().__init__()
        self.inspection = inspection
        self._time = time_format(inspection.ts, inspection.timeframe)
        # Held here: the tabs mount their panes' children after this screen's on_mount.
        self._table = RowTable(*self._columns(), right=("bars", "P&L", "return"), cursor=True, id="trades-table")
        self._equity = LineChart(colors=("chart-1", "chart-2"), empty="no equity", id="trades-equity")
        self._months = RowTable("month", *BREAKDOWN_COLUMNS, right=BREAKDOWN_COLUMNS, id="trades-months")
        self._reasons = RowTable("exit reason", *BREAKDOWN_COLUMNS, right=BREAKDOWN_COLUMNS, id="trades-reasons")

    def compose(self) -> ComposeResult:
        i = self.inspection
        with Vertical(id="trades-body") as body:
            body.border_title = i.title
            body.border_subtitle = "+/- zoom · ←/→ scroll · enter: show trade · t/e/m/x · esc"
            yield Label(self._summary(), id="trades-summary")
            yield CandleChart(id="trades-candles")
            with TabbedContent(id="trades-tabs"):
                with TabPane(f"trades ({fmt.count(len(i.trades))})", id="trades"):
                    yield self._table
                with TabPane("equity", id="equity"):
                    yield self._equity
                with TabPane("by month", id="months"):
                    yield self._months
                with TabPane("by exit reason", id="exits"):
                    yield self._reasons

    def _columns(self) -> tuple[str, ...]:
        """The trades table's header (no side column when every trade is on one side)."""
        one_side = len({t.side for t in self.inspection.trades}) <= 1
        return tuple(c for c in TRADE_COLUMNS if not (one_side and c == "side"))

    def _summary(self) -> str:
        i = self.inspection
        n = len(i.ts)
        span = f" · {format_time(int(i.ts[0]), '%Y-%m-%d')} → {format_time(int(i.ts[-1]), '%Y-%m-%d')}" if n else ""
        total = dict(i.metrics).get("total_return", 0.0)
        sides = sorted({t.side for t in i.trades})
        lines = [
            f"{i.symbol} {i.timeframe} · {fmt.count(n)} bars{span}" + (f" · {sides[0]} only" if len(sides) == 1 else ""),
            f"return {fmt.pct(total, 2)} · buy & hold {fmt.pct(i.buy_and_hold_return, 2)} · "
            f"excess {'+' if i.excess_return > 0 else ''}{fmt.pct(i.excess_return, 2)}",
        ]
        if i.overlays:
            lines[0] += " · " + "  ".join(
                f"[${OVERLAY_COLORS[n % len(OVERLAY_COLORS)]}]─ {name}[/]" for n, (name, _) in enumerate(i.overlays)
            )
        if i.source:
            lines.append(f"strategy file {i.source}")
        return "\n".join(lines)

    def on_mount(self) -> None:
        i = self.inspection
        chart = self.query_one(CandleChart)
        chart.set_bars(
            i.ts, i.open, i.high, i.low, i.close, overlays=i.overlays,
            entries=[t.entry for t in i.trades], exits=[t.exit for t in i.trades],
        )  # fmt: skip
        table = self._table
        with_side = "side" in table.columns
        table.set_rows(
            [
                (format_time(t.entry_ts, self._time), format_time(t.exit_ts, self._time),
                 fmt.count(t.exit - t.entry), *((t.side,) if with_side else ()), fmt.signed(t.pnl),
                 fmt.pct(t.ret, 2), t.reason)
                for t in i.trades
            ],
            keys=[str(n) for n in range(len(i.trades))],
        )  # fmt: skip
        self._equity.set_series(thin(i.equity), thin(i.benchmark), labels=("strategy", "buy & hold"))
        self._months.set_rows(_breakdown_rows(i.by_month))
        self._reasons.set_rows(_breakdown_rows(i.by_reason))

    async def action_chart(self, action: str) -> None:
        await self.query_one(CandleChart).run_action(action)

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    @on(RowTable.RowSelected, "#trades-table")
    def _trade_selected(self, event: RowTable.RowSelected) -> None:
        self.show_trade(event.index)

    def show_trade(self, index: int) -> None:
        """Centre the chart on trade ``index`` (0-based) and highlight it."""
        trade = self.inspection.trades[index]
        self.query_one(CandleChart).show_range(trade.entry, trade.exit)
