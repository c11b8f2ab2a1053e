"""``genesis run STUDY.toml``: run a study, or resume it if the store holds it."""

from __future__ import annotations

import argparse

from genesis_tui.commands._study_runner import add_run_options, execute, overrides

NAME = "run"
HELP = "run or resume a study from its TOML file (headless when asked or when stdout is not a terminal)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study", metavar="STUDY.toml", help="the study file")
    add_run_options(parser)


def run(args: argparse.Namespace) -> int:
    from engine.optimize.study import Study

    study = Study.from_file(args.study, db=args.db, **overrides(args))
    return execute(study, args)
