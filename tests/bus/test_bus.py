"""EventBus behaviour: ordering, weighted fairness, overflow policies, isolation,
batching, graceful stop and metrics arithmetic."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.bus import (
    BusClosedError,
    BusConfig,
    Event,
    EventBus,
    Lane,
    LaneConfig,
    LaneFullError,
)
from engine.bus import bus as bus_module
from engine.histogram import LogHistogram
from tests.waiting import until


def conserved(bus: EventBus) -> None:
    for lane in bus.metrics().lanes:
        assert lane.published == lane.delivered + lane.dropped + lane.depth, lane


async def test_ordering_within_each_lane(bus: EventBus) -> None:
    seen: dict[Lane, list[int]] = {lane: [] for lane in Lane}
    bus.subscribe("t.#", lambda ev: seen[ev.lane].append(ev.payload))
    await bus.start()
    for i in range(2_000):
        for lane in Lane:
            bus.publish_nowait(f"t.{lane.name.lower()}", i, lane)
        if i % 97 == 0:
            await asyncio.sleep(0)
    await bus.join()
    for lane in Lane:
        assert seen[lane] == list(range(2_000))
    conserved(bus)


async def test_weighted_round_robin_gives_low_its_share() -> None:
    cfg = BusConfig(
        high=LaneConfig(capacity=10_000, policy="block_timeout", weight=6),
        normal=LaneConfig(capacity=10_000, weight=3),
        low=LaneConfig(capacity=10_000, weight=1),
    )
    bus = EventBus(cfg)
    order: list[Lane] = []
    bus.subscribe("x", lambda ev: order.append(ev.lane))
    for _ in range(1_000):  # saturate all three lanes before the dispatcher starts
        bus.publish_nowait("x", None, Lane.HIGH)
        bus.publish_nowait("x", None, Lane.NORMAL)
        bus.publish_nowait("x", None, Lane.LOW)
    await bus.start()
    await bus.join()
    await bus.stop()
    first = order[: 10 * 100]  # 100 complete rounds of 6 + 3 + 1
    assert first.count(Lane.HIGH) == 600
    assert first.count(Lane.NORMAL) == 300
    assert first.count(Lane.LOW) == 100
    assert order[:10] == [Lane.HIGH] * 6 + [Lane.NORMAL] * 3 + [Lane.LOW]


WEIGHTED = (Lane.HIGH, Lane.NORMAL, Lane.LOW)


def reference_order(
    queued: dict[Lane, list[tuple[Lane, int, tuple[Lane, ...]]]], weights: dict[Lane, int]
) -> list[tuple[Lane, int]]:
    """Weighted round robin as documented, one event at a time: each lane in turn takes up to
    its weight, a lane that runs empty ends its turn, and unused credit is lost. An event
    ``(lane, i, spawns)`` publishes one event into each lane of ``spawns`` when delivered."""
    queues = {lane: list(events) for lane, events in queued.items()}
    serial = sum(len(events) for events in queues.values())
    delivered: list[tuple[Lane, int]] = []
    pos = 0
    while any(queues.values()):
        lane = WEIGHTED[pos]
        credit = weights[lane]
        while credit > 0 and queues[lane]:
            _, number, spawns = queues[lane].pop(0)
            delivered.append((lane, number))
            credit -= 1
            for target in spawns:
                queues[target].append((target, serial, ()))
                serial += 1
        pos = (pos + 1) % len(WEIGHTED)
    return delivered


_spawns = st.lists(st.sampled_from(WEIGHTED), max_size=2).map(tuple)


@settings(max_examples=40, deadline=None)
@given(
    counts=st.tuples(*[st.integers(0, 12)] * 3),
    weights=st.tuples(*[st.integers(1, 5)] * 3),
    spawns=st.lists(_spawns, min_size=36, max_size=36),
)
async def test_dispatch_order_equals_a_reference_scheduler_with_lanes_running_empty(
    counts: tuple[int, int, int], weights: tuple[int, int, int], spawns: list[tuple[Lane, ...]]
) -> None:
    """Lanes shorter than their weight run empty mid-turn, and handlers refill emptied lanes:
    the delivery order is the reference's, event for event (no lane inherits unused credit)."""
    weight = dict(zip(WEIGHTED, weights, strict=True))
    config = {lane.name.lower(): LaneConfig(capacity=1_000, weight=weight[lane]) for lane in WEIGHTED}
    bus = EventBus(BusConfig(**config))  # type: ignore[arg-type]
    queued: dict[Lane, list[tuple[Lane, int, tuple[Lane, ...]]]] = {lane: [] for lane in WEIGHTED}
    serial = 0
    for lane, count in zip(WEIGHTED, counts, strict=True):
        for _ in range(count):
            queued[lane].append((lane, serial, spawns[serial]))
            serial += 1
    delivered: list[tuple[Lane, int]] = []
    spawned = [serial]

    def handle(ev: Event) -> None:
        _, number, targets = ev.payload
        delivered.append((ev.lane, number))
        for target in targets:
            bus.publish_nowait("x", (target, spawned[0], ()), target)
            spawned[0] += 1

    bus.subscribe("x", handle)
    for lane in WEIGHTED:
        for event in queued[lane]:
            bus.publish_nowait("x", event, lane)
    await bus.start()
    await bus.join()
    await bus.stop()
    assert delivered == reference_order(queued, weight)


async def test_a_lane_that_runs_empty_passes_no_credit_on() -> None:
    """HIGH (weight 6) holds 2 events: its turn ends there, and NORMAL still takes only 3."""
    bus = EventBus(BusConfig(high=LaneConfig(weight=6), normal=LaneConfig(weight=3), low=LaneConfig(weight=1)))
    order: list[Lane] = []
    bus.subscribe("x", lambda ev: order.append(ev.lane))
    for lane, count in ((Lane.HIGH, 2), (Lane.NORMAL, 8), (Lane.LOW, 3)):
        for _ in range(count):
            bus.publish_nowait("x", None, lane)
    await bus.start()
    await bus.join()
    await bus.stop()
    H, N, L = Lane.HIGH, Lane.NORMAL, Lane.LOW
    assert order == [H, H, N, N, N, L, N, N, N, L, N, N, L]


async def test_critical_preempts_a_flooded_lane(bus: EventBus) -> None:
    order: list[str] = []

    def on_bar(ev: Event) -> None:
        order.append(ev.topic)
        if ev.payload == 10:
            bus.publish_nowait("risk.stop", None, Lane.CRITICAL)

    bus.subscribe("bar", on_bar)
    bus.subscribe("risk.stop", lambda ev: order.append(ev.topic))
    for i in range(1_000):
        bus.publish_nowait("bar", i, Lane.NORMAL)
    await bus.start()
    await bus.join()
    assert order.index("risk.stop") == 11  # right after the bar that raised it


async def test_critical_publishers_wait_and_never_drop() -> None:
    bus = EventBus(BusConfig(critical=LaneConfig(capacity=2, policy="block")))
    got: list[int] = []
    bus.subscribe("c", lambda ev: got.append(ev.payload))
    bus.publish_nowait("c", 0, Lane.CRITICAL)
    bus.publish_nowait("c", 1, Lane.CRITICAL)
    with pytest.raises(LaneFullError):
        bus.publish_nowait("c", 99, Lane.CRITICAL)
    waiting = asyncio.create_task(bus.publish("c", 2, Lane.CRITICAL))
    await asyncio.sleep(0.01)
    assert not waiting.done()  # still waiting for room: not dropped
    await bus.start()
    await waiting
    await bus.join()
    await bus.stop()
    assert got == [0, 1, 2]
    m = bus.metrics().lane(Lane.CRITICAL)
    assert (m.published, m.delivered, m.dropped, m.rejected) == (3, 3, 0, 1)


async def test_high_waits_then_raises() -> None:
    bus = EventBus(BusConfig(high=LaneConfig(capacity=1, policy="block_timeout", timeout_s=0.02)))
    bus.publish_nowait("h", 0, Lane.HIGH)
    with pytest.raises(LaneFullError, match="HIGH lane full"):
        await bus.publish("h", 1, Lane.HIGH)
    m = bus.metrics().lane("high")
    assert (m.published, m.rejected, m.dropped, m.depth) == (1, 1, 0, 1)


async def test_high_wait_succeeds_when_room_appears() -> None:
    bus = EventBus(BusConfig(high=LaneConfig(capacity=1, policy="block_timeout", timeout_s=5.0)))
    got: list[int] = []
    bus.subscribe("h", lambda ev: got.append(ev.payload))
    bus.publish_nowait("h", 0, Lane.HIGH)
    pending = asyncio.create_task(bus.publish("h", 1, Lane.HIGH))
    await asyncio.sleep(0)
    await bus.start()
    await pending
    await bus.join()
    await bus.stop()
    assert got == [0, 1]


@pytest.mark.parametrize(
    ("policy", "kept"), [("drop_oldest", [5, 6, 7]), ("drop_newest", [0, 1, 2])]
)
async def test_drop_policies_count_what_they_drop(policy: str, kept: list[int]) -> None:
    for lane in (Lane.NORMAL, Lane.LOW):
        lanes = {lane.name.lower(): LaneConfig(capacity=3, policy=policy)}  # type: ignore[arg-type]
        bus = EventBus(BusConfig(**lanes))
        got: list[int] = []
        bus.subscribe("d", lambda ev, got=got: got.append(ev.payload))
        results = [bus.publish_nowait("d", i, lane) for i in range(8)]
        if policy == "drop_newest":
            assert results[3:] == [None] * 5
        await bus.start()
        await bus.join()
        await bus.stop()
        assert got == kept
        m = bus.metrics().lane(lane)
        assert (m.published, m.delivered, m.dropped, m.depth, m.high_water) == (8, 3, 5, 0, 3)


async def test_failing_handler_is_isolated_and_dead_lettered(bus: EventBus) -> None:
    good: list[int] = []
    also_good: list[int] = []

    def bad(ev: Event) -> None:
        if ev.payload % 2:
            raise ValueError(f"odd {ev.payload}")

    async def bad_async(ev: Event) -> None:
        if ev.payload == 4:
            raise RuntimeError("four")

    bus.subscribe("orders.*", lambda ev: good.append(ev.payload))
    bus.subscribe("orders.*", bad, name="bad")
    bus.subscribe("orders.#", bad_async, name="bad_async")
    bus.subscribe("orders.new", lambda ev: also_good.append(ev.payload))
    await bus.start()
    for i in range(6):
        bus.publish_nowait("orders.new", i, Lane.HIGH)
    await bus.join()
    assert good == also_good == list(range(6))
    m = bus.metrics()
    assert m.lane(Lane.HIGH).errors == 4
    assert m.dead_letter_count == 4
    kinds = [(d.subscriber, d.error_type, d.event.payload) for d in m.dead_letters]
    assert kinds == [
        ("bad", "ValueError", 1),
        ("bad", "ValueError", 3),
        ("bad_async", "RuntimeError", 4),
        ("bad", "ValueError", 5),
    ]
    assert "odd 1" in m.dead_letters[0].error and "ValueError" in m.dead_letters[0].traceback
    assert m.lane(Lane.HIGH).delivered == 6
    conserved(bus)


async def test_batches_fill_then_flush_on_timeout(bus: EventBus) -> None:
    batches: list[tuple[int, ...]] = []
    bus.subscribe(
        "tick.*",
        lambda b: batches.append(tuple(ev.payload for ev in b)),
        batch_size=3,
        flush_interval_s=0.02,
    )
    await bus.start()
    for i in range(7):
        bus.publish_nowait("tick.a", i, Lane.LOW)
    await until(lambda: len(batches) == 3)
    assert batches == [(0, 1, 2), (3, 4, 5), (6,)]  # the last one flushed by the timer


async def test_async_batch_handler_and_stop_flushes_partial_batch() -> None:
    bus = EventBus()
    batches: list[list[int]] = []

    async def write(batch: tuple[Event, ...]) -> None:
        await asyncio.sleep(0)
        batches.append([ev.payload for ev in batch])

    bus.subscribe("arch.#", write, batch_size=4, flush_interval_s=60.0)
    await bus.start()
    for i in range(6):
        await bus.publish("arch.x", i, Lane.LOW)
    report = await bus.stop(drain=True)
    assert report.drained and report.total_undelivered == 0
    assert batches == [[0, 1, 2, 3], [4, 5]]


async def test_graceful_stop_drains_everything() -> None:
    bus = EventBus()
    got: list[int] = []

    async def slow(ev: Event) -> None:
        await asyncio.sleep(0)
        got.append(ev.payload)

    bus.subscribe("s", slow)
    await bus.start()
    for i in range(500):
        bus.publish_nowait("s", i, Lane.NORMAL)
    report = await bus.stop(drain=True)
    assert report.drained and report.undelivered == (0, 0, 0, 0)
    assert got == list(range(500))
    with pytest.raises(BusClosedError):
        bus.publish_nowait("s", 1, Lane.NORMAL)
    assert bus.metrics().lane("normal").rejected == 1


async def test_stop_without_drain_reports_undelivered() -> None:
    bus = EventBus()
    gate = asyncio.Event()
    got: list[int] = []

    async def stuck(ev: Event) -> None:
        got.append(ev.payload)
        await gate.wait()

    bus.subscribe("s", stuck)
    await bus.start()
    for i in range(10):
        bus.publish_nowait("s", i, Lane.HIGH)
    for i in range(5):
        bus.publish_nowait("s", i, Lane.LOW)
    await until(lambda: len(got) == 1)
    report = await bus.stop(drain=False)
    assert not report.drained
    assert report.undelivered == (0, 9, 0, 5)
    conserved(bus)


async def test_stop_with_drain_timeout_reports_what_is_left() -> None:
    bus = EventBus()
    gate = asyncio.Event()

    async def stuck(ev: Event) -> None:
        await gate.wait()

    bus.subscribe("s", stuck)
    await bus.start()
    for i in range(4):
        bus.publish_nowait("s", i, Lane.HIGH)
    report = await bus.stop(drain=True, timeout=0.05)
    assert not report.drained and report.undelivered == (0, 3, 0, 0)


async def test_blocked_publisher_fails_when_bus_stops() -> None:
    bus = EventBus(BusConfig(critical=LaneConfig(capacity=1, policy="block")))
    bus.publish_nowait("c", 0, Lane.CRITICAL)
    waiting = asyncio.create_task(bus.publish("c", 1, Lane.CRITICAL))
    await asyncio.sleep(0)
    report = await bus.stop(drain=True)
    with pytest.raises(BusClosedError):
        await waiting
    assert report.drained  # the queued event was delivered inline


async def test_unsubscribe_and_route_cache(bus: EventBus) -> None:
    got: list[str] = []
    sub = bus.subscribe("a.*", lambda ev: got.append(ev.topic))
    await bus.start()
    bus.publish_nowait("a.b", None, Lane.NORMAL)
    await bus.join()
    bus.unsubscribe(sub)
    bus.publish_nowait("a.b", None, Lane.NORMAL)
    bus.publish_nowait("nobody.listens", None, Lane.NORMAL)
    await bus.join()
    assert got == ["a.b"]
    with pytest.raises(ValueError):
        bus.publish_nowait("a.*", None, Lane.NORMAL)


async def test_latency_histogram_matches_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a fake clock the recorded latencies are known exactly."""
    clock = [10_000_000_000]
    monkeypatch.setattr(bus_module, "perf_counter_ns", lambda: clock[0])
    bus = EventBus()
    bus.subscribe("m", lambda ev: None)
    latencies = [0, 5, 31, 32, 100, 1_000, 12_345, 250_000, 4_000_000, 5]
    deliver_at = 20_000_000_000
    for lat in latencies:
        clock[0] = deliver_at - lat
        bus.publish_nowait("m", lat, Lane.HIGH)
    clock[0] = deliver_at
    await bus.start()
    await bus.join()
    reference = LogHistogram()
    for lat in latencies:
        reference.record(lat)
    got = bus.metrics().lane(Lane.HIGH)
    assert got.latency_ns == reference.snapshot()
    assert bus._lanes[Lane.HIGH].hist._counts == reference._counts
    assert got.p99_us == reference.percentile(99) / 1e3
    assert (got.published, got.delivered, got.high_water) == (10, 10, 10)
    # the bus started and delivered all ten in second 20: one complete second at 21,
    # the full five-second window at 25, and nothing left in it at 26
    for now_sec, rate in [(20, 0.0), (21, 10.0), (23, 10 / 3), (25, 2.0), (26, 0.0)]:
        clock[0] = now_sec * 1_000_000_000
        assert bus.metrics().lane(Lane.HIGH).throughput == pytest.approx(rate)
    await bus.stop()


def test_config_rejects_a_dropping_critical_lane() -> None:
    from engine.errors import ConfigError

    with pytest.raises(ConfigError, match=r"bus\.critical\.policy"):
        EventBus(BusConfig(critical=LaneConfig(policy="drop_oldest")))
    with pytest.raises(ConfigError, match=r"bus\.low\.capacity"):
        EventBus(BusConfig(low=LaneConfig(capacity=0)))


async def test_a_handler_cannot_deadlock_on_a_full_lane() -> None:
    bus = EventBus(BusConfig(critical=LaneConfig(capacity=1, policy="block")))
    outcome: list[str] = []

    async def handler(ev: Event) -> None:
        bus.publish_nowait("c", 1, Lane.CRITICAL)
        try:
            await bus.publish("c", 2, Lane.CRITICAL)  # only the dispatcher could make room
        except LaneFullError as error:
            outcome.append(str(error))

    bus.subscribe("go", handler)
    await bus.start()
    bus.publish_nowait("go", None, Lane.HIGH)
    await bus.join()
    await bus.stop()
    assert len(outcome) == 1 and "cannot wait" in outcome[0]


async def test_publish_from_another_thread(bus: EventBus) -> None:
    import threading

    got: list[int] = []
    bus.subscribe("t", lambda ev: got.append(ev.payload))
    await bus.start()
    workers = [
        threading.Thread(
            target=lambda k=k: [bus.publish_threadsafe("t", k * 100 + i) for i in range(100)]
        )
        for k in range(4)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    await until(lambda: len(got) == 400)
    assert sorted(got) == sorted(k * 100 + i for k in range(4) for i in range(100))
    for k in range(4):  # each thread's events stay in its order
        mine = [x for x in got if x // 100 == k]
        assert mine == sorted(mine)


async def test_unsubscribing_a_batch_subscriber_delivers_its_pending_batch(bus: EventBus) -> None:
    batches: list[list[int]] = []
    sub = bus.subscribe(
        "b",
        lambda batch: batches.append([ev.payload for ev in batch]),
        batch_size=10,
        flush_interval_s=60,
    )
    await bus.start()
    for i in range(3):
        bus.publish_nowait("b", i, Lane.LOW)
    await bus.join()
    assert batches == []
    bus.unsubscribe(sub)
    assert batches == [[0, 1, 2]]


async def test_metrics_snapshot_is_immutable_and_dead_letters_are_bounded() -> None:
    import dataclasses

    bus = EventBus(BusConfig(dead_letters=3))

    def boom(ev: Event) -> None:
        raise KeyError(ev.payload)

    bus.subscribe("x", boom)
    await bus.start()
    for i in range(10):
        bus.publish_nowait("x", i, Lane.LOW)
    await bus.join()
    m = bus.metrics()
    assert m.dead_letter_count == 10 and [d.event.payload for d in m.dead_letters] == [7, 8, 9]
    assert m.lane("low").errors == 10 and m.errors == 10 and m.running
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.lane("low").delivered = 0  # type: ignore[misc]
    await bus.stop()
    assert not bus.metrics().running


async def test_route_cache_is_bounded() -> None:
    bus = EventBus(BusConfig(route_cache=8))
    got: list[str] = []
    bus.subscribe("sym.*", lambda ev: got.append(ev.topic))
    await bus.start()
    for i in range(50):
        bus.publish_nowait(f"sym.s{i}", None, Lane.NORMAL)
    await bus.join()
    await bus.stop()
    assert got == [f"sym.s{i}" for i in range(50)]
    assert len(bus._routes) <= 8


async def test_dispatcher_yields_to_other_tasks_under_endless_load(bus: EventBus) -> None:
    """A handler that keeps its lane busy forever must not freeze the event loop: between any two
    turns of another task the dispatcher delivers, and a timer still fires."""
    spins = [0]

    def again(ev: Event) -> None:
        spins[0] += 1
        bus.publish_nowait("spin", None, Lane.NORMAL)

    bus.subscribe("spin", again)
    await bus.start()
    bus.publish_nowait("spin", None, Lane.NORMAL)
    seen = []
    for _ in range(20):
        await asyncio.sleep(0)  # the dispatcher's slice runs, then hands the loop back
        seen.append(spins[0])
    assert all(a < b for a, b in itertools.pairwise([0, *seen])), seen
    fired = asyncio.Event()
    asyncio.get_running_loop().call_later(0.001, fired.set)  # a frozen loop would hang here
    await fired.wait()
    report = await bus.stop(drain=False)
    assert report.undelivered[Lane.NORMAL] == 1
