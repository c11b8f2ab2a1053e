"""Number and time formatting shared by the panes (pure functions, no widgets)."""

from __future__ import annotations

import math
import time


def _unsigned_zero(value: float, digits: int) -> float:
    """``value``, with a figure that rounds to zero made +0.0 (no '-0.00' for a tiny negative)."""
    return round(value, digits) + 0.0


def num(value: float | None, digits: int = 2) -> str:
    """A float with fixed digits, or an em dash for missing/NaN."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{_unsigned_zero(value, digits):,.{digits}f}"


def signed(value: float | None, digits: int = 2) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{_unsigned_zero(value, digits):+,.{digits}f}"


def pct(value: float | None, digits: int = 1) -> str:
    """A fraction as a percentage (0.123 -> '12.3%')."""
    if value is None or not math.isfinite(value):
        return "—"
    return f"{_unsigned_zero(value * 100, digits):,.{digits}f}%"


#: Metrics that are fractions, shown as percentages (the backtest command's table shares them).
PERCENT_METRICS = frozenset({
    "total_return", "cagr", "volatility", "max_drawdown", "win_rate", "avg_trade", "exposure",
    "buy_hold_return", "excess_return",
})
#: Metrics that count something, shown as integers.
COUNT_METRICS = frozenset({"trades"})
#: Metrics in account currency.
MONEY_METRICS = frozenset({"final_value"})


def metric(name: str, value: float | None, digits: int = 3) -> str:
    """A metric as what it is: a count as an integer, a return or rate as a percentage,
    money with two decimals, a ratio (Sharpe, Calmar, ...) with ``digits``."""
    if value is None or not math.isfinite(value):
        return "—"
    if name in COUNT_METRICS:
        return count(value)
    if name in PERCENT_METRICS:
        return pct(value, 2)
    if name in MONEY_METRICS:
        return num(value, 2)
    return num(value, digits)


def count(value: int | float) -> str:
    """A count with thousands separators, compact above a million."""
    if abs(value) >= 10_000_000:
        return f"{value / 1e6:,.1f}M"
    return f"{int(value):,}"


def rate(value: float, unit: str = "/s") -> str:
    if value >= 100_000:
        return f"{value / 1000:,.0f}k{unit}"
    if value >= 100:
        return f"{value:,.0f}{unit}"
    return f"{value:,.1f}{unit}"


def ms(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    if value >= 10:
        return f"{value:.0f} ms"
    if value >= 0.1:
        return f"{value:.2f} ms"
    return f"{value * 1000:.0f} µs"


def seconds(value: float | None) -> str:
    """A duration: '850 ms', '12.4 s', '3m 05s', '2h 07m'."""
    if value is None or not math.isfinite(value):
        return "—"
    if value < 1:
        return ms(value * 1000)
    if value < 60:
        return f"{value:.1f} s"
    minutes, secs = divmod(int(value), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def clock(ts: float | None) -> str:
    """An epoch time as HH:MM:SS UTC."""
    if ts is None:
        return "—"
    return time.strftime("%H:%M:%S", time.gmtime(ts))


def mb(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 10_240:
        return f"{value / 1024:,.1f} GB"
    return f"{value:,.0f} MB"


def size(value: int) -> str:
    """Bytes as B/KB/MB/GB."""
    amount = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if abs(amount) < 1024 or unit == "GB":
            return f"{amount:,.0f} {unit}" if unit == "B" else f"{amount:,.1f} {unit}"
        amount /= 1024
    return f"{amount:,.1f} GB"


def param(value: object) -> str:
    """A parameter value, short."""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def params(pairs: tuple[tuple[str, object], ...]) -> str:
    return " ".join(f"{k}={param(v)}" for k, v in pairs)
