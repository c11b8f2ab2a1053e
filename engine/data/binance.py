"""Binance's public data archive (``data.binance.vision``): kline zips, verified, parsed and cached.

``binance:SYMBOL[,market=spot|um][,interval=1h][,start=YYYY-MM-DD][,end=YYYY-MM-DD]``
reads ``{root}data/{spot|futures/um}/{monthly|daily}/klines/SYMBOL/INTERVAL/``
``SYMBOL-INTERVAL-{YYYY-MM|YYYY-MM-DD}.zip``: whole months from the monthly
files, the rest from the daily ones. Each zip is streamed to a temporary file,
checked against its published ``.CHECKSUM`` (SHA-256; a mismatch or a corrupt
zip is downloaded once more, then it is one error naming the file), parsed
(twelve columns, with or without a header row, open times in ms or µs told
apart per file) and written to the L2 candle cache with its coverage in one
transaction: a second load downloads nothing, a longer one only what is
missing, and a failed file leaves nothing behind. Downloads run
``concurrency`` at a time; parsing and writing one file at a time, so only one
month's data is in memory at once. A 404 (the symbol did not trade yet) is a
gap, not an error.

The root is ``https://data.binance.vision/`` unless ``GENESIS_BINANCE_ARCHIVE_URL``
(or ``[binance] url``) says otherwise.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import tempfile
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import numpy as np

from engine.data.bars import Bars, BarsValidationError, validate_columns
from engine.data.cache import (
    FetchReport,
    MemoryCache,
    PageSink,
    TieredCandleCache,
    missing_ranges,
    now_ms,
)
from engine.data.funding import FundingRates
from engine.data.http import HttpConfig, HttpService, HttpStatusError
from engine.errors import ConfigError, DataError, quoted
from engine.load_progress import ProgressCallback, ProgressCounter
from engine.profile import profiler
from engine.store.candles import RECORD_DTYPE, CandleStore, SeriesKey

SOURCE = "binance"
DEFAULT_URL = "https://data.binance.vision/"
URL_ENV = "GENESIS_BINANCE_ARCHIVE_URL"
MARKETS = {"spot": "spot", "um": "futures/um"}
INTERVALS = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d")
OPTIONS = ("market", "interval", "start", "end")
MS_PER_DAY = 86_400_000
#: A month whose file is still missing this long after it ended is a gap, not "not yet published".
MONTHLY_GRACE_MS = 7 * MS_PER_DAY
DAILY_GRACE_MS = 2 * MS_PER_DAY


class BinanceConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The ``[binance]`` table of the global config."""

    url: str = DEFAULT_URL
    cache_path: str = ""  # default: cache_dir() / "candles.db" (shared with the other sources)
    market: str = "um"
    interval: str = "1h"
    default_days: int = 365  # how far back a spec without start= reaches
    concurrency: int = 4  # files downloaded at once
    max_connections: int = 8
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    request_timeout_s: float = 300.0  # one file, body included
    max_file_mb: float = 256.0
    retries: int = 4
    backoff_base_s: float = 0.5
    backoff_max_s: float = 10.0

    def http_config(self) -> HttpConfig:
        return HttpConfig(
            max_connections=self.max_connections,
            connect_timeout_s=self.connect_timeout_s,
            read_timeout_s=self.read_timeout_s,
            request_timeout_s=self.request_timeout_s,
            max_response_bytes=int(self.max_file_mb * 1024 * 1024),
            retries=self.retries,
            backoff_base_s=self.backoff_base_s,
            backoff_max_s=self.backoff_max_s,
            weight_per_minute=1e9,  # a static file server: no request budget to respect
        )


def load_config() -> BinanceConfig:
    """The ``[binance]`` config with ``GENESIS_BINANCE_ARCHIVE_URL`` applied, checked."""
    from engine.config import config_section

    config = config_section("binance", BinanceConfig)
    url = os.environ.get(URL_ENV, "").strip() or config.url
    config = msgspec.structs.replace(config, url=url)
    if not config.url.startswith(("http://", "https://")):
        raise ConfigError(f"[binance] url / {URL_ENV}: expected an http:// or https:// URL, got {config.url!r}")
    if config.market not in MARKETS:
        raise ConfigError(f"[binance] market: expected spot or um, got {config.market!r}")
    if config.interval not in INTERVALS:
        raise ConfigError(f"[binance] interval: expected one of {', '.join(INTERVALS)}, got {config.interval!r}")
    if config.concurrency < 1 or config.default_days < 1:
        raise ConfigError("[binance] concurrency and default_days: expected 1 or more")
    return config


def default_cache_path(config: BinanceConfig) -> Path:
    from engine.paths import cache_dir

    return Path(config.cache_path).expanduser() if config.cache_path else cache_dir() / "candles.db"


# --------------------------------------------------------------------------- the files


@dataclass(frozen=True, slots=True)
class ArchiveFile:
    """One zip of the archive: its path under the root and the open-time span it holds."""

    path: str
    start_ms: int
    end_ms: int
    monthly: bool

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


def _month_start(ms: int) -> int:
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return int(datetime(moment.year, moment.month, 1, tzinfo=UTC).timestamp() * 1000)


def _next_month(ms: int) -> int:
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp() * 1000)


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def plan_files(market: str, symbol: str, interval: str, start: int, end: int, *, now: int) -> list[ArchiveFile]:
    """The files covering ``[start, end)``: the monthly file of every month it touches that
    ended over ``MONTHLY_GRACE_MS`` ago (the whole month is stored), daily files for the
    rest (widened to whole days); nothing from today on."""
    base = f"data/{MARKETS[market]}"
    today = now // MS_PER_DAY * MS_PER_DAY
    hi = min(-(-end // MS_PER_DAY) * MS_PER_DAY, today)
    files: list[ArchiveFile] = []
    cursor = start // MS_PER_DAY * MS_PER_DAY
    while cursor < hi:
        month_start, month_end = _month_start(cursor), _next_month(cursor)
        if month_end + MONTHLY_GRACE_MS <= now:
            stamp = _day(month_start)[:7]
            path = f"{base}/monthly/klines/{symbol}/{interval}/{symbol}-{interval}-{stamp}.zip"
            files.append(ArchiveFile(path, month_start, month_end, True))
            cursor = month_end
        else:
            path = f"{base}/daily/klines/{symbol}/{interval}/{symbol}-{interval}-{_day(cursor)}.zip"
            files.append(ArchiveFile(path, cursor, cursor + MS_PER_DAY, False))
            cursor += MS_PER_DAY
    return files


def plan_funding_files(symbol: str, start: int, end: int, *, now: int) -> list[ArchiveFile]:
    """The monthly funding-rate files of the months touching ``[start, end)`` that have ended."""
    files: list[ArchiveFile] = []
    cursor = _month_start(start)
    while cursor < end:
        month_end = _next_month(cursor)
        if month_end + MONTHLY_GRACE_MS > now:
            break
        stamp = _day(cursor)[:7]
        path = f"data/futures/um/monthly/fundingRate/{symbol}/{symbol}-fundingRate-{stamp}.zip"
        files.append(ArchiveFile(path, cursor, month_end, True))
        cursor = month_end
    return files


def parse_funding(data: bytes, label: str) -> np.ndarray:
    """A fundingRate CSV (``calc_time,funding_interval_hours,last_funding_rate``, a header
    row or not) as ``RECORD_DTYPE`` records: the event time in ``t``, the rate in ``close``."""
    records_list: list[tuple[int, float]] = []
    for number, line in enumerate(data.lstrip(b"\xef\xbb\xbf").splitlines(), start=1):
        fields = line.split(b",")
        if not line.strip() or (number == 1 and not fields[0].strip().isdigit()):
            continue
        try:
            when, rate = int(fields[0]), float(fields[-1])
        except (ValueError, IndexError):
            raise DataError(
                f"{label}: line {number}: expected calc_time,funding_interval_hours,last_funding_rate, "
                f"got {quoted(line.decode('utf-8', 'replace'))}"
            ) from None
        records_list.append((when // 1000 if when >= 10**14 else when, rate))
    records = np.zeros(len(records_list), dtype=RECORD_DTYPE)
    if records_list:
        records["t"] = [t for t, _ in records_list]
        records["close"] = [r for _, r in records_list]
        records = np.sort(records, order="t")
        if not bool(np.all(np.isfinite(records["close"]))):
            raise DataError(f"{label}: a funding rate is not a finite number")
        keep = np.ones(records.shape[0], dtype=bool)
        keep[1:] = np.diff(records["t"]) > 0  # a repeated event counts once
        records = records[keep]
    return records


def parse_klines(data: bytes, label: str) -> np.ndarray:
    """A kline CSV as ``RECORD_DTYPE`` records (open time in ms), validated.

    The twelve columns start with open time, open, high, low, close, volume; a
    header row is skipped when the file has one; open times above 1e14 are
    microseconds (spot files from 2025) and are converted per file.
    """
    text = data.lstrip(b"\xef\xbb\xbf")
    header = 1 if text[:1] and not text[:1].isdigit() else 0
    body = text.partition(b"\n")[2] if header else text
    if not body.strip():
        return np.empty(0, dtype=RECORD_DTYPE)
    try:
        columns = _read_columns(text, header)
    except (ValueError, TypeError) as error:  # pyarrow's and pandas' parse errors are ValueErrors
        raise DataError(f"{label}: {_bad_line(text, header)}: {' '.join(str(error).split())[:120]}") from None
    if columns is None:
        raise DataError(f"{label}: {_bad_line(text, header)}")
    records = np.empty(columns[0].shape[0], dtype=RECORD_DTYPE)
    for name, column in zip(RECORD_DTYPE.names or (), columns, strict=True):
        records[name] = column
    if records.shape[0] and int(records["t"][0]) >= 10**14:
        records["t"] //= 1000
    if records.shape[0]:
        try:
            validate_columns(
                records["t"], records["open"], records["high"], records["low"], records["close"], records["volume"]
            )
        except BarsValidationError as error:
            raise DataError(f"{label}: line {error.row + 1 + header}: {error.rule} ({error.detail})") from None
    return records


_NAMES = ("t", "open", "high", "low", "close", "volume")


def _read_columns(text: bytes, header: int) -> list[np.ndarray] | None:
    """The first six columns (open time as int64, the rest float64); ``None`` when a
    value is missing. pyarrow's reader when it is installed (about twice pandas' speed)."""
    try:
        import pyarrow as pa
        import pyarrow.csv as pa_csv
    except ModuleNotFoundError:
        import pandas as pd

        frame = pd.read_csv(
            io.BytesIO(text), header=None, skiprows=header, usecols=range(6), names=list(_NAMES),
            dtype={name: (np.int64 if name == "t" else np.float64) for name in _NAMES}, engine="c",
        )  # fmt: skip
        return [frame[name].to_numpy() for name in _NAMES]
    fields = [f"f{i}" for i in range(6)]
    table = pa_csv.read_csv(
        io.BytesIO(text),
        read_options=pa_csv.ReadOptions(autogenerate_column_names=True, skip_rows=header),
        convert_options=pa_csv.ConvertOptions(
            include_columns=fields,
            column_types={name: (pa.int64() if name == "f0" else pa.float64()) for name in fields},
        ),
    )
    if any(table.column(name).null_count for name in fields):
        return None
    return [table.column(name).to_numpy() for name in fields]


def _bad_line(text: bytes, header: int) -> str:
    """The first line whose first six fields are not numbers (the slow path of an error)."""
    for number, line in enumerate(text.splitlines()[header:], start=header + 1):
        fields = line.split(b",")
        try:
            int(fields[0])
            for value in fields[1:6]:
                float(value)
            if len(fields) < 6:
                raise ValueError
        except (ValueError, IndexError):
            return f"line {number}: expected 12 comma-separated numbers, got {quoted(line.decode('utf-8', 'replace'))}"
    return "unreadable CSV"


def _read_zip(path: Path, label: str) -> bytes:
    """The one CSV inside a kline zip (``zipfile.BadZipFile`` if it is corrupt)."""
    with zipfile.ZipFile(path) as archive:
        members = [info for info in archive.infolist() if not info.is_dir()]
        if len(members) != 1:
            raise zipfile.BadZipFile(f"{label}: expected one CSV in the zip, found {len(members)} files")
        return archive.read(members[0])


def _sha256(path: Path) -> str:
    """The file's SHA-256, read 64 KiB at a time: up to ``concurrency`` files hash at once
    beside a parse, so each holds a small buffer, not its whole zip."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------- the source


class BinanceArchive:
    """The archive source: one pooled HTTP client and one tiered cache.

    ``async with BinanceArchive(config) as archive: await archive.fetch_candles(...)``.
    """

    def __init__(
        self,
        config: BinanceConfig | None = None,
        *,
        http: HttpService | None = None,
        memory: MemoryCache | None = None,
        cache_path: Path | str | None = None,
        progress: ProgressCallback | None = None,
    ) -> None:
        from engine.data.hyperliquid import shared_memory_cache

        self.config = config or load_config()
        self.http = http or HttpService(self.config.http_config())
        self.memory = memory if memory is not None else shared_memory_cache()
        self.store = CandleStore(cache_path or default_cache_path(self.config))
        self.cache = TieredCandleCache(self.store, self.memory)
        self.progress = progress
        self.files_downloaded = 0

    @property
    def root(self) -> str:
        return self.config.url.rstrip("/") + "/"

    async def open(self) -> BinanceArchive:
        await self.store.open()
        return self

    async def close(self) -> None:
        await self.http.close()
        await self.store.close()

    async def __aenter__(self) -> BinanceArchive:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def resolve_range(self, start_ms: int | None, end_ms: int | None, *, now: int) -> tuple[int, int]:
        """Default ``end`` is the start of today (the last daily file is yesterday's);
        default ``start`` is ``default_days`` before ``end``."""
        end = now // MS_PER_DAY * MS_PER_DAY if end_ms is None else int(end_ms)
        start = end - self.config.default_days * MS_PER_DAY if start_ms is None else int(start_ms)
        return start, end

    async def fetch_candles(
        self,
        symbol: str,
        market: str | None = None,
        interval: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        *,
        now: int | None = None,
    ) -> Bars:
        """Candles of ``symbol`` with open time in ``[start_ms, end_ms)`` as ``Bars`` (cached)."""
        market = market or self.config.market
        interval = interval or self.config.interval
        moment = now_ms() if now is None else now
        start, end = self.resolve_range(start_ms, end_ms, now=moment)
        label = f"{SOURCE} {market} {symbol} {interval}"
        if end <= start:
            raise DataError(f"{label}: start must be before end")
        key = SeriesKey(f"{SOURCE}-{market}", symbol, interval)

        async def fetch(lo: int, hi: int, sink: PageSink) -> FetchReport:
            files = plan_files(market, symbol, interval, lo, hi, now=moment)
            return await self._fetch_files(files, label, symbol, sink, moment)

        bars = await self.cache.get(key, start, end, fetch, now=moment)
        if market != "um" or "funding" in bars.meta:
            return bars
        rates = await self.fetch_funding(symbol, start, end, now=moment)
        # Into the fresh bars' own meta (the object L1 now holds, so later hits carry the
        # rates too): a copy of the bars would validate every candle again.
        bars.meta["funding"] = rates
        return bars

    async def fetch_funding(self, symbol: str, start: int, end: int, *, now: int | None = None) -> FundingRates:
        """The USD-M funding events of ``symbol`` in ``[start, end)`` from the monthly
        ``fundingRate`` files (cached in L2 beside the candles: the rate in ``close``)."""
        moment = now_ms() if now is None else now
        key = SeriesKey(f"{SOURCE}-um", symbol, "funding")
        label = f"{SOURCE} um {symbol} funding"
        await self.store.open()
        gaps = missing_ranges(await self.store.coverage(key), start, end)
        for lo, hi in gaps:
            files = plan_funding_files(symbol, lo, hi, now=moment)

            async def sink(records: np.ndarray, lo: int, hi: int) -> None:
                await self.store.write(key, records, (lo, hi))

            await self._fetch_files(files, label, symbol, sink, moment, parse_funding)
        records = await self.store.read(key, start, end)
        return FundingRates(records["t"] * 1_000_000, records["close"].copy())

    async def _fetch_files(
        self,
        files: list[ArchiveFile],
        label: str,
        symbol: str,
        sink: PageSink,
        now: int,
        parse: Callable[[bytes, str], np.ndarray] = parse_klines,
    ) -> FetchReport:
        """Download ``files`` ``concurrency`` at a time; parse and store them one at a time."""
        report = FetchReport()
        progress = ProgressCounter(self.progress, label, symbol, total=len(files))
        gate = asyncio.Semaphore(self.config.concurrency)
        one_at_a_time = asyncio.Lock()

        async def one(item: ArchiveFile) -> None:
            async with gate:
                with tempfile.TemporaryDirectory(prefix="genesis-binance-") as folder:
                    stored = await self._download_verified(
                        item, label, Path(folder), progress, sink, one_at_a_time, now, parse
                    )
            if stored is not None:
                report.requests += 1
                report.candles += stored
            progress.add(done=1)

        tasks = [asyncio.ensure_future(one(item)) for item in files]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return report

    async def _download_verified(
        self,
        item: ArchiveFile,
        label: str,
        folder: Path,
        progress: ProgressCounter,
        sink: PageSink,
        one_at_a_time: asyncio.Lock,
        now: int,
        parse: Callable[[bytes, str], np.ndarray] = parse_klines,
    ) -> int | None:
        """Download one file, check it against its checksum (two tries), parse it and
        store it with its coverage; the candles stored, or ``None`` for a missing file
        that may not be published yet (left uncovered). An older missing file is
        stored as a covered gap."""
        url = self.root + item.path
        where = f"{label}: {item.name}"
        problem = ""
        for _attempt in range(2):
            try:
                checksum = await self.http.request("GET", url + ".CHECKSUM", what=f"{where}.CHECKSUM")
            except HttpStatusError as error:
                if error.status != 404:
                    raise
                if not item.monthly and item.end_ms + DAILY_GRACE_MS > now:
                    return None  # maybe not published yet: not marked as covered
                async with one_at_a_time:
                    await sink(np.empty(0, dtype=RECORD_DTYPE), item.start_ms, item.end_ms)
                return 0
            expected = checksum.decode("ascii", "replace").split()[:1]
            target = folder / item.name
            began = time.perf_counter()
            with open(target, "wb") as handle:
                await self.http.request("GET", url, what=where, into=handle)
            profiler.record("data.fetch", time.perf_counter() - began)
            self.files_downloaded += 1
            progress.add(size=target.stat().st_size)
            got = await asyncio.to_thread(_sha256, target)
            if not expected or got != expected[0].lower():
                problem = f"checksum mismatch (published {expected[0] if expected else 'nothing'}, got {got})"
                continue
            async with one_at_a_time:  # one file's data in memory at a time
                try:
                    with profiler.stage("data.validate"):
                        records = parse(_read_zip(target, where), where)
                except (zipfile.BadZipFile, OSError, EOFError) as error:
                    problem = f"corrupt zip ({' '.join(str(error).split())})"
                    continue
                finally:
                    target.unlink(missing_ok=True)
                await sink(records, item.start_ms, item.end_ms)
                return int(records.shape[0])
        raise DataError(f"{where}: {problem}, after 2 downloads; nothing from it was cached")


# --------------------------------------------------------------------------- sync entry point


def parse_options(symbol: str, options: Mapping[str, str]) -> tuple[str, str, str, int | None, int | None]:
    """``(symbol, market, interval, start_ms, end_ms)`` from a spec's options ("" = the config's)."""
    from engine.data.spec import check_options, option_timestamp

    where = f"data spec 'binance:{symbol}'"
    symbol = symbol.strip().upper()
    if not symbol or not symbol.isalnum():
        raise DataError(f"{where}: expected a symbol such as BTCUSDT")
    check_options(options, OPTIONS, where)
    market = options.get("market", "").strip().lower()
    if market and market not in MARKETS:
        raise DataError(f"{where}: option market: expected spot or um, got {quoted(options['market'])}")
    interval = options.get("interval", "").strip()
    if interval and interval not in INTERVALS:
        raise DataError(f"{where}: option interval: expected one of {', '.join(INTERVALS)}, got {quoted(interval)}")
    start_ns = option_timestamp(options, "start", where, default=None)
    end_ns = option_timestamp(options, "end", where, default=None)
    start = None if start_ns is None else start_ns // 1_000_000
    end = None if end_ns is None else end_ns // 1_000_000
    if start is not None and end is not None and end <= start:
        raise DataError(f"{where}: start {options['start']!r} must be before end {options['end']!r}")
    return symbol, market, interval, start, end


def load_binance(symbol: str, options: Mapping[str, str], *, progress: ProgressCallback | None = None) -> Bars:
    """``binance:SYMBOL[,market=..][,interval=..][,start=..][,end=..]`` as ``Bars`` (blocking; cached;
    ``progress`` hears of every file)."""
    from engine.data.hyperliquid import run_sync, shared_memory_cache

    symbol, market, interval, start, end = parse_options(symbol, options)
    config = load_config()
    market, interval = market or config.market, interval or config.interval
    if start is not None and end is not None:
        key = SeriesKey(f"{SOURCE}-{market}", symbol, interval)
        bars = shared_memory_cache().get(key, start, end, count_miss=False)
        if bars is not None:
            return bars

    async def load() -> Bars:
        async with BinanceArchive(config, progress=progress) as archive:
            return await archive.fetch_candles(symbol, market, interval, start, end)

    return run_sync(load)
