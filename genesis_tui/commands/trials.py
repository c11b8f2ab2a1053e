"""``genesis trials NAME --db PATH --export FILE.csv|FILE.parquet``: export all trials."""

from __future__ import annotations

import argparse
import asyncio

NAME = "trials"
HELP = "export every trial of a stored study to CSV or Parquet"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="the study's name in the store")
    parser.add_argument("--db", metavar="PATH", help="the store: a SQLite file (default: the XDG data directory's genesis.db) or a postgresql:// URL")
    parser.add_argument("--export", metavar="FILE", required=True, help="FILE.csv or FILE.parquet")


def run(args: argparse.Namespace) -> int:
    from engine.paths import check_stored_name

    check_stored_name(args.name)
    from engine.optimize.export import export_trials
    from engine.paths import default_store_path

    count = asyncio.run(export_trials(args.db or default_store_path(), args.name, args.export))
    print(f"{count} trials written to {args.export}")
    return 0
