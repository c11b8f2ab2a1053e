"""``genesis data fetch|ls|verify|rm``: manage the exchange-candle cache by hand.

- ``genesis data fetch SPEC... [--concurrency N] [--json] [--progress|--no-progress]``
  loads one or more ``hyperliquid:COIN[,...]``, ``binance:SYMBOL[,...]`` or
  ``ccxt:EXCHANGE:SYMBOL[,...]`` specs in
  parallel into the cache (a bare ``BTC`` means ``hyperliquid:BTC``); archive
  downloads show a progress line on stderr (files, bytes, rate, ETA). An
  interrupted fetch keeps every finished file: running it again resumes.
- ``genesis data warm [SPEC...] [--db DB] [--json]`` tops the cache up for the specs (default:
  those of every study in the store), most recent ranges first, with progress (``engine.data.warm``).
- ``genesis data ls [--json]`` lists the cached series with range, gaps and size.
- ``genesis data verify [--json]`` re-reads every covered range and checks it for
  duplicates, disorder and off-grid open times (exit 1 when one is found).
- ``genesis data rm COIN... [--interval I] [--source S]`` or ``genesis data rm --all`` removes them.

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
HELP = "fetch, list, verify and remove cached exchange candles (hyperliquid:COIN, binance:SYMBOL, ccxt:EXCHANGE:SYMBOL specs)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    fetch = actions.add_parser("fetch", help="load specs into the cache, several in parallel")
    fetch.add_argument(
        "specs", nargs="+", metavar="SPEC",
        help="hyperliquid:COIN[,interval=1h][,start=..][,end=..], binance:SYMBOL[,market=um][,...], ccxt:EXCHANGE:SYMBOL[,...] or COIN",
    )
    fetch.add_argument("--concurrency", type=int, default=None, metavar="N", help="specs loaded at once")
    fetch.add_argument("--json", action="store_true", help="print one JSON object")
    fetch.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None,
        help="show download progress on stderr (default: when stderr is a terminal)",
    )
    warm = actions.add_parser("warm", help="top up the cache for specs (default: every stored study's), most recent first")
    warm.add_argument("specs", nargs="*", metavar="SPEC", help="network data specs (default: those of the studies in --db)")
    warm.add_argument("--db", default=None, help="the study store whose studies' specs to warm (default: the usual one)")
    warm.add_argument("--json", action="store_true", help="print one JSON object")
    warm.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None,
        help="show progress on stderr (default: when stderr is a terminal)",
    )
    ls = actions.add_parser("ls", help="list the cached series")
    ls.add_argument("--json", action="store_true", help="print one JSON object")
    verify = actions.add_parser("verify", help="check the cached series for duplicates and disorder")
    verify.add_argument("--json", action="store_true", help="print one JSON object")
    rm = actions.add_parser("rm", help="remove cached series")
    rm.add_argument("coins", nargs="*", metavar="COIN", help="coins to remove (all their intervals unless --interval)")
    rm.add_argument("--interval", default=None, help="only this interval")
    rm.add_argument("--all", action="store_true", help="remove every cached series")
    rm.add_argument("--source", default="hyperliquid", help="the series' source: hyperliquid, binance-um, binance-spot, ccxt-EXCHANGE")
    for sub in (fetch, warm, ls, verify, rm):
        sub.add_argument("--cache", metavar="PATH", default=None, help="the candle cache database")


def run(args: argparse.Namespace) -> int:
    from engine.data.hyperliquid import default_cache_path, load_config

    config = load_config()
    path = Path(args.cache) if args.cache else default_cache_path(config)
    if args.action == "fetch":
        return _fetch(args, config, path)
    if args.action == "warm":
        return _warm(args, path)
    if args.action == "ls":
        return _ls(args, path)
    if args.action == "verify":
        return _verify(args, path)
    return _rm(args, path)


def _parse(spec: str) -> tuple[str, tuple[Any, ...]]:
    """``("hyperliquid", (coin, interval, start, end))`` or ``("binance", (symbol, market, interval, start, end))``."""
    from engine.data import binance, hyperliquid
    from engine.data.spec import parse_spec
    from engine.errors import DataError

    text = spec if ":" in spec else f"hyperliquid:{spec}"
    parsed = parse_spec(text)
    if parsed.kind == "hyperliquid":
        return "hyperliquid", hyperliquid.parse_options(parsed.target, parsed.options)
    if parsed.kind == "binance":
        return "binance", binance.parse_options(parsed.target, parsed.options)
    if parsed.kind == "ccxt":
        from engine.data import ccxt_source

        return "ccxt", ccxt_source.parse_options(parsed.target, parsed.options)
    raise DataError(
        f"{parsed.where}: only hyperliquid:COIN, binance:SYMBOL and ccxt:EXCHANGE:SYMBOL specs are fetched into the cache"
    )


def _fetch(args: argparse.Namespace, config: Any, path: Path) -> int:
    from engine.data.binance import BinanceArchive
    from engine.data.binance import load_config as binance_config
    from engine.data.cache import MemoryCache
    from engine.data.hyperliquid import HyperliquidSource
    from engine.data.multi import load_many
    from engine.errors import InputError
    from engine.load_progress import ProgressLine

    if args.concurrency is not None and args.concurrency < 1:
        raise InputError(f"--concurrency: expected 1 or more, got {args.concurrency}")
    requests = {spec: _parse(spec) for spec in args.specs}
    show = sys.stderr.isatty() if args.progress is None else args.progress
    progress = ProgressLine(sys.stderr) if show else None

    async def fetch_all() -> Any:
        memory = MemoryCache()
        async with (
            HyperliquidSource(config, memory=memory, cache_path=path, progress=progress) as source,
            BinanceArchive(binance_config(), memory=memory, cache_path=path, progress=progress) as archive,
        ):

            exchanges: dict[str, Any] = {}

            async def one(spec: str) -> Any:
                kind, values = requests[spec]
                if kind == "ccxt":
                    from engine.data.ccxt_source import CcxtSource

                    exchange_id, symbol, interval, start, end = values
                    if exchange_id not in exchanges:
                        exchanges[exchange_id] = await CcxtSource(
                            exchange_id, memory=memory, cache_path=path, progress=progress
                        ).open()
                    return await exchanges[exchange_id].fetch_candles(symbol, interval or None, start, end)
                if kind == "binance":
                    symbol, market, interval, start, end = values
                    return await archive.fetch_candles(symbol, market or None, interval or None, start, end)
                coin, interval, start, end = values
                return await source.fetch_candles(coin, interval or None, start, end)

            try:
                result = await load_many(requests, one, concurrency=args.concurrency or config.concurrency)
            finally:
                if progress is not None:
                    progress.close()
                for exchange in exchanges.values():
                    await exchange.close()
            sent = sum(exchange.requests for exchange in exchanges.values())
            return result, source.http.stats.requests + archive.http.stats.requests + sent

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


def _warm(args: argparse.Namespace, path: Path) -> int:
    from engine.data.warm import Warmer, WarmProgress, remote_specs, stored_specs
    from engine.paths import default_store_path

    for spec in args.specs:
        _parse(spec if ":" in spec else f"hyperliquid:{spec}")  # bad specs: one line, exit 2, before any download
    specs = [spec if ":" in spec else f"hyperliquid:{spec}" for spec in args.specs]
    show = sys.stderr.isatty() if args.progress is None else args.progress

    def tell(progress: WarmProgress) -> None:
        done, total = progress.pieces_done, progress.pieces_total
        filled = 24 * done // total if total else 24
        sys.stderr.write(
            f"\r[{'#' * filled}{'.' * (24 - filled)}] {done}/{total} pieces  "
            f"{progress.downloaded} downloaded  {progress.spec}\x1b[K"
        )
        sys.stderr.flush()

    async def warm_all() -> Any:
        if not specs:
            specs.extend(remote_specs(await stored_specs(args.db or default_store_path())))
        warmer = Warmer(cache_path=path, progress=tell if show else None)
        warmer.add(specs)
        return await warmer.run()

    progress = asyncio.run(warm_all())
    if show:
        sys.stderr.write("\n")
    if args.json:
        print(json.dumps({
            "cache": str(path), "specs": specs, "pieces": progress.pieces_total,
            "downloaded": progress.downloaded, "failed": progress.failed,
        }, indent=2))  # fmt: skip
    else:
        print(f"warmed {len(specs)} specs: {progress.pieces_total} pieces, {progress.downloaded} downloaded")
        for spec, message in progress.failed.items():
            print(f"genesis: {spec}: {message}", file=sys.stderr)
    return 1 if progress.failed else 0


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
    from engine.store.candles import RECORD_DTYPE, CandleStore

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
            "gaps": [[_ms(hi), _ms(lo)] for (_, hi), (lo, _) in zip(info.covered, info.covered[1:], strict=False)],
            "bytes": info.candles * RECORD_DTYPE.itemsize,
        }
        for info in series
    ]
    if args.json:
        print(json.dumps({"cache": str(path), "bytes": size, "series": rows}, indent=2))
        return 0
    print(f"{path} ({size / 1e6:.1f} MB, {len(rows)} series)")
    if rows:
        header = ("SOURCE", "SYMBOL", "INTERVAL", "CANDLES", "FIRST", "LAST", "GAPS", "SIZE")
        table = [header] + [
            (r["source"], r["symbol"], r["interval"], str(r["candles"]), r["first"], r["last"], str(len(r["gaps"])),
             f"{r['bytes'] / 1e6:.1f} MB")
            for r in rows
        ]
        widths = [max(len(line[i]) for line in table) for i in range(len(header))]
        for line in table:
            print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
    return 0


def _verify(args: argparse.Namespace, path: Path) -> int:
    """Re-read each series' covered ranges: duplicates, disorder and open times off the
    interval's grid are problems (exit 1); holes inside a covered range (the exchange
    had no candles) are listed, not problems."""
    import numpy as np

    from engine.data.cache import interval_bounds_ms
    from engine.store.candles import CandleStore

    if not path.exists():
        print(f"nothing to verify ({path} does not exist)")
        return 0

    async def check() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        async with CandleStore(path) as store:
            for info in await store.series():
                key = info.key
                problems: list[str] = []
                holes = 0
                step = None if key.interval == "funding" or key.interval.endswith("M") else interval_bounds_ms(key.interval)[0]
                for lo, hi in info.covered:
                    times = (await store.read(key, lo, hi))["t"]
                    steps = np.diff(times)
                    if (steps == 0).any():
                        problems.append(f"{int((steps == 0).sum())} duplicate open times in {_ms(lo)} .. {_ms(hi)}")
                    if (steps < 0).any():
                        problems.append(f"open times out of order in {_ms(lo)} .. {_ms(hi)}")
                    if step is not None:
                        if times.size and (times % step != 0).any():
                            problems.append(f"{int((times % step != 0).sum())} open times off the {key.interval} grid")
                        holes += int((steps > step).sum())
                found.append({"series": str(key), "candles": info.candles, "holes": holes, "problems": problems})
        return found

    found = asyncio.run(check())
    bad = [entry for entry in found if entry["problems"]]
    if args.json:
        print(json.dumps({"cache": str(path), "series": found, "ok": not bad}, indent=2))
    else:
        for entry in found:
            state = "; ".join(entry["problems"]) or "ok"
            print(f"{entry['series']}: {entry['candles']} candles, {entry['holes']} holes: {state}")
    return 1 if bad else 0


def _rm(args: argparse.Namespace, path: Path) -> int:
    from engine.data.hyperliquid import check_interval
    from engine.errors import InputError
    from engine.store.candles import CandleStore

    if not args.coins and not args.all:
        raise InputError("data rm: name one or more coins, or give --all")
    if args.coins and args.all:
        raise InputError("data rm: give coins or --all, not both")
    source = args.source
    if args.interval is not None and source == "hyperliquid":
        check_interval(args.interval, "data rm --interval")
    if not path.exists():
        print(f"removed 0 candles ({path} does not exist)")
        return 0

    async def remove() -> int:
        async with CandleStore(path) as store:
            if args.all:
                total = 0
                for info in await store.series():  # every source
                    if args.interval is None or info.key.interval == args.interval:
                        total += await store.delete(info.key.source, info.key.symbol, info.key.interval)
                return total
            total = 0
            for coin in args.coins:
                total += await store.delete(source, coin.split(":", 1)[-1], args.interval)
            return total

    removed = asyncio.run(remove())
    print(f"removed {removed} candles from {path}")
    return 0
