"""Bar feeds: a replay of ``Bars`` at a chosen speed (or as fast as possible), and
a polling feed of closed exchange candles (Hyperliquid).

A feed is an async iterator of :class:`BarRecord`; the loop publishes each bar
on the NORMAL lane and waits until the bar's consequences (signals, orders,
fills, risk actions) are settled before asking for the next one, so a replay
at any speed produces the same trades.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from engine.data.bars import Bars
from engine.data.timeframes import timeframe_seconds
from engine.errors import ConfigError, GenesisError
from engine.live.records import BarRecord


class ReplayFeed:
    """Replays ``bars``. ``speed`` is a multiple of real time (``60`` plays a 1m bar
    per second); ``bars_per_s`` sets the rate directly; neither (or 0) means as fast
    as possible."""

    def __init__(self, bars: Bars, *, speed: float = 0.0, bars_per_s: float = 0.0) -> None:
        if speed < 0 or bars_per_s < 0:
            raise ConfigError(
                f"feed: speed and bars_per_s must be >= 0, got {speed!r}, {bars_per_s!r}"
            )
        self.bars = bars
        if bars_per_s > 0:
            self.interval_s = 1.0 / bars_per_s
        elif speed > 0:
            self.interval_s = timeframe_seconds(bars.timeframe) / speed
        else:
            self.interval_s = 0.0
        self.symbol = bars.symbol
        self.position = 0  # next bar to emit
        self._cols: list[list[Any]] | None = None

    def __len__(self) -> int:
        return len(self.bars.close)

    @property
    def immediate(self) -> bool:
        """Unpaced: the loop may pull bars with :meth:`next_now` instead of iterating."""
        return self.interval_s == 0.0

    def next_now(self) -> BarRecord | None:
        """The next bar without waiting (``None`` at the end)."""
        if self._cols is None:
            b = self.bars
            self._cols = [a.tolist() for a in (b.ts, b.open, b.high, b.low, b.close, b.volume)]
        i = self.position
        ts, o, h, lo, c, v = self._cols
        if i >= len(c):
            return None
        self.position = i + 1
        return BarRecord(i, ts[i], o[i], h[i], lo[i], c[i], v[i], self.symbol, i == len(c) - 1)

    async def __aiter__(self) -> AsyncIterator[BarRecord]:
        b = self.bars
        ts, o, h, lo, c, v = (a.tolist() for a in (b.ts, b.open, b.high, b.low, b.close, b.volume))
        n = len(c)
        symbol = self.symbol
        interval = self.interval_s
        t0 = time.perf_counter()
        start = self.position
        for i in range(start, n):
            if interval > 0.0:
                delay = t0 + (i - start) * interval - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            self.position = i + 1
            yield BarRecord(i, ts[i], o[i], h[i], lo[i], c[i], v[i], symbol, i == n - 1)


class PollingFeed:
    """Closed exchange candles, polled: first the last ``history`` closed candles (the
    strategy's warm-up), then each newly closed candle as it appears.

    ``source`` is an open :class:`engine.data.hyperliquid.HyperliquidSource` (its
    tiered cache answers repeated ranges locally). A candle is emitted once, only
    after its interval has ended. Fetch failures are counted (``errors``,
    ``last_error``) and retried at the next poll; ``max_bars`` ends the feed.
    """

    def __init__(
        self,
        source: Any,
        coin: str,
        interval: str = "1m",
        *,
        history: int = 500,
        poll_s: float | None = None,
        max_bars: int | None = None,
        clock: Callable[[], int] | None = None,
    ) -> None:
        from engine.data.cache import interval_bounds_ms, now_ms

        shortest, longest = interval_bounds_ms(interval)
        if shortest != longest:
            raise ConfigError(f"feed: interval {interval!r}: polling needs a fixed-length interval")
        if history < 0:
            raise ConfigError(f"feed: history must be >= 0, got {history}")
        self.source = source
        self.symbol = coin
        self.interval = interval
        self.step_ms = shortest
        self.history = history
        self.poll_s = poll_s if poll_s is not None else min(30.0, max(1.0, shortest / 4_000))
        self.max_bars = max_bars
        self.clock = clock or now_ms
        self.errors = 0
        self.last_error = ""
        self.emitted = 0

    async def _closed(self, start_ms: int, now: int) -> Bars | None:
        end = now // self.step_ms * self.step_ms  # the open time of the candle still forming
        if end <= start_ms:
            return None
        try:
            return await self.source.fetch_candles(
                self.symbol, self.interval, start_ms, end, now=now
            )
        except GenesisError as error:  # NetworkError, DataError: try again at the next poll
            self.errors += 1
            self.last_error = str(error)
            return None

    async def __aiter__(self) -> AsyncIterator[BarRecord]:
        now = self.clock()
        next_ms = (now // self.step_ms - self.history) * self.step_ms
        while self.max_bars is None or self.emitted < self.max_bars:
            bars = await self._closed(next_ms, now)
            if bars is not None and len(bars.close):
                ts = bars.ts.tolist()
                cols = [
                    a.tolist() for a in (bars.open, bars.high, bars.low, bars.close, bars.volume)
                ]
                for i, t in enumerate(ts):
                    t_ms = t // 1_000_000
                    if t_ms < next_ms:
                        continue
                    next_ms = t_ms + self.step_ms
                    yield BarRecord(
                        self.emitted,
                        t,
                        cols[0][i],
                        cols[1][i],
                        cols[2][i],
                        cols[3][i],
                        cols[4][i],
                        self.symbol,
                    )
                    self.emitted += 1
                    if self.max_bars is not None and self.emitted >= self.max_bars:
                        return
            await asyncio.sleep(self.poll_s)
            now = self.clock()
