"""Soak test of the event bus (not part of the test run): bursts to all four lanes
for a while, then checks the guarantees.

- no CRITICAL event lost: every one published is delivered, once, in order;
- per lane ``dropped == published - delivered`` once drained (and the live
  invariant ``published == delivered + dropped + depth`` at every sample);
- resident memory flat: the growth between the end of the warm-up and the end
  stays under a few MB, while the lanes' high-water marks stay within their caps.

Run: ``python -m benchmarks.bus_soak [--seconds 60] [--json]``; exit code 1 when
a guarantee fails.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import time
from typing import Any

import psutil

from engine.bus import BusConfig, Event, EventBus, Lane, LaneConfig, LaneFullError


def _spin(ns: int) -> None:
    end = time.perf_counter_ns() + ns
    while time.perf_counter_ns() < end:
        pass


async def soak(seconds: float, seed: int = 1) -> dict[str, Any]:
    rng = random.Random(seed)
    cfg = BusConfig(
        critical=LaneConfig(capacity=1_024, policy="block"),
        high=LaneConfig(capacity=4_096, policy="block_timeout", weight=64, timeout_s=0.05),
        normal=LaneConfig(capacity=16_384, policy="drop_oldest", weight=32),
        low=LaneConfig(capacity=4_096, policy="drop_newest", weight=8),
    )
    bus = EventBus(cfg)
    critical = {"next": 0, "in_order": True}  # a counter, not a list: the harness must not grow
    counts = [0, 0, 0, 0]

    def on_critical(ev: Event) -> None:
        if ev.payload != critical["next"]:
            critical["in_order"] = False
        critical["next"] = ev.payload + 1

    def on_any(ev: Event) -> None:
        counts[ev.lane] += 1
        if ev.lane == Lane.NORMAL:
            _spin(4_000)  # NORMAL is slower than what is offered in a burst

    def flaky(ev: Event) -> None:
        if ev.payload % 997 == 0:
            raise RuntimeError("flaky handler")

    bus.subscribe("risk.#", on_critical)
    bus.subscribe("#", on_any)
    bus.subscribe("orders.*", flaky)
    await bus.start()
    process = psutil.Process(os.getpid())
    sent = [0, 0, 0, 0]
    high_rejected = 0
    invariant_ok = True
    samples: list[tuple[float, int]] = []
    warmup = min(10.0, seconds / 4)
    t0 = time.perf_counter()
    next_sample = t0
    critical_next = 0
    while (now := time.perf_counter()) - t0 < seconds:
        burst = rng.choice([10, 100, 1_000, 5_000])
        for _ in range(burst):
            r = rng.random()
            if r < 0.02:
                await bus.publish("risk.stop", critical_next, Lane.CRITICAL)
                critical_next += 1
                sent[0] += 1
            elif r < 0.22:
                try:
                    await bus.publish("orders.new", sent[1], Lane.HIGH)
                    sent[1] += 1
                except LaneFullError:
                    high_rejected += 1
            elif r < 0.92:
                bus.publish_nowait("market.bar", sent[2], Lane.NORMAL)
                sent[2] += 1
            else:
                bus.publish_nowait("telemetry.tick", sent[3], Lane.LOW)
                sent[3] += 1
        await asyncio.sleep(rng.choice([0, 0.001, 0.01]))
        if now >= next_sample:
            next_sample = now + 1.0
            m = bus.metrics()
            invariant_ok &= all(x.published == x.delivered + x.dropped + x.depth for x in m.lanes)
            gc.collect()
            samples.append((now - t0, process.memory_info().rss))
    report = await bus.stop(drain=True)
    m = bus.metrics()
    after = [rss for t, rss in samples if t >= warmup]
    growth_mb = (max(after) - after[0]) / 2**20 if after else 0.0
    lanes = {
        x.lane: {
            "published": x.published,
            "delivered": x.delivered,
            "dropped": x.dropped,
            "rejected": x.rejected,
            "errors": x.errors,
            "high_water": x.high_water,
            "capacity": x.capacity,
            "p99_us": x.p99_us,
        }
        for x in m.lanes
    }
    checks = {
        "critical_all_delivered_in_order": critical["in_order"]
        and critical["next"] == critical_next,
        "drained": report.drained,
        "dropped_equals_published_minus_delivered": all(
            x.dropped == x.published - x.delivered for x in m.lanes
        ),
        "invariant_at_every_sample": invariant_ok,
        "critical_never_dropped": m.lane(Lane.CRITICAL).dropped == 0,
        "within_caps": all(x.high_water <= x.capacity for x in m.lanes),
        "rss_flat": growth_mb < 8.0,
        "handlers_saw_deliveries": counts == [x.delivered for x in m.lanes],
    }
    return {
        "seconds": seconds,
        "sent": sent,
        "high_rejected": high_rejected,
        "dead_letters": m.dead_letter_count,
        "rss_mb_first_last": [samples[0][1] / 2**20, samples[-1][1] / 2**20] if samples else [],
        "rss_growth_after_warmup_mb": growth_mb,
        "lanes": lanes,
        "checks": checks,
        "ok": all(checks.values()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bus_soak", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = asyncio.run(soak(args.seconds))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
