"""``genesis check``: the look-ahead and lookback check of a strategy (exit 0 clean, 4 biased)."""

from __future__ import annotations

import argparse
import json
import sys

NAME = "check"
HELP = "check a strategy for look-ahead and a too-short lookback (exit 4 when it finds either)"
DEFAULT_DATA = "synthetic:bars=3000,seed=1,timeframe=1h"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("strategy", metavar="STRATEGY", help="a strategy name or PATH.py:NAME")
    parser.add_argument("--data", metavar="SPEC", default=DEFAULT_DATA, help=f"market data (default {DEFAULT_DATA})")
    parser.add_argument("--param", metavar="K=V", action="append", default=[], help="a strategy parameter (repeatable)")
    parser.add_argument("--fast", action="store_true", help="fewer cut points and windows (what a study runs first)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from engine.backtest import get_strategy
    from engine.data import load
    from engine.errors import EXIT_CHECK_FAILED
    from engine.strategy.check import check
    from genesis_tui.commands.backtest import parse_params

    strategy = get_strategy(args.strategy)
    params = strategy.parse_params(parse_params(args.param))
    bars = load(args.data)
    report = check(strategy, bars, params, fast=args.fast)
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        label = strategy.label(report.params)
        lookback = "no lookback declared (lookback test skipped)" if report.lookback is None else f"lookback {report.lookback}"
        print(f"{label} · {strategy.where}")
        print(f"{report.bars:,} bars · {lookback} · {report.cuts} cut points · {report.windows} lookback windows")
        if report.clean:
            print("clean: no signal changed when later bars were removed or only the lookback was given")
        else:
            print(
                f"found: {report.count('look-ahead')} bars with look-ahead, "
                f"{report.count('lookback')} bars needing more than the lookback"
            )
            first = report.first()
            assert first is not None
            print(f"genesis: {strategy.where}: {report.hint(first)}", file=sys.stderr)
    return 0 if report.clean else EXIT_CHECK_FAILED
