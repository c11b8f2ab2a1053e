"""``genesis trials NAME --db PATH --export FILE.csv|FILE.parquet``: export all trials; ``--drivers``: who ran them."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

NAME = "trials"
HELP = "export every trial of a stored study to CSV or Parquet, or list the drivers that shared it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="the study's name in the store")
    parser.add_argument("--db", metavar="PATH", help="the store: a SQLite file (default: the XDG data directory's genesis.db) or a postgresql:// URL")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--export", metavar="FILE", help="FILE.csv or FILE.parquet")
    what.add_argument("--drivers", action="store_true",
                      help="list the drivers that shared the study (PostgreSQL): host, pid, trials, rate")


async def _drivers(db: str | Path, name: str) -> list[str]:
    from engine.store.factory import open_study_store

    async with await open_study_store(db, readonly=True) as store:
        record = await store.require_study(name)
        return [driver.describe() for driver in await store.drivers(record.id)]


def run(args: argparse.Namespace) -> int:
    from engine.paths import check_stored_name, default_store_path

    check_stored_name(args.name)
    db = args.db or default_store_path()
    if args.drivers:
        lines = asyncio.run(_drivers(db, args.name))
        print("\n".join(lines) if lines else f"{args.name}: no shared drivers (one run at a time)")
        return 0
    from engine.optimize.export import export_trials

    count = asyncio.run(export_trials(db, args.name, args.export))
    print(f"{count} trials written to {args.export}")
    return 0
