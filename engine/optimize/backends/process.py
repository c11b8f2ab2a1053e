"""The ``process`` backend: a pool of worker processes created once.

Workers are forked from a ``forkserver`` (never from the parent itself, whose
asyncio loop and SQLite threads must not be forked); the server preloads the
engine and its compiled kernel once, so a worker, or a replacement for a dead
one, is ready in milliseconds. ``context="spawn"`` is available too. The
market data is copied once into one shared-memory block
(:mod:`engine.optimize.backends.shared_bars`, which also removes the blocks of
runs killed with their whole process group); each worker maps it (no copy,
nothing per trial) and builds one
:class:`~engine.optimize.trial.Evaluator`, with its own indicator cache, that
serves every chunk it is given.

The event loop never blocks on a worker: each worker's pipe and process
sentinel are watched with ``loop.add_reader``, and one shared watchdog task
reads the workers' shared slots (trial in hand, start time, budget) and kills
a worker whose trial overran its timeout. When a worker dies (timeout, crash,
``os._exit``) the trial it had in hand is recorded failed with the reason, the
rest of its chunk is queued again (one trial at a time, so that a culprit is
told apart), and a fresh worker takes its place.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import multiprocessing
import os
import pickle
import signal
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from engine.errors import GenesisError
from engine.optimize.backends.base import Chunk, ChunkDone, add_chunk_time
from engine.optimize.backends.shared_bars import SharedBars, attach_bars
from engine.optimize.fork_server import PRELOAD, start_fork_server
from engine.optimize.trial import Evaluator, Slot, WorkerSetup, _error_line
from engine.store.records import TrialResult, TrialState, TrialTask
from engine.store.result_batch import ResultBatch

#: A chunk whose worker dies this many times with no culprit identified fails as a whole.
MAX_CHUNK_DEATHS = 3
STARTUP_TIMEOUT_S = 300.0
#: Chunks sent ahead to a worker (the next one waits in its socket, so it never idles between chunks).
DEPTH = 2


def _worker_main(index: int, name: str, conn: Connection, handle: Any, setup: WorkerSetup, cells: Any) -> None:
    """The loop of one worker process: build the evaluator once, then evaluate chunks.

    A parent that died (killed, crashed) closed its end of the pipe: the worker
    then ends quietly, with no traceback on stderr (cron mails stderr).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    with contextlib.suppress(BrokenPipeError, ConnectionResetError, EOFError):
        _serve(name, conn, handle, setup, cells)


def _serve(name: str, conn: Connection, handle: Any, setup: WorkerSetup, cells: Any) -> None:
    try:
        bars, _block = attach_bars(handle)  # (held: the views need the mapping)
        evaluator = Evaluator(bars, setup, worker=name, slot=Slot(cells), ship_profile=True)
        # Load the compiled kernels now, not on the first chunk.
        evaluator.warm_up()
    except BaseException as error:
        conn.send(("error", _error_line(error)))
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return  # (the process exits: the block is unmapped with it)
        got = time.monotonic()  # CLOCK_MONOTONIC is system-wide: comparable with the parent's
        chunk_id, columns, artifacts, isolate = message
        output = evaluator.evaluate(list(map(TrialTask, *columns)), artifacts=artifacts, isolate=isolate)
        done = time.monotonic()
        if output.profile is not None:
            add_chunk_time(output.profile, done - got)
        conn.send(("done", chunk_id, output, got, done))


def _columns(tasks: tuple[TrialTask, ...]) -> tuple[list[Any], ...]:
    """A chunk's tasks as the worker gets them: their fields as columns (a list pickles in C; a
    task pickles through a Python call each)."""
    return (
        [t.number for t in tasks], [t.params for t in tasks], [t.key for t in tasks],
        [t.step for t in tasks], [t.stop for t in tasks],
    )


class _Channel:
    """The parent's non-blocking end of a worker's socket pair, framed like ``Connection``.

    The worker uses a plain blocking ``multiprocessing`` connection; the parent
    reads whatever bytes are there when the loop says the socket is readable
    and decodes complete frames, and queues what it cannot write at once, so
    the event loop never waits on a worker, whatever the message size.
    """

    READ_SIZE = 1 << 20

    def __init__(
        self, loop: asyncio.AbstractEventLoop, conn: Connection, on_message: Any, on_eof: Any
    ) -> None:
        self.loop = loop
        self.conn = conn  # kept open for the life of the channel
        self.fd = conn.fileno()
        os.set_blocking(self.fd, False)
        self._on_message = on_message
        self._on_eof = on_eof
        self._in = bytearray()
        self._read = bytearray(self.READ_SIZE)  # reused: a fresh 1 MB bytes object per read costs a mapping
        self._out = bytearray()
        self.closed = False
        loop.add_reader(self.fd, self._readable)

    def _readable(self) -> None:
        while not self.closed:
            try:
                size = os.readv(self.fd, [self._read])
            except BlockingIOError:
                break
            except OSError:
                size = 0
            if not size:
                self._parse()
                self._on_eof()
                return
            self._in += memoryview(self._read)[:size]
            if size < self.READ_SIZE:
                break
        self._parse()

    def _parse(self) -> None:
        buffer = self._in
        while not self.closed and len(buffer) >= 4:
            (size,) = struct.unpack_from("!i", buffer, 0)
            header = 4
            if size == -1:
                if len(buffer) < 12:
                    return
                (size,) = struct.unpack_from("!Q", buffer, 4)
                header = 12
            if len(buffer) < header + size:
                return
            # Trusted: this pipe only ever carries frames our own forked worker wrote
            # (as multiprocessing's own Connection does); no user or network bytes.
            with memoryview(buffer) as view:  # (released before the buffer shrinks)
                message = pickle.loads(view[header : header + size])
            del buffer[: header + size]
            self._on_message(message)

    def send(self, message: Any) -> None:
        payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        size = len(payload)
        header = struct.pack("!i", size) if size <= 0x7FFFFFFF else struct.pack("!i", -1) + struct.pack("!Q", size)
        frame = header + payload
        if self._out:
            self._out += frame
            return
        try:
            written = os.write(self.fd, frame)
        except BlockingIOError:
            written = 0
        if written < len(frame):
            self._out += frame[written:]
            self.loop.add_writer(self.fd, self._writable)

    def _writable(self) -> None:
        try:
            written = os.write(self.fd, self._out)
        except BlockingIOError:
            return
        except OSError:
            self._out.clear()
            self.loop.remove_writer(self.fd)
            return
        del self._out[:written]
        if not self._out:
            self.loop.remove_writer(self.fd)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            self.loop.remove_reader(self.fd)
        with contextlib.suppress(Exception):
            self.loop.remove_writer(self.fd)
        with contextlib.suppress(OSError):
            self.conn.close()


@dataclass(slots=True)
class _Worker:
    index: int
    name: str
    process: Any
    channel: Any
    cells: Any
    ready: bool = False
    chunks: collections.deque[tuple[Chunk, float]] = field(default_factory=collections.deque)  # sent, in order
    last_done: float = 0.0
    kill_reason: str | None = None
    dead: bool = False
    startup: asyncio.Future[None] | None = None
    pid: int = 0
    generation: int = 0
    watched: list[int] = field(default_factory=list)


class ProcessBackend:
    """A pool of worker processes with a shared per-trial watchdog."""

    name = "process"
    depth = DEPTH  # chunks a worker holds at once: the executor cuts no chunk beyond them

    def __init__(
        self, *, workers: int = 0, trial_timeout_s: float = 30.0, context: str = "forkserver", nice: int = 0
    ) -> None:
        """``nice``: how much lower the workers' CPU priority is than this process's (the console
        uses it so that, with every core busy, its keys still get the CPU first)."""
        self._size = workers if workers > 0 else (os.cpu_count() or 1)
        self.trial_timeout_s = trial_timeout_s
        self.nice = max(0, nice)
        if context not in multiprocessing.get_all_start_methods():
            context = "spawn"
        self._ctx = multiprocessing.get_context(context)
        if context == "forkserver":
            # The server imports the engine and loads the kernel once; workers fork from it warm.
            self._ctx.set_forkserver_preload([PRELOAD])
        self._workers: list[_Worker] = []
        self._pending: collections.deque[Chunk] = collections.deque()
        self._results: asyncio.Queue[ChunkDone | BaseException | None] = asyncio.Queue()
        self._deaths: collections.Counter[int] = collections.Counter()
        self._shared: SharedBars | None = None
        self._setup: WorkerSetup | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._startup: asyncio.Task[None] | None = None  # waits for the first workers to be ready
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.replaced = 0  # workers replaced after a death
        self._replacing: set[asyncio.Task[None]] = set()
        self._interrupted = False  # interrupt_start(): the pool's start starts no more workers
        self._interrupt: asyncio.Event | None = None  # set with it, for a start waiting on its workers

    @property
    def workers(self) -> int:
        return self._size

    @property
    def forks_from_server(self) -> bool:
        """Whether the workers fork from the warm fork server (numpy, numba, the kernels loaded)."""
        return self._ctx.get_start_method() == "forkserver"

    def prepare(self) -> None:
        """Start the fork server now (it imports the engine while the caller loads data)."""
        if self._ctx.get_start_method() == "forkserver":
            start_fork_server()

    # -- life cycle ---------------------------------------------------------

    async def start(self, bars: Any, setup: WorkerSetup) -> None:
        """Start the workers and return without waiting for them to be ready.

        The caller plans its first chunks while the workers map the data and load the
        kernels; each worker gets chunks the moment it says it is ready. A worker that
        fails to start (or does not start in time) is reported on :meth:`results`.
        """
        self._loop = asyncio.get_running_loop()
        self._interrupt = asyncio.Event()
        if self._interrupted:
            self._interrupt.set()
        self._shared = SharedBars(bars)
        self._setup = setup
        try:
            await self._spawn_pool()
        except BaseException:
            await self.close()
            raise
        self._startup = self._loop.create_task(self._await_startup(), name="process-startup")
        period = min(1.0, max(0.05, self.trial_timeout_s / 4))
        self._watchdog = self._loop.create_task(self._watch(period), name="process-watchdog")

    def interrupt_start(self) -> None:
        # Read by the threads that start processes: the queued ones then start nothing.
        self._interrupted = True
        if self._interrupt is not None:
            self._interrupt.set()

    async def _spawn_pool(self) -> None:
        """Start the workers, all at once, off the loop (forking through the server blocks until it
        answers); each is registered as it starts, so :meth:`close` reaches it whatever happens."""

        async def one(index: int) -> None:
            try:
                worker = await self._spawn(index, generation=0, cells=self._ctx.RawArray("d", [math.nan, 0, 0]))
            except BaseException:
                self._interrupted = True  # the pool cannot start whole: start no more
                raise
            if worker is not None:
                self._workers.append(worker)

        spawning = asyncio.gather(*(one(index) for index in range(self._size)), return_exceptions=True)
        try:
            outcomes = await asyncio.shield(spawning)
        except asyncio.CancelledError:
            # The threads already starting a process finish; the queued ones start none.
            self._interrupted = True
            await spawning
            raise
        finally:
            self._workers.sort(key=lambda w: w.index)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _await_startup(self) -> None:
        """(A task) wait until every worker is ready, or the start is interrupted (the workers then
        stay unused until :meth:`close`); a start-up error or timeout goes to :meth:`results`."""
        assert self._loop is not None and self._interrupt is not None
        startups = [w.startup for w in self._workers if w.startup is not None]
        if not startups or self._interrupted:
            return
        everyone = asyncio.gather(*startups)
        # A worker that fails to start after an interruption is of no interest: retrieve it.
        everyone.add_done_callback(lambda f: f.cancelled() or f.exception())
        halt = self._loop.create_task(self._interrupt.wait())
        try:
            waiting: set[asyncio.Future[Any]] = {everyone, halt}
            done, _ = await asyncio.wait(waiting, timeout=STARTUP_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
        finally:
            halt.cancel()
        if self._closing:
            return
        if everyone in done:
            error = everyone.exception()
            if error is not None:
                self._results.put_nowait(error)
        elif halt not in done:
            self._results.put_nowait(TimeoutError(f"the workers did not start within {STARTUP_TIMEOUT_S:g}s"))

    def _start_process(self, process: Any, initial: bool) -> bool:
        """(In a thread) start ``process`` unless it belongs to a start that was interrupted."""
        if initial and self._interrupted:
            return False
        process.start()
        return True

    async def _spawn(self, index: int, *, generation: int, cells: Any) -> _Worker | None:
        """A started worker, or ``None`` when the pool's start was interrupted before it began."""
        assert self._loop is not None and self._setup is not None and self._shared is not None
        parent, child = self._ctx.Pipe(duplex=True)
        name = f"w{index}" if generation == 0 else f"w{index}.{generation}"
        # typeshed: get_context(str) is a BaseContext; every concrete context has Process.
        process = self._ctx.Process(  # type: ignore[attr-defined]
            target=_worker_main,
            args=(index, name, child, self._shared.handle(), self._setup, cells),
            name=f"genesis-{name}",
            daemon=True,
        )
        try:
            started = await asyncio.to_thread(self._start_process, process, generation == 0)
        finally:
            child.close()
        if not started:
            parent.close()
            return None
        if self.nice and process.pid:
            with contextlib.suppress(OSError):  # raising a child's niceness needs no privilege
                os.setpriority(os.PRIO_PROCESS, process.pid, os.getpriority(os.PRIO_PROCESS, 0) + self.nice)
        worker = _Worker(index, name, process, None, cells, generation=generation)
        worker.channel = _Channel(
            self._loop, parent, lambda message: self._on_message(worker, message), lambda: self._on_death(worker)
        )
        worker.startup = self._loop.create_future()
        worker.pid = process.pid or 0
        self._loop.add_reader(process.sentinel, self._on_exit, worker)
        worker.watched = [process.sentinel]
        return worker

    async def close(self) -> None:
        self._closing = True
        if self._startup is not None:
            self._startup.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._startup
            self._startup = None
        if self._replacing:
            await asyncio.gather(*self._replacing, return_exceptions=True)
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
            self._watchdog = None
        for worker in self._workers:
            if not worker.dead:
                with contextlib.suppress(OSError):
                    worker.channel.send(None)
        deadline = time.monotonic() + 5.0
        for worker in self._workers:
            self._unwatch(worker)
            remaining = max(0.0, deadline - time.monotonic())
            await asyncio.to_thread(worker.process.join, remaining)
            if worker.process.is_alive():
                worker.process.kill()
                await asyncio.to_thread(worker.process.join, 2.0)
            worker.channel.close()
            worker.dead = True
        self._workers.clear()
        if self._shared is not None:
            self._shared.close()
            self._shared = None
        self._interrupted = False
        self._interrupt = None
        self._results.put_nowait(None)

    # -- scheduling ---------------------------------------------------------

    def submit(self, chunk: Chunk) -> None:
        self._pending.append(chunk)
        self._dispatch()

    def cancel_pending(self) -> list[Chunk]:
        taken = list(self._pending)
        self._pending.clear()
        return taken

    def _dispatch(self) -> None:
        # Round robin: every worker gets a chunk in hand before any gets one queued behind it.
        for level in range(DEPTH):
            for worker in self._workers:
                if not self._pending:
                    return
                if worker.ready and not worker.dead and len(worker.chunks) <= level:
                    chunk = self._pending.popleft()
                    worker.chunks.append((chunk, time.monotonic()))
                    try:
                        worker.channel.send((chunk.id, _columns(chunk.tasks), chunk.artifacts, chunk.isolate))
                    except OSError:
                        self._on_death(worker)

    async def results(self) -> AsyncIterator[ChunkDone]:
        while True:
            event = await self._results.get()
            if event is None:
                return
            if isinstance(event, BaseException):
                raise event
            yield event

    # -- events from workers ----------------------------------------------------

    def _on_message(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "ready":
            worker.ready = True
            if worker.startup is not None and not worker.startup.done():
                worker.startup.set_result(None)
            self._dispatch()
        elif kind == "error":
            error = GenesisError(f"worker {worker.name} failed to start: {message[1]}")
            if worker.startup is not None and not worker.startup.done():
                worker.startup.set_exception(error)
                worker.startup.exception()
                if worker.generation > 0:
                    self._results.put_nowait(error)
        elif kind == "done":
            _, chunk_id, output, got, done = message
            _, sent_at = worker.chunks.popleft() if worker.chunks else (None, got)
            # The worker's cost of this chunk: from when it could have started it (the chunk was
            # sent and the worker was free) to its results being sent. Delays on the way back do
            # not idle the worker: the next chunk is already waiting in its socket.
            elapsed = done - max(sent_at, worker.last_done)
            worker.last_done = done
            self._deaths.pop(chunk_id, None)
            self._results.put_nowait(
                ChunkDone(
                    chunk_id, output.batch, output.artifacts, worker.name, elapsed,
                    output.cache_hits, output.cache_misses, profile=output.profile,
                )
            )
            self._dispatch()

    def _on_exit(self, worker: _Worker) -> None:
        # Drain what the worker sent before it went away, then bury it.
        if not worker.channel.closed:
            worker.channel._readable()
        self._on_death(worker)

    def _unwatch(self, worker: _Worker) -> None:
        if self._loop is None:
            return
        for fd in worker.watched:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(fd)
        worker.watched = []

    def _on_death(self, worker: _Worker) -> None:
        if worker.dead:
            return
        worker.dead = True
        self._unwatch(worker)
        worker.channel.close()
        with contextlib.suppress(Exception):
            worker.process.join(0.5)
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join(1.0)
        if self._closing:
            return
        code = worker.process.exitcode
        reason = worker.kill_reason or f"worker {worker.name} died (exit code {code})"
        if worker.startup is not None and worker.startup.done() and worker.startup.exception() is not None:
            return  # it never started: already reported, and replacing it would fail the same way
        if worker.startup is not None and not worker.startup.done():
            error = GenesisError(f"worker {worker.name} failed to start: {reason}")
            worker.startup.set_exception(error)
            worker.startup.exception()  # retrieved: start() or the line below reports it
            if worker.generation > 0:
                # A replacement that cannot start: the pool cannot recover, the study must stop.
                self._results.put_nowait(error)
            return
        if worker.chunks:
            in_hand, _ = worker.chunks.popleft()
            # Chunks queued behind it never started: back to the front of the queue as they were.
            for queued, _ in reversed(worker.chunks):
                self._pending.appendleft(queued)
            worker.chunks.clear()
            self._bury_chunk(worker, in_hand, reason)
        # A fresh worker takes the place; it gets work as soon as it is ready.
        task = self._loop.create_task(self._replace(worker)) if self._loop is not None else None
        if task is not None:
            self._replacing.add(task)
            task.add_done_callback(self._replacing.discard)

    async def _replace(self, dead: _Worker) -> None:
        replacement = await self._spawn(dead.index, generation=dead.generation + 1, cells=dead.cells)
        assert replacement is not None  # only a pool's first start is interrupted
        if self._closing:
            replacement.process.kill()
            replacement.channel.close()
            self._unwatch(replacement)
            return
        self._workers[self._workers.index(dead)] = replacement
        self.replaced += 1

    def _bury_chunk(self, worker: _Worker, chunk: Chunk, reason: str) -> None:
        """Fail the trial in hand; queue the rest of the chunk again, one trial at a time."""
        number, started, _budget = Slot(worker.cells).read()
        Slot(worker.cells).idle()
        culprit = None
        if not math.isnan(number) and number >= 0:
            culprit = next((t for t in chunk.tasks if t.number == int(number)), None)
        rest = tuple(t for t in chunk.tasks if t is not culprit)
        failed: list[TrialResult] = []
        if culprit is not None:
            ran = max(0.0, time.monotonic() - started)
            failed.append(
                TrialResult(
                    culprit.number, TrialState.FAILED, None, None, time.time() - ran, ran, worker.name, reason,
                    culprit.step,
                )
            )
        else:
            self._deaths[chunk.id] += 1
            if self._deaths[chunk.id] >= MAX_CHUNK_DEATHS:
                failed.extend(
                    TrialResult(t.number, TrialState.FAILED, None, None, time.time(), 0.0, worker.name,
                                f"{reason} (repeatedly, culprit unknown)", t.step)
                    for t in rest
                )
                rest = ()
        if failed:
            self._results.put_nowait(
                ChunkDone(chunk.id, ResultBatch.from_results(failed, worker.name), {}, worker.name, 0.0, final=not rest)
            )
        if rest:
            self._pending.appendleft(Chunk(chunk.id, rest, chunk.artifacts, isolate=True))

    # -- the watchdog -----------------------------------------------------------

    async def _watch(self, period: float) -> None:
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for worker in list(self._workers):
                if worker.dead or not worker.chunks or worker.kill_reason:
                    continue
                number, started, budget = Slot(worker.cells).read()
                if math.isnan(number) or now - started <= budget:
                    continue
                if number >= 0:
                    worker.kill_reason = f"timeout: trial ran over {self.trial_timeout_s:g}s"
                else:
                    worker.kill_reason = f"timeout: batch ran over {budget:g}s"
                with contextlib.suppress(Exception):
                    worker.process.kill()
