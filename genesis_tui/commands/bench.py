"""``genesis bench``: the performance suite's figures (a table, or JSON)."""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
from types import ModuleType
from typing import Any

NAME = "bench"
HELP = "run the performance suite (benchmarks/*.py) and print its figures"
#: Found by name at run time: the suite's console benchmark imports genesis_tui.app,
#: so a static import here would close a circle (and load textual for every bench).
SUITE = "benchmarks.suite"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="smaller inputs and fewer repetitions")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--only", metavar="AREA", action="append", default=[], help="run only this module (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the benchmark modules and exit")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed or a module fails")


def run(args: argparse.Namespace) -> int:
    suite = importlib.import_module(SUITE)
    if args.list:
        names = list(suite.discover())
        print(json.dumps(names) if args.json else "\n".join(names))
        return 0
    progress = None if args.json else (lambda name: print(f"running {name} ...", file=sys.stderr, flush=True))
    results = suite.run_suite(quick=args.quick, only=args.only or None, progress=progress)
    verdicts = suite.goals(results)
    failed = [name for name, part in results.items() if "error" in part["figures"]]
    report = {
        "quick": args.quick,
        "modules": results,
        "goals": verdicts,
        "all_goals_met": all(verdicts.values()),
        "failed_modules": failed,
    }
    if args.json:
        print(json.dumps(_jsonable(report)))
    else:
        _print_tables(suite, results, verdicts)
    if args.strict and (failed or not all(verdicts.values())):
        return 1
    return 0


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _jsonable(value.item())
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _print_tables(suite: ModuleType, results: dict[str, Any], verdicts: dict[str, bool]) -> None:
    from rich.console import Console
    from rich.table import Table

    flatten, is_goal = suite.flatten, suite.is_goal
    console = Console()
    for name, part in results.items():
        table = Table(title=f"{name} ({part['seconds']:.1f} s)", title_justify="left")
        table.add_column("figure")
        table.add_column("value", justify="right")
        for key, value in flatten(part["figures"]):
            if key == "traceback":
                continue
            style = ("green" if value else "bold red") if is_goal(key) and isinstance(value, bool) else None
            table.add_row(key, _shown(value), style=style)
        console.print(table)
    missed = [key for key, ok in verdicts.items() if not ok]
    console.print(f"goals met: {len(verdicts) - len(missed)}/{len(verdicts)}" + (f" (missed: {', '.join(missed)})" if missed else ""))
