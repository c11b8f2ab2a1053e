"""``genesis compare A B [C...] [--db PATH] [--format text|md|json]``: studies side by side."""

from __future__ import annotations

import argparse
import asyncio
import json

NAME = "compare"
HELP = "compare stored studies side by side: best trial, validation, objective distribution, trial counts"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", metavar="NAME", nargs="+", help="two or more studies in the store")
    parser.add_argument("--db", metavar="PATH", help="the store: a SQLite file (default: the XDG data directory's genesis.db) or a postgresql:// URL")
    parser.add_argument("--format", choices=("text", "md", "json"), default="text",
                        help="output format (default text: an aligned table)")


def run(args: argparse.Namespace) -> int:
    from engine.errors import InputError
    from engine.paths import check_stored_name

    if len(args.names) < 2:
        raise InputError("compare: name at least two studies")
    for name in args.names:
        check_stored_name(name)
    from engine.optimize.compare import comparison_from_db, render_markdown, render_text
    from engine.paths import default_store_path

    comparison = asyncio.run(comparison_from_db(args.db or default_store_path(), args.names))
    if args.format == "json":
        print(json.dumps(comparison, indent=2, default=str))
    elif args.format == "md":
        print(render_markdown(comparison), end="")
    else:
        print(render_text(comparison), end="")
    return 0
