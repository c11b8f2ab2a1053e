"""Hyperliquid candles: the public ``candleSnapshot`` info endpoint, paged and cached.

``POST {url}/info`` with ``{"type": "candleSnapshot", "req": {"coin", "interval",
"startTime", "endTime"}}`` (ms) answers at most 5,000 candles
``{t, T, s, i, o, c, h, l, v, n}`` with prices as strings. Long ranges are paged
by moving ``startTime`` past the last candle's open time; paging stops on an
empty page or once the range is covered. Every page is validated in one pass
(strings to float, inf to NaN, rows with NaN dropped and counted, order and the
bar rules checked) and written to the L2 cache before the next page is asked
for, so a failure later on keeps what was already fetched.

The base URL is ``https://api.hyperliquid.xyz`` unless the ``[hyperliquid]``
table of the global config or ``GENESIS_HYPERLIQUID_URL`` (which wins) says
otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from engine.data.bars import Bars, BarsValidationError, validate_columns
from engine.data.cache import (
    CacheWarmer,
    FetchReport,
    MemoryCache,
    PageSink,
    TieredCandleCache,
    interval_bounds_ms,
    now_ms,
)
from engine.data.http import Deadline, HttpConfig, HttpService, HttpStatusError
from engine.data.multi import MultiLoadResult, load_many
from engine.errors import ConfigError, DataError, NetworkError, quoted
from engine.load_progress import ProgressCallback, ProgressCounter
from engine.profile import profiler
from engine.store.candles import RECORD_DTYPE, CandleStore, SeriesKey

log = logging.getLogger("genesis.data.hyperliquid")

SOURCE = "hyperliquid"
DEFAULT_URL = "https://api.hyperliquid.xyz"
URL_ENV = "GENESIS_HYPERLIQUID_URL"
INTERVALS = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "8h", "12h", "1d", "3d", "1w", "1M")
MAX_CANDLES_PER_RESPONSE = 5000
OPTIONS = ("interval", "start", "end", "funding")
MAX_FUNDING_PER_RESPONSE = 500


class HyperliquidConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The ``[hyperliquid]`` table of the global config."""

    url: str = DEFAULT_URL
    cache_path: str = ""  # default: cache_dir() / "candles.db"
    interval: str = "1h"
    default_candles: int = 5000  # how far back a spec without start= reaches
    max_connections: int = 8
    concurrency: int = 4  # symbols loaded at once by parallel loads
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 20.0
    request_timeout_s: float = 30.0  # one request, body included
    fetch_timeout_s: float = 300.0  # one coin's fetch, every page and retry included
    max_response_mb: float = 32.0
    retries: int = 4
    backoff_base_s: float = 0.5
    backoff_max_s: float = 10.0
    max_retry_after_s: float = 60.0
    weight_per_minute: float = 1200.0  # Hyperliquid's per-IP budget
    request_weight: float = 20.0  # one info request
    weight_per_60_candles: float = 1.0  # candleSnapshot's extra weight per 60 candles returned
    l1_mb: float = 256.0
    immutable_ttl_s: float = 86_400.0
    warm: list[str] = msgspec.field(default_factory=list)  # coins to warm at start-up
    warm_interval: str = "1h"
    warm_candles: int = 5000

    def http_config(self) -> HttpConfig:
        return HttpConfig(
            max_connections=self.max_connections,
            connect_timeout_s=self.connect_timeout_s,
            read_timeout_s=self.read_timeout_s,
            request_timeout_s=self.request_timeout_s,
            max_response_bytes=int(self.max_response_mb * 1024 * 1024),
            retries=self.retries,
            backoff_base_s=self.backoff_base_s,
            backoff_max_s=self.backoff_max_s,
            max_retry_after_s=self.max_retry_after_s,
            weight_per_minute=self.weight_per_minute,
        )


def load_config() -> HyperliquidConfig:
    """The ``[hyperliquid]`` config with ``GENESIS_HYPERLIQUID_URL`` applied."""
    from engine.config import config_section

    config = config_section("hyperliquid", HyperliquidConfig)
    url = os.environ.get(URL_ENV, "").strip() or config.url
    return check_config(msgspec.structs.replace(config, url=url))


def check_config(config: HyperliquidConfig) -> HyperliquidConfig:
    """Reject values no service could run with (nan and inf included), naming the key."""
    where = "[hyperliquid]"
    if not config.url.startswith(("http://", "https://")):
        raise ConfigError(f"{where} url / {URL_ENV}: expected an http:// or https:// URL, got {config.url!r}")
    if config.interval not in INTERVALS:
        raise ConfigError(f"{where} interval: expected one of {', '.join(INTERVALS)}, got {config.interval!r}")
    positive = {
        "max_connections": config.max_connections,
        "concurrency": config.concurrency,
        "default_candles": config.default_candles,
        "connect_timeout_s": config.connect_timeout_s,
        "read_timeout_s": config.read_timeout_s,
        "request_timeout_s": config.request_timeout_s,
        "fetch_timeout_s": config.fetch_timeout_s,
        "max_response_mb": config.max_response_mb,
        "weight_per_minute": config.weight_per_minute,
        "l1_mb": config.l1_mb,
    }
    for name, value in positive.items():
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"{where} {name}: expected a positive, finite number, got {value}")
    for name in ("backoff_base_s", "backoff_max_s", "max_retry_after_s", "request_weight",
                 "weight_per_60_candles", "immutable_ttl_s"):
        value = getattr(config, name)
        if not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"{where} {name}: expected a finite number >= 0, got {value}")
    if config.retries < 0:
        raise ConfigError(f"{where} retries: expected 0 or more, got {config.retries}")
    return config


def default_cache_path(config: HyperliquidConfig) -> Path:
    from engine.paths import cache_dir

    return Path(config.cache_path).expanduser() if config.cache_path else cache_dir() / "candles.db"


# --------------------------------------------------------------------------- parsing


class _Candle(msgspec.Struct):
    t: int
    o: str | float
    h: str | float
    l: str | float  # noqa: E741 - the exchange's field name
    c: str | float
    v: str | float
    T: int | None = None
    s: str | None = None
    i: str | None = None
    n: int | None = None


_DECODER = msgspec.json.Decoder(list[_Candle])
_FIELDS = (("o", "open"), ("h", "high"), ("l", "low"), ("c", "close"), ("v", "volume"))


def parse_candles(body: bytes, coin: str, interval: str) -> tuple[np.ndarray, int, int]:
    """One candleSnapshot answer as records, in one validating pass.

    Returns ``(records, dropped_inf, dropped_nan)``: candles with an infinite
    value become NaN and every candle with a NaN is dropped and counted. Raises
    one-line errors naming the coin, the interval and the candle: a
    :class:`NetworkError` for a body that is not JSON, a :class:`DataError` for
    a missing field, a non-numeric price, candles out of order, or a candle
    breaking the bar rules.
    """
    label = f"{SOURCE} {coin} {interval}"
    try:
        candles = _DECODER.decode(body)
    except msgspec.ValidationError as error:
        # The typed decoder stops at the first value of the wrong type, before it
        # sees a syntax error further on: a cut-off `{"err` is malformed, not data.
        try:
            msgspec.json.decode(body)
        except msgspec.DecodeError as syntax:
            raise NetworkError(f"{label}: malformed JSON in response ({len(body)} bytes): {syntax}") from None
        raise DataError(f"{label}: unexpected candle data: {_describe(error)}") from None
    except msgspec.DecodeError as error:
        raise NetworkError(f"{label}: malformed JSON in response ({len(body)} bytes): {error}") from None
    n = len(candles)
    records = np.empty(n, dtype=RECORD_DTYPE)
    if n == 0:
        return records, 0, 0
    records["t"] = [c.t for c in candles]
    for short, name in _FIELDS:
        values = [getattr(c, short) for c in candles]
        try:
            records[name] = np.array(values, dtype=np.float64)
        except (TypeError, ValueError):
            row, raw = _first_non_numeric(values)
            raise DataError(
                f"{label}: candle {row} (t={candles[row].t}): field {short!r}: expected a number, got {quoted(raw)}"
            ) from None
    ts = records["t"]
    if n > 1:
        bad = np.flatnonzero(np.diff(ts) <= 0)
        if bad.size:
            row = int(bad[0]) + 1
            raise DataError(
                f"{label}: candles out of order: candle {row} opens at t={int(ts[row])}, "
                f"not after t={int(ts[row - 1])}"
            )
    table = np.column_stack([records[name] for _, name in _FIELDS])
    infinite = np.isinf(table)
    dropped_inf = int(infinite.any(axis=1).sum())
    table[infinite] = np.nan
    bad_rows = np.isnan(table).any(axis=1)
    dropped_nan = int(bad_rows.sum()) - dropped_inf
    if bad_rows.any():
        records = records[~bad_rows]
    if records.shape[0]:
        try:
            validate_columns(
                records["t"], records["open"], records["high"], records["low"], records["close"], records["volume"]
            )
        except BarsValidationError as error:
            raise DataError(
                f"{label}: candle t={int(records['t'][error.row])}: {error.rule} ({error.detail})"
            ) from None
    return records, dropped_inf, dropped_nan


def _describe(error: msgspec.ValidationError) -> str:
    text = str(error)
    message, _, path = text.partition(" - at `")
    message = message[:1].lower() + message[1:]
    return f"{message} at {path.rstrip('`')}" if path else message


def _first_non_numeric(values: list[Any]) -> tuple[int, Any]:
    for row, value in enumerate(values):
        try:
            float(value)
        except (TypeError, ValueError):
            return row, value
    return 0, values[0]


# --------------------------------------------------------------------------- the source


_SHARED_MEMORY: MemoryCache | None = None
_SHARED_LOCK = threading.Lock()


def shared_memory_cache(config: HyperliquidConfig | None = None) -> MemoryCache:
    """The process-wide L1 cache of market data (created on first use)."""
    global _SHARED_MEMORY
    with _SHARED_LOCK:
        if _SHARED_MEMORY is None:
            config = config or HyperliquidConfig()
            _SHARED_MEMORY = MemoryCache(
                int(config.l1_mb * 1024 * 1024), immutable_ttl_s=config.immutable_ttl_s
            )
        return _SHARED_MEMORY


class HyperliquidSource:
    """The candle service: one pooled HTTP client and one tiered cache.

    Use ``async with HyperliquidSource(config) as source`` (or call
    :meth:`close`); :meth:`fetch_candles` loads one coin, :meth:`fetch_many`
    several in parallel.
    """

    def __init__(
        self,
        config: HyperliquidConfig | None = None,
        *,
        http: HttpService | None = None,
        memory: MemoryCache | None = None,
        cache_path: Path | str | None = None,
        progress: ProgressCallback | None = None,
    ) -> None:
        self.config = config or load_config()
        self.progress = progress
        self.http = http or HttpService(self.config.http_config())
        self.memory = memory if memory is not None else shared_memory_cache(self.config)
        self.store = CandleStore(cache_path or default_cache_path(self.config))
        self.cache = TieredCandleCache(self.store, self.memory)
        self._opened = False
        self._open_lock = asyncio.Lock()
        self._warmer: CacheWarmer | None = None

    @property
    def info_url(self) -> str:
        return self.config.url.rstrip("/") + "/info"

    async def open(self) -> HyperliquidSource:
        async with self._open_lock:
            if not self._opened:
                await self.store.open()
                self._opened = True
        return self

    async def close(self) -> None:
        """Stop warming, close the HTTP session and the cache database."""
        if self._warmer is not None:
            await self._warmer.stop()
        await self.http.close()
        await self.store.close()
        self._opened = False

    async def __aenter__(self) -> HyperliquidSource:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def resolve_range(
        self, interval: str, start_ms: int | None, end_ms: int | None, *, now: int | None = None
    ) -> tuple[int, int]:
        """Default ``end`` is now and default ``start`` reaches ``default_candles`` back."""
        end = (now_ms() if now is None else now) if end_ms is None else int(end_ms)
        start = end - self.config.default_candles * interval_bounds_ms(interval)[0] if start_ms is None else int(start_ms)
        return start, end

    async def fetch_candles(
        self,
        coin: str,
        interval: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        *,
        now: int | None = None,
    ) -> Bars:
        """Candles of ``coin`` with open time in ``[start_ms, end_ms)`` as ``Bars`` (cached)."""
        interval = interval or self.config.interval
        check_interval(interval, f"{SOURCE}:{coin}")
        start, end = self.resolve_range(interval, start_ms, end_ms, now=now)
        if end <= start:
            raise DataError(f"{SOURCE} {coin} {interval}: start must be before end")
        key = SeriesKey(SOURCE, coin, interval)
        seconds = self.config.fetch_timeout_s
        deadline = Deadline.after(seconds, f"fetch deadline of {seconds:g}s ([hyperliquid] fetch_timeout_s)")

        async def fetch(lo: int, hi: int, sink: PageSink) -> FetchReport:
            return await self._fetch_range(coin, interval, lo, hi, sink, deadline)

        return await self.cache.get(key, start, end, fetch, now=now)

    async def fetch_many(
        self,
        coins: Iterable[str],
        interval: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        *,
        concurrency: int | None = None,
    ) -> MultiLoadResult[str, Bars]:
        """Several coins at once under a bound on concurrency; failures are per coin."""

        async def one(coin: str) -> Bars:
            return await self.fetch_candles(coin, interval, start_ms, end_ms)

        return await load_many(coins, one, concurrency=concurrency or self.config.concurrency)

    def start_warming(self, coins: Iterable[str] | None = None) -> asyncio.Task:
        """Warm the cache with ``coins`` (default: the configured ``warm`` list) in the background."""
        symbols = list(self.config.warm if coins is None else coins)
        interval = self.config.warm_interval
        check_interval(interval, "[hyperliquid] warm_interval")
        reach = self.config.warm_candles * interval_bounds_ms(interval)[0]

        async def one(coin: str) -> Bars:
            now = now_ms()
            return await self.fetch_candles(coin, interval, now - reach, now)

        self._warmer = CacheWarmer(symbols, one, concurrency=self.config.concurrency)
        return self._warmer.start()

    async def _fetch_range(
        self, coin: str, interval: str, start: int, end: int, sink: PageSink, deadline: Deadline
    ) -> FetchReport:
        """Page ``[start, end)`` from the server into ``sink``, every request within ``deadline``."""
        label = f"{SOURCE} {coin} {interval}"
        shortest = interval_bounds_ms(interval)[0]
        report = FetchReport()
        cursor = start
        pages = -(-(end - start) // (shortest * MAX_CANDLES_PER_RESPONSE))  # an estimate: gaps end it sooner
        progress = ProgressCounter(self.progress, label, coin, unit="pages", total=pages)
        await self._page_range(coin, interval, cursor, end, sink, deadline, report, progress)
        progress.finish()
        return report

    async def _page_range(
        self, coin: str, interval: str, cursor: int, end: int, sink: PageSink, deadline: Deadline,
        report: FetchReport, progress: ProgressCounter,
    ) -> None:
        """The pages from ``cursor`` on, each validated and sunk before the next is asked for."""
        label = f"{SOURCE} {coin} {interval}"
        shortest = interval_bounds_ms(interval)[0]
        while cursor < end:
            payload = {
                "type": "candleSnapshot",
                "req": {"coin": coin, "interval": interval, "startTime": cursor, "endTime": end - 1},
            }
            began = time.perf_counter()
            try:
                body = await self.http.post_json(
                    self.info_url, payload, weight=self.config.request_weight, what=label, deadline=deadline
                )
            except HttpStatusError as error:
                if error.status in (400, 404, 422):
                    raise DataError(f"{error} (is {coin!r} a Hyperliquid coin?)") from None
                raise
            finally:
                # Concurrent tasks interleave here, so the time is recorded, not a nested stage.
                profiler.record("data.fetch", time.perf_counter() - began)
            report.requests += 1
            progress.add(done=1, size=len(body))
            with profiler.stage("data.validate"):
                records, dropped_inf, dropped_nan = parse_candles(body, coin, interval)
            returned = records.shape[0] + dropped_inf + dropped_nan
            if returned > MAX_CANDLES_PER_RESPONSE:
                log.warning("%s: %d candles in one response (expected at most %d)", label, returned, MAX_CANDLES_PER_RESPONSE)
            if returned and self.config.weight_per_60_candles:
                self.http.limiter.charge(returned // 60 * self.config.weight_per_60_candles)
            report.dropped_inf += dropped_inf
            report.dropped_nan += dropped_nan
            if dropped_inf or dropped_nan:
                log.warning("%s: dropped %d candles with inf and %d with NaN values", label, dropped_inf, dropped_nan)
            last = _last_open_time(body, records, returned)
            if returned == 0 or last is None or last < cursor:
                await sink(records[:0], cursor, end)  # nothing (more) in this range
                break
            records = records[(records["t"] >= cursor) & (records["t"] < end)]
            report.candles += int(records.shape[0])
            if last + shortest >= end:
                await sink(records, cursor, end)
                break
            await sink(records, cursor, last + 1)
            cursor = last + 1


class _Funding(msgspec.Struct):
    time: int
    fundingRate: str | float  # the exchange's field name


_FUNDING_DECODER = msgspec.json.Decoder(list[_Funding])


async def fetch_funding(source: HyperliquidSource, coin: str, start: int, end: int, *, now: int | None = None) -> Any:
    """The hourly funding events of ``coin`` in ``[start, end)`` from ``fundingHistory``
    (paged, at most 500 per answer), cached in L2 beside the candles (the rate in ``close``)."""
    from engine.data.cache import missing_ranges
    from engine.data.funding import FundingRates

    key = SeriesKey(SOURCE, coin, "funding")
    label = f"{SOURCE} {coin} funding"
    horizon = min(end, now_ms() if now is None else now)
    await source.open()
    store = source.store
    seconds = source.config.fetch_timeout_s
    deadline = Deadline.after(seconds, f"fetch deadline of {seconds:g}s ([hyperliquid] fetch_timeout_s)")
    for lo, hi in missing_ranges(await store.coverage(key), start, horizon):
        cursor = lo
        while cursor < hi:
            payload = {"type": "fundingHistory", "coin": coin, "startTime": cursor, "endTime": hi - 1}
            body = await source.http.post_json(
                source.info_url, payload, weight=source.config.request_weight, what=label, deadline=deadline
            )
            try:
                events = _FUNDING_DECODER.decode(body)
                rates = [float(event.fundingRate) for event in events]
            except (msgspec.DecodeError, ValueError) as error:
                raise DataError(f"{label}: unexpected funding data: {error}") from None
            records = np.zeros(len(events), dtype=RECORD_DTYPE)
            records["t"] = [event.time for event in events]
            records["close"] = rates
            records = records[(records["t"] >= cursor) & (records["t"] < hi)]
            if len(events) < MAX_FUNDING_PER_RESPONSE or records.shape[0] == 0:
                await store.write(key, records, (cursor, hi))
                break
            last = int(records["t"][-1])
            await store.write(key, records, (cursor, last + 1))
            cursor = last + 1
    records = await store.read(key, start, end)
    return FundingRates(records["t"] * 1_000_000, records["close"].copy())


def _last_open_time(body: bytes, records: np.ndarray, returned: int) -> int | None:
    """The last open time the server returned, counting candles dropped for NaN/inf."""
    if returned == 0:
        return None
    if returned == records.shape[0]:
        return int(records["t"][-1])
    # Some rows were dropped: the page still reached the last candle's open time.
    times = [candle.t for candle in _DECODER.decode(body)]
    return int(times[-1])


def check_interval(interval: str, where: str) -> None:
    if interval not in INTERVALS:
        raise DataError(f"{where}: interval {interval!r}: expected one of {', '.join(INTERVALS)}")


# --------------------------------------------------------------------------- sync entry point


def parse_options(coin: str, options: Mapping[str, str]) -> tuple[str, str, int | None, int | None]:
    """``(coin, interval, start_ms, end_ms)`` from a spec's options; one-line ``DataError``s."""
    from engine.data.spec import check_options, option_timestamp

    where = f"data spec 'hyperliquid:{coin}'"
    coin = coin.strip()
    if not coin or any(ch.isspace() for ch in coin):
        raise DataError(f"{where}: expected a coin such as BTC")
    check_options(options, OPTIONS, where)
    interval = options.get("interval", "").strip() or None
    if interval is not None:
        check_interval(interval, where)
    start_ns = option_timestamp(options, "start", where, default=None)
    end_ns = option_timestamp(options, "end", where, default=None)
    start = None if start_ns is None else start_ns // 1_000_000
    end = None if end_ns is None else end_ns // 1_000_000
    if start is not None and end is not None and end <= start:
        raise DataError(f"{where}: start {options['start']!r} must be before end {options['end']!r}")
    return coin, interval or "", start, end


def run_sync(coro_factory: Any) -> Any:
    """Run a coroutine to completion from sync code, even if this thread runs a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro_factory())
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro_factory())
        except BaseException as error:  # re-raised in the caller's thread
            box["error"] = error

    thread = threading.Thread(target=target, name="genesis-hyperliquid-load")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def _without_funding(bars: Bars) -> Bars:
    """The bars (views) without the funding rates an earlier ``funding=true`` load left in L1."""
    plain = bars.slice(0, len(bars))
    plain.meta.pop("funding", None)
    return plain


def load_hyperliquid(coin: str, options: Mapping[str, str], *, progress: ProgressCallback | None = None) -> Bars:
    """``hyperliquid:COIN[,interval=1h][,start=...][,end=...]`` as ``Bars`` (blocking; cached).

    ``start`` and ``end`` are ISO dates/datetimes (UTC) or epoch numbers; the
    range is ``[start, end)`` of candle open times.
    """
    from engine.data.spec import option_bool

    coin, interval, start, end = parse_options(coin, options)
    funding = option_bool(options, "funding", f"data spec 'hyperliquid:{coin}'", default=False)
    config = load_config()
    interval = interval or config.interval
    if start is not None and end is not None:
        # An L1 hit needs no event loop, no database and no session.
        bars = shared_memory_cache(config).get(SeriesKey(SOURCE, coin, interval), start, end, count_miss=False)
        if bars is not None and (not funding or "funding" in bars.meta):
            return bars if funding or "funding" not in bars.meta else _without_funding(bars)

    async def load() -> Bars:
        async with HyperliquidSource(config, progress=progress) as source:
            bars = await source.fetch_candles(coin, interval, start, end)
            if funding:
                lo, hi = int(bars.ts[0]) // 1_000_000, int(bars.ts[-1]) // 1_000_000 + interval_bounds_ms(interval)[1]
                # Into the bars' own meta (the object L1 holds): later hits carry the rates too.
                bars.meta["funding"] = await fetch_funding(source, coin, lo if start is None else start,
                                                           hi if end is None else end)
            return bars if funding or "funding" not in bars.meta else _without_funding(bars)

    return run_sync(load)


def load_hyperliquid_many(
    coins: Sequence[str], options: Mapping[str, str], *, progress: ProgressCallback | None = None
) -> list[Bars]:
    """``hyperliquid:BTC+ETH+SOL[,...]``: several coins at once through the cache (blocking), in order.

    The first coin that fails raises its one-line error (each message names its coin).
    """
    parsed = [parse_options(coin, options) for coin in coins]
    if len({coin for coin, *_ in parsed}) != len(parsed):
        raise DataError(f"data spec 'hyperliquid:{'+'.join(coins)}': a coin is named twice")
    _, interval, start, end = parsed[0]
    config = load_config()
    interval = interval or config.interval

    async def load() -> list[Bars]:
        async with HyperliquidSource(config, progress=progress) as source:
            result = await source.fetch_many([coin for coin, *_ in parsed], interval, start, end)
        result.raise_for_failures()
        return [result.loaded[coin] for coin, *_ in parsed]

    return run_sync(load)
