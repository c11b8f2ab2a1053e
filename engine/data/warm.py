"""Cache warming: top up the candle cache for the data specs users will ask for, in the background.

:class:`Warmer` takes network specs (``hyperliquid:``, ``binance:``, ``ccxt:``;
files and synthetic data need no warming), splits each one's range into
``chunk_days`` pieces and loads them most recent first, one piece at a time,
into the shared L2 cache. It gives way to demand: while any ``engine.data.load``
call is running (a study's or a backtest's own load, :func:`demand`), it waits
before its next piece. Its own lookups count in ``caches.counters("data.warm")``
(hits: pieces already cached; misses: pieces downloaded; entries: pieces warmed;
bytes: their candles), never in ``data.l1`` / ``data.l2``, so the profiler
shows warmed entries apart from demand hits.

The engine starts one at start-up (``[warm] on_start``, ``GENESIS_WARM=0|1``)
for the specs of the studies in its store, of the study files it runs and the
coins of ``[hyperliquid] warm``;
``genesis data warm [SPEC...]`` runs one in the foreground.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import tomllib
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from engine.data.cache import now_ms
from engine.data.spec import DataSpec, parse_spec
from engine.errors import ConfigError, GenesisError
from engine.profile.caches import CacheCounters, caches

log = logging.getLogger(__name__)

WARM_ENV = "GENESIS_WARM"
REMOTE_KINDS = ("hyperliquid", "binance", "ccxt")
MS_PER_DAY = 86_400_000


class WarmConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The ``[warm]`` table of the global config."""

    on_start: bool = True  # warm at engine start (console and headless); GENESIS_WARM=0 turns it off
    chunk_days: int = 30  # one piece of a range, loaded at a time, most recent first


def load_config() -> WarmConfig:
    """The ``[warm]`` config with ``GENESIS_WARM`` applied, checked."""
    from engine.config import config_section

    config = config_section("warm", WarmConfig)
    flag = os.environ.get(WARM_ENV, "").strip().lower()
    if flag:
        if flag not in ("0", "1", "true", "false", "on", "off"):
            raise ConfigError(f"{WARM_ENV}: expected 0 or 1, got {flag!r}")
        config = msgspec.structs.replace(config, on_start=flag in ("1", "true", "on"))
    if config.chunk_days < 1:
        raise ConfigError("[warm] chunk_days: expected 1 or more")
    return config


# --------------------------------------------------------------------------- demand first


class _DemandGate:
    """How many demand loads run now (any thread), and the warmers waiting for none."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._busy = 0
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    @property
    def busy(self) -> bool:
        return self._busy > 0

    @contextlib.contextmanager
    def demand(self) -> Iterator[None]:
        with self._lock:
            self._busy += 1
        try:
            yield
        finally:
            with self._lock:
                self._busy -= 1
                waiters = self._waiters if self._busy == 0 else []
                if waiters:
                    self._waiters = []
            for loop, event in waiters:
                with contextlib.suppress(RuntimeError):  # that loop has closed
                    loop.call_soon_threadsafe(event.set)

    async def idle(self, on_wait: Callable[[], None] | None = None) -> None:
        """Return once no demand load runs."""
        while True:
            event = asyncio.Event()
            with self._lock:
                if self._busy == 0:
                    return
                self._waiters.append((asyncio.get_running_loop(), event))
            if on_wait is not None:
                on_wait()
            await event.wait()


_gate = _DemandGate()
#: ``with demand(): ...`` around a load a user waits for: warmers pause meanwhile.
demand = _gate.demand


# --------------------------------------------------------------------------- specs


def remote_specs(specs: Iterable[str]) -> list[str]:
    """The network specs among ``specs``, each once, in order (unparseable ones left out)."""
    kept: list[str] = []
    for text in specs:
        try:
            parsed = parse_spec(text)
        except GenesisError:
            continue
        if parsed.kind in REMOTE_KINDS and parsed.text not in kept:
            kept.append(parsed.text)
    return kept


def _data_specs(table: Any) -> list[str]:
    data = table.get("data") if isinstance(table, dict) else None
    if not isinstance(data, dict):
        return []
    specs = [data["spec"]] if isinstance(data.get("spec"), str) and data["spec"] else []
    specs += [s for s in data.get("specs") or [] if isinstance(s, str)]
    return specs


def study_file_specs(paths: Iterable[Path]) -> list[str]:
    """The ``[data]`` specs of study files (unreadable files left out: their run reports them)."""
    specs: list[str] = []
    for path in paths:
        with contextlib.suppress(OSError, tomllib.TOMLDecodeError):
            specs += _data_specs(tomllib.loads(Path(path).read_text()))
    return specs


async def stored_specs(db: Any) -> list[str]:
    """The ``[data]`` specs of every study in the store at ``db``, most recently updated first."""
    from engine.store.factory import open_study_store

    store = await open_study_store(db)
    try:
        records = await store.studies()
    finally:
        await store.close()
    specs: list[str] = []
    for record in sorted(records, key=lambda r: r.updated, reverse=True):
        with contextlib.suppress(tomllib.TOMLDecodeError):
            specs += _data_specs(tomllib.loads(record.spec_toml))
    return specs


# --------------------------------------------------------------------------- the warmer


@dataclass(slots=True)
class WarmProgress:
    """How far warming is: pieces planned, done, downloaded, and the spec now warming."""

    pieces_total: int = 0
    pieces_done: int = 0
    downloaded: int = 0
    spec: str = ""
    failed: dict[str, str] = field(default_factory=dict)


class Warmer:
    """Warms specs one piece at a time, most recent first, after any demand load."""

    def __init__(
        self,
        config: WarmConfig | None = None,
        *,
        cache_path: Path | str | None = None,
        progress: Callable[[WarmProgress], None] | None = None,
        now: int | None = None,
    ) -> None:
        self.config = config or load_config()
        self.cache_path = cache_path
        self.progress = WarmProgress()
        self._report = progress
        self._now = now
        self.counters = caches.counters("data.warm")
        self.waited = asyncio.Event()  # set the first time warming gave way to a demand load
        self._queue: list[str] = []
        self._queued: set[str] = set()
        self._sources: dict[str, Any] = {}
        self.task: asyncio.Task[WarmProgress] | None = None

    def add(self, specs: Iterable[str]) -> None:
        """Queue the network specs among ``specs`` (each once)."""
        for spec in remote_specs(specs):
            if spec not in self._queued:
                self._queued.add(spec)
                self._queue.append(spec)

    def start(
        self, specs: Iterable[str] = (), *, more: Callable[[], Awaitable[list[str]]] | None = None
    ) -> asyncio.Task[WarmProgress]:
        """Warm ``specs`` in the background on the running loop (and then whatever ``more``
        returns, awaited inside the task); queued later with :meth:`extend`."""
        self.add(specs)
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self.run(more), name="genesis-cache-warm")
        return self.task

    def extend(self, specs: Iterable[str]) -> None:
        """Queue more specs; a warmer that had finished starts again."""
        self.add(specs)
        if self._queue and (self.task is None or self.task.done()):
            self.start()

    async def stop(self) -> None:
        """Cancel background warming and close its sources."""
        task, self.task = self.task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self._close()

    async def run(self, more: Callable[[], Awaitable[list[str]]] | None = None) -> WarmProgress:
        """Warm every queued spec (more may be queued meanwhile); failures are noted, not raised."""
        try:
            if more is not None:
                with contextlib.suppress(GenesisError, OSError):
                    self.add(await more())
            while self._queue:
                spec = self._queue.pop(0)
                self.progress.spec = spec
                try:
                    await self._warm(parse_spec(spec))
                except GenesisError as error:
                    self.progress.failed[spec] = str(error)
                    log.info("warming %s: %s", spec, error)
            return self.progress
        finally:
            await self._close()

    async def _close(self) -> None:
        sources, self._sources = self._sources, {}
        for source in sources.values():
            with contextlib.suppress(Exception):
                await source.close()

    async def _warm(self, parsed: DataSpec) -> None:
        moment = now_ms() if self._now is None else self._now
        for name, fetch, start, end in self._plans(parsed, moment):
            step = self.config.chunk_days * MS_PER_DAY
            pieces = [(max(start, hi - step), hi) for hi in range(end, start, -step)]  # most recent first
            self.progress.pieces_total += len(pieces)
            self._tell()
            for lo, hi in pieces:
                await _gate.idle(self.waited.set)
                source = self._sources[name]
                fetched = source.cache.served.network
                bars = await fetch(lo, hi)
                if source.cache.served.network > fetched:
                    self.counters.misses += 1
                    self.counters.entries += 1
                    self.counters.bytes += int(bars.nbytes)
                    self.progress.downloaded += 1
                else:
                    self.counters.hits += 1
                self.progress.pieces_done += 1
                self._tell()

    def _tell(self) -> None:
        if self._report is not None:
            self._report(self.progress)

    def _source(self, name: str, build: Callable[[], Any]) -> Any:
        if name not in self._sources:
            source = build()
            # Warming fills L2 only (L1 stays for demand), and its lookups stay out of the
            # demand counters (data.l1, data.l2): the profiler shows them as data.warm.
            source.memory = source.cache.memory = None
            source.store.counters = CacheCounters("data.warm.l2")
            self._sources[name] = source
        return self._sources[name]

    def _plans(self, parsed: DataSpec, now: int) -> list[tuple[str, Callable[[int, int], Any], int, int]]:
        """``(source name, fetch(lo, hi), start, end)`` for each series the spec names."""
        options = dict(parsed.options)
        if parsed.kind == "hyperliquid":
            from engine.data import hyperliquid

            coins = parsed.target.split("+")
            plans: list[tuple[str, Callable[[int, int], Any], int, int]] = []
            for coin in coins:
                symbol, interval, start, end = hyperliquid.parse_options(coin, options)
                source = self._source("hyperliquid", lambda: hyperliquid.HyperliquidSource(cache_path=self.cache_path))
                interval = interval or source.config.interval
                lo, hi = source.resolve_range(interval, start, end, now=now)

                def fetch_hl(lo: int, hi: int, symbol: str = symbol, interval: str = interval) -> Any:
                    return self._sources["hyperliquid"].fetch_candles(symbol, interval, lo, hi, now=now)

                plans.append(("hyperliquid", fetch_hl, lo, hi))
            return plans
        if parsed.kind == "binance":
            from engine.data import binance

            symbol, market, interval, start, end = binance.parse_options(parsed.target, options)
            archive = self._source("binance", lambda: binance.BinanceArchive(cache_path=self.cache_path))
            lo, hi = archive.resolve_range(start, end, now=now)

            def fetch_bn(lo: int, hi: int) -> Any:
                return archive.fetch_candles(symbol, market or None, interval or None, lo, hi, now=now)

            return [("binance", fetch_bn, lo, hi)]
        from engine.data import ccxt_source

        exchange, symbol, interval, start, end = ccxt_source.parse_options(parsed.target, options)
        name = f"ccxt-{exchange}"
        exchange_source = self._source(name, lambda: ccxt_source.CcxtSource(exchange, cache_path=self.cache_path))
        lo, hi = exchange_source.resolve_range(start, end, now=now)

        def fetch_cx(lo: int, hi: int) -> Any:
            return exchange_source.fetch_candles(symbol, interval or None, lo, hi, now=now)

        return [(name, fetch_cx, lo, hi)]


def start_engine_warming(db: Any, study_files: Iterable[Path] = ()) -> Warmer | None:
    """The engine's start-up warmer (``None`` when ``[warm] on_start`` is off), already
    running: it reads the store's study specs inside its own task, so start-up does not
    wait even for the store."""
    config = load_config()
    if not config.on_start:
        return None
    coins: list[str] = []
    if _hyperliquid_warms():  # (the source module loads aiohttp: 0.4 s of every start otherwise)
        from engine.data.hyperliquid import load_config as hyperliquid_config

        hyperliquid = hyperliquid_config()  # its `warm` coins, which nothing else warms
        coins = [f"hyperliquid:{coin},interval={hyperliquid.warm_interval}" for coin in hyperliquid.warm]
    warmer = Warmer(config)
    warmer.start([*study_file_specs(study_files), *coins], more=lambda: stored_specs(db))
    return warmer


def _hyperliquid_warms() -> bool:
    """Whether the global config's ``[hyperliquid]`` table names coins to warm (read raw)."""
    from engine.config import config_path, load_toml

    path = config_path()
    section = load_toml(path).get("hyperliquid") if path.exists() else None
    return isinstance(section, dict) and bool(section.get("warm"))
