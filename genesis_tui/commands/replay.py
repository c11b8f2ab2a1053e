"""``genesis replay NAME --db PATH``: the console on a headless run's recording."""

from __future__ import annotations

import argparse

NAME = "replay"
HELP = "open the console on a recorded headless run (play, pause, step, jump, speed)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="the study's name in the store")
    parser.add_argument("--db", metavar="PATH", help="the SQLite store (default: the XDG data directory's genesis.db)")
    parser.add_argument("--run", metavar="ID", type=int,
                        help="the recording to play (default: the latest; see --list)")
    parser.add_argument("--list", action="store_true", help="list the study's recordings and exit")
    parser.add_argument("--speed", metavar="X", type=float, default=1.0, help="playback speed (default 1)")
    parser.add_argument("--at", metavar="TIME", help="start at this time (12:30, 95s, 50%%)")
    parser.add_argument("--paused", action="store_true", help="start paused")
    parser.add_argument("--theme", metavar="NAME", help="console theme")
    parser.add_argument("--refresh-hz", metavar="N", type=float, default=4.0,
                        help="frames shown per second of wall time (default 4, the recording rate)")


def run(args: argparse.Namespace) -> int:
    from engine.paths import check_stored_name

    check_stored_name(args.name)
    from engine.errors import InputError
    from engine.headless.recording import Recording
    from engine.headless.replay import ReplaySource, format_clock, parse_position
    from engine.paths import default_store_path
    from engine.store.recordings import list_recordings

    db = args.db or default_store_path()
    if args.list:
        recordings = list_recordings(db, args.name)
        if not recordings:
            print(f"no recordings of study {args.name!r} in {db}")
        for r in recordings:
            print(f"recording {r.id}: run {r.run or '-'}, {format_clock(r.duration_s)} long, {r.frames} frames, "
                  f"{r.bytes / 1024:,.0f} KB at {r.hz:g} Hz")
        return 0
    if not 0.2 <= args.refresh_hz <= 60:
        raise InputError(f"--refresh-hz: expected a number between 0.2 and 60, got {args.refresh_hz:g}")
    recording = Recording.load(db, args.name, args.run)
    source = ReplaySource(recording, db=db, speed=args.speed, playing=not args.paused)
    source.set_speed(args.speed)
    if args.at:
        source.seek(parse_position(args.at, recording.duration_s))

    from genesis_tui.commands.tui import _check_theme
    from genesis_tui.replay_app import ReplayApp

    app = ReplayApp(source, refresh_hz=args.refresh_hz, theme=_check_theme(args.theme))
    return int(app.run() or 0)
