"""Slow, obviously-correct pure-Python references for the backtest kernels.

Written from ``docs/backtest.md``, not from ``nb.py``: plain lists, loops and
``math.fsum``, one event at a time. The arithmetic of fills and cash uses the
documented formulas, so the kernel should agree to rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

#: Per-bar return spread that is float rounding, not risk (docs/backtest.md, metrics).
NOISE_STD = 1e-15

NAN = float("nan")


# ----------------------------------------------------------------- indicators


def sma(x: list[float], w: int) -> list[float]:
    return [math.fsum(x[i - w + 1 : i + 1]) / w if i >= w - 1 else NAN for i in range(len(x))]


def ema(x: list[float], w: int) -> list[float]:
    out = [NAN] * len(x)
    if w > len(x):
        return out
    alpha = 2.0 / (w + 1.0)
    value = math.fsum(x[:w]) / w
    out[w - 1] = value
    for i in range(w, len(x)):
        value = alpha * x[i] + (1.0 - alpha) * value
        out[i] = value
    return out


def rsi(close: list[float], w: int) -> list[float]:
    out = [NAN] * len(close)
    if w >= len(close):
        return out
    changes = [close[i] - close[i - 1] for i in range(1, len(close))]
    gains = [max(c, 0.0) for c in changes]
    losses = [max(-c, 0.0) for c in changes]
    gain = sum(gains[:w]) / w
    loss = sum(losses[:w]) / w

    def value(g: float, lo: float) -> float:
        if lo == 0.0:
            return 100.0 if g > 0.0 else 50.0
        return 100.0 - 100.0 / (1.0 + g / lo)

    out[w] = value(gain, loss)
    for i in range(w + 1, len(close)):
        gain = (gain * (w - 1) + gains[i - 1]) / w
        loss = (loss * (w - 1) + losses[i - 1]) / w
        out[i] = value(gain, loss)
    return out


def atr(high: list[float], low: list[float], close: list[float], w: int) -> list[float]:
    n = len(close)
    tr = [high[0] - low[0]] + [
        max(high[i] - low[i], abs(high[i] - close[i - 1]), abs(low[i] - close[i - 1])) for i in range(1, n)
    ]
    out = [NAN] * n
    if w > n:
        return out
    value = sum(tr[:w]) / w
    out[w - 1] = value
    for i in range(w, n):
        value = (value * (w - 1) + tr[i]) / w
        out[i] = value
    return out


def rolling_std(x: list[float], w: int) -> list[float]:
    out = [NAN] * len(x)
    for i in range(w - 1, len(x)):
        window = x[i - w + 1 : i + 1]
        if min(window) == max(window):  # exactly 0: fsum(window) / w can miss the value by an ulp
            out[i] = 0.0
            continue
        mean = math.fsum(window) / w
        out[i] = math.sqrt(math.fsum((v - mean) ** 2 for v in window) / w)
    return out


def rolling_max(x: list[float], w: int) -> list[float]:
    return [max(x[i - w + 1 : i + 1]) if i >= w - 1 else NAN for i in range(len(x))]


def rolling_min(x: list[float], w: int) -> list[float]:
    return [min(x[i - w + 1 : i + 1]) if i >= w - 1 else NAN for i in range(len(x))]


# ----------------------------------------------------------------- signals


def crosses_above(a: list[float], b: list[float], t: int) -> bool:
    """Strict: a[t-1] < b[t-1] and a[t] > b[t] (any NaN -> False)."""
    return t > 0 and a[t - 1] < b[t - 1] and a[t] > b[t]


def crosses_below(a: list[float], b: list[float], t: int) -> bool:
    return t > 0 and a[t - 1] > b[t - 1] and a[t] < b[t]


def signals(name: str, params: dict, o, h, l, c, ind=None) -> tuple[list[bool], list[bool]]:  # noqa: E741
    """Entry/exit lists of each registered strategy, from the docs' rules.

    ``ind`` supplies the indicator functions (``sma``, ``ema``, ``rsi``,
    ``rolling_std``, ``rolling_max``, ``rolling_min``); by default the ones of
    this module. Passing the kernels' indicators tests the rules alone, exactly
    (strict comparisons of values rounded differently may legitimately differ).
    """
    import sys

    ind = ind or sys.modules[__name__]
    sma, ema, rsi, rolling_std = ind.sma, ind.ema, ind.rsi, ind.rolling_std
    rolling_max, rolling_min = ind.rolling_max, ind.rolling_min
    n = len(c)
    if name in ("sma_cross", "ema_cross"):
        ma = sma if name == "sma_cross" else ema
        fast, slow = ma(c, params["fast"]), ma(c, params["slow"])
        return (
            [crosses_above(fast, slow, t) for t in range(n)],
            [crosses_below(fast, slow, t) for t in range(n)],
        )
    if name == "rsi_reversion":
        r = rsi(c, params["window"])
        lower, upper = [params["lower"]] * n, [params["upper"]] * n
        return [crosses_below(r, lower, t) for t in range(n)], [crosses_above(r, upper, t) for t in range(n)]
    if name == "bollinger_breakout":
        mid, sd = sma(c, params["window"]), rolling_std(c, params["window"])
        upper = [m + params["k"] * s for m, s in zip(mid, sd, strict=True)]
        return [crosses_above(c, upper, t) for t in range(n)], [crosses_below(c, mid, t) for t in range(n)]
    if name == "donchian_breakout":
        hi, lo = rolling_max(h, params["window"]), rolling_min(l, params["exit_window"])
        return (
            [t > 0 and c[t] > hi[t - 1] for t in range(n)],
            [t > 0 and c[t] < lo[t - 1] for t in range(n)],
        )
    if name == "zscore_reversion":
        mid, sd = sma(c, params["window"]), rolling_std(c, params["window"])
        z = [(c[t] - mid[t]) / sd[t] if sd[t] > 0 else NAN for t in range(n)]
        lo, hi = [-params["entry_z"]] * n, [params["exit_z"]] * n
        return [crosses_below(z, lo, t) for t in range(n)], [crosses_above(z, hi, t) for t in range(n)]
    raise KeyError(name)


# ----------------------------------------------------------------- simulator


@dataclass
class Position:
    side: int  # +1 long, -1 short
    units: float
    entry_price: float
    entry_fee: float
    entry_idx: int
    extreme: float = 0.0  # highest high (long) / lowest low (short) seen while held, from the entry fill
    funding: float = 0.0  # funding paid while held (negative: received)


@dataclass
class Account:
    cash: float
    fee: float
    slippage: float
    size: float
    risk: float = 0.0
    stop_loss: float = 0.0
    position: Position | None = None
    trades: list[dict] = field(default_factory=list)

    def buy_price(self, price: float) -> float:
        return price * (1.0 + self.slippage)

    def sell_price(self, price: float) -> float:
        return price * (1.0 - self.slippage)

    def open(self, side: int, price: float, bar: int) -> None:
        if self.cash <= 0.0:
            return
        fill = self.buy_price(price) if side > 0 else self.sell_price(price)
        units = self.cash * self.size / (fill * (1.0 + self.fee))
        if self.risk > 0.0:
            units = min(units, self.cash * self.risk / self.loss_at_stop(side, fill))
        notional = units * fill
        fee_paid = notional * self.fee
        if side > 0:
            self.cash -= notional + fee_paid
        else:
            self.cash += notional - fee_paid
        self.position = Position(side, units, fill, fee_paid, bar, fill)

    def loss_at_stop(self, side: int, fill: float) -> float:
        """Loss of one unit entered at ``fill`` when the stop-loss fills at its level
        (the exit slipped, both fees paid)."""
        if side > 0:
            stop_fill = self.sell_price(fill * (1 - self.stop_loss))
            return fill * (1 + self.fee) - stop_fill * (1 - self.fee)
        stop_fill = self.buy_price(fill * (1 + self.stop_loss))
        return stop_fill * (1 + self.fee) - fill * (1 - self.fee)

    def close(self, price: float, bar: int, reason: str) -> None:
        p = self.position
        assert p is not None
        fill = self.sell_price(price) if p.side > 0 else self.buy_price(price)
        notional = p.units * fill
        fee_paid = notional * self.fee
        if p.side > 0:
            self.cash += notional - fee_paid
        else:
            self.cash -= notional + fee_paid
        self._record(p, fill, fee_paid, bar, reason)
        self.position = None

    def _record(self, p: Position, exit_price: float, exit_fee: float, bar: int, reason: str) -> None:
        pnl = p.side * p.units * (exit_price - p.entry_price) - p.entry_fee - exit_fee - p.funding
        self.trades.append(
            {
                "entry_idx": p.entry_idx,
                "exit_idx": bar,
                "direction": p.side,
                "units": p.units,
                "entry_price": p.entry_price,
                "exit_price": exit_price,
                "entry_fee": p.entry_fee,
                "exit_fee": exit_fee,
                "pnl": pnl,
                "return": pnl / (p.units * p.entry_price),
                "exit_reason": reason,
                "funding": p.funding,
            }
        )

    def side(self) -> int:
        return 0 if self.position is None else self.position.side

    def equity(self, close: float) -> float:
        p = self.position
        if p is None:
            return self.cash
        return self.cash + p.units * close if p.side > 0 else self.cash - p.units * close


def _on_signal(acct: Account, entry: bool, exit_: bool, direction: str, price: float, bar: int) -> None:
    if (entry and exit_) or not (entry or exit_):
        return
    side = acct.side()
    if direction == "long":
        if entry and side == 0:
            acct.open(+1, price, bar)
        elif exit_ and side == +1:
            acct.close(price, bar, "signal")
    elif direction == "short":
        if exit_ and side == 0:
            acct.open(-1, price, bar)
        elif entry and side == -1:
            acct.close(price, bar, "signal")
    else:  # both: reverse
        want = +1 if entry else -1
        if side == want:
            return
        if side != 0:
            acct.close(price, bar, "signal")
        acct.open(want, price, bar)


def _check_stops(
    acct: Account, o: float, h: float, l: float, bar: int, sl: float, tp: float, trail: float = 0.0  # noqa: E741
) -> None:
    p = acct.position
    if p is None:
        return
    if p.entry_idx < bar:
        # The stop: the fixed one, or the trailing one when it is tighter (fixed wins a tie).
        if p.side > 0:
            stops = [(p.entry_price * (1 - sl), "stop_loss")] if sl > 0 else []
            if trail > 0:
                stops.append((p.extreme * (1 - trail), "trailing_stop"))
            stop = max(stops, key=lambda s: s[0]) if stops else None  # max() keeps the first of equals
            if stop is not None and l <= stop[0]:
                acct.close(min(o, stop[0]), bar, stop[1])
            elif tp > 0 and h >= p.entry_price * (1 + tp):
                acct.close(max(o, p.entry_price * (1 + tp)), bar, "take_profit")
        else:
            stops = [(p.entry_price * (1 + sl), "stop_loss")] if sl > 0 else []
            if trail > 0:
                stops.append((p.extreme * (1 + trail), "trailing_stop"))
            stop = min(stops, key=lambda s: s[0]) if stops else None
            if stop is not None and h >= stop[0]:
                acct.close(max(o, stop[0]), bar, stop[1])
            elif tp > 0 and l <= p.entry_price * (1 - tp):
                acct.close(min(o, p.entry_price * (1 - tp)), bar, "take_profit")
    p = acct.position
    if p is not None:  # this bar's high (low) moves the trailing anchor for the next bars
        p.extreme = max(p.extreme, h) if p.side > 0 else min(p.extreme, l)


def simulate(
    o, h, l, c, entries, exits, *,  # noqa: E741
    fill="next_open", direction="long", fee=0.0, slippage=0.0, size=1.0, cash=10_000.0,
    stop_loss=0.0, take_profit=0.0, trailing_stop=0.0, risk=0.0,
    closes=None, events=(),
) -> tuple[list[float], list[dict], list[bool]]:
    """(equity per bar, trades incl. a final open one, position held at each close)
    following docs/backtest.md.

    Funding: ``closes`` (each bar's close time) and ``events`` ((time, rate) pairs).
    An event is settled at the last close at or before it, on the position held
    there, at that close: the holder pays side * units * close * rate. Events
    before the first close or after the last one are outside the bars."""
    acct = Account(cash, fee, slippage, size, risk, stop_loss)
    equity = []
    held = []
    for i in range(len(c)):
        if fill == "next_open" and i > 0:
            _on_signal(acct, entries[i - 1], exits[i - 1], direction, o[i], i)
        _check_stops(acct, o[i], h[i], l[i], i, stop_loss, take_profit, trailing_stop)
        if fill == "close":
            _on_signal(acct, entries[i], exits[i], direction, c[i], i)
        if acct.position is not None and closes is not None:
            p = acct.position
            for when, rate in events:
                last_close = max((k for k in range(len(c)) if closes[k] <= when), default=None)
                if last_close == i and when <= closes[-1]:
                    payment = p.side * p.units * c[i] * rate
                    acct.cash -= payment
                    p.funding += payment
        equity.append(acct.equity(c[i]))
        held.append(acct.position is not None)
    if acct.position is not None:
        acct._record(acct.position, c[-1], 0.0, len(c) - 1, "open")
    return equity, acct.trades, held


def metrics(
    equity: list[float], cash: float, trades: list[dict], held: list[bool], periods_per_year: float
) -> dict:
    """The metrics table of docs/backtest.md, with numpy-free plain formulas."""
    n = len(equity)
    prev = [cash, *equity[:-1]]
    r = [e / p - 1.0 if p > 0 else 0.0 for e, p in zip(equity, prev, strict=True)]
    mean = sum(r) / n
    std = math.sqrt(sum((x - mean) ** 2 for x in r) / (n - 1)) if n > 1 else 0.0
    std = std if std > NOISE_STD else 0.0  # rounding noise of an unchanged equity (docs/backtest.md)
    downside = math.sqrt(sum(min(x, 0.0) ** 2 for x in r) / n)
    downside = downside if downside > NOISE_STD else 0.0
    ann = math.sqrt(periods_per_year)
    final = equity[-1]
    growth = final / cash
    cagr = -1.0 if growth <= 0 else growth ** (periods_per_year / n) - 1.0
    peak, mdd = cash, 0.0
    for e in equity:
        peak = max(peak, e)
        mdd = max(mdd, 1.0 - e / peak)
    closed = [t for t in trades if t["exit_reason"] != "open"]
    wins = [t for t in closed if t["pnl"] > 0]
    gross_profit = sum(t["pnl"] for t in wins)
    gross_loss = -sum(t["pnl"] for t in closed if t["pnl"] <= 0)
    return {
        "final_value": final,
        "total_return": growth - 1.0,
        "cagr": cagr,
        "volatility": std * ann,
        "sharpe": mean / std * ann if std > 0 else 0.0,
        "sortino": mean / downside * ann if downside > 0 else 0.0,
        "max_drawdown": mdd,
        "calmar": cagr / mdd if mdd > 0 else 0.0,
        "trades": len(closed),
        "win_rate": len(wins) / len(closed) if closed else 0.0,
        "profit_factor": (gross_profit / gross_loss) if gross_loss > 0 else (math.inf if gross_profit > 0 else 0.0),
        "avg_trade": sum(t["return"] for t in closed) / len(closed) if closed else 0.0,
        "exposure": sum(held) / n,
        "funding_paid": sum(t.get("funding", 0.0) for t in trades),
    }
