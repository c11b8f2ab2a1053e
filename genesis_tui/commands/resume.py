"""``genesis resume NAME --db PATH``: continue an interrupted study from its last checkpoint."""

from __future__ import annotations

import argparse
import asyncio

from genesis_tui.commands._headless_options import add_headless_options, run_options, wants_headless
from genesis_tui.commands._study_runner import add_run_options, execute, overrides

NAME = "resume"
HELP = "continue an interrupted study stored in a SQLite store"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="the study's name in the store")
    add_run_options(parser)
    add_headless_options(parser)


def run(args: argparse.Namespace) -> int:
    from engine.paths import check_stored_name

    check_stored_name(args.name)
    if wants_headless(args):  # cron: lock, budget, report directory, webhook, recording (engine.headless)
        from engine.headless.runner import run as run_headless

        return run_headless(run_options(args, overrides(args), name=args.name))
    from engine.optimize.lock import StudyLock
    from engine.optimize.study import Study
    from engine.paths import default_store_path

    db = args.db or default_store_path()
    study = asyncio.run(Study.from_store(args.name, db=db, **overrides(args)))
    with StudyLock(study.db, study.name):  # never two runs of one study on one store
        return execute(study, args)
