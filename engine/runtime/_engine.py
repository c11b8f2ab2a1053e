"""The ``Engine`` facade: one object that owns a workspace's running parts.

The console and the headless runner drive the engine only through this class:
commands (start a study from a file, pause, resume, stop with a checkpoint,
take a profile capture, toggle the paper loop, kill switch, open a trial) and
:meth:`Engine.telemetry`, which freezes everything into an immutable
:class:`~engine.telemetry.Telemetry`.

Everything runs on the caller's asyncio loop; trials run in the study's worker
processes, so the loop only orchestrates. ``telemetry()`` is cheap: it copies
counters and tuples that background tasks keep up to date (the study's store is
read incrementally once a second by :class:`StudyWatch`, system figures come
from the monitor's ring buffers), so a console can call it several times a
second without slowing anything down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import GenesisError, InputError, StoreError
from engine.paths import default_store_path
from engine.telemetry import (
    AlertRow,
    AllocationRow,
    BusTelemetry,
    FunctionRow,
    Heatmap,
    LaneRow,
    LogLine,
    ProcessRow,
    ProfilerTelemetry,
    StudyTelemetry,
    SystemTelemetry,
    Telemetry,
    TradeRow,
    TradingTelemetry,
    TrialDetail,
    TrialRow,
    ValidationTelemetry,
)

log = logging.getLogger("engine.runtime")

HISTORY = 120  # points kept for the bus sparklines (one per second)
LEADERBOARD = 25
WATCH_INTERVAL_S = 1.0
SLOW_PARTS_INTERVAL_S = 0.5  # system and profiler parts are rebuilt at most this often
CURVE_POINTS = 400
HEAT_MAX_CELLS = 16
HEATMAP_INTERVAL_S = 3.0
#: How much lower the worker processes' CPU priority is than the engine's: with
#: every core busy running trials, the console in this process still gets the CPU
#: first, so its keys are answered at once (trials lose nothing when it is idle).
WORKER_NICE = 10


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), text.strip())


def thin_curve(values: Any, limit: int = CURVE_POINTS) -> tuple[float, ...]:
    """At most ``limit`` evenly spaced points of a curve, always keeping the last."""
    n = len(values)
    if n <= limit:
        return tuple(float(v) for v in values)
    step = (n - 1) / (limit - 1)
    return tuple(float(values[round(i * step)]) for i in range(limit))


# ----------------------------------------------------------------------- log
class LogBuffer(logging.Handler):
    """Keeps the last records of the ``engine`` loggers as :class:`LogLine` s."""

    def __init__(self, capacity: int = 300) -> None:
        super().__init__(level=logging.INFO)
        self._lines: deque[LogLine] = deque(maxlen=capacity)
        self._frozen: tuple[LogLine, ...] = ()
        self._dirty = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not break logging
            message = str(record.msg)
        source = record.name.removeprefix("engine.").split(".")[0]
        self._lines.append(LogLine(record.created, record.levelname, source, message.splitlines()[0] if message else ""))
        self._dirty = True

    def lines(self) -> tuple[LogLine, ...]:
        if self._dirty:
            self._frozen = tuple(self._lines)
            self._dirty = False
        return self._frozen


# --------------------------------------------------------------------- study
@dataclass
class _Axis:
    name: str
    values: list[float]
    binned: bool

    def index(self, value: float) -> int:
        if not self.binned:
            return self.values.index(value)
        lo, hi = self.values[0], self.values[-1]
        width = (hi - lo) / (len(self.values) - 1) if len(self.values) > 1 else 1.0
        return min(len(self.values) - 1, max(0, round((value - lo) / width)))


def build_heatmap(points: list[tuple[dict[str, Any], float]], maximize: bool) -> Heatmap | None:
    """The best objective over the two numeric parameters with the most distinct values."""
    if len(points) < 4:
        return None
    distinct: dict[str, set[float]] = {}
    for params, _ in points:
        for name, value in params.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                distinct.setdefault(name, set()).add(float(value))
    names = sorted((n for n, v in distinct.items() if len(v) >= 2), key=lambda n: (-len(distinct[n]), n))[:2]
    if len(names) < 2:
        return None
    names.sort()  # stable axes: x is the first name alphabetically
    axes = []
    for name in names:
        values = sorted(distinct[name])
        if len(values) <= HEAT_MAX_CELLS:
            axes.append(_Axis(name, values, binned=False))
        else:
            lo, hi = values[0], values[-1]
            step = (hi - lo) / (HEAT_MAX_CELLS - 1)
            axes.append(_Axis(name, [lo + i * step for i in range(HEAT_MAX_CELLS)], binned=True))
    x_axis, y_axis = axes
    grid: list[list[float | None]] = [[None] * len(x_axis.values) for _ in y_axis.values]
    for params, value in points:
        x, y = params.get(x_axis.name), params.get(y_axis.name)
        if x is None or y is None:
            continue
        xi, yi = x_axis.index(float(x)), y_axis.index(float(y))
        current = grid[yi][xi]
        if current is None or (value > current if maximize else value < current):
            grid[yi][xi] = value
    return Heatmap(
        x_param=x_axis.name,
        y_param=y_axis.name,
        x_values=tuple(x_axis.values),
        y_values=tuple(y_axis.values),
        values=tuple(tuple(row) for row in grid),
    )


def _figures(raw: Any) -> tuple[tuple[str, float], ...]:
    if not isinstance(raw, dict):
        return ()
    return tuple(
        (str(k), float(v)) for k, v in raw.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
    )


def validation_from_dict(raw: dict[str, Any] | None, trials: int) -> ValidationTelemetry | None:
    """Map the optimizer's stored validation report (``ValidationReport.as_dict()``) onto
    the console's record: the best re-checked trial's in-sample and out-of-sample
    figures, the deflated Sharpe probability and the walk-forward fold count."""
    if not raw:
        return None
    holdout = raw.get("holdout")
    checks = holdout.get("trials") if isinstance(holdout, dict) else None
    best = checks[0] if isinstance(checks, list) and checks and isinstance(checks[0], dict) else raw
    in_sample = _figures(best.get("in_sample"))
    out_sample = _figures(best.get("out_of_sample"))
    deflated = raw.get("deflated_sharpe")
    dsr = deflated.get("dsr") if isinstance(deflated, dict) else deflated
    n_trials = deflated.get("n_trials") if isinstance(deflated, dict) else None
    walk = raw.get("walk_forward")
    folds = walk.get("folds") if isinstance(walk, dict) else None
    if not in_sample and not out_sample and dsr is None:
        return None
    return ValidationTelemetry(
        in_sample=in_sample,
        out_of_sample=out_sample,
        deflated_sharpe=float(dsr) if isinstance(dsr, (int, float)) else None,
        probability_overfit=None,
        folds=len(folds) if isinstance(folds, list) else 0,
        trials_considered=int(n_trials) if isinstance(n_trials, int) else trials,
    )


class StudyWatch:
    """Reads a running study's store incrementally and keeps the console's views of it.

    One read-only connection; every second it fetches the trials written since
    the last read (by rowid), extends the best-so-far curve and the heatmap
    points, refreshes the leaderboard and, when the best trial changes, loads
    its equity curve from the stored artifacts.
    """

    def __init__(self, name: str, db: Path, *, maximize: bool) -> None:
        self.name = name
        self.db = db
        self.maximize = maximize
        self.rowid = 0
        self.convergence: list[float] = []
        self.points: list[tuple[dict[str, Any], float]] = []
        self.leaderboard: tuple[TrialRow, ...] = ()
        self.best_equity: tuple[float, ...] = ()
        self.heatmap: Heatmap | None = None
        self.validation: ValidationTelemetry | None = None
        self.checkpointed_at: float | None = None
        self.checkpoint_trials = 0
        self.study_id: int | None = None
        self._equity_for: int | None = None
        self._heat_dirty = False
        self._heat_at = -1e9
        self._convergence_frozen: tuple[float, ...] = ()
        self._store: Any = None
        # The watch loop, the study's last read and the console's trial view share one
        # store: unserialized, two reads would each open one (leaking a connection thread,
        # which hangs the interpreter at exit) and count the same trials twice.
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"study-watch-{self.name}")

    async def stop(self) -> None:
        """One last read (so the final state is shown), then close; once."""
        if self._stopped:
            return
        self._stopped = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await self.poll(final=True)
        await self._close()

    async def _close(self) -> None:
        async with self._lock:
            store, self._store = self._store, None
            if store is not None:
                with contextlib.suppress(Exception):
                    await store.close()

    async def _run(self) -> None:
        while True:
            try:
                await self.poll()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the store may be mid-creation; try again next tick
                log.debug("study watch %s: %s", self.name, error)
                await self._close()
            await asyncio.sleep(WATCH_INTERVAL_S)

    async def _open(self) -> Any:
        if self._store is None:
            from engine.optimize.store import SqliteStore

            if not self.db.exists():
                return None
            self._store = await SqliteStore.open(self.db, readonly=True)
        return self._store

    async def poll(self, final: bool = False) -> None:
        """Read the trials stored since the last poll (``final``: rebuild the heatmap now)."""
        async with self._lock:
            await self._poll(final)

    async def _poll(self, final: bool) -> None:
        store = await self._open()
        if store is None:
            return
        record = await store.get_study(self.name)
        if record is None:
            return
        self.study_id = record.id
        if record.checkpoint_seq:
            self.checkpointed_at = record.updated
            self.checkpoint_trials = record.next_number
        while True:
            batch = await store.trials_after(record.id, self.rowid, limit=2000)
            for trial in batch:
                self.rowid = max(self.rowid, trial.rowid)
                if trial.objective is None or trial.state != "complete":
                    continue
                value = float(trial.objective)
                if not math.isfinite(value):
                    continue
                best = self.convergence[-1] if self.convergence else value
                self.convergence.append(max(best, value) if self.maximize else min(best, value))
                self.points.append((trial.params, value))
                self._heat_dirty = True
            if len(batch) < 2000:
                break
        if self._heat_dirty:
            self._convergence_frozen = thin_curve(self.convergence)
            now = time.monotonic()
            # O(trials) in Python: rebuilt every few seconds, not on every read
            if now - self._heat_at >= HEATMAP_INTERVAL_S or final:
                self._heat_at = now
                self.heatmap = build_heatmap(self.points, self.maximize)
                self._heat_dirty = False
        top = await store.best(record.id, maximize=self.maximize, k=LEADERBOARD)
        self.leaderboard = tuple(
            TrialRow(
                number=t.number,
                value=t.objective,
                params=tuple(sorted(t.params.items())),
                metrics=_figures(t.metrics),
                state=str(t.state),
                duration_s=float(t.duration_s or 0.0),
            )
            for t in top
        )
        if top and top[0].number != self._equity_for:
            arrays = await store.artifacts(record.id, top[0].number)
            equity = arrays.get("equity")
            if equity is not None and len(equity):
                self.best_equity = thin_curve(equity)
                self._equity_for = top[0].number
        if record.validation:
            self.validation = validation_from_dict(record.validation, len(self.points))

    @property
    def curve(self) -> tuple[float, ...]:
        return self._convergence_frozen

    async def trial(self, number: int) -> tuple[Any, dict[str, Any]]:
        """The stored record and artifacts of trial ``number``."""
        async with self._lock:
            store = await self._open()
            if store is None or self.study_id is None:
                raise StoreError(f"{self.db}: study {self.name!r} has no stored trials yet")
            for trial in await store.trials(self.study_id):
                if trial.number == number:
                    return trial, await store.artifacts(self.study_id, number)
        raise InputError(f"study {self.name!r}: no trial #{number} in {self.db}")


# -------------------------------------------------------------------- engine
class Engine:
    """Owns a study, the event bus, the paper loop, the profiler and the monitor."""

    def __init__(
        self,
        *,
        db: str | Path | None = None,
        workspace: str = "engine",
        backend: str | None = None,
        workers: int | None = None,
        worker_nice: int = WORKER_NICE,
        profile: bool = True,
        monitor: bool = True,
        sample_interval_s: float = 1.0,
        alerts: Any = None,
        paper_factory: Callable[[Engine], Any] | None = None,
    ) -> None:
        self.db = Path(db) if db is not None else default_store_path()
        self.workspace = workspace
        self.backend = backend
        self.workers = workers
        self.worker_nice = worker_nice
        self._profile_on = profile
        self._monitor_on = monitor
        self._sample_interval_s = sample_interval_s
        self._alerts_spec = alerts
        self._paper_factory = paper_factory
        self.bus: Any = None
        self.session: Any = None
        self.monitor: Any = None
        self.paper: Any = None
        self.study: Any = None
        self._study_task: asyncio.Task[Any] | None = None
        self._study_path: Path | None = None
        self._study_queue: list[Path] = []
        self._study_error = ""
        self._stopping = False
        self._watch: StudyWatch | None = None
        self._log = LogBuffer()
        self._seq = 0
        self._started = False
        self._notes: dict[str, str] = {}
        self._rate_history: deque[float] = deque(maxlen=HISTORY)
        self._p99_history: deque[float] = deque(maxlen=HISTORY)
        self._last_bus_sample = 0.0
        self._slow_at = 0.0
        self._slow: tuple[ProfilerTelemetry | None, SystemTelemetry | None, tuple[AlertRow, ...]] = (None, None, ())
        self._capture_task: asyncio.Task[Any] | None = None
        self._bg: set[asyncio.Task[Any]] = set()

    # ---------------------------------------------------------------- life
    async def start(self) -> Engine:
        """Start the bus, the profiler session and the monitor (idempotent)."""
        if self._started:
            return self
        self._started = True
        engine_logger = logging.getLogger("engine")
        engine_logger.addHandler(self._log)
        if engine_logger.level == logging.NOTSET or engine_logger.level > logging.INFO:
            engine_logger.setLevel(logging.INFO)
        from engine.bus import EventBus

        self.bus = EventBus()
        await self.bus.start()
        if self._profile_on or self._monitor_on:
            from engine.profile.session import ProfileSession

            monitor = None
            if self._monitor_on:
                from engine.monitor.monitor import Monitor

                monitor = Monitor(
                    self._alerts_spec,
                    interval_s=self._sample_interval_s,
                    disk_path=self.db.parent if self.db.parent.exists() else None,
                    metrics=self._alert_metrics,
                    publish=self._publish_alert,
                )
            self.monitor = monitor
            self.session = ProfileSession(monitor=monitor)
            await self.session.start(sample=monitor is not None)
            if not self._profile_on:
                self.session.timer.enabled = False
        else:
            self._notes["profiler"] = "profiling off"
            self._notes["system"] = "monitor off"
        if self._paper_factory is not None:
            try:
                self.paper = self._paper_factory(self)
                await self.paper.start()
            except GenesisError as error:
                self.paper = None
                self._notes["trading"] = str(error)
                log.error("paper loop: %s", error)
        else:
            self._notes["trading"] = "no paper loop configured"
        log.info("engine started: workspace %s, store %s", self.workspace, self.db)
        return self

    async def close(self) -> None:
        """Stop everything; a running study is stopped with a checkpoint first."""
        if self._stopping:
            return
        self._stopping = True
        self._study_queue.clear()
        with contextlib.suppress(GenesisError):
            await self._stop_study()
        if self.paper is not None:
            with contextlib.suppress(Exception):
                await self.paper.stop()
        if self._capture_task is not None:
            self._capture_task.cancel()
        for task in list(self._bg):
            task.cancel()
        if self.session is not None:
            with contextlib.suppress(Exception):
                await self.session.stop()
        if self.bus is not None:
            with contextlib.suppress(Exception):
                await self.bus.stop(drain=True, timeout=2.0)
        if self._watch is not None:  # a study that ended before: its store is still open
            await self._watch.stop()
        logging.getLogger("engine").removeHandler(self._log)
        self._started = False

    async def __aenter__(self) -> Engine:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -------------------------------------------------------------- studies
    async def start_study(self, path: str | Path, *, then: list[Path] | None = None) -> str:
        """Start (or resume) the study in ``path``; a running study is stopped and checkpointed first."""
        path = Path(path).expanduser()
        study = self._load_study(path)
        if self._study_task is not None and not self._study_task.done():
            await self._stop_study()
        self._study_queue = list(then or [])
        await self._launch(study, path)
        return f"study {study.name!r} started from {path}"

    def _load_study(self, path: Path) -> Any:
        from engine.optimize.study import Study

        return Study.from_file(
            path, db=self.db, backend=self.backend, workers=self.workers, worker_nice=self.worker_nice
        )

    async def _launch(self, study: Any, path: Path) -> None:
        from engine.headless.lock import StudyLock

        if self._watch is not None:  # the finished study's watch: its store closes with it
            await self._watch.stop()
        lock = StudyLock(self.db, study.name).acquire()  # LockHeldError when a cron run holds the study
        self.study = study
        self._study_path = path
        self._study_error = ""
        self._watch = StudyWatch(study.name, self.db, maximize=study.maximize)
        self._watch.start()
        self._study_task = asyncio.get_running_loop().create_task(
            self._run_study(study, lock), name=f"study-{study.name}"
        )

    def follow_study(self, study: Any) -> StudyWatch:
        """Show ``study`` in telemetry and alert metrics while the caller runs it (the headless runner).

        The caller owns the run (``await study.run()``) and stops the returned watch when it is done.
        """
        self.study = study
        self._study_path = None
        self._study_error = ""
        self._watch = StudyWatch(study.name, self.db, maximize=study.maximize)
        self._watch.start()
        return self._watch

    async def _run_study(self, study: Any, lock: Any = None) -> Any:
        log.info("study %s: starting (%s backend)", study.name, self.backend or study.backend_choice)
        try:
            summary = await study.run()
        except asyncio.CancelledError:
            raise
        except GenesisError as error:
            self._study_error = _first_line(str(error))
            log.error("study %s: %s", study.name, self._study_error)
            return None
        except Exception as error:
            self._study_error = _first_line(f"{type(error).__name__}: {error}")
            log.error("study %s failed: %s", study.name, self._study_error)
            log.debug("study %s traceback", study.name, exc_info=True)
            return None
        finally:
            if lock is not None:
                lock.release()
            if self._watch is not None and self._watch.name == study.name:
                with contextlib.suppress(Exception):
                    await self._watch.poll(final=True)
        log.info(
            "study %s: %s after %d trials (%.1f trials/s)",
            study.name, summary.state, summary.trials, summary.trials_per_s,
        )
        if summary.state == "complete" and self._study_queue and not self._stopping:
            next_path = self._study_queue.pop(0)
            task = asyncio.get_running_loop().create_task(self._start_next(next_path))
            self._bg.add(task)
            task.add_done_callback(self._bg.discard)
        return summary

    async def _start_next(self, path: Path) -> None:
        try:
            study = self._load_study(path)
        except GenesisError as error:
            log.error("next study %s: %s", path, error)
            return
        try:
            await self._launch(study, path)
        except GenesisError as error:
            log.error("next study %s: %s", path, error)

    def _require_study(self) -> Any:
        if self.study is None:
            raise InputError("no study is running (start one from a study file first)")
        return self.study

    async def pause(self) -> str:
        """Stop dispatching trials; workers finish the ones in hand."""
        study = self._require_study()
        state = study.progress().state
        if self._study_task is None or self._study_task.done() or state not in ("running", "paused"):
            raise InputError(f"study {study.name!r} is not running ({state})")
        await study.pause()
        log.info("study %s: paused", study.name)
        return f"study {study.name!r} paused (workers finish the trials in hand)"

    async def resume(self) -> str:
        study = self._require_study()
        state = study.progress().state
        if self._study_task is None or self._study_task.done() or state not in ("running", "paused"):
            raise InputError(f"study {study.name!r} is not running ({state})")
        await study.resume()
        log.info("study %s: resumed", study.name)
        return f"study {study.name!r} resumed"

    async def stop(self) -> str:
        """Stop the study; returns once its trials are stored and checkpointed."""
        study = self._require_study()
        summary = await self._stop_study()
        done = summary.trials if summary is not None else study.progress().done
        return f"study {study.name!r} stopped at {done} trials; checkpoint written to {self.db}"

    async def _stop_study(self) -> Any:
        task, study = self._study_task, self.study
        if task is None or study is None:
            return None
        self._study_queue.clear()
        if not task.done():
            log.info("study %s: stopping (finishing trials in hand, checkpointing)", study.name)
            await study.stop()
        try:
            summary = await task
        finally:
            if self._watch is not None:
                await self._watch.stop()
        return summary

    async def open_trial(self, number: int) -> TrialDetail:
        """One trial of the current study: params, metrics, equity and trades."""
        study = self._require_study()
        if self._watch is None:
            raise InputError("no study store to read")
        trial, arrays = await self._watch.trial(number)
        equity = arrays.get("equity")
        trades_raw = arrays.get("trades")
        trades: tuple[TradeRow, ...] = ()
        if trades_raw is not None and getattr(trades_raw, "dtype", None) is not None and trades_raw.dtype.names:
            trades = tuple(
                TradeRow(
                    entry=int(t["entry_idx"]),
                    exit=int(t["exit_idx"]),
                    side="long" if int(t["direction"]) > 0 else "short",
                    entry_price=float(t["entry_price"]),
                    exit_price=float(t["exit_price"]),
                    units=float(t["units"]),
                    pnl=float(t["pnl"]),
                    ret=float(t["return"]),
                )
                for t in trades_raw[-200:]
            )
        note = "" if equity is not None else "equity and trades are stored for the top trials only"
        if trial.error:
            note = trial.error.splitlines()[0]
        return TrialDetail(
            study=study.name,
            number=trial.number,
            value=trial.objective,
            objective=study.objective,
            params=tuple(sorted(trial.params.items())),
            metrics=_figures(trial.metrics),
            equity=thin_curve(equity) if equity is not None else (),
            trades=trades,
            state=str(trial.state),
            note=note,
        )

    # ------------------------------------------------------ profile, paper
    async def capture_profile(self, seconds: float = 5.0) -> str:
        """cProfile this process for ``seconds`` and snapshot its allocations."""
        if self.session is None:
            raise InputError("profiling is off in this engine")
        if self.session.snapshot().capturing:
            raise InputError("a capture is already running")
        self.session.start_memory()
        capture = await self.session.capture_cpu(seconds, label=f"console {seconds:.0f}s")
        self.session.capture_memory(label=capture.label)
        log.info("profile capture: %d calls in %.1f s", capture.total_calls, capture.duration_s)
        return f"captured {seconds:.0f} s: {capture.total_calls:,} calls"

    async def toggle_paper(self) -> str:
        if self.paper is None:
            raise InputError(self._notes.get("trading", "no paper loop in this workspace"))
        running = await self.paper.toggle()
        log.info("paper loop %s", "running" if running else "paused")
        return f"paper loop {'running' if running else 'paused'}"

    async def kill_switch(self) -> str:
        if self.paper is None:
            raise InputError(self._notes.get("trading", "no paper loop in this workspace"))
        await self.paper.kill()
        log.warning("kill switch: paper trading halted and flattened")
        return "kill switch engaged: positions flattened, trading halted"

    # -------------------------------------------------------------- alerts
    def _alert_metrics(self) -> dict[str, float | None]:
        values: dict[str, float | None] = {}
        if self.bus is not None:
            metrics = self.bus.metrics()
            p99 = max((lane.latency_ns.p99 for lane in metrics.lanes if lane.delivered), default=None)
            values["bus_p99_ms"] = None if p99 is None else p99 / 1e6
            delivered = metrics.delivered
            values["error_rate"] = metrics.errors / delivered if delivered else None
            if self.paper is not None and getattr(self.paper, "running", False):
                values["event_rate"] = metrics.throughput
        if self.study is not None:
            progress = self.study.progress()
            values["trial_failure_rate"] = progress.failed / progress.done if progress.done >= 20 else None
        return values

    def _publish_alert(self, alert: Any) -> None:
        level = logging.CRITICAL if alert.level == "critical" else logging.WARNING
        if alert.state == "cleared":
            level = logging.INFO
        log.log(level, "%s", alert.message)
        if self.bus is not None and self.bus.running:
            with contextlib.suppress(Exception):
                self.bus.publish_nowait(alert.topic, alert.to_dict())

    # ------------------------------------------------------------ telemetry
    def telemetry(self) -> Telemetry:
        """The immutable snapshot of everything (cheap: no I/O, no waiting)."""
        self._seq += 1
        now = time.monotonic()
        if now - self._slow_at >= SLOW_PARTS_INTERVAL_S:
            self._slow_at = now
            self._slow = self._slow_parts()
        profiler_part, system_part, alerts = self._slow
        notes = dict(self._notes)
        study_part = self._study_telemetry()
        if study_part is None:
            notes.setdefault("study", self._study_error or "no study running")
        if system_part is None:
            notes.setdefault("system", "monitor off")
        trading = self._trading_telemetry()
        return Telemetry(
            seq=self._seq,
            taken_at=time.time(),
            workspace=self.workspace,
            study=study_part,
            bus=self._bus_telemetry(now),
            trading=trading,
            profiler=profiler_part,
            system=system_part,
            alerts=alerts,
            log=self._log.lines()[-100:],
            notes=tuple(f"{k}: {v}" for k, v in sorted(notes.items())),
        )

    def _study_telemetry(self) -> StudyTelemetry | None:
        study = self.study
        if study is None:
            return None
        p = study.progress()
        watch = self._watch
        task = self._study_task
        state = p.state
        if task is not None and not task.done() and study._stop_requested:
            state = "stopping"
        elif task is not None and task.done() and state == "running":
            state = "failed" if self._study_error else "stopped"
        search = getattr(study.spec, "search", None)
        return StudyTelemetry(
            name=study.name,
            state=state,  # type: ignore[arg-type]
            objective=study.objective,
            direction="maximize" if study.maximize else "minimize",
            sampler=str(getattr(search, "sampler", "")),
            backend=str(study.backend_choice if isinstance(study.backend_choice, str) else study.backend_choice.name),
            workers=p.workers,
            total=p.total,
            done=p.done,
            running=p.in_flight,
            failed=p.failed,
            pruned=p.pruned,
            trials_per_s=p.trials_per_s,
            eta_s=p.eta_s,
            elapsed_s=p.elapsed_s,
            best_value=p.best_value,
            best_trial=p.best_number,
            leaderboard=watch.leaderboard if watch else (),
            convergence=watch.curve if watch else (),
            best_equity=watch.best_equity if watch else (),
            heatmap=watch.heatmap if watch else None,
            validation=watch.validation if watch else None,
            checkpointed_at=watch.checkpointed_at if watch else None,
            checkpoint_trials=watch.checkpoint_trials if watch else 0,
            store=str(self.db),
            message=self._study_error,
        )

    def _bus_telemetry(self, now: float) -> BusTelemetry | None:
        if self.bus is None:
            return None
        metrics = self.bus.metrics()
        lanes = tuple(
            LaneRow(
                name=m.lane.lower(),
                rate=m.throughput,
                delivered=m.delivered,
                dropped=m.dropped,
                depth=m.depth,
                high_water=m.high_water,
                capacity=m.capacity,
                p50_ms=m.latency_ns.p50 / 1e6,
                p99_ms=m.latency_ns.p99 / 1e6,
            )
            for m in metrics.lanes
        )
        p99 = max((lane.p99_ms for lane in lanes if lane.delivered), default=0.0)
        if now - self._last_bus_sample >= 1.0:
            self._last_bus_sample = now
            self._rate_history.append(metrics.throughput)
            self._p99_history.append(p99)
        return BusTelemetry(
            lanes=lanes,
            rate=metrics.throughput,
            p99_ms=p99,
            delivered=metrics.delivered,
            dropped=metrics.dropped,
            dead_letters=metrics.dead_letter_count,
            rate_history=tuple(self._rate_history),
            p99_history=tuple(self._p99_history),
        )

    def _trading_telemetry(self) -> TradingTelemetry | None:
        if self.paper is None:
            return None
        try:
            return self.paper.telemetry()
        except Exception as error:  # a broken adapter shows as "not running", with the reason
            self._notes["trading"] = f"paper loop telemetry failed: {error}"
            return None

    def _slow_parts(self) -> tuple[ProfilerTelemetry | None, SystemTelemetry | None, tuple[AlertRow, ...]]:
        if self.session is None:
            return None, None, ()
        snap = self.session.snapshot()
        cpu = snap.cpu
        label = ""
        if cpu is not None:
            label = f"{cpu.label}, {cpu.duration_s:.1f} s at {time.strftime('%H:%M:%S', time.gmtime(cpu.started_at))} UTC"
        profiler_part = ProfilerTelemetry(
            enabled=snap.enabled,
            stages=snap.stages,
            functions=tuple(
                FunctionRow(f.label, f.calls, f.own_s, f.cumulative_s) for f in (snap.top_functions(15) if cpu else ())
            ),
            allocations=tuple(
                AllocationRow(s.label, s.size_bytes, s.count) for s in (snap.memory.sites[:15] if snap.memory else ())
            ),
            caches=snap.caches,
            capturing=snap.capturing,
            capture_label=label,
            captures=snap.captures,
        )
        monitor = snap.monitor
        if monitor is None or monitor.system.last is None:
            return profiler_part, None, ()
        return profiler_part, system_from_snapshot(monitor.system), alerts_from_monitor(monitor)


MB = 1024 * 1024


def system_from_snapshot(system: Any) -> SystemTelemetry:
    """Map the monitor's :class:`~engine.monitor.system.SystemSnapshot` onto the console's record."""
    last = system.last
    total_mb = last.memory_total_bytes / MB
    used_mb = (last.memory_total_bytes - last.memory_available_bytes) / MB
    memory_history = tuple(p * total_mb / 100.0 for p in system.series.get("memory_percent", ())[-HISTORY:])
    processes = [ProcessRow(last.process.pid, "engine", last.process.cpu_percent, last.process.rss_bytes / MB)]
    processes += [
        ProcessRow(w.pid, w.name or "worker", w.cpu_percent, w.rss_bytes / MB) for w in last.workers
    ]
    return SystemTelemetry(
        cpu_count=len(last.cpu_per_core),
        cpu_percent=last.machine_cpu_percent,
        cpu_per_core=last.cpu_per_core,
        memory_percent=last.memory_percent,
        memory_used_mb=used_mb,
        memory_total_mb=total_mb,
        process_rss_mb=last.process.rss_bytes / MB,
        cpu_history=tuple(system.series.get("machine_cpu_percent", ())[-HISTORY:]),
        core_history=tuple(core[-HISTORY:] for core in system.cpu_per_core),
        memory_history=memory_history,
        processes=tuple(processes),
        disk_free_mb=None if last.disk_free_bytes is None else last.disk_free_bytes / MB,
        load_average=last.load_average,
    )


def alerts_from_monitor(monitor: Any) -> tuple[AlertRow, ...]:
    """Pair each raise with its clear: one row per alert, with both times."""
    rows: dict[tuple[str, str, float], AlertRow] = {}
    for alert in monitor.history:
        key = (alert.rule, alert.level, alert.raised_at)
        if alert.state == "raised":
            rows.setdefault(key, AlertRow(alert.rule, alert.level, alert.message, alert.raised_at, None, alert.value))
        else:
            raised = rows.get(key)
            message = raised.message if raised else alert.message
            rows[key] = AlertRow(alert.rule, alert.level, message, alert.raised_at, alert.ts, alert.value)
    for alert in monitor.active:
        key = (alert.rule, alert.level, alert.raised_at)
        if key not in rows:
            rows[key] = AlertRow(alert.rule, alert.level, alert.message, alert.raised_at, None, alert.value)
    return tuple(sorted(rows.values(), key=lambda a: a.raised_at))


# --------------------------------------------------------------- paper loop
class PaperHost:
    """Runs a :class:`~engine.live.loop.PaperTradingLoop` on the engine's bus.

    ``make_loop(bus)`` builds a fresh loop; with ``repeat`` a replay that
    reaches its end starts again (the demo's endless market), unless it was
    stopped or killed.
    """

    def __init__(self, make_loop: Callable[[Any], Any], bus: Any, *, repeat: bool = True) -> None:
        self._make_loop = make_loop
        self._bus = bus
        self._repeat = repeat
        self.loop: Any = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.replays = 0

    async def start(self) -> None:
        self.loop = self._make_loop(self._bus)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="paper-loop")

    async def _run(self) -> None:
        while True:
            try:
                result = await self.loop.run()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("paper loop failed")
                return
            self.replays += 1
            log.info(
                "paper replay %d finished: %d bars, %d trades, equity %.2f",
                self.replays, result.bars, len(result.trades), result.final_equity,
            )
            if self._stopping or not self._repeat or result.state.risk.kill_switch:
                return
            self.loop = self._make_loop(self._bus)

    @property
    def running(self) -> bool:
        if self.loop is None:
            return False
        state = self.loop.state()
        return state.running and not state.paused

    async def toggle(self) -> bool:
        """Pause a running loop or resume a paused one; the new running state."""
        if self.loop is None or self._task is None or self._task.done():
            raise InputError("the paper loop has ended")
        state = self.loop.state()
        if state.paused:
            self.loop.resume()
        else:
            self.loop.pause()
        await asyncio.sleep(0.05)  # the control event goes through the bus's CRITICAL lane
        return self.running

    async def kill(self) -> None:
        if self.loop is None:
            raise InputError("the paper loop is not running")
        self.loop.kill("kill switch (console)")
        await asyncio.sleep(0.05)

    async def stop(self) -> None:
        self._stopping = True
        task, self._task = self._task, None
        if task is None or task.done():
            return
        with contextlib.suppress(Exception):
            if self.loop.state().paused:
                self.loop.resume()
            self.loop.stop()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=2.0)
        except Exception:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def telemetry(self) -> TradingTelemetry | None:
        if self.loop is None:
            return None
        return trading_from_state(self.loop.state())


_TARGETS = {1: "long", 0: "flat", -1: "short"}


def trading_from_state(state: Any) -> TradingTelemetry:
    """Map the paper loop's ``LoopState`` onto the console's record."""
    from engine.telemetry import OrderRow, PositionRow

    positions = ()
    if state.side:
        positions = (
            PositionRow(
                symbol=state.symbol,
                units=state.units * state.side,
                avg_price=state.entry_price,
                mark=state.mark_price,
                unrealized_pnl=state.unrealized_pnl,
            ),
        )
    orders = tuple(
        OrderRow(None, o.index, state.symbol, _TARGETS.get(o.target, str(o.target)), None, None, o.status, o.order_id)
        for o in state.orders
    )
    fills = tuple(
        OrderRow(
            f.ts / 1e9, f.index, f.symbol, "buy" if f.side > 0 else "sell", f.units, f.price,
            f"filled ({f.reason})" if not f.opens else "filled", f.order_id,
        )
        for f in state.fills
    )
    risk = state.risk
    return TradingTelemetry(
        running=state.running and not state.paused,
        strategy=state.strategy,
        symbol=state.symbol,
        bars_seen=state.bars_seen,
        cash=state.cash,
        equity=state.equity,
        realized_pnl=state.realized_pnl,
        drawdown=state.drawdown,
        equity_curve=thin_curve(state.equity_curve),
        positions=positions,
        orders=orders[-20:],
        fills=fills[-20:],
        circuit_breaker=risk.breaker,
        kill_switch=risk.kill_switch,
        risk_message=risk.message,
        last_bar_ts=None if state.last_bar_ts is None else state.last_bar_ts / 1e9,
    )
