"""Flags of the headless runner, shared by ``genesis run`` and ``genesis resume``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse

#: Flags that only the headless runner understands: giving one selects it.
HEADLESS_ONLY = ("max_runtime", "rerun", "quiet", "log_file", "no_log_file", "profile", "no_record", "grace")


def add_headless_options(parser: argparse.ArgumentParser) -> None:
    """``--quiet --max-runtime --grace --rerun --log-file --no-log-file --profile --no-record``."""
    group = parser.add_argument_group("headless (cron) options")
    group.add_argument("--quiet", action="store_true",
                       help="print nothing unless something failed (the log file still gets everything)")
    group.add_argument("--max-runtime", metavar="DURATION",
                       help="time budget (45m, 1h30m, 90s): then stop dispatching, checkpoint and exit 0, resumable")
    group.add_argument("--grace", metavar="DURATION",
                       help="how long trials in hand may finish after a stop before they are abandoned "
                            "(default: 10%% of the budget, 5s..60s)")
    group.add_argument("--rerun", action="store_true",
                       help="start the study afresh even if the store holds it (the old one is kept as NAME@date)")
    group.add_argument("--log-file", metavar="PATH",
                       help="rotating log file (default: <store dir>/logs/<study>.log)")
    group.add_argument("--no-log-file", action="store_true", help="write no log file")
    group.add_argument("--profile", action="store_true",
                       help="stage timers on (the report's profile section shows where the time went)")
    group.add_argument("--no-record", action="store_true",
                       help="do not record telemetry for `genesis replay`")


def wants_headless(args: argparse.Namespace) -> bool:
    """``--headless``, stdout not a terminal, or a flag only the headless runner has."""
    if getattr(args, "headless", False) or not sys.stdout.isatty():
        return True
    return any(getattr(args, name, None) not in (None, False) for name in HEADLESS_ONLY)


def run_options(args: argparse.Namespace, overrides: dict[str, Any], *, study_file: str | None = None,
                name: str | None = None) -> Any:
    """The runner's :class:`~engine.headless.runner.RunOptions` from the parsed flags."""
    from engine.headless.runner import RunOptions, parse_duration
    from engine.store.url import store_location

    return RunOptions(
        study_file=Path(study_file) if study_file else None,
        name=name,
        db=store_location(args.db) if args.db else None,
        report_dir=Path(args.report) if getattr(args, "report", None) else None,
        json=bool(args.json),
        quiet=bool(args.quiet),
        max_runtime_s=parse_duration(args.max_runtime) if args.max_runtime is not None else None,
        grace_s=parse_duration(args.grace, "--grace") if args.grace is not None else None,
        rerun=bool(args.rerun),
        log_file=Path(args.log_file) if args.log_file else None,
        log_to_file=not args.no_log_file,
        profile=bool(args.profile),
        record=not args.no_record,
        overrides=overrides,
    )
