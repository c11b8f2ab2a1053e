"""Bar feeds: a replay of ``Bars`` at a chosen speed (or as fast as possible).

A feed is an async iterator of :class:`BarRecord`; the loop publishes each bar
on the NORMAL lane and waits until the bar's consequences (signals, orders,
fills, risk actions) are settled before asking for the next one, so a replay
at any speed produces the same trades.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from engine.data.bars import Bars
from engine.data.timeframes import timeframe_seconds
from engine.errors import ConfigError
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

    def __len__(self) -> int:
        return len(self.bars.close)

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
