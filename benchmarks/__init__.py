"""The Genesis performance suite (not part of the default test run).

Each module here measures one area against a reference measured in the same
run and is callable from ``genesis bench``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any


def figures_main(doc: str | None, compute: Callable[[bool], dict[str, Any]], argv: list[str] | None = None) -> int:
    """A benchmark module's command line: ``[--quick] [--json]``, its figures one per line or as JSON."""
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    figures = compute(args.quick)
    if args.json:
        print(json.dumps(figures))
    else:
        for name, value in figures.items():
            print(f"{name:28s} {value:.4g}" if isinstance(value, float) else f"{name:28s} {value}")
    return 0
