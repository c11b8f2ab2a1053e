"""``genesis resume NAME --db PATH``: continue an interrupted study from its last checkpoint."""

from __future__ import annotations

import argparse
import asyncio

from genesis_tui.commands._study_runner import add_run_options, execute, overrides

NAME = "resume"
HELP = "continue an interrupted study stored in a SQLite store"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="the study's name in the store")
    add_run_options(parser)


def run(args: argparse.Namespace) -> int:
    from engine.optimize.study import Study
    from engine.paths import default_store_path

    db = args.db or default_store_path()
    study = asyncio.run(Study.from_store(args.name, db=db, **overrides(args)))
    return execute(study, args)
