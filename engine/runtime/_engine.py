"""The ``Engine`` facade: one object that owns a workspace's running parts.

The console and the headless runner drive the engine only through this class:
commands (start a study from a file, pause, resume, stop with a checkpoint,
take a profile capture, toggle the paper loop, kill switch, open a trial) and
:meth:`Engine.telemetry`, which freezes everything into an immutable
:class:`~engine.telemetry.Telemetry`.

Everything runs on the asyncio loop that started it (the console runs it on a
thread of its own: :class:`~engine.runtime.EngineThread`); a command or a
snapshot asked from any other running loop is a RuntimeError. Trials run in the study's worker
processes, so the loop only orchestrates. ``telemetry()`` is cheap: it copies
counters and tuples that background tasks keep up to date (the study's store is
read incrementally once a second by :class:`~engine.runtime.StudyWatch`, system
figures come from the monitor's ring buffers), so a console can call it several
times a second without slowing anything down.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import GenesisError, InputError
from engine.paths import default_store_path
from engine.runtime._log import LogBuffer
from engine.runtime._watch import StudyWatch
from engine.store.url import DatabaseUrl, store_location
from engine.telemetry import (
    AlertRow,
    BusTelemetry,
    LaneRow,
    ProfilerTelemetry,
    StudyComparison,
    StudyTelemetry,
    SystemTelemetry,
    Telemetry,
    TradingTelemetry,
    TrialDetail,
)
from engine.telemetry_map import (
    HISTORY,
    alerts_from_monitor,
    profiler_from_snapshot,
    system_from_snapshot,
    trial_detail,
)

if TYPE_CHECKING:
    from engine.backtest.inspect import TradeInspection
    from engine.bus import EventBus
    from engine.data.warm import Warmer
    from engine.monitor.alert_spec import AlertsSpec
    from engine.monitor.alerts import Alert
    from engine.monitor.monitor import Monitor
    from engine.optimize.lock import StudyLock
    from engine.optimize.study import Study, StudySummary
    from engine.profile.session import ProfileSession
    from engine.runtime._paper import PaperHost

log = logging.getLogger("engine.runtime")

#: The data ``backtest_strategy`` runs on when no study is loaded.
BACKTEST_DATA = "synthetic:bars=100000,seed=7,timeframe=1m"
SLOW_PARTS_INTERVAL_S = 0.5  # system and profiler parts are rebuilt at most this often
#: How much lower the worker processes' CPU priority is than the engine's: with
#: every core busy running trials, the console in this process still gets the CPU
#: first, so its keys are answered at once (trials lose nothing when it is idle).
WORKER_NICE = 10


def _strategy_where(study: Study) -> str:
    """A user strategy's ``file:line`` ("" for a built-in, or when its file no longer loads)."""
    from engine.optimize.study import strategy_of

    try:
        strategy = strategy_of(study.spec)
    except GenesisError:
        return ""
    return "" if strategy.builtin else strategy.where


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), text.strip())


class Engine:
    """Owns a study, the event bus, the paper loop, the profiler and the monitor."""

    def __init__(
        self,
        *,
        db: str | Path | DatabaseUrl | None = None,
        workspace: str = "engine",
        backend: str | None = None,
        workers: int | None = None,
        worker_nice: int = WORKER_NICE,
        profile: bool = True,
        monitor: bool = True,
        sample_interval_s: float = 1.0,
        alerts: AlertsSpec | Mapping[str, Any] | None = None,
        paper_factory: Callable[[Engine], PaperHost] | None = None,
    ) -> None:
        self.db = store_location(db) if db is not None else default_store_path()
        self.workspace = workspace
        self.backend = backend
        self.workers = workers
        self.worker_nice = worker_nice
        self._profile_on = profile
        self._monitor_on = monitor
        self._sample_interval_s = sample_interval_s
        self._alerts_spec = alerts
        self._paper_factory = paper_factory
        self.bus: EventBus | None = None
        self.session: ProfileSession | None = None
        self.monitor: Monitor | None = None
        self.paper: PaperHost | None = None
        self.study: Study | None = None
        self._study_task: asyncio.Task[StudySummary | None] | None = None
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
        self._loop: asyncio.AbstractEventLoop | None = None
        self.warmer: Warmer | None = None

    def _check_loop(self) -> None:
        """Raise if called from a running loop other than the engine's (another thread's)."""
        if self._loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:  # plain synchronous code (a script, the headless report)
            return
        if running is not self._loop:
            raise RuntimeError("the engine was called from an event loop other than its own")

    # ---------------------------------------------------------------- life
    async def start(self) -> Engine:
        """Start the bus, the profiler session and the monitor (idempotent)."""
        if self._started:
            self._check_loop()
            return self
        self._started = True
        self._loop = asyncio.get_running_loop()
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
                    disk_path=self.db.parent if isinstance(self.db, Path) and self.db.parent.exists() else None,
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
        from engine.data.warm import start_engine_warming

        try:  # in the background: start-up does not wait for it (docs/market-data.md, Warming)
            self.warmer = start_engine_warming(self.db)
        except GenesisError as error:
            self._notes["warming"] = str(error)
        log.info("engine started: workspace %s, store %s", self.workspace, self.db)
        return self

    async def close(self) -> None:
        """Stop everything; a running study is stopped with a checkpoint first."""
        if self._stopping:
            return
        self._check_loop()
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
        if self.warmer is not None:
            await self.warmer.stop()
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
        self._check_loop()
        path = Path(path).expanduser()
        study = self._load_study(path)
        if self.warmer is not None:  # the queued files' data, after the study's own load
            from engine.data.warm import study_file_specs

            self.warmer.extend(study_file_specs([path, *(then or [])]))
        if self._study_task is not None and not self._study_task.done():
            await self._stop_study()
        self._study_queue = list(then or [])
        await self._launch(study, path)
        return f"study {study.name!r} started from {path}"

    def _load_study(self, path: Path) -> Study:
        from engine.optimize.study import Study

        return Study.from_file(
            path, db=self.db, backend=self.backend, workers=self.workers, worker_nice=self.worker_nice
        )

    async def _launch(self, study: Study, path: Path) -> None:
        from engine.optimize.lock import StudyLock

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

    def follow_study(self, study: Study) -> StudyWatch:
        """Show ``study`` in telemetry and alert metrics while the caller runs it (the headless runner).

        The caller owns the run (``await study.run()``) and stops the returned watch when it is done.
        """
        self.study = study
        self._study_path = None
        self._study_error = ""
        self._watch = StudyWatch(study.name, self.db, maximize=study.maximize)
        self._watch.start()
        return self._watch

    async def _run_study(self, study: Study, lock: StudyLock | None = None) -> StudySummary | None:
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

    def _require_study(self) -> Study:
        if self.study is None:
            raise InputError("no study is running (start one from a study file first)")
        return self.study

    async def pause(self) -> str:
        """Stop dispatching trials; workers finish the ones in hand."""
        self._check_loop()
        study = self._require_study()
        state = study.progress().state
        if self._study_task is None or self._study_task.done() or state not in ("running", "paused"):
            raise InputError(f"study {study.name!r} is not running ({state})")
        await study.pause()
        log.info("study %s: paused", study.name)
        return f"study {study.name!r} paused (workers finish the trials in hand)"

    async def resume(self) -> str:
        self._check_loop()
        study = self._require_study()
        state = study.progress().state
        if self._study_task is None or self._study_task.done() or state not in ("running", "paused"):
            raise InputError(f"study {study.name!r} is not running ({state})")
        await study.resume()
        log.info("study %s: resumed", study.name)
        return f"study {study.name!r} resumed"

    async def stop(self) -> str:
        """Stop the study; returns once its trials are stored and checkpointed."""
        self._check_loop()
        study = self._require_study()
        summary = await self._stop_study()
        done = summary.trials if summary is not None else study.progress().done
        return f"study {study.name!r} stopped at {done} trials; checkpoint written to {self.db}"

    async def _stop_study(self) -> StudySummary | None:
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
        self._check_loop()
        study = self._require_study()
        if self._watch is None:
            raise InputError("no study store to read")
        trial, arrays = await self._watch.trial(number)
        detail = trial_detail(study.name, study.objective, trial, arrays)
        return dataclasses.replace(detail, strategy=await asyncio.to_thread(_strategy_where, study))

    async def inspect_trial(self, number: int) -> TradeInspection:
        """Trial ``number`` of the current study re-run for the trade screen (candles, trades, breakdowns)."""
        from engine.optimize.rerun import inspect_trial

        study = self._require_study()
        return await inspect_trial(self.db, study.name, number)

    async def backtest_strategy(self, name: str) -> TradeInspection:
        """Strategy ``name`` (built in or the user's) with its defaults on the current study's data
        (the demo's, in the demo workspace), or on :data:`BACKTEST_DATA` with no study."""
        from engine.backtest.inspect import inspect
        from engine.data import load

        spec = self.study.spec.data.spec if self.study is not None else BACKTEST_DATA
        bars = await asyncio.to_thread(load, spec)
        return await asyncio.to_thread(inspect, bars, name, options=None, title=f"{name} (defaults) on {spec}")

    async def compare_studies(self, names: tuple[str, ...]) -> StudyComparison:
        """Studies of this engine's store side by side (``genesis compare``)."""
        from engine.optimize.compare import study_comparison

        return await study_comparison(self.db, names)

    # ------------------------------------------------------ profile, paper
    async def capture_profile(self, seconds: float = 5.0) -> str:
        """cProfile this process for ``seconds`` and snapshot its allocations."""
        self._check_loop()
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
        self._check_loop()
        if self.paper is None:
            raise InputError(self._notes.get("trading", "no paper loop in this workspace"))
        running = await self.paper.toggle()
        log.info("paper loop %s", "running" if running else "paused")
        return f"paper loop {'running' if running else 'paused'}"

    async def kill_switch(self) -> str:
        self._check_loop()
        if self.paper is None:
            raise InputError(self._notes.get("trading", "no paper loop in this workspace"))
        await self.paper.kill()
        log.warning("kill switch: paper trading halted and flattened")
        return "kill switch engaged: positions flattened, trading halted"

    async def cycle_heatmap(self) -> str:
        """Show the next pair of the study's parameters on the objective heatmap."""
        self._check_loop()
        if self._watch is None:
            raise InputError("no study to draw a heatmap of")
        axes = self._watch.next_heatmap_axes()
        if axes is None:
            raise InputError("the heatmap needs two parameters that vary")
        return f"heatmap: {axes[0]} × {axes[1]}"

    # -------------------------------------------------------------- alerts
    def _alert_metrics(self) -> dict[str, float | None]:
        values: dict[str, float | None] = {}
        if self.bus is not None:
            metrics = self.bus.metrics()
            p99 = max((lane.latency_ns.p99 for lane in metrics.lanes if lane.delivered), default=None)
            values["bus_p99_ms"] = None if p99 is None else p99 / 1e6
            delivered = metrics.delivered
            values["error_rate"] = metrics.errors / delivered if delivered else None
            if self.paper is not None and self.paper.running:
                values["event_rate"] = metrics.throughput
        if self.study is not None:
            progress = self.study.progress()
            values["trial_failure_rate"] = progress.failed / progress.done if progress.done >= 20 else None
        return values

    def _publish_alert(self, alert: Alert) -> None:
        level = logging.CRITICAL if alert.level == "critical" else logging.WARNING
        if alert.state == "cleared":
            level = logging.INFO
        log.log(level, "%s", alert.message)
        if self.bus is not None and self.bus.running:
            with contextlib.suppress(Exception):
                self.bus.publish_nowait(alert.topic, alert.to_dict())

    # ------------------------------------------------------------ telemetry
    def telemetry(self, *, fresh: bool = False) -> Telemetry:
        """The immutable snapshot of everything (cheap: no I/O, no waiting).

        The profiler and system parts are rebuilt at most every ``SLOW_PARTS_INTERVAL_S``
        unless ``fresh`` (after a command, whose effect must show at once)."""
        self._check_loop()
        self._seq += 1
        now = time.monotonic()
        if fresh or now - self._slow_at >= SLOW_PARTS_INTERVAL_S:
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
        if task is not None and not task.done() and study.stop_requested:
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
            importance=watch.importance if watch else (),
            validation=watch.validation if watch else None,
            checkpointed_at=watch.checkpointed_at if watch else None,
            checkpoint_trials=watch.checkpoint_trials if watch else 0,
            drivers=watch.drivers if watch else (),
            store=str(self.db),
            message=self._study_error,
            loading=p.loading,
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
        profiler_part = profiler_from_snapshot(snap)
        monitor = snap.monitor
        if monitor is None or monitor.system.last is None:
            return profiler_part, None, ()
        return profiler_part, system_from_snapshot(monitor.system), alerts_from_monitor(monitor)
