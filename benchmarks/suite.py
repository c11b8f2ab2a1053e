"""The registry ``genesis bench`` runs: every ``benchmarks/<area>.py`` module that
defines ``run(quick: bool) -> dict``, found by name and imported only when run.

Discovery reads the modules' source instead of importing them: the console's
benchmark imports ``genesis_tui.app`` (and textual), which must not load for
``genesis bench --list`` or ``--only backtest``, and ``genesis_tui`` imports
this module only by name (``importlib``), so no import circle closes.

A module's dict holds its figures (numbers, booleans, strings, nested dicts);
a figure named ``meets_goal`` or ``meets_goals`` (or ending ``_meets_goal``)
is a goal verdict, shown as such and collected into the suite's summary.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import benchmarks

BenchFunction = Callable[[bool], dict[str, Any]]
_SKIP = {"suite"}


def _defines_run_quick(path: Path) -> bool:
    """Whether the module at ``path`` defines a top-level ``run`` taking ``quick``."""
    try:
        tree = ast.parse(path.read_text(), str(path))
    except (OSError, SyntaxError):
        return False
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "run":
            args = node.args
            return any(a.arg == "quick" for a in (*args.posonlyargs, *args.args, *args.kwonlyargs))
    return False


def _loader(name: str) -> BenchFunction:
    def run(quick: bool) -> dict[str, Any]:
        module = importlib.import_module(f"{benchmarks.__name__}.{name}")
        figures: dict[str, Any] = module.run(quick)
        return figures

    run.__name__ = run.__qualname__ = f"run_{name}"
    return run


def discover() -> dict[str, BenchFunction]:
    """Area name -> its ``run`` function, for every benchmark module, by name (imported when called)."""
    found: dict[str, BenchFunction] = {}
    for info in sorted(pkgutil.iter_modules(benchmarks.__path__), key=lambda i: i.name):
        if info.name.startswith("_") or info.name in _SKIP or info.ispkg:
            continue
        path = Path(getattr(info.module_finder, "path", "")) / f"{info.name}.py"
        if _defines_run_quick(path):
            found[info.name] = _loader(info.name)
    return found


def run_suite(
    quick: bool = False,
    only: list[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the selected modules (all by default); one failing module is reported
    as ``{"error": ...}`` and does not stop the others."""
    registry = discover()
    names = only or list(registry)
    unknown = [name for name in names if name not in registry]
    if unknown:
        from engine.errors import InputError

        raise InputError(f"unknown benchmark {unknown[0]!r} (known: {', '.join(registry)})")
    results: dict[str, Any] = {}
    for name in names:
        if progress:
            progress(name)
        start = time.perf_counter()
        try:
            figures = registry[name](quick)
        except Exception as error:  # a broken module must not hide the others' figures
            figures = {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc(limit=3)}
        results[name] = {"figures": figures, "seconds": time.perf_counter() - start}
    return results


def flatten(figures: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) for every leaf of a figures dict."""
    if isinstance(figures, dict):
        for key, value in figures.items():
            yield from flatten(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, figures


def is_goal(key: str) -> bool:
    leaf = key.rsplit(".", 1)[-1]
    return leaf in ("meets_goal", "meets_goals") or leaf.endswith("_meets_goal")


def goals(results: dict[str, Any]) -> dict[str, bool]:
    """Every goal verdict, by ``module.key``."""
    return {
        f"{name}.{key}": bool(value)
        for name, part in results.items()
        for key, value in flatten(part["figures"])
        if is_goal(key) and isinstance(value, bool)
    }


def module_main(run: BenchFunction, description: str, argv: list[str] | None = None) -> int:
    """The command line of one benchmark module: ``[--quick] [--json]``, figures printed
    one flattened key per line (or as one JSON object)."""
    import argparse
    import json

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="smaller inputs, fewer repetitions")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    figures = run(args.quick)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    for key, value in flatten(figures):
        shown = f"{value:,.4g}" if isinstance(value, float) else str(value)
        print(f"{key:48} {shown:>16}")
    return 0
