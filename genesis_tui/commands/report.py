"""``genesis report NAME --db PATH [--format md|json]``: the report of a stored study."""

from __future__ import annotations

import argparse
import asyncio
import json

NAME = "report"
HELP = "print the report of a stored study (Markdown or JSON)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="the study's name in the store")
    parser.add_argument("--db", metavar="PATH", help="the store: a SQLite file (default: the XDG data directory's genesis.db) or a postgresql:// URL")
    parser.add_argument("--format", choices=("md", "json"), default="md", help="output format (default md)")
    parser.add_argument("--out", metavar="DIR",
                        help="write the full report directory instead (report.md, report.json, SVG charts; "
                             "the same as a headless run leaves)")


def run(args: argparse.Namespace) -> int:
    from engine.paths import check_stored_name

    check_stored_name(args.name)
    from engine.optimize.report import render_markdown, report_from_db
    from engine.paths import default_store_path

    if args.out:  # the headless run's report directory, rebuilt from the store alone
        from engine.headless.report import build_full_report, write_report_dir

        report, charts = asyncio.run(build_full_report(args.db or default_store_path(), args.name))
        paths = write_report_dir(report, charts, args.out)
        print(f"report written to {paths['md'].parent}: " + ", ".join(p.name for p in paths.values()))
        return 0
    report = asyncio.run(report_from_db(args.db or default_store_path(), args.name))
    if args.format == "json":
        print(json.dumps(report, indent=2, default=str))
    else:
        print(render_markdown(report), end="")
    return 0
