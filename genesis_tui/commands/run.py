"""``genesis run STUDY.toml``: run a study, or resume it if the store holds it."""

from __future__ import annotations

import argparse

from genesis_tui.commands._headless_options import add_headless_options, run_options, wants_headless
from genesis_tui.commands._study_runner import add_run_options, execute, overrides

NAME = "run"
HELP = "run or resume a study from its TOML file (headless when asked or when stdout is not a terminal)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study", metavar="STUDY.toml", help="the study file")
    add_run_options(parser)
    add_headless_options(parser)


def run(args: argparse.Namespace) -> int:
    from engine.optimize.fork_server import start_fork_server, wants_process_backend

    if wants_process_backend(args.study, args.backend):  # the workers' imports overlap ours from here on
        start_fork_server()
    if wants_headless(args):  # cron: lock, budget, report directory, webhook, recording (engine.headless)
        from engine.headless.runner import run as run_headless

        return run_headless(run_options(args, overrides(args), study_file=args.study))
    from engine.optimize.lock import StudyLock
    from engine.optimize.study import Study

    study = Study.from_file(args.study, db=args.db, **overrides(args))
    with StudyLock(study.db, study.name):  # never two runs of one study on one store
        return execute(study, args)
