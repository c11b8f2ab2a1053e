"""``genesis backtest``: one backtest from the command line (a table, or JSON)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from genesis_tui.format import PERCENT_METRICS

NAME = "backtest"
HELP = "run one backtest of a strategy (built in, in the strategies folder, or PATH.py:NAME) over a data spec"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", metavar="SPEC", action="append",
        help="synthetic:bars=N,seed=S[,symbols=N] | csv:PATH | parquet:PATH (a file, or a folder of one file "
        "per symbol) | hyperliquid:COIN[+COIN...]; repeat it for a basket",
    )
    parser.add_argument("--strategy", metavar="NAME", help="a strategy name (see --list) or PATH.py:NAME")
    parser.add_argument(
        "--param", metavar="K=V", action="append", default=[], help="a strategy parameter (repeatable)"
    )
    add_option_arguments(parser)
    parser.add_argument("--strict", action="store_true", help="reject data rows with NaN/inf instead of dropping them")
    parser.add_argument("--list", action="store_true", help="list the strategies and their parameters")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def add_option_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per backtest option (``--fee``, ``--stop-loss``, ...), generated from
    ``engine.backtest.BacktestOptions``: its fields' names, defaults, values and help."""
    from engine.backtest.options import OPTIONS

    for info in OPTIONS.values():
        if info.choices:
            parser.add_argument(info.flag, choices=info.choices, default=info.default, help=f"{info.help}; default {info.default}")
        else:
            parser.add_argument(
                info.flag, type=float, metavar="X", default=info.default,
                help=f"{info.help}; in {info.interval}, default {info.default:g}",
            )  # fmt: skip


def options_from_args(args: argparse.Namespace) -> Any:
    """The :class:`~engine.backtest.BacktestOptions` the flags give (validated: bad values are one line)."""
    from engine.backtest.options import OPTIONS, BacktestOptions

    return BacktestOptions(**{name: getattr(args, name) for name in OPTIONS})


def parse_params(items: list[str]) -> dict[str, str]:
    """``["fast=10", "slow=50"]`` -> ``{"fast": "10", "slow": "50"}`` (one-line errors)."""
    from engine.errors import InputError

    texts: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise InputError(f"--param {item!r}: expected NAME=VALUE, e.g. --param fast=10")
        if key in texts:
            raise InputError(f"--param {key} given twice")
        texts[key] = value
    return texts


def run(args: argparse.Namespace) -> int:
    from engine.backtest import STRATEGIES, get_strategy
    from engine.backtest import run as run_backtest
    from engine.backtest.strategies import available
    from engine.errors import InputError

    if args.list:
        return _list(available(), as_json=args.json)
    if not args.data:
        raise InputError("backtest: --data SPEC is required (e.g. --data synthetic:bars=100000,seed=1)")
    if not args.strategy:
        raise InputError(f"backtest: --strategy NAME is required (known: {', '.join(STRATEGIES)}; or PATH.py:NAME)")

    strategy = get_strategy(args.strategy)
    params = strategy.parse_params(parse_params(args.param))
    options = options_from_args(args)

    import time

    from engine.data import dropped_rows_note, load_basket

    start = time.perf_counter()
    basket = load_basket(args.data, strict=args.strict)
    load_s = time.perf_counter() - start
    for bars in basket:
        note = dropped_rows_note(bars)
        if note:
            print(f"genesis: {note}", file=sys.stderr)
    if len(basket) > 1:
        return _basket(args, basket, strategy, params, options, load_s)
    bars = basket[0]
    result = run_backtest(bars, strategy, params, options=options)
    from engine.backtest.benchmark import benchmark

    report = {
        "strategy": result.strategy,
        "params": dict(result.params),
        "data": _data_summary(args.data[0], bars),
        "options": result.options.as_dict(),
        "metrics": result.metrics.as_json(),
        "benchmark": benchmark(bars, result.metrics.total_return, result.options).as_dict(),
        "elapsed_s": result.elapsed_s,
        "load_s": load_s,
    }
    if args.json:
        print(json.dumps(report))
    else:
        _print_table(report)
    return 0


def _basket(args: argparse.Namespace, basket: list[Any], strategy: Any, params: dict[str, Any], options: Any,
            load_s: float) -> int:
    """A basket backtest: the portfolio's metrics and a table per symbol (``symbols`` in JSON)."""
    from engine.backtest import run_portfolio

    result = run_portfolio(basket, strategy, params, options=options)
    report = {
        "strategy": strategy.name,
        "params": dict(strategy.validate(params)),
        "data": [_data_summary(str(bars.meta.get("spec") or bars.meta.get("source") or ""), bars) for bars in basket],
        "options": options.as_dict(),
        "allocation": result.allocation,
        "metrics": result.metrics.as_json(),
        "symbols": result.symbol_dicts(),
        "elapsed_s": result.elapsed_s,
        "load_s": load_s,
    }
    if args.json:
        print(json.dumps(report))
        return 0
    from rich.console import Console
    from rich.table import Table

    first = report["data"][0]
    _print_table({**report, "data": {**first, "symbol": " + ".join(result.symbols)}})
    table = Table(title=f"per symbol ({result.allocation} allocation)")
    for column in ("symbol", "trades", "return contribution", "win rate", "exposure"):
        table.add_column(column, justify="left" if column == "symbol" else "right")
    for symbol, row in report["symbols"].items():
        table.add_row(symbol, f"{int(row['trades']):,d}", _format("total_return", row["return_contribution"]),
                      _format("win_rate", row["win_rate"]), _format("exposure", row["exposure"]))
    Console().print(table)
    return 0


def _data_summary(spec: str, bars: Any) -> dict[str, Any]:
    import numpy as np

    def iso(ns: int) -> str:
        return str(np.datetime64(int(ns), "ns").astype("datetime64[s]")) + "Z"

    return {
        "spec": spec,
        "symbol": bars.symbol,
        "timeframe": bars.timeframe,
        "bars": len(bars),
        "start": iso(bars.ts[0]),
        "end": iso(bars.ts[-1]),
    }


def _format(key: str, value: Any) -> str:
    if value is None:
        return "inf"
    if key == "trades":
        return f"{value:,d}"
    if key == "final_value":
        return f"{value:,.2f}"
    if key in PERCENT_METRICS:
        return f"{value * 100:,.2f} %"
    return f"{value:,.3f}" if math.isfinite(value) else str(value)


def _print_table(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    data = report["data"]
    params = ", ".join(f"{k}={v}" for k, v in report["params"].items())
    options = report["options"]
    console = Console()
    console.print(f"[bold]{report['strategy']}[/]({params})")
    console.print(
        f"{data['symbol']} {data['timeframe']} · {data['bars']:,} bars · {data['start']} → {data['end']}"
    )
    # Every option, in the record's order (a new option shows up here by itself).
    console.print(
        " · ".join(
            f"{name.replace('_', '-')} {value:,.2f}" if name == "cash"
            else f"{name.replace('_', '-')} {value:g}" if isinstance(value, float)
            else f"{name.replace('_', '-')} {value}"
            for name, value in options.items()
        )
    )
    table = Table(caption=f"backtest {report['elapsed_s'] * 1e3:.1f} ms · data {report['load_s'] * 1e3:.1f} ms")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in report["metrics"].items():
        table.add_row(key, _format(key, value))
    if "benchmark" in report:
        table.add_section()
        for key, value in report["benchmark"].items():
            table.add_row(key, _format("total_return", value))
    console.print(table)


def _list(strategies: dict[str, Any], *, as_json: bool) -> int:
    if as_json:
        print(json.dumps({name: s.to_dict() for name, s in strategies.items()}))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="strategies")
    table.add_column("name")
    table.add_column("parameters")
    table.add_column("rule")
    for name, s in strategies.items():
        params = ", ".join(
            f"{p.name}={p.default} [{p.low:g}, {p.high:g}]" if p.kind != "choice" else f"{p.name}={p.default} {list(p.choices)}"
            for p in s.params
        )
        constraints = "; ".join(c.expr for c in s.constraints)
        table.add_row(name, params + (f"; {constraints}" if constraints else ""), s.rule or f"{s.description} ({s.where})")
    Console().print(table)
    return 0
