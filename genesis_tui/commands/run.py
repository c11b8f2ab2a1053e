"""``genesis run STUDY.toml``: run a study, or resume it if the store holds it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from genesis_tui.commands._headless_options import add_headless_options, run_options, wants_headless
from genesis_tui.commands._study_runner import add_run_options, execute, overrides

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

NAME = "run"
#: End without the interpreter's teardown once every exit handler has run (``genesis_tui.cli``).
QUICK_EXIT = True
HELP = "run or resume a study from its TOML file (headless when asked or when stdout is not a terminal)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study", metavar="STUDY.toml", help="the study file")
    add_run_options(parser)
    add_headless_options(parser)


def start_workers_early(argv: Sequence[str]) -> None:
    """Start the workers' fork server from a peek at ``run``'s arguments, before the parser is built.

    Its imports (numpy, numba, the kernels) are the longest chain of a short
    study; building every subcommand's parser first would hold it back ~0.1 s.
    A wrong peek only starts a server early (or not): :func:`run` decides again.
    """
    from engine.optimize.fork_server import start_fork_server, wants_process_backend

    study: str | None = None
    backend: str | None = None
    tokens = iter(argv)
    for token in tokens:
        if token in ("-h", "--help"):
            return
        if token == "--backend":
            backend = next(tokens, None)
        elif token.startswith("--backend="):
            backend = token.partition("=")[2]
        elif study is None and token.endswith(".toml") and not token.startswith("-"):
            study = token
    if study is not None and wants_process_backend(study, backend):
        start_fork_server(study)  # (it loads that study's kernels: a wrong peek loads others)


def run(args: argparse.Namespace) -> int:
    from engine.optimize.fork_server import start_fork_server, wants_process_backend

    if wants_process_backend(args.study, args.backend):  # the workers' imports overlap ours from here on
        start_fork_server(args.study)
    if wants_headless(args):  # cron: lock, budget, report directory, webhook, recording (engine.headless)
        from engine.headless.runner import run as run_headless

        return run_headless(run_options(args, overrides(args), study_file=args.study))
    from engine.optimize.lock import StudyLock
    from engine.optimize.study import Study

    study = Study.from_file(args.study, db=args.db, **overrides(args))
    with StudyLock(study.db, study.name):  # never two runs of one study on one store
        return execute(study, args)
