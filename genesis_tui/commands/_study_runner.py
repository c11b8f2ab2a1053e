"""The terminal driver of ``genesis run`` and ``genesis resume``: progress bar, signals, report, summary.

Used only at a terminal without ``--headless`` (or a headless-only flag); the
command holds the study's lock around :func:`execute`. Everything else goes to
the cron runner, :mod:`engine.headless.runner`, a separate driver that does not
use this module: it runs the study through the ``Engine`` facade with its own
signal handling (a grace period, exit 128 + the signal's number), a time
budget, webhooks and recording. Here SIGINT or SIGTERM stops the study
gracefully (exit 130) and a second signal aborts.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # (asyncio is imported where used: ``genesis run`` peeks at its arguments first)
    import argparse

PLAIN_INTERVAL_S = 5.0


def add_run_options(parser: argparse.ArgumentParser, *, db_required: bool = False) -> None:
    """Options shared by ``run`` and ``resume``."""
    parser.add_argument("--db", metavar="PATH", required=db_required,
                        help="the store: a SQLite file (default: the XDG data directory's genesis.db) or a postgresql:// URL")
    parser.add_argument("--headless", action="store_true", help="no console: progress lines and a summary")
    parser.add_argument("--report", metavar="DIR", help="write <study>.md and <study>.json into DIR at the end")
    parser.add_argument("--json", action="store_true", help="print one JSON summary object on stdout")
    parser.add_argument("--backend", choices=("inline", "process", "dask"), help="override execution.backend")
    parser.add_argument("--workers", type=int, metavar="N", help="override execution.workers (0: one per core)")
    add_allow_many_workers(parser)
    parser.add_argument(
        "--allow-changed-strategy", action="store_true",
        help="resume a study whose strategy file changed since it started (its trials then mix two versions)",
    )


def add_allow_many_workers(parser: argparse.ArgumentParser) -> None:
    """``--allow-many-workers``: lift the bound on worker processes (4 per core)."""
    parser.add_argument(
        "--allow-many-workers", action="store_true",
        help="allow more worker processes than 4 per core (--workers or execution.workers)",
    )


def check_workers_flag(args: argparse.Namespace) -> None:
    """Refuse a negative ``--workers``, or one above the machine's bound without ``--allow-many-workers``."""
    from engine.errors import InputError
    from engine.optimize.backends.base import check_workers

    if args.workers is None:
        return
    if args.workers < 0:
        raise InputError(f"--workers: expected 0 (one per core) or more, got {args.workers}")
    check_workers(args.workers, "--workers", allow_many=args.allow_many_workers)


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if getattr(args, "backend", None):
        out["backend"] = args.backend
    check_workers_flag(args)
    if args.workers is not None:
        out["workers"] = args.workers
    if args.allow_many_workers:
        out["allow_many_workers"] = True
    if getattr(args, "allow_changed_strategy", False):
        out["allow_changed_strategy"] = True
    return out


class PlainProgress:
    """One line every few seconds (stdout is not a terminal, or ``--headless``)."""

    def __init__(self, stream: Any, interval_s: float = PLAIN_INTERVAL_S) -> None:
        self.stream = stream
        self.interval_s = interval_s
        self._last = 0.0
        self._final: Any = None

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._final is not None:
            self._print(self._final)

    def update(self, snapshot: Any) -> None:
        self._final = snapshot
        now = time.monotonic()
        if now - self._last >= self.interval_s:
            self._last = now
            self._print(snapshot)
            self._final = None

    def _print(self, snapshot: Any) -> None:
        from engine.optimize.progress import progress_line

        print(progress_line(snapshot), file=self.stream, flush=True)


class RichProgress:
    """A rich progress bar: done/total, trials/s, ETA (right with parallel workers), best, failed, pruned."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn

        self.console = Console(stderr=False)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TextColumn("{task.fields[rate]}/s"),
            TextColumn("ETA {task.fields[eta]}"),
            TextColumn("best {task.fields[best]}"),
            TextColumn("failed {task.fields[failed]}"),
            TextColumn("pruned {task.fields[pruned]}"),
            console=self.console,
            transient=False,
            refresh_per_second=8,
        )
        self.task: Any = None

    def __enter__(self) -> RichProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)

    def update(self, p: Any) -> None:
        from engine.optimize.progress import format_duration

        fields = {
            "rate": f"{p.trials_per_s:,.1f}",
            "eta": format_duration(p.eta_s),
            "best": "--" if p.best_value is None else f"{p.best_value:.4g} (#{p.best_number})",
            "failed": p.failed,
            "pruned": p.pruned,
        }
        if self.task is None:
            self.task = self.progress.add_task(p.study, total=max(p.total, 1), completed=p.done, **fields)
        else:
            self.progress.update(self.task, total=max(p.total, 1), completed=p.done, **fields)


class QuietProgress:
    def __enter__(self) -> QuietProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, snapshot: Any) -> None:
        return None


def make_progress(args: argparse.Namespace) -> Any:
    """The progress display for this invocation."""
    if args.json:
        return PlainProgress(sys.stderr) if args.headless else QuietProgress()
    if sys.stdout.isatty() and not args.headless:
        return RichProgress()
    return PlainProgress(sys.stdout)


async def drive(study: Any, update: Callable[[Any], None]) -> Any:
    """Run ``study``; SIGINT/SIGTERM stop it gracefully (trials in hand finish and are stored)."""
    import asyncio

    loop = asyncio.get_running_loop()
    interrupted: list[int] = []
    tasks: list[asyncio.Task[None]] = []

    def on_signal(signum: int) -> None:
        if interrupted:  # a second signal: stop waiting
            raise KeyboardInterrupt
        interrupted.append(signum)
        tasks.append(loop.create_task(study.stop()))

    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, on_signal, signum)
            installed.append(signum)
    try:
        summary = await study.run(progress_callback=update)
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
    return summary, bool(interrupted)


def execute(study: Any, args: argparse.Namespace) -> int:
    """Run the study with progress output, write the report, print the summary; the exit code."""
    import asyncio

    from engine.optimize.report import report_from_db, write_report

    with make_progress(args) as progress:
        summary, interrupted = asyncio.run(drive(study, progress.update))
    if args.report:
        report = asyncio.run(report_from_db(study.db, study.name))
        md, js = write_report(report, args.report)
        if not args.json:
            print(f"report: {md} and {js}")
    if args.json:
        print(json.dumps(summary.as_dict(), default=str))
    else:
        print(summary_line(summary))
    if interrupted:
        return 130
    return 0


def summary_line(summary: Any) -> str:
    best = summary.best
    best_text = "no complete trial" if best is None else (
        f"best #{best.number} {best.objective:.6g} with "
        + ", ".join(f"{k}={v}" for k, v in best.params.items())
    )
    return (
        f"{summary.name}: {summary.state}, {summary.trials} trials ({summary.complete} complete, "
        f"{summary.failed} failed, {summary.pruned} pruned) in {summary.elapsed_s:.1f}s, "
        f"{summary.trials_per_s:,.0f} trials/s; {best_text} (store {summary.db})"
    )
