"""Paper-trading loop benchmark: replay speed (bars/s, as fast as possible) against
the vectorised backtest of the same strategy on the same bars, measured in the
same run. The loop recomputes the strategy's indicators over the replayed
prefix at every bar (it must not look ahead), so its cost grows with the
series; the figure is for ``N`` bars.

Run: ``python -m benchmarks.live [--quick] [--json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
from typing import Any

from engine.backtest import run as backtest_run
from engine.data import load
from engine.live import replay


def run(quick: bool = False) -> dict[str, Any]:
    """Replay ``sma_cross`` (defaults) over synthetic minute bars through the loop and the kernel."""
    n = 2_000 if quick else 10_000
    bars = load(f"synthetic:bars={n},seed=11,timeframe=1m")
    options = {
        "fee": 0.001,
        "slippage": 0.0005,
        "fill": "next_open",
        "direction": "both",
        "stop_loss": 0.02,
    }
    backtest_run(bars, "sma_cross", None, **options)  # compile and warm both paths
    asyncio.run(replay(bars.slice(0, 200), "sma_cross", None, **options))
    reps = 5 if quick else 20
    t0 = time.perf_counter()
    for _ in range(reps):
        ref = backtest_run(bars, "sma_cross", None, **options)
    vector_s = (time.perf_counter() - t0) / reps
    t0 = time.perf_counter()
    result = asyncio.run(replay(bars, "sma_cross", None, **options))
    loop_s = time.perf_counter() - t0
    same = math.isclose(result.final_equity, ref.metrics.final_value, rel_tol=1e-9)
    return {
        "live_bars": float(n),
        "live_replay_bars_per_s": n / loop_s,
        "live_vectorised_bars_per_s": n / vector_s,
        "live_replay_vs_vectorised": (n / loop_s) / (n / vector_s),
        "live_trades": float(len(result.trades)),
        "live_equals_backtest": float(same),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.live", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    figures = run(args.quick)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for key, value in figures.items():
            print(f"{key:30} {value:16,.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
