"""Paper-trading loop benchmark: replay speed (bars/s, as fast as possible) of
``sma_cross`` (defaults) over 100,000 synthetic minute bars, against references
measured in the same run:

- the vectorised backtest of the same strategy on the same bars (``engine.backtest.run``);
- the bus's bare throughput with a trivial handler: events published in bursts
  (the bus's best case), and events chained one at a time (each handler call
  publishes the next, the way an unpaced replay pulls its next bar), since a
  bar is at least one event and usually two (the bar, its telemetry);
- the loop with a strategy that never signals (feed, bus, broker, portfolio,
  telemetry: the loop's own ceiling).

It also reports what the streaming strategy adapter (``RegistrySignals``) costs
per bar for every registered strategy, outside the loop, and checks that the
replay's trades and final equity equal the backtest's.

Run: ``python -m benchmarks.live [--quick] [--json]`` (quick: 20,000 bars, one
repetition). Timings on a shared machine are noisy: each figure is the best of
a few repetitions, and ``load_average_1m`` records how busy the machine was.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Callable
from typing import Any

from benchmarks.suite import module_main
from engine.backtest import STRATEGIES, BacktestOptions
from engine.backtest import run as backtest_run
from engine.bus import NORMAL, EventBus
from engine.data import Bars, load
from engine.live import (
    LoopConfig,
    PaperTradingLoop,
    PrefixBuffer,
    RegistrySignals,
    ReplayFeed,
)

STRATEGY = "sma_cross"
OPTIONS: dict[str, Any] = {
    "fee": 0.001,
    "slippage": 0.0005,
    "fill": "next_open",
    "direction": "both",
    "stop_loss": 0.02,
}
BURST = 256  # events per burst in the bare-bus figure


def _best(reps: int, measure: Callable[[], float]) -> float:
    """The shortest of ``reps`` timings (seconds): the least disturbed one."""
    return min(measure() for _ in range(reps))


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


class _Never:
    """A strategy that never signals: what the loop costs without one."""

    name = "never"

    def signal_at(self, prefix: Any) -> tuple[bool, bool]:
        return False, False


def _config() -> LoopConfig:
    return LoopConfig(BacktestOptions(**OPTIONS))


def _replay(bars: Bars, source: Any) -> Any:
    loop = PaperTradingLoop(ReplayFeed(bars), source, _config())
    return asyncio.run(loop.run())


async def _bus_burst(n: int) -> float:
    """Seconds for ``n`` events published in bursts on NORMAL, trivial handler."""
    bus = EventBus()
    count = [0]

    def handler(ev: object) -> None:
        count[0] += 1

    bus.subscribe("bench.bar", handler)
    await bus.start()
    publish = bus.publish_nowait
    depth = bus.depth
    sleep = asyncio.sleep
    t0 = time.perf_counter()
    for _ in range(n // BURST):
        for i in range(BURST):
            publish("bench.bar", i, NORMAL)
        await sleep(0)
        while depth() > 4 * BURST:  # keep the lane from dropping
            await sleep(0)
    await bus.join()
    elapsed = time.perf_counter() - t0
    await bus.stop()
    assert count[0] == (n // BURST) * BURST and bus.dropped(NORMAL) == 0, "bus lost events"
    return elapsed


async def _bus_chained(n: int) -> float:
    """Seconds for ``n`` events on NORMAL where each handler call publishes the next."""
    bus = EventBus()
    done = asyncio.Event()
    publish = bus.publish_nowait

    def handler(ev: Any) -> None:
        i = ev.payload + 1
        if i < n:
            publish("bench.bar", i, NORMAL)
        else:
            done.set()

    bus.subscribe("bench.bar", handler)
    await bus.start()
    t0 = time.perf_counter()
    publish("bench.bar", 0, NORMAL)
    await done.wait()
    elapsed = time.perf_counter() - t0
    await bus.stop()
    return elapsed


def _adapter_ns(bars: Bars, strategy: str, reps: int) -> float:
    """The adapter's cost per bar (ns): the loop's buffer and ``signal_at`` on each
    new bar, less the buffer alone."""
    cols = [c.tolist() for c in (bars.open, bars.high, bars.low, bars.close, bars.volume)]
    rows = list(zip(*cols, strict=True))
    n = len(rows)

    def with_signal() -> None:
        source = RegistrySignals(strategy)
        buf = PrefixBuffer(n)
        append, view, signal_at = buf.append, buf.view, source.signal_at
        for row in rows:
            append(*row)
            signal_at(view())

    def buffer_only() -> None:
        buf = PrefixBuffer(n)
        append, view = buf.append, buf.view
        for row in rows:
            append(*row)
            view()

    total = _best(reps, lambda: _timed(with_signal))
    base = _best(reps, lambda: _timed(buffer_only))
    return max(total - base, 0.0) / n * 1e9


def run(quick: bool = False) -> dict[str, Any]:
    """Replay ``sma_cross`` (defaults) through the loop; references from the same run."""
    n = 20_000 if quick else 100_000
    reps = 1 if quick else 3
    bars = load(f"synthetic:bars={n},seed=11,timeframe=1m")

    # Warm up: compile the kernels and the streaming twins, touch every code path.
    ref = backtest_run(bars, STRATEGY, None, **OPTIONS)
    _replay(bars.slice(0, 300), RegistrySignals(STRATEGY))
    asyncio.run(_bus_burst(2 * BURST))
    asyncio.run(_bus_chained(100))

    vector_s = _best(
        3 * reps, lambda: _timed(lambda: backtest_run(bars, STRATEGY, None, **OPTIONS))
    )
    result: list[Any] = []

    def replay_once() -> None:
        result[:] = [_replay(bars, RegistrySignals(STRATEGY))]

    loop_s = _best(reps, lambda: _timed(replay_once))
    never_s = _best(reps, lambda: _timed(lambda: _replay(bars, _Never())))
    burst_s = _best(reps, lambda: asyncio.run(_bus_burst(n)))
    chained_s = _best(reps, lambda: asyncio.run(_bus_chained(n)))
    adapter = {
        name: _adapter_ns(bars.slice(0, min(n, 20_000)), name, reps) for name in sorted(STRATEGIES)
    }

    replay = result[0]
    closed = [t for t in replay.trades if t.exit_reason != "open"]
    same = math.isclose(replay.final_equity, ref.metrics.final_value, rel_tol=1e-9) and len(
        closed
    ) == int(ref.metrics.trades)
    loop_bps = n / loop_s
    return {
        "live_bars": float(n),
        "live_strategy": STRATEGY,
        "live_replay_bars_per_s": loop_bps,
        "live_vectorised_bars_per_s": n / vector_s,
        "live_replay_vs_vectorised": loop_bps / (n / vector_s),
        "live_bus_burst_events_per_s": n / burst_s,
        "live_replay_vs_bus_burst": loop_bps / (n / burst_s),
        "live_bus_chained_events_per_s": n / chained_s,
        "live_replay_vs_bus_chained": loop_bps / (n / chained_s),
        "live_no_signal_replay_bars_per_s": n / never_s,
        "live_replay_vs_no_signal": loop_bps / (n / never_s),
        "live_strategy_us_per_bar_in_loop": max(loop_s - never_s, 0.0) / n * 1e6,
        "live_adapter_ns_per_bar": adapter,
        "live_trades": float(len(replay.trades)),
        "live_equals_backtest": same,
        "load_average_1m": os.getloadavg()[0],
    }


def main(argv: list[str] | None = None) -> int:
    return module_main(run, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    raise SystemExit(main())
