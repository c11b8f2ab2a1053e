"""The cron runner: ``genesis run STUDY.toml --headless`` (and ``genesis resume`` off a terminal).

One run, step by step:

1. load the study file (bad input: one line, exit 2);
2. take the study's lock beside the store (held: exit 75 naming the holder);
3. a study already complete exits 0 at once, saying so (``--rerun`` archives
   it under ``NAME@<created>`` and starts afresh);
4. run or resume it through the :class:`~engine.runtime.Engine` facade (the
   same telemetry, monitor and alert rules as the console), recording the
   telemetry at the console's refresh rate into the store;
5. at the ``--max-runtime`` budget, or on SIGTERM/SIGINT: stop dispatching,
   let the trials in hand finish (abandoning them after a grace period: they
   are re-run next time), checkpoint; a second signal exits at once (the store
   is SQLite: committed batches stay, the open one is lost and re-run);
6. write the report directory, POST the webhook, print the summary.

Exit codes: 0 done or stopped at the budget (resumable), 1 runtime failure,
2 bad input, 3 a critical alert fired, 75 the lock is held, 130/143 stopped
by SIGINT/SIGTERM (checkpointed, resumable).

``genesis run`` and ``genesis resume`` come here when asked (``--headless``),
when stdout is not a terminal, or for a flag only this runner has; at a
terminal they use the console's own small driver
(``genesis_tui/commands/_study_runner.py``), which shares nothing with this one.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import ConfigError, GenesisError, InputError, StoreError
from engine.headless.notify import Notifier, NotifySettings
from engine.headless.output import Output, json_safe
from engine.optimize.lock import StudyLock
from engine.paths import named_path
from engine.profile import profiler
from engine.store.factory import open_study_store
from engine.store.records import TrialState
from engine.store.run_history import RunHistory, archive_study
from engine.store.url import DatabaseUrl, StoreLocation

if TYPE_CHECKING:
    from engine.headless.report import TrialParts
    from engine.optimize.study import Study
    from engine.runtime import StudyWatch

log = logging.getLogger("engine.headless")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
EXIT_CRITICAL = 3
EXIT_LOCKED = 75
DEFAULT_GRACE_S = 60.0

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|m|s|ms)?", re.IGNORECASE)
_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, None: 1.0}


def parse_duration(text: str, what: str = "--max-runtime") -> float:
    """``45m``, ``1h30m``, ``90s``, ``2.5h``, ``3600`` (seconds) -> seconds; anything else is an InputError."""
    compact = str(text).strip().replace(" ", "")
    position, total = 0, 0.0
    while position < len(compact):
        match = _DURATION.match(compact, position)
        if match is None or match.end() == position:
            break
        unit = match.group(2).lower() if match.group(2) else None
        total += float(match.group(1)) * _UNITS[unit]
        position = match.end()
    if not compact or position != len(compact) or total <= 0:
        raise InputError(f"{what}: expected a positive duration such as 45m, 1h30m, 90s or 3600, got {text!r}")
    return total


@dataclass(frozen=True, slots=True)
class RunOptions:
    """What one headless run was asked to do (the CLI flags)."""

    study_file: Path | None = None  # run from a study file ...
    name: str | None = None  # ... or resume a stored study by name
    db: Path | DatabaseUrl | None = None
    report_dir: Path | None = None
    json: bool = False
    quiet: bool = False
    max_runtime_s: float | None = None
    grace_s: float | None = None
    rerun: bool = False
    log_file: Path | None = None
    log_to_file: bool = True
    profile: bool = False
    record: bool = True
    overrides: dict[str, Any] = field(default_factory=dict)


def _load_study(options: RunOptions) -> Study:
    from engine.optimize.study import Study
    from engine.paths import default_store_path

    if options.study_file is not None:
        return Study.from_file(options.study_file, db=options.db, **options.overrides)
    assert options.name is not None
    db = options.db or default_store_path()
    return asyncio.run(Study.from_store(options.name, db=db, **options.overrides))


async def _stored_any(db: StoreLocation, name: str) -> tuple[str, int, dict[str, Any] | None] | None:
    """(state, trials, stored summary) of study ``name`` in ``db``, or ``None`` (no such store or study)."""
    if isinstance(db, Path) and not db.exists():
        return None
    try:
        store = await open_study_store(db, readonly=True)
    except StoreError:
        return None  # a new or empty store; a bad one is refused by _check_store with one line
    try:
        study = await store.get_study(name)
        if study is None:
            return None
        trials = sum((await store.counts(study.id)).values())
        state = study.state.value
        if state == "complete" and study.validation is None and await store.best(study.id, maximize=True):
            state = "validating"  # complete but validation was cut short: run again
        return state, trials, study.summary or None
    finally:
        await store.close()


async def _check_store(db: StoreLocation) -> None:
    """Refuse a foreign, newer or damaged store before anything is written to it."""
    store = await open_study_store(db)
    try:
        await store.check_integrity()
    finally:
        await store.close()


def _store_dir(db: StoreLocation) -> Path:
    """The folder of a SQLite store; for a PostgreSQL store, the default store's (the data directory)."""
    from engine.paths import default_store_path

    return db.parent if isinstance(db, Path) else default_store_path().parent


def default_log_file(db: StoreLocation, name: str) -> Path:
    """``<store dir>/logs/<study>.log``."""
    return named_path(_store_dir(db) / "logs", name, ".log")


def default_report_dir(study: Study) -> Path:
    """The study file's ``[report] dir``, else ``<store dir>/reports``."""
    configured = study.spec.report.dir
    if configured:
        path = Path(configured).expanduser()
        if not path.is_absolute() and getattr(study.spec, "path", None):
            path = Path(study.spec.path).parent / path
        return path
    return _store_dir(study.db) / "reports"


def run(options: RunOptions) -> int:
    """Run (or resume) the study headless; the exit code (bad input and a held lock raise)."""
    study = _load_study(options)
    log_file = None
    if options.log_to_file:
        log_file = options.log_file or default_log_file(study.db, study.name)
    output = Output(quiet=options.quiet, json_summary=options.json, log_file=log_file)
    with output:
        lock = StudyLock(study.db, study.name)
        try:
            lock.acquire()
        except GenesisError as error:
            output.file_only(logging.ERROR, str(error))
            raise
        try:
            return asyncio.run(HeadlessRun(study, options, output, lock).main())
        finally:
            lock.release()


class HeadlessRun:
    """One headless run of one study, under its lock."""

    def __init__(self, study: Study, options: RunOptions, output: Output, lock: StudyLock) -> None:
        self.study = study
        self.options = options
        self.output = output
        self.lock = lock
        self.db: StoreLocation = study.db
        self.name: str = study.name
        self.stop_reason: str | None = None
        self.signal_number: int | None = None
        self.critical: list[dict[str, Any]] = []
        self.warnings = 0
        self.notifier = Notifier(NotifySettings.resolve(getattr(study.spec, "notify", None)))
        self.history: RunHistory | _NoHistory = RunHistory(self.db) if isinstance(self.db, Path) else _NoHistory()
        self.run_id: int | None = None
        self.started = time.time()
        self._run_task: asyncio.Task[Any] | None = None
        self._timers: list[asyncio.TimerHandle] = []
        self._stop_task: asyncio.Task[None] | None = None
        self._trial_parts: asyncio.Task[TrialParts] | None = None  # the report's, read while the study validates
        self._watch: StudyWatch | None = None  # read ahead too when the telemetry is recorded
        self._stored: asyncio.Task[tuple[str, int, dict[str, Any] | None] | None] | None = None  # _stored_any
        self._froze = False  # whether _freeze froze the collector's heap (main gives it back)

    # ------------------------------------------------------------------ main
    async def main(self) -> int:
        """The whole run with SIGINT/SIGTERM handled from start to summary (a second one exits at once)."""
        loop = asyncio.get_running_loop()
        installed = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, self._on_signal, signum)
                installed.append(signum)
        try:
            return await self._main()
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)
            if self._froze:  # a library caller's objects are collectable again
                gc.unfreeze()

    async def _main(self) -> int:
        if not isinstance(self.db, Path):
            if self.options.rerun:
                raise InputError("--rerun: not supported on a PostgreSQL store yet (use another study name)")
            log.warning("%s: not supported on a PostgreSQL store yet: run history, stored alerts and the "
                        "telemetry recording", self.name)
        await _check_store(self.db)  # before the first change: --rerun renames, the run writes
        stored = await _stored_any(self.db, self.name)
        if stored is not None and self.options.rerun:
            assert isinstance(self.db, Path)  # --rerun was refused above for a PostgreSQL store
            archived = archive_study(self.db, self.name)
            log.info("%s: --rerun: the earlier study is kept as %r; starting afresh", self.name, archived)
            stored = None
        if stored is not None and stored[0] == "complete":
            return self._already_complete(stored)
        trials_before = stored[1] if stored is not None else 0
        self.run_id = await asyncio.to_thread(
            self.history.begin, self.name, trials_before=trials_before, max_runtime_s=self.options.max_runtime_s,
            pid=os.getpid(),
        )
        verb = "resuming" if trials_before else "starting"
        budget = "" if self.options.max_runtime_s is None else f", budget {_fmt_duration(self.options.max_runtime_s)}"
        log.info("%s: %s run %d (%d trials stored) with store %s%s", self.name, verb, self.run_id, trials_before,
                 self.db, budget)
        return await self._run_under_engine(trials_before)

    def _freeze(self) -> None:
        """Move what is loaded by now (modules, the engine, the study) out of reach of the collector's
        full passes until the run ends: they walked all of it 3-4 times a headline study, 15-25 ms of
        CPU each. Nothing if the heap is frozen already (by a caller)."""
        if not gc.get_freeze_count():
            gc.freeze()
            self._froze = True

    def _already_complete(self, stored: tuple[str, int, dict[str, Any] | None]) -> int:
        _, trials, summary = stored
        summary = dict(summary or {})
        summary.update({"study": self.name, "state": "complete", "already_complete": True, "exit_code": EXIT_OK,
                        "db": str(self.db)})
        summary.setdefault("trials", trials)
        best = summary.get("best") or {}
        best_text = f"; best #{best.get('number')} {best.get('objective')}" if best else ""
        line = (f"{self.name}: already complete ({trials} trials{best_text}); nothing to do "
                f"(--rerun starts it again) (store {self.db})")
        self.output.summary(summary, line)
        return EXIT_OK

    # ------------------------------------------------------------ the run
    async def _run_under_engine(self, trials_before: int) -> int:
        from engine.runtime import Engine
        from engine.store.alerts import AlertStore

        engine = Engine(
            db=self.db,
            workspace="headless",
            profile=self.options.profile,
            monitor=True,
            alerts=_raw_alerts(self.study.spec_toml),
        )
        alert_store = None
        recorder = None
        watch = None
        sampler = None
        summary: Any = None
        error: GenesisError | BaseException | None = None
        try:
            if isinstance(self.db, Path):  # alerts are kept in SQLite stores only for now
                alert_store = await AlertStore(self.db, study=self.name).open()
            await engine.start()
            if self.options.profile and engine.session is not None:
                sampler = _start_sampler()
            # no await between the monitor's start and these hooks: its first tick sees them
            if engine.monitor is not None:
                engine.monitor.persist = alert_store
                self._chain_publish(engine.monitor)
            with profiler.stage("headless.setup"):
                watch = engine.follow_study(self.study)
                if self.options.record and isinstance(self.db, Path):
                    from engine.headless.recording import Recorder

                    try:
                        recorder = await Recorder(self.db, self.name, engine.telemetry, run=str(self.run_id)).start()
                        self._watch = watch
                    except GenesisError as failure:  # no recording is no reason to skip the night's work
                        log.warning("telemetry not recorded: %s", failure)
            self._freeze()
            summary, error = await self._drive()
            # The study is done with the store: its outcome is read while the watch and the recorder stop.
            self._stored = asyncio.get_running_loop().create_task(_stored_any(self.db, self.name))
        finally:
            with profiler.stage("headless.teardown"):
                if watch is not None:
                    with contextlib.suppress(Exception):
                        # Its last read (heatmap, importance) is for the console or a recording only.
                        await watch.stop(read_last=recorder is not None)
                if recorder is not None:
                    with contextlib.suppress(Exception):
                        await recorder.stop()
            profile = None
            cpu = None
            if sampler is not None:
                with contextlib.suppress(Exception):
                    cpu = sampler.stop()
            with contextlib.suppress(Exception):
                if engine.session is not None:
                    profile = engine.session.report(title=f"{self.name} run {self.run_id}", cpu=cpu).to_dict()
            with contextlib.suppress(Exception):
                await engine.close()
            if alert_store is not None:
                with contextlib.suppress(Exception):
                    await alert_store.close()
        return await self._finish(summary, error, trials_before, profile, recorder)

    def _chain_publish(self, monitor: Any) -> None:
        original = monitor.publish

        def publish(alert: Any) -> None:
            if original is not None:
                original(alert)
            if alert.state != "raised":
                return
            if alert.level == "critical":
                record = alert.to_dict()
                self.critical.append(record)
                log.error("critical alert: %s", alert.message)
                self.notifier.send_soon("critical", {
                    "study": self.name, "db": str(self.db), "run": self.run_id, "alert": json_safe(record),
                })
            else:
                self.warnings += 1

        monitor.publish = publish

    async def _drive(self) -> tuple[Any, BaseException | None]:
        """Run the study with the budget and the signals armed; (summary or None, error or None)."""
        loop = asyncio.get_running_loop()
        if self.stop_reason is not None:  # a signal before the study started: start nothing
            return None, None
        self._run_task = loop.create_task(self.study.run(
            progress_callback=self.output.progress, data_progress=self.output.data_progress, searched=self._searched,
        ))
        if self.options.max_runtime_s is not None:
            remaining = self.options.max_runtime_s - (time.time() - self.started)
            self._timers.append(loop.call_later(max(0.0, remaining), self._request_stop, "budget"))
        try:
            summary = await self._run_task
            return summary, None
        except asyncio.CancelledError:
            if self.stop_reason is None:
                raise
            return None, None  # abandoned after the grace period: trials in hand are re-run next time
        except GenesisError as failure:
            return None, failure
        except Exception as failure:  # a bug: report it as a runtime failure, keep the store usable
            log.debug("study run failed", exc_info=True)
            return None, failure
        finally:
            for timer in self._timers:
                timer.cancel()
            self.output.final_progress()

    def _searched(self) -> None:
        """The search ended complete: read the report's trial parts (and the recorded watch's views)
        while the study validates."""
        from engine.headless.report import read_trial_parts

        self._trial_parts = asyncio.get_running_loop().create_task(read_trial_parts(self.db, self.name))
        if self._watch is not None:
            self._watch.read_ahead()

    async def _read_trial_parts(self) -> TrialParts | None:
        """The report's trial parts read during the validation, or ``None`` (the report reads them itself)."""
        task, self._trial_parts = self._trial_parts, None
        if task is None:
            return None
        try:
            return await task
        except Exception:  # the report reads them again, and says what is wrong if it still is
            log.debug("the report's trial parts were not read ahead", exc_info=True)
            return None

    def _on_signal(self, signum: int) -> None:
        if self.signal_number is not None:
            self._exit_now(signum)
        self.signal_number = signum
        task = self._run_task
        if task is not None and task.done():
            log.info("%s: %s: the study has already stopped; finishing the report and the notification "
                     "(a second signal exits at once)", self.name, signal.Signals(signum).name)
            return
        self._request_stop("signal", signal.Signals(signum).name)

    def _request_stop(self, reason: str, detail: str = "") -> None:
        if self.stop_reason is not None:
            if reason == "signal":
                self.stop_reason = "signal"  # a signal during a budget stop still counts
            return
        self.stop_reason = reason
        grace = self._grace()
        if reason == "budget":
            log.info("%s: the %s budget is spent: no new trials; finishing the trials in hand (up to %s), "
                     "then checkpointing", self.name, _fmt_duration(self.options.max_runtime_s or 0), _fmt_duration(grace))
        else:
            log.info("%s: %s: no new trials; finishing the trials in hand (up to %s), then checkpointing "
                     "(a second signal exits at once)", self.name, detail, _fmt_duration(grace))
        loop = asyncio.get_running_loop()
        if self._run_task is None:
            return  # not started yet: _drive starts nothing
        self._stop_task = loop.create_task(self.study.stop())
        self._timers.append(loop.call_later(grace, self._abandon))

    def _grace(self) -> float:
        if self.options.grace_s is not None:
            return self.options.grace_s
        budget = self.options.max_runtime_s
        return DEFAULT_GRACE_S if budget is None else min(DEFAULT_GRACE_S, max(5.0, 0.1 * budget))

    def _abandon(self) -> None:
        task = self._run_task
        if task is not None and not task.done():
            log.warning("%s: trials in hand did not finish within the grace period: abandoning them "
                        "(the next run re-runs them)", self.name)
            task.cancel()

    def _exit_now(self, signum: int) -> None:
        """A second signal: leave at once. SQLite keeps every committed batch; the open one is re-run later."""
        code = 128 + signum
        with contextlib.suppress(Exception):
            print(f"genesis: {signal.Signals(signum).name} again: exiting now (exit {code}); the store keeps "
                  "every committed trial and the next run resumes", file=sys.stderr, flush=True)
        with contextlib.suppress(Exception):
            from engine.optimize.backends.shared_bars import release_all

            release_all()  # the children killed below include the resource tracker that would unlink it
        with contextlib.suppress(Exception):
            import psutil

            for child in psutil.Process().children(recursive=True):
                with contextlib.suppress(Exception):
                    child.kill()
        with contextlib.suppress(Exception):
            self.lock.release()
        os._exit(code)

    # ------------------------------------------------------------ the end
    async def _finish(
        self, summary: Any, error: BaseException | None, trials_before: int, profile: dict[str, Any] | None,
        recorder: Any,
    ) -> int:
        task, self._stored = self._stored, None
        stored = await (task or _stored_any(self.db, self.name))
        state = stored[0] if stored is not None else ("stopped" if self.stop_reason else "failed")
        trials_after = stored[1] if stored is not None else trials_before
        if error is not None:
            code = error.exit_code if isinstance(error, GenesisError) else EXIT_FAILURE
            message = str(error) if isinstance(error, GenesisError) else f"internal error: {type(error).__name__}: {error}"
            log.error("%s", " ".join(message.split()))
            stop_reason = "failure"
            if state not in ("failed", "stopped"):
                state = "failed"
        else:
            code = EXIT_OK
            stop_reason = "complete" if state == "complete" else (self.stop_reason or "stopped")
        if code == EXIT_OK and self.critical:
            code = EXIT_CRITICAL
        elif code == EXIT_OK and stop_reason == "signal" and self.signal_number is not None:
            code = 128 + self.signal_number
        if self.critical and code != EXIT_CRITICAL:
            log.error("%d critical alert%s fired during the run", len(self.critical), "s" * (len(self.critical) > 1))

        payload = await self._summary_payload(summary, state, stop_reason, code, trials_before, trials_after, error)
        parts = await self._read_trial_parts()
        if parts is not None and summary is not None:
            parts = parts.with_pbo((summary.validation or {}).get("pbo"))
        report_paths: dict[str, Path] = {}
        if stored is not None and self.run_id is not None and code != EXIT_BAD_INPUT:
            try:
                await asyncio.to_thread(
                    self.history.finish, self.run_id, state=state, stop_reason=stop_reason, exit_code=code,
                    trials_after=trials_after, summary=payload, profile=profile,
                    recording_id=getattr(recorder, "recording_id", None),
                )
            except GenesisError as failure:
                log.error("run history not written: %s", failure)
            try:
                from engine.headless.report import write_run_report

                root = self.options.report_dir or _default_report_dir(self.study)
                report_paths = await write_run_report(self.db, self.name, root, run_id=self.run_id, parts=parts)
                await asyncio.to_thread(self.history.finish, self.run_id, report_dir=str(report_paths["dir"]))
                log.info("report: %s (charts: equity, convergence, heatmap)", report_paths["md"])
            except Exception as failure:  # a report that cannot be written never loses the run's outcome
                log.error("report not written: %s", failure if isinstance(failure, GenesisError | OSError)
                          else f"{type(failure).__name__}: {failure}")
                log.debug("report failure", exc_info=True)
        if report_paths:
            payload["report"] = {k: str(v) for k, v in report_paths.items()}
        if recorder is not None:
            payload["recording"] = {"id": recorder.recording_id, "frames": recorder.frames, "bytes": recorder.bytes}

        event = "failure" if code in (EXIT_FAILURE, EXIT_BAD_INPUT) else "finish"
        await self.notifier.drain()
        await self.notifier.send(event, payload)
        if self.notifier.deliveries:
            payload["notifications"] = [d.as_dict() for d in self.notifier.deliveries]
        # bad input already said what was wrong in one line on stderr; no second line on stdout
        self.output.summary(payload, _summary_line(payload), plain=code != EXIT_BAD_INPUT)
        return code

    async def _summary_payload(
        self, summary: Any, state: str, stop_reason: str, code: int, trials_before: int, trials_after: int,
        error: BaseException | None,
    ) -> dict[str, Any]:
        if summary is not None:
            payload = summary.as_dict()
        else:
            payload = {"study": self.name, "state": state, "db": str(self.db), "error": None if error is None else str(error),
                       "trials": trials_after, "complete": 0, "failed": 0, "pruned": 0, "best": None}
            payload.update(await _counts_and_best(self.db, self.name, self.study.maximize))
        payload.update({
            "state": state,
            "stop_reason": stop_reason,
            "resumable": state != "complete",
            "exit_code": code,
            "run": {
                "id": self.run_id,
                "started": self.started,
                "elapsed_s": round(time.time() - self.started, 3),
                "trials_before": trials_before,
                "trials_this_run": trials_after - trials_before,
                "max_runtime_s": self.options.max_runtime_s,
                "signal": None if self.signal_number is None else signal.Signals(self.signal_number).name,
            },
            "alerts": {"critical": self.critical, "warnings": self.warnings},
            "lock": None if self.lock.path is None else str(self.lock.path),
            "log_file": None if self.output.log_file is None else str(self.output.log_file),
        })
        return json_safe(payload)


#: The whole-run sampler's period: per-thread CPU time ticks every 10 ms, sampling faster buys nothing.
SAMPLER_INTERVAL_S = 0.01


def _start_sampler() -> Any:
    """Sample every thread of this process for the whole run (the report's top functions).

    cProfile would see only the event loop's thread and slow every call; the
    sampler sees the trial, data and validation threads too and costs the same
    whatever the code does."""
    from engine.profile.captures import ThreadSampler

    return ThreadSampler("whole run, every thread", interval_s=SAMPLER_INTERVAL_S).start()


def _default_report_dir(study: Study) -> Path:
    return default_report_dir(study)


async def _counts_and_best(db: StoreLocation, name: str, maximize: bool) -> dict[str, Any]:
    """Counts and the best trial of study ``name`` as committed (for a summary the study could not give)."""
    try:
        store = await open_study_store(db, readonly=True)
    except GenesisError:
        return {}
    try:
        study = await store.get_study(name)
        if study is None:
            return {}
        counts = await store.counts(study.id)
        best = await store.best(study.id, maximize=maximize)
    except GenesisError:
        return {}
    finally:
        await store.close()
    return {
        "trials": sum(counts.values()),
        "complete": counts[TrialState.COMPLETE],
        "failed": counts[TrialState.FAILED],
        "pruned": counts[TrialState.PRUNED],
        "best": None if not best else {
            "number": best[0].number, "key": best[0].key, "params": best[0].params, "objective": best[0].objective,
        },
    }


class _NoHistory:
    """Run history for a PostgreSQL store: not kept yet (``headless_runs`` lives in SQLite stores)."""

    def begin(self, study: str, *, trials_before: int, max_runtime_s: float | None, pid: int) -> int:
        return 0

    def finish(self, run_id: int, **fields: Any) -> None:
        return None


def _raw_alerts(spec_toml: str) -> Any:
    """The study's raw ``[alerts]`` table (resolved over the global config's by the monitor)."""
    from engine.config import parse_toml

    with contextlib.suppress(ConfigError):
        table = parse_toml(spec_toml, "stored study").get("alerts")
        return table if isinstance(table, dict) else None
    return None


def _fmt_duration(seconds: float) -> str:
    from engine.optimize.progress import format_duration

    return format_duration(seconds)


def _summary_line(p: dict[str, Any]) -> str:
    best = p.get("best")
    best_text = "no complete trial" if not best else (
        f"best #{best.get('number')} {_num(best.get('objective'))} with "
        + ", ".join(f"{k}={v}" for k, v in (best.get("params") or {}).items())
    )
    ending = {
        "complete": "",
        "budget": "; stopped at the time budget, resumable",
        "signal": f"; stopped by {(p.get('run') or {}).get('signal') or 'a signal'}, checkpointed, resumable",
        "failure": f"; FAILED: {p.get('error')}",
    }.get(str(p.get("stop_reason")), "; resumable")
    run = p.get("run") or {}
    elapsed = p.get("elapsed_s", run.get("elapsed_s"))
    rate = p.get("trials_per_s")
    rate_text = f", {rate:,.0f} trials/s" if isinstance(rate, (int, float)) else ""
    return (
        f"{p.get('study')}: {p.get('state')}, {p.get('trials')} trials ({p.get('complete')} complete, "
        f"{p.get('failed')} failed, {p.get('pruned')} pruned), {run.get('trials_this_run')} this run in "
        f"{_num(elapsed)}s{rate_text}; {best_text}{ending}; exit {p.get('exit_code')} (store {p.get('db')})"
    )


def _num(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, (int, float)) else str(value)
