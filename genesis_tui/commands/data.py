"""``genesis data fetch|ls|rm``: manage the exchange-candle cache by hand.

- ``genesis data fetch SPEC... [--concurrency N] [--json]`` loads one or more
  ``hyperliquid:COIN[,interval=1h][,start=...][,end=...]`` specs in parallel
  into the cache (a bare ``BTC`` means ``hyperliquid:BTC``).
- ``genesis data ls [--json]`` lists the cached series.
- ``genesis data rm COIN... [--interval I]`` or ``genesis data rm --all`` removes them.

``--cache PATH`` picks another cache database (default: the ``[hyperliquid]``
``cache_path``, else ``$XDG_CACHE_HOME/genesis/candles.db``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

NAME = "data"
HELP = "fetch, list and remove cached exchange candles (hyperliquid:COIN specs)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    fetch = actions.add_parser("fetch", help="load specs into the cache, several in parallel")
    fetch.add_argument("specs", nargs="+", metavar="SPEC", help="hyperliquid:COIN[,interval=1h][,start=..][,end=..] or COIN")
    fetch.add_argument("--concurrency", type=int, default=None, metavar="N", help="specs loaded at once")
    fetch.add_argument("--json", action="store_true", help="print one JSON object")
    ls = actions.add_parser("ls", help="list the cached series")
    ls.add_argument("--json", action="store_true", help="print one JSON object")
    rm = actions.add_parser("rm", help="remove cached series")
    rm.add_argument("coins", nargs="*", metavar="COIN", help="coins to remove (all their intervals unless --interval)")
    rm.add_argument("--interval", default=None, help="only this interval")
    rm.add_argument("--all", action="store_true", help="remove every cached series")
    for sub in (fetch, ls, rm):
        sub.add_argument("--cache", metavar="PATH", default=None, help="the candle cache database")


def run(args: argparse.Namespace) -> int:
    from engine.data.hyperliquid import default_cache_path, load_config

    config = load_config()
    path = Path(args.cache) if args.cache else default_cache_path(config)
    if args.action == "fetch":
        return _fetch(args, config, path)
    if args.action == "ls":
        return _ls(args, path)
    return _rm(args, path)


def _parse(spec: str) -> tuple[str, str, int | None, int | None]:
    from engine.data.hyperliquid import parse_options
    from engine.data.spec import parse_spec
    from engine.errors import DataError

    text = spec if ":" in spec else f"hyperliquid:{spec}"
    parsed = parse_spec(text)
    if parsed.kind != "hyperliquid":
        raise DataError(f"{parsed.where}: only hyperliquid:COIN specs are fetched into the cache")
    return parse_options(parsed.target, parsed.options)


def _fetch(args: argparse.Namespace, config: Any, path: Path) -> int:
    from engine.data.cache import MemoryCache
    from engine.data.hyperliquid import HyperliquidSource
    from engine.data.multi import load_many
    from engine.errors import InputError

    if args.concurrency is not None and args.concurrency < 1:
        raise InputError(f"--concurrency: expected 1 or more, got {args.concurrency}")
    requests = {spec: _parse(spec) for spec in args.specs}

    async def fetch_all() -> Any:
        async with HyperliquidSource(config, memory=MemoryCache(), cache_path=path) as source:

            async def one(spec: str) -> Any:
                coin, interval, start, end = requests[spec]
                return await source.fetch_candles(coin, interval or None, start, end)

            result = await load_many(requests, one, concurrency=args.concurrency or config.concurrency)
            return result, source.http.stats.requests

    result, sent = asyncio.run(fetch_all())
    loaded = {spec: _describe(bars) for spec, bars in result.loaded.items()}
    failed = {spec: failure.message for spec, failure in result.failed.items()}
    if args.json:
        print(json.dumps({"cache": str(path), "requests": sent, "loaded": loaded, "failed": failed}, indent=2))
    else:
        for spec, info in loaded.items():
            dropped = f", dropped {info['dropped_rows']} non-finite" if info["dropped_rows"] else ""
            print(
                f"{spec}: {info['candles']} candles {info['first']} .. {info['last']} "
                f"({info['fetched_requests']} requests{dropped})"
            )
        for spec, message in failed.items():
            print(f"genesis: {spec}: {message}", file=sys.stderr)
    if result.failed:
        return max(failure.exit_code for failure in result.failed.values())
    return 0


def _describe(bars: Any) -> dict[str, Any]:
    import numpy as np

    return {
        "symbol": bars.symbol,
        "interval": bars.timeframe,
        "candles": len(bars),
        "first": str(np.datetime64(int(bars.ts[0]), "ns").astype("datetime64[s]")),
        "last": str(np.datetime64(int(bars.ts[-1]), "ns").astype("datetime64[s]")),
        "fetched_requests": bars.meta.get("fetched_requests", 0),
        "dropped_rows": bars.meta.get("dropped_rows", 0),
    }


def _ms(value: int | None) -> str:
    import numpy as np

    return "" if value is None else str(np.datetime64(int(value), "ms").astype("datetime64[s]"))


def _ls(args: argparse.Namespace, path: Path) -> int:
    from engine.store.candles import CandleStore

    if not path.exists():
        if args.json:
            print(json.dumps({"cache": str(path), "bytes": 0, "series": []}, indent=2))
        else:
            print(f"no cached candles ({path} does not exist)")
        return 0

    async def listing() -> Any:
        async with CandleStore(path) as store:
            return await store.series(), store.counters.bytes

    series, size = asyncio.run(listing())
    rows = [
        {
            "source": info.key.source,
            "symbol": info.key.symbol,
            "interval": info.key.interval,
            "candles": info.candles,
            "first": _ms(info.first_ms),
            "last": _ms(info.last_ms),
            "covered": [[_ms(lo), _ms(hi)] for lo, hi in info.covered],
        }
        for info in series
    ]
    if args.json:
        print(json.dumps({"cache": str(path), "bytes": size, "series": rows}, indent=2))
        return 0
    print(f"{path} ({size / 1e6:.1f} MB, {len(rows)} series)")
    if rows:
        header = ("SOURCE", "SYMBOL", "INTERVAL", "CANDLES", "FIRST", "LAST", "RANGES")
        table = [header] + [
            (r["source"], r["symbol"], r["interval"], str(r["candles"]), r["first"], r["last"], str(len(r["covered"])))
            for r in rows
        ]
        widths = [max(len(line[i]) for line in table) for i in range(len(header))]
        for line in table:
            print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
    return 0


def _rm(args: argparse.Namespace, path: Path) -> int:
    from engine.data.hyperliquid import SOURCE, check_interval
    from engine.errors import InputError
    from engine.store.candles import CandleStore

    if not args.coins and not args.all:
        raise InputError("data rm: name one or more coins, or give --all")
    if args.coins and args.all:
        raise InputError("data rm: give coins or --all, not both")
    if args.interval is not None:
        check_interval(args.interval, "data rm --interval")
    if not path.exists():
        print(f"removed 0 candles ({path} does not exist)")
        return 0

    async def remove() -> int:
        async with CandleStore(path) as store:
            if args.all:
                return await store.delete(SOURCE, None, args.interval)
            total = 0
            for coin in args.coins:
                total += await store.delete(SOURCE, coin.removeprefix(f"{SOURCE}:"), args.interval)
            return total

    removed = asyncio.run(remove())
    print(f"removed {removed} candles from {path}")
    return 0
