"""``genesis report NAME --db PATH [--format md|json]``: the report of a stored study."""

from __future__ import annotations

import argparse
import asyncio
import json

NAME = "report"
HELP = "print the report of a stored study (Markdown or JSON)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="the study's name in the store")
    parser.add_argument("--db", metavar="PATH", help="the SQLite store (default: the XDG data directory's genesis.db)")
    parser.add_argument("--format", choices=("md", "json"), default="md", help="output format (default md)")


def run(args: argparse.Namespace) -> int:
    from engine.optimize.report import render_markdown, report_from_db
    from engine.paths import default_store_path

    report = asyncio.run(report_from_db(args.db or default_store_path(), args.name))
    if args.format == "json":
        print(json.dumps(report, indent=2, default=str))
    else:
        print(render_markdown(report), end="")
    return 0
