"""Candles and funding from any exchange ccxt supports, paged into the tiered candle cache.

``ccxt:EXCHANGE:SYMBOL[,interval=1h][,start=YYYY-MM-DD][,end=YYYY-MM-DD]`` (for
example ``ccxt:bybit:BTC/USDT:USDT,interval=4h,start=2023-01-01``) pages the
exchange's ``fetch_ohlcv`` forward from ``start`` with the page size the
exchange declares (``features[...]['fetchOHLCV']['limit']``) and ccxt's own
rate limiter, writing each page and its coverage to the L2 cache, so a second
load of the same range makes no request. On a perpetual whose exchange has
``fetch_funding_rate_history`` the funding events are paged and cached too
and ride in ``Bars.meta["funding"]``.

ccxt is the optional ``ccxt`` extra (``pip install 'genesis-console[ccxt]'``).
``GENESIS_CCXT_API_URL`` (or ``[ccxt] api_url``) sends every API request to
another host, keeping the paths: a local fake exchange (docs/market-data.md).
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from engine.data.bars import Bars
from engine.data.cache import (
    FetchReport,
    MemoryCache,
    PageSink,
    TieredCandleCache,
    interval_bounds_ms,
    missing_ranges,
    now_ms,
)
from engine.data.funding import FundingRates
from engine.errors import ConfigError, DataError, quoted
from engine.load_progress import ProgressCallback, ProgressCounter
from engine.profile import profiler
from engine.store.candles import RECORD_DTYPE, CandleStore, SeriesKey

SOURCE = "ccxt"
URL_ENV = "GENESIS_CCXT_API_URL"
OPTIONS = ("interval", "start", "end")
MS_PER_DAY = 86_400_000
_HOST = re.compile(r"^https?://[^/]+")


class CcxtConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The ``[ccxt]`` table of the global config."""

    api_url: str = ""  # send every API request here instead (a fake exchange); "" = the exchange's own
    cache_path: str = ""  # default: cache_dir() / "candles.db" (shared with the other sources)
    interval: str = "1h"
    default_days: int = 365  # how far back a spec without start= reaches
    timeout_s: float = 30.0  # one request
    max_pages: int = 100_000  # a guard against an exchange that never moves forward


def load_config() -> CcxtConfig:
    """The ``[ccxt]`` config with ``GENESIS_CCXT_API_URL`` applied, checked."""
    from engine.config import config_section

    config = config_section("ccxt", CcxtConfig)
    url = os.environ.get(URL_ENV, "").strip() or config.api_url
    if url and not url.startswith(("http://", "https://")):
        raise ConfigError(f"[ccxt] api_url / {URL_ENV}: expected an http:// or https:// URL, got {url!r}")
    if config.default_days < 1:
        raise ConfigError("[ccxt] default_days: expected 1 or more")
    return msgspec.structs.replace(config, api_url=url.rstrip("/"))


def ccxt_module() -> Any:
    """``ccxt.async_support``, or one line saying which extra to install."""
    try:
        return importlib.import_module("ccxt.async_support")
    except ModuleNotFoundError:
        raise DataError(
            "the ccxt source needs the ccxt package: pip install 'genesis-console[ccxt]'"
        ) from None


def redirect_urls(urls: Any, base: str) -> Any:
    """``urls`` (a string, or nested dicts and lists of them) with every host replaced by ``base``."""
    if isinstance(urls, str):
        return _HOST.sub(base, urls)
    if isinstance(urls, dict):
        return {key: redirect_urls(value, base) for key, value in urls.items()}
    if isinstance(urls, list):
        return [redirect_urls(value, base) for value in urls]
    return urls


def _ohlcv_limit(exchange: Any, market: Mapping[str, Any]) -> int | None:
    """The most candles one ``fetch_ohlcv`` call returns on this market, as ccxt declares it."""
    features = getattr(exchange, "features", None) or {}
    kind = str(market.get("type") or "spot")
    table = features.get(kind) or {}
    if kind in ("swap", "future"):
        table = table.get("linear" if market.get("linear") else "inverse") or table
    limit = ((table or {}).get("fetchOHLCV") or {}).get("limit")
    return int(limit) if isinstance(limit, int | float) and limit > 0 else None


class CcxtSource:
    """One exchange through ``ccxt.async_support`` and one tiered cache.

    ``async with CcxtSource("binance") as source: await source.fetch_candles("BTC/USDT", "1h", ...)``.
    """

    def __init__(
        self,
        exchange_id: str,
        config: CcxtConfig | None = None,
        *,
        memory: MemoryCache | None = None,
        cache_path: Path | str | None = None,
        progress: ProgressCallback | None = None,
    ) -> None:
        from engine.data.hyperliquid import shared_memory_cache
        from engine.paths import cache_dir

        self.config = config or load_config()
        self.exchange_id = exchange_id
        module = ccxt_module()
        if exchange_id not in module.exchanges:
            raise DataError(f"ccxt: unknown exchange {quoted(exchange_id)} (ccxt.exchanges lists them)")
        self.exchange = getattr(module, exchange_id)(
            {"enableRateLimit": True, "timeout": int(self.config.timeout_s * 1000)}
        )
        if self.config.api_url:
            self.exchange.urls["api"] = redirect_urls(self.exchange.urls.get("api"), self.config.api_url)
        self.memory = memory if memory is not None else shared_memory_cache()
        path = cache_path or (Path(self.config.cache_path).expanduser() if self.config.cache_path else None)
        self.store = CandleStore(path or cache_dir() / "candles.db")  # shared with the other sources
        self.cache = TieredCandleCache(self.store, self.memory)
        self.requests = 0
        self.progress = progress
        self._markets_loaded = False

    async def open(self) -> CcxtSource:
        await self.store.open()
        return self

    async def close(self) -> None:
        await self.exchange.close()
        await self.store.close()

    async def __aenter__(self) -> CcxtSource:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(self, what: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """One exchange call; ccxt's errors become one ``DataError`` line."""
        module = ccxt_module()
        self.requests += 1
        try:
            return await getattr(self.exchange, method)(*args, **kwargs)
        except module.BaseError as error:
            text = " ".join(str(error).split())[:200]
            raise DataError(f"{what}: {type(error).__name__}: {text}") from None

    async def market(self, symbol: str, interval: str) -> Mapping[str, Any]:
        """The market of ``symbol``, checked: it exists, the exchange serves OHLCV at ``interval``."""
        where = f"ccxt {self.exchange_id} {symbol}"
        if not self.exchange.has.get("fetchOHLCV"):
            raise DataError(f"ccxt: exchange {self.exchange_id} has no OHLCV history (fetchOHLCV)")
        if not self._markets_loaded:
            await self._call(f"ccxt {self.exchange_id}: loading markets", "load_markets")
            self._markets_loaded = True
        markets = self.exchange.markets or {}
        if symbol not in markets:
            close = [name for name in markets if name.split("/")[0] == symbol.split("/")[0]][:3]
            hint = f" (did you mean {', '.join(close)}?)" if close else " (symbols look like BTC/USDT or BTC/USDT:USDT)"
            raise DataError(f"{where}: unknown symbol on {self.exchange_id}{hint}")
        timeframes = self.exchange.timeframes or {}
        if timeframes and interval not in timeframes:
            raise DataError(f"{where}: interval {quoted(interval)} not offered; expected one of {', '.join(timeframes)}")
        return markets[symbol]

    def resolve_range(self, start_ms: int | None, end_ms: int | None, *, now: int) -> tuple[int, int]:
        """Default ``end`` is now; default ``start`` is ``default_days`` before ``end``."""
        end = now if end_ms is None else int(end_ms)
        start = end - self.config.default_days * MS_PER_DAY if start_ms is None else int(start_ms)
        return start, end

    def key(self, symbol: str, interval: str) -> SeriesKey:
        return SeriesKey(f"{SOURCE}-{self.exchange_id}", symbol, interval)

    async def fetch_candles(
        self,
        symbol: str,
        interval: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        *,
        now: int | None = None,
    ) -> Bars:
        """Candles of ``symbol`` with open time in ``[start_ms, end_ms)`` as ``Bars`` (cached)."""
        interval = interval or self.config.interval
        moment = now_ms() if now is None else now
        start, end = self.resolve_range(start_ms, end_ms, now=moment)
        label = f"ccxt {self.exchange_id} {symbol} {interval}"
        if end <= start:
            raise DataError(f"{label}: start must be before end")
        key = self.key(symbol, interval)
        if self.memory is not None:
            cached = self.memory.get(key, start, end, count_miss=False)
            if cached is not None:
                return cached

        async def fetch(lo: int, hi: int, sink: PageSink) -> FetchReport:
            market = await self.market(symbol, interval)
            return await self._page_candles(symbol, interval, lo, hi, sink, _ohlcv_limit(self.exchange, market), label)

        bars = await self.cache.get(key, start, end, fetch, now=moment)
        if "funding" not in bars.meta and is_perpetual(symbol) and self.exchange.has.get("fetchFundingRateHistory"):
            # Into the fresh bars' own meta (the object L1 holds), as the archive source does.
            bars.meta["funding"] = await self.fetch_funding(symbol, start, end, now=moment)
        return bars

    async def _page_candles(
        self, symbol: str, interval: str, lo: int, hi: int, sink: PageSink, limit: int | None, label: str
    ) -> FetchReport:
        """``fetch_ohlcv`` page after page from ``lo`` until ``hi`` (or the exchange has no more)."""
        report = FetchReport()
        step = interval_bounds_ms(interval)[0]
        cursor = lo
        pages = -(-(hi - lo) // (step * limit)) if limit else None
        progress = ProgressCounter(self.progress, label, symbol, unit="pages", total=pages)
        for _page in range(self.config.max_pages):
            with profiler.stage("data.fetch"):
                rows = await self._call(label, "fetch_ohlcv", symbol, interval, since=cursor, limit=limit)
            report.requests += 1
            progress.add(done=1)  # ccxt hands over parsed rows: no byte count
            records, dropped = _ohlcv_records(rows or [], cursor, hi)
            report.dropped_nan += dropped
            if records.shape[0] == 0:
                await sink(records, cursor, hi)  # nothing from here on: a covered gap
                break
            following = int(records["t"][-1]) + step
            await sink(records, cursor, min(following, hi))
            report.candles += int(records.shape[0])
            if following >= hi:
                break
            cursor = following
        else:
            raise DataError(f"{label}: more than {self.config.max_pages} pages without reaching the end")
        progress.finish()
        return report

    async def fetch_funding(self, symbol: str, start: int, end: int, *, now: int | None = None) -> FundingRates:
        """The funding events of ``symbol`` in ``[start, end)`` (cached in L2: the rate in ``close``)."""
        moment = now_ms() if now is None else now
        key = SeriesKey(f"{SOURCE}-{self.exchange_id}", symbol, "funding")
        label = f"ccxt {self.exchange_id} {symbol} funding"
        await self.store.open()
        for lo, hi in missing_ranges(await self.store.coverage(key), start, end):
            cursor, stop = lo, min(hi, moment)
            while cursor < stop:
                rows = await self._call(label, "fetch_funding_rate_history", symbol, since=cursor)
                events = sorted(
                    (int(row["timestamp"]), float(row["fundingRate"]))
                    for row in rows or []
                    if row.get("timestamp") is not None and row.get("fundingRate") is not None
                    and cursor <= int(row["timestamp"]) < stop
                )
                records = np.zeros(len(events), dtype=RECORD_DTYPE)
                if events:
                    records["t"] = [t for t, _ in events]
                    records["close"] = [r for _, r in events]
                    _, first = np.unique(records["t"], return_index=True)
                    records = records[first]
                reached = stop if not events else min(events[-1][0] + 1, stop)
                await self.store.write(key, records, (cursor, reached))
                cursor = reached
        records = await self.store.read(key, start, end)
        return FundingRates(records["t"] * 1_000_000, records["close"].copy())


def is_perpetual(symbol: str) -> bool:
    """ccxt's unified symbol of a perpetual swap is ``BASE/QUOTE:SETTLE`` (a dated future
    adds ``-YYMMDD``), so no market lookup is needed to know it."""
    _, sep, settle = symbol.partition(":")
    return bool(sep) and "-" not in settle


def _ohlcv_records(rows: list[Any], lo: int, hi: int) -> tuple[np.ndarray, int]:
    """ccxt's ``[t, o, h, l, c, v]`` rows inside ``[lo, hi)`` as sorted, unique records, and
    how many rows were dropped for a missing or non-finite value."""
    kept = [row for row in rows if row and row[0] is not None and lo <= int(row[0]) < hi]
    records = np.zeros(len(kept), dtype=RECORD_DTYPE)
    if not kept:
        return records, 0
    values = np.array([[float("nan") if v is None else float(v) for v in row[1:6]] for row in kept], dtype=np.float64)
    records["t"] = [int(row[0]) for row in kept]
    for column, name in enumerate(("open", "high", "low", "close", "volume")):
        records[name] = values[:, column]
    finite = np.all(np.isfinite(values), axis=1)
    records = records[finite]
    records = np.sort(records, order="t")
    _, first = np.unique(records["t"], return_index=True)
    return records[first], int((~finite).sum())


# --------------------------------------------------------------------------- sync entry point


def parse_options(target: str, options: Mapping[str, str]) -> tuple[str, str, str, int | None, int | None]:
    """``(exchange, symbol, interval, start_ms, end_ms)`` from a spec ("" interval = the config's)."""
    from engine.data.spec import check_options, option_timestamp

    where = f"data spec 'ccxt:{target}'"
    exchange, sep, symbol = target.partition(":")
    exchange, symbol = exchange.strip().lower(), symbol.strip()
    if not sep or not exchange or not symbol:
        raise DataError(f"{where}: expected ccxt:EXCHANGE:SYMBOL such as ccxt:binance:BTC/USDT")
    check_options(options, OPTIONS, where)
    interval = options.get("interval", "").strip()
    start_ns = option_timestamp(options, "start", where, default=None)
    end_ns = option_timestamp(options, "end", where, default=None)
    start = None if start_ns is None else start_ns // 1_000_000
    end = None if end_ns is None else end_ns // 1_000_000
    if start is not None and end is not None and end <= start:
        raise DataError(f"{where}: start {options['start']!r} must be before end {options['end']!r}")
    return exchange, symbol, interval, start, end


def load_ccxt(target: str, options: Mapping[str, str], *, progress: ProgressCallback | None = None) -> Bars:
    """``ccxt:EXCHANGE:SYMBOL[,interval=..][,start=..][,end=..]`` as ``Bars`` (blocking; cached)."""
    from engine.data.hyperliquid import run_sync

    exchange, symbol, interval, start, end = parse_options(target, options)
    config = load_config()

    async def load() -> Bars:
        async with CcxtSource(exchange, config, progress=progress) as source:
            return await source.fetch_candles(symbol, interval or None, start, end)

    result: Bars = run_sync(load)
    return result
