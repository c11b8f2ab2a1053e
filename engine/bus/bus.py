"""The event bus: four bounded priority lanes drained by one dispatcher task.

Publishing is synchronous and cheap (``publish_nowait``: build a tuple, append
to a deque, wake the dispatcher if it sleeps); ``publish`` awaits only when a
blocking lane is full. One dispatcher task drains the lanes: CRITICAL first and
between every chunk of the others, then HIGH, NORMAL and LOW in weighted
round-robin (deficit style, so a flooded NORMAL cannot starve LOW), yielding to
the event loop at least every ``slice_us`` so publishers keep running. Handlers
run on the dispatcher; async handlers are awaited in order, so a slow handler
delays its lane and should hand heavy work elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable
from time import perf_counter_ns
from typing import Any

from engine.bus.events import Event, Lane
from engine.bus.lanes import (
    DROP_POLICIES,
    BusClosedError,
    BusConfig,
    LaneFullError,
    LaneState,
)
from engine.bus.metrics import BusMetrics, DeadLetter, LaneMetrics, StopReport
from engine.bus.topics import matches, validate_topic
from engine.profile import profiler
from engine.profile.caches import caches

Handler = Callable[[Event], Any]

_NEVER: deque[Event] = deque()  # an always-empty queue: "no lane pre-empts this one"
_FOREVER = 1 << 62


class Subscription:
    """A handler attached to a topic or wildcard pattern (returned by ``subscribe``)."""

    __slots__ = (
        "active",
        "batch_size",
        "buffer",
        "deadline_ns",
        "flush_ns",
        "handler",
        "id",
        "is_async",
        "name",
        "pattern",
    )

    def __init__(
        self,
        sid: int,
        pattern: str,
        handler: Callable[..., Any],
        name: str,
        batch_size: int | None,
        flush_interval_s: float,
    ) -> None:
        self.id = sid
        self.pattern = pattern
        self.handler = handler
        self.name = name
        self.is_async = inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
            getattr(handler, "__call__", None)  # noqa: B004 - async callable objects
        )
        self.batch_size = batch_size
        self.flush_ns = int(flush_interval_s * 1e9)
        self.buffer: list[Event] = []
        self.deadline_ns = 0
        self.active = True

    def __repr__(self) -> str:
        kind = f"batch={self.batch_size}" if self.batch_size else "each"
        return f"Subscription({self.pattern!r}, {self.name}, {kind})"


# A route: the subscribers of one concrete topic, split by how they are called.
Route = tuple[tuple[Handler, ...], tuple[Subscription, ...], tuple[Subscription, ...]]


class EventBus:
    """An in-process publish/subscribe bus with priority lanes and live metrics.

    >>> bus = EventBus()
    >>> bus.subscribe("orders.*", on_order)          # doctest: +SKIP
    >>> await bus.start()                            # doctest: +SKIP
    >>> bus.publish_nowait("orders.new", order, Lane.HIGH)   # doctest: +SKIP
    >>> report = await bus.stop(drain=True)          # doctest: +SKIP
    """

    def __init__(self, config: BusConfig | None = None) -> None:
        self.config = (config or BusConfig()).validate()
        cfg = self.config
        self._lanes = tuple(LaneState(lane, cfg.lane(lane), cfg.rate_window_s) for lane in Lane)
        self._next_seq = itertools.count(1).__next__
        self._admitted: set[str] = set()  # topics known valid; emptied when the bus closes
        self._subs: list[Subscription] = []
        self._sid = itertools.count(1)
        self._routes: dict[str, Route] = {}
        self._cache = caches.counters("bus.routes")
        self._batch_pending: dict[Subscription, None] = {}
        self._dead: deque[DeadLetter] = deque(maxlen=cfg.dead_letters)
        self._dead_count = 0
        self._waiter: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._draining = False
        self._start_ns = perf_counter_ns()
        self._wall_offset = time.time_ns() - perf_counter_ns()
        self._slice_ns = cfg.slice_us * 1000

    @classmethod
    def from_config(cls) -> EventBus:
        """A bus configured by the ``[bus]`` table of the global config file."""
        from engine.bus.config import load_bus_config

        return cls(load_bus_config())

    # ------------------------------------------------------------------ subscribe
    def subscribe(
        self,
        pattern: str,
        handler: Callable[..., Any],
        *,
        batch_size: int | None = None,
        flush_interval_s: float = 0.05,
        name: str | None = None,
    ) -> Subscription:
        """Call ``handler`` for every event whose topic matches ``pattern``.

        With ``batch_size`` the handler receives a tuple of up to that many events,
        at the latest ``flush_interval_s`` after the first one arrived. Handlers may
        be plain functions or coroutine functions.
        """
        validate_topic(pattern, pattern=True)
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
        if flush_interval_s <= 0:
            raise ValueError(f"flush_interval_s: expected > 0, got {flush_interval_s}")
        label = name or getattr(handler, "__qualname__", None) or repr(handler)
        sub = Subscription(next(self._sid), pattern, handler, label, batch_size, flush_interval_s)
        self._subs.append(sub)
        self._invalidate()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Detach ``sub`` (its pending batch is delivered first)."""
        if sub in self._subs:
            self._subs.remove(sub)
            sub.active = False
            self._invalidate()
            if sub.buffer:
                self._batch_pending.pop(sub, None)
                batch, sub.buffer = tuple(sub.buffer), []
                if sub.is_async:
                    if self._loop is not None:
                        self._loop.create_task(self._call_batch_async(sub, batch))
                else:
                    self._call_batch(sub, batch)

    def subscribers(self, topic: str) -> tuple[Subscription, ...]:
        """The subscriptions a concrete topic is routed to, in subscription order."""
        return tuple(s for s in self._subs if matches(s.pattern, topic))

    def _invalidate(self) -> None:
        if self._routes:
            self._cache.evictions += len(self._routes)
            self._routes.clear()  # in place: the dispatcher holds its bound ``get``
            self._cache.entries = 0

    def _resolve(self, topic: str) -> Route:
        routes = self._routes
        route = routes.get(topic)
        if route is not None:
            return route
        validate_topic(topic, pattern=False)
        self._cache.misses += 1
        subs = self.subscribers(topic)
        route = (
            tuple(s.handler for s in subs if not s.batch_size and not s.is_async),
            tuple(s for s in subs if s.batch_size),
            tuple(s for s in subs if not s.batch_size and s.is_async),
        )
        if len(routes) >= self.config.route_cache:
            self._cache.evictions += len(routes)
            routes.clear()
        routes[topic] = route
        self._cache.entries = len(routes)
        return route

    # -------------------------------------------------------------------- publish
    def publish_nowait(
        self, topic: str, payload: Any = None, lane: Lane | int = Lane.NORMAL
    ) -> Event | None:
        """Queue an event without waiting. Returns it, or ``None`` when a drop-newest
        lane was full. Raises :class:`LaneFullError` when a blocking lane is full and
        :class:`BusClosedError` once the bus is stopping."""
        ln = self._lanes[lane]
        if topic not in self._admitted:  # first sight of the topic, or the bus closed
            self._admit(topic, ln)
        ev = Event(topic, payload, ln.lane, self._next_seq(), perf_counter_ns())
        dq = ln.queue
        n = len(dq)
        if n >= ln.capacity:
            policy = ln.policy
            if policy == "drop_oldest":
                dq.popleft()
                n -= 1
            elif policy == "drop_newest":
                ln.published += 1
                ln.dropped += 1
                return None
            else:
                ln.rejected += 1
                raise LaneFullError(
                    f"{ln.lane.name} lane full ({ln.capacity} events): {topic!r} not published"
                )
            ln.dropped += 1
        ln.published += 1
        dq.append(ev)
        if n >= ln.hwm:
            ln.hwm = n + 1
        if self._waiter is not None:
            self._wake()
        return ev

    def _admit(self, topic: str, ln: LaneState) -> None:
        if self._closed:
            ln.rejected += 1
            raise BusClosedError(f"bus is stopped: cannot publish {topic!r}")
        validate_topic(topic, pattern=False)
        if len(self._admitted) >= self.config.route_cache:
            self._admitted.clear()
        self._admitted.add(topic)

    async def publish(
        self, topic: str, payload: Any = None, lane: Lane | int = Lane.NORMAL
    ) -> Event | None:
        """Queue an event, waiting for room on a blocking lane (CRITICAL: as long as it
        takes; ``block_timeout`` lanes: up to their timeout, then :class:`LaneFullError`)."""
        ln = self._lanes[lane]
        if len(ln.queue) < ln.capacity or ln.policy in DROP_POLICIES or self._closed:
            return self.publish_nowait(topic, payload, lane)
        if self._task is not None and asyncio.current_task() is self._task:
            # A handler waiting for room that only the dispatcher (itself) can make.
            ln.rejected += 1
            raise LaneFullError(
                f"{ln.lane.name} lane full ({ln.capacity} events): a handler cannot wait "
                f"for room, {topic!r} not published"
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ln.timeout_s if ln.policy == "block_timeout" else None
        while len(ln.queue) >= ln.capacity and not self._closed:
            fut: asyncio.Future[None] = loop.create_future()
            ln.putters.append(fut)
            try:
                if deadline is None:
                    await fut
                else:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        raise TimeoutError
                    await asyncio.wait_for(fut, remaining)
            except TimeoutError:
                ln.rejected += 1
                raise LaneFullError(
                    f"{ln.lane.name} lane full ({ln.capacity} events) for {ln.timeout_s:g}s: {topic!r} not published"
                ) from None
            finally:
                if not fut.done():
                    fut.cancel()
        return self.publish_nowait(topic, payload, lane)

    def publish_threadsafe(
        self, topic: str, payload: Any = None, lane: Lane | int = Lane.NORMAL
    ) -> None:
        """Publish from another thread (through the bus's event loop)."""
        if self._loop is None:
            raise BusClosedError("bus is not running: start it before publishing from threads")
        self._loop.call_soon_threadsafe(self.publish_nowait, topic, payload, lane)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # ------------------------------------------------------------------ lifecycle
    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> EventBus:
        """Start the dispatcher on the running event loop."""
        if self.running:
            return self
        if self._closed:
            raise BusClosedError("a stopped bus cannot be restarted; make a new one")
        self._loop = asyncio.get_running_loop()
        self._start_ns = perf_counter_ns()
        self._task = self._loop.create_task(self._dispatch(), name="genesis-bus-dispatcher")
        return self

    async def stop(self, drain: bool = True, timeout: float | None = None) -> StopReport:
        """Refuse new events, then deliver what is queued (``drain``; up to ``timeout``
        seconds) or drop it, and report how many events were left undelivered."""
        self._closed = True
        self._admitted.clear()
        for ln in self._lanes:
            ln.fail_putters(BusClosedError("bus stopped while waiting for room"))
        task = self._task
        if task is not None and not task.done():
            if drain:
                self._draining = True
                self._wake()
                try:
                    await asyncio.wait_for(asyncio.shield(task), timeout)
                except TimeoutError:
                    pass
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        elif drain and any(ln.queue for ln in self._lanes):
            # never started: deliver inline
            self._draining = True
            await self._dispatch()
        await self._flush_batches(_FOREVER)
        undelivered = tuple(len(ln.queue) for ln in self._lanes)
        return StopReport(drained=drain and not any(undelivered), undelivered=undelivered)

    async def __aenter__(self) -> EventBus:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop(drain=True)

    async def join(self) -> None:
        """Wait until every lane is empty (the dispatcher keeps running). Batches still
        filling are not waited for: :meth:`flush` delivers them now."""
        while any(ln.queue for ln in self._lanes):
            if not self.running:
                raise BusClosedError("bus is not running: nothing will drain the lanes")
            await asyncio.sleep(0.0005)

    async def flush(self) -> None:
        """Deliver every pending batch now, without waiting for its flush interval."""
        await self._flush_batches(_FOREVER)

    # ----------------------------------------------------------------- dispatcher
    async def _dispatch(self) -> None:
        lanes = self._lanes
        crit = lanes[Lane.CRITICAL]
        crit_q = crit.queue
        order = (lanes[Lane.HIGH], lanes[Lane.NORMAL], lanes[Lane.LOW])
        queues = tuple(ln.queue for ln in lanes)
        pos = 0
        credit = order[0].weight
        slice_ns = self._slice_ns
        drain = self._drain
        loop = asyncio.get_running_loop()
        sleep = asyncio.sleep
        stage = profiler.stage
        while True:
            deadline = perf_counter_ns() + slice_ns
            with stage("bus.dispatch"):
                while True:
                    if crit_q:
                        await drain(crit, _FOREVER, _FOREVER, _NEVER)
                    ln = order[pos]
                    if ln.queue:
                        credit -= await drain(ln, credit, deadline, crit_q)
                    if credit <= 0 or not ln.queue:
                        pos = pos + 1 if pos < 2 else 0
                        credit = order[pos].weight
                    if not (queues[0] or queues[1] or queues[2] or queues[3]):
                        break
                    if perf_counter_ns() >= deadline:
                        break
                if self._batch_pending:
                    await self._flush_batches(perf_counter_ns())
            if queues[0] or queues[1] or queues[2] or queues[3]:
                await sleep(0)
                continue
            if self._draining:
                return
            waiter = loop.create_future()
            self._waiter = waiter
            timer = None
            if self._batch_pending:
                due = min(s.deadline_ns for s in self._batch_pending)
                timer = loop.call_later(max(0.0, (due - perf_counter_ns()) / 1e9), self._wake)
            try:
                await waiter
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()

    async def _drain(self, ln: LaneState, limit: int, deadline: int, stop_q: deque[Event]) -> int:
        """Deliver up to ``limit`` events of one lane; stop early at ``deadline`` or
        as soon as ``stop_q`` (CRITICAL) has something. Returns how many were taken."""
        dq = ln.queue
        pop = dq.popleft
        get_route = self._routes.get
        counts = ln.hist._counts  # the histogram's buckets, filled inline (hot path)
        k = 0
        total = 0
        mx = -1
        mn = _FOREVER
        now = 0
        while dq:
            ev = pop()
            ln.delivered += 1
            k += 1
            route = get_route(ev.topic)
            if route is None:
                route = self._resolve(ev.topic)
            now = perf_counter_ns()
            lat = now - ev.ts_ns
            if lat < 32:
                counts[lat if lat > 0 else 0] += 1
            else:
                s = lat.bit_length() - 5
                i = (s << 4) + (lat >> s)
                counts[i if i < 1024 else 1023] += 1
            total += lat
            if lat > mx:
                mx = lat
            if lat < mn:
                mn = lat
            for handler in route[0]:
                try:
                    handler(ev)
                except Exception as error:
                    self._dead_letter(ev, self._sub_of(handler, ev.topic), error)
            if route[1]:
                await self._to_batches(route[1], ev, now)
            if route[2]:
                for sub in route[2]:
                    try:
                        await sub.handler(ev)
                    except Exception as error:
                        self._dead_letter(ev, sub, error)
            if k >= limit or now >= deadline or stop_q:
                break
        if k:
            hist = ln.hist
            if hist.count == 0 or mn < hist.min:
                hist.min = mn
            if mx > hist.max:
                hist.max = mx
            hist.count += k
            hist.total += total
            ln.rate.add(now // 1_000_000_000, k)
            if ln.putters:
                ln.wake_putters()
        return k

    def _sub_of(self, handler: Handler, topic: str) -> Subscription | None:
        for sub in self._subs:
            if sub.handler is handler and matches(sub.pattern, topic):
                return sub
        return None

    # -------------------------------------------------------------------- batches
    async def _to_batches(self, subs: Iterable[Subscription], ev: Event, now: int) -> None:
        for sub in subs:
            buf = sub.buffer
            buf.append(ev)
            if len(buf) >= sub.batch_size:  # type: ignore[operator]
                self._batch_pending.pop(sub, None)
                sub.buffer = []
                await self._deliver_batch(sub, tuple(buf))
            elif len(buf) == 1:
                sub.deadline_ns = now + sub.flush_ns
                self._batch_pending[sub] = None

    async def _flush_batches(self, now: int) -> None:
        """Deliver every pending batch whose flush interval has passed."""
        due = [s for s in self._batch_pending if s.deadline_ns <= now]
        for sub in due:
            self._batch_pending.pop(sub, None)
            batch, sub.buffer = tuple(sub.buffer), []
            if batch:
                await self._deliver_batch(sub, batch)

    async def _deliver_batch(self, sub: Subscription, batch: tuple[Event, ...]) -> None:
        if sub.is_async:
            await self._call_batch_async(sub, batch)
        else:
            self._call_batch(sub, batch)

    def _call_batch(self, sub: Subscription, batch: tuple[Event, ...]) -> None:
        try:
            sub.handler(batch)
        except Exception as error:
            for ev in batch:
                self._dead_letter(ev, sub, error)

    async def _call_batch_async(self, sub: Subscription, batch: tuple[Event, ...]) -> None:
        try:
            await sub.handler(batch)
        except Exception as error:
            for ev in batch:
                self._dead_letter(ev, sub, error)

    # --------------------------------------------------------------- dead letters
    def _dead_letter(self, ev: Event, sub: Subscription | None, error: Exception) -> None:
        self._lanes[ev.lane].errors += 1
        self._dead_count += 1
        if self._dead.maxlen:
            tb = "".join(
                traceback.format_exception(type(error), error, error.__traceback__, limit=8)
            )
            self._dead.append(
                DeadLetter(
                    event=ev,
                    subscriber=sub.name if sub is not None else "?",
                    error_type=type(error).__name__,
                    error=str(error),
                    traceback=tb,
                    wall_ns=time.time_ns(),
                )
            )

    # -------------------------------------------------------------------- metrics
    def wall_ns(self, ev: Event) -> int:
        """The Unix time (ns) at which ``ev`` was published."""
        return ev.ts_ns + self._wall_offset

    def depth(self, lane: Lane | int | None = None) -> int:
        """Events queued in one lane, or in all of them."""
        if lane is None:
            return sum(len(ln.queue) for ln in self._lanes)
        return len(self._lanes[lane].queue)

    def dropped(self, lane: Lane | int) -> int:
        """How many events one lane has dropped so far (cheaper than a snapshot)."""
        return self._lanes[lane].dropped

    def metrics(self) -> BusMetrics:
        """An immutable snapshot of every lane's counters, latency and throughput."""
        now = perf_counter_ns()
        now_sec = now // 1_000_000_000
        start_sec = self._start_ns // 1_000_000_000
        lanes = tuple(
            LaneMetrics(
                lane=ln.lane.name,
                capacity=ln.capacity,
                policy=ln.policy,
                weight=ln.weight,
                published=ln.published,
                delivered=ln.delivered,
                dropped=ln.dropped,
                rejected=ln.rejected,
                errors=ln.errors,
                depth=len(ln.queue),
                high_water=ln.hwm,
                throughput=ln.rate.rate(now_sec, start_sec),
                latency_ns=ln.hist.snapshot(),
            )
            for ln in self._lanes
        )
        hits = sum(ln.delivered for ln in self._lanes) - self._cache.misses
        self._cache.hits = max(0, hits)
        return BusMetrics(
            lanes=lanes,
            running=self.running,
            uptime_s=(now - self._start_ns) / 1e9,
            subscribers=len(self._subs),
            dead_letter_count=self._dead_count,
            dead_letters=tuple(self._dead),
            route_cache_hits=self._cache.hits,
            route_cache_misses=self._cache.misses,
            window_s=self.config.rate_window_s,
        )

    def reset_metrics(self) -> None:
        """Zero the latency histograms and high-water marks (counters keep counting)."""
        for ln in self._lanes:
            ln.hist.reset()
            ln.hwm = len(ln.queue)


__all__ = ["BusClosedError", "EventBus", "LaneFullError", "Subscription"]
