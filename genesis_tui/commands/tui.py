"""``genesis [tui] [STUDY.toml]``: the console (the demo workspace when no study is given)."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.runtime import Engine, EngineThread, PaperHost

from genesis_tui.commands._study_runner import add_allow_many_workers, check_workers_flag

NAME = "tui"
HELP = "open the console (on the built-in demo workspace when no study file or store is given)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study", metavar="STUDY.toml", nargs="?", help="a study file to run or resume")
    parser.add_argument("--db", metavar="PATH", help="the study store (default: the user's data directory)")
    parser.add_argument(
        "--refresh-hz", metavar="N", type=float, default=4.0, help="telemetry polls per second (default 4)"
    )
    parser.add_argument("--theme", metavar="NAME", help="console theme (default: the last one chosen)")
    parser.add_argument("--backend", choices=("inline", "process", "dask"), help="override the study's backend")
    parser.add_argument("--workers", metavar="N", type=int, help="override the study's worker count")
    parser.add_argument(
        "--paper", metavar="STUDY.toml",
        help="paper-trade a study file's data (one symbol or a basket), strategy and options, with the "
        "parameters of its best stored trial (else the strategy's defaults)",
    )
    parser.add_argument(
        "--paper-speed", metavar="BARS_PER_S", type=float, default=None,
        help="the --paper replay's pace in bars a second (default: the demo's)",
    )
    add_allow_many_workers(parser)


def run(args: argparse.Namespace) -> int:
    from engine.errors import InputError

    if not 0.2 <= args.refresh_hz <= 60:
        raise InputError(f"--refresh-hz: expected a number between 0.2 and 60, got {args.refresh_hz:g}")
    check_workers_flag(args)
    if args.paper_speed is not None and not args.paper_speed > 0:
        raise InputError(f"--paper-speed: expected a number of bars a second above 0, got {args.paper_speed:g}")
    if args.paper_speed is not None and args.paper is None:
        raise InputError("--paper-speed: only with --paper STUDY.toml")
    theme = _check_theme(args.theme)
    handle, startup = _build(args)

    from genesis_tui.app import GenesisApp

    _start_resource_tracker()
    app = GenesisApp(handle, refresh_hz=args.refresh_hz, theme=theme, startup=startup, handle_signals=True)
    try:
        code = app.run()
    finally:
        # the app closes the engine as it ends; should it have died before, the study is checkpointed here
        handle.close_sync(timeout_s=60)
    return int(code or 0)


def _start_resource_tracker() -> None:
    """Start multiprocessing's resource tracker while stderr is still the real one.

    Worker processes are spawned after Textual has replaced ``sys.stderr``, whose
    ``fileno()`` is then invalid; the tracker would fail to start with "bad value(s)
    in fds_to_keep".
    """
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()


def _check_theme(name: str | None) -> str | None:
    if name is None:
        return None
    from textual.theme import BUILTIN_THEMES

    from engine.errors import InputError
    from genesis_tui.themes import load_themes

    names = {t.name for t in load_themes().themes} | set(BUILTIN_THEMES)
    if name not in names:
        raise InputError(f"--theme: no theme named {name!r} (available: {', '.join(sorted(names))})")
    return name


def _build(args: argparse.Namespace) -> tuple[EngineThread, Callable[[], Awaitable[object]]]:
    """The engine on its own thread, and the coroutine that starts it there."""
    from engine.runtime import Engine, EngineThread

    paper = _paper_factory(args)
    # A --paper replay goes at --paper-speed, not at a live feed's rate: an event-rate floor
    # would only cry wolf (the demo's replay turns it off for the same reason).
    alerts = {"event_rate": {"enabled": False}} if paper is not None else None
    if args.study is None and args.db is None and paper is not None:
        path = Path(args.paper)
        with_paper = EngineThread(
            Engine(
                alerts=alerts, workspace=path.stem, backend=args.backend, workers=args.workers, paper_factory=paper
            )
        )
        return with_paper, with_paper.start
    if args.study is None and args.db is None:
        from engine.demo import demo_engine, start_demo

        demo = demo_engine(backend=args.backend or "process", workers=args.workers)
        on_thread = EngineThread(demo)
        return on_thread, lambda: on_thread.start(lambda: start_demo(demo, backend=args.backend or "process"))
    if args.study is not None:
        from engine.optimize.study import Study

        path = Path(args.study)
        # Bad input fails here: one line, exit 2, before the UI starts (execution.workers above the
        # machine's bound too; in the console --workers N --allow-many-workers lifts it).
        Study.from_file(path, db=args.db, backend=args.backend, workers=args.workers)
        engine = Engine(
            alerts=alerts, db=args.db, workspace=path.stem, backend=args.backend, workers=args.workers,
            paper_factory=paper,
        )

        async def startup() -> None:
            await engine.start()
            await engine.start_study(path)

        with_study = EngineThread(engine)
        return with_study, lambda: with_study.start(startup)
    from engine.store.url import DatabaseUrl, store_location

    location = store_location(args.db)  # a URL's workspace is its database's name, never its password
    workspace = location.name if isinstance(location, DatabaseUrl) else location.stem
    store_only = EngineThread(
        Engine(
            alerts=alerts, db=location, workspace=workspace, backend=args.backend, workers=args.workers,
            paper_factory=paper,
        )
    )
    return store_only, store_only.start


def _paper_factory(args: argparse.Namespace) -> Callable[[Engine], PaperHost] | None:
    """The ``--paper`` study's loop for the engine to host (bad input fails here, before the UI)."""
    if args.paper is None:
        return None
    from engine.demo import PAPER_BARS_PER_S
    from engine.errors import InputError
    from engine.runtime import paper_factory_for, study_paper

    path = Path(args.paper)
    if not path.is_file():
        raise InputError(f"--paper: {path}: no such study file")
    paper = study_paper(path, args.db)
    return paper_factory_for(
        paper.data, paper.strategy, paper.params, paper.options,
        bars_per_s=args.paper_speed or PAPER_BARS_PER_S, note=f"{path}: {paper.origin}",
    )  # fmt: skip
