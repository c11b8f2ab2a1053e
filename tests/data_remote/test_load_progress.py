"""Download progress of a data load: the remote sources' reports, through ``engine.data.load``, and
the headless runner's stderr line (a local archive and candle server on 127.0.0.1)."""

from __future__ import annotations

import io
import itertools
from collections.abc import AsyncIterator, Iterator
from datetime import date
from pathlib import Path

import msgspec
import pytest

from engine.data.binance import BinanceArchive, BinanceConfig
from engine.data.cache import MemoryCache
from engine.data.hyperliquid import HyperliquidConfig, HyperliquidSource
from engine.headless.output import Output
from engine.load_progress import LoadProgress, ProgressLine, combined
from tests.data_remote.archive import ArchiveServer, ThreadedArchiveServer, build_archive, ms
from tests.data_remote.conftest import FAST
from tests.data_remote.server import CandleServer

NOW = ms(date(2024, 6, 15))
MONTHS = [(2023, 1), (2023, 2), (2023, 3)]


@pytest.fixture
async def archive_server(tmp_path: Path) -> AsyncIterator[ArchiveServer]:
    server = ArchiveServer(tmp_path / "archive")
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def live_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ArchiveServer]:
    with ThreadedArchiveServer(tmp_path / "archive") as server:
        monkeypatch.setenv("GENESIS_BINANCE_ARCHIVE_URL", server.url)
        yield server


def zip_bytes(root: Path, symbol: str) -> int:
    return sum(p.stat().st_size for p in root.rglob(f"{symbol}-*.zip"))


def check_sequence(reports: list[LoadProgress]) -> None:
    """Counts only grow, and the last report is complete."""
    for before, after in itertools.pairwise(reports):
        assert after.done >= before.done and after.bytes >= before.bytes
    assert reports[-1].total is not None and reports[-1].done == reports[-1].total


async def test_the_archive_reports_every_file_and_its_bytes(archive_server: ArchiveServer, tmp_path: Path) -> None:
    build_archive(archive_server.root, "BTCUSDT", "1h", market="spot", months=MONTHS)
    reports: list[LoadProgress] = []
    config = msgspec.convert({"url": archive_server.url, "retries": 1, "concurrency": 2}, BinanceConfig)
    async with BinanceArchive(config, memory=MemoryCache(), cache_path=tmp_path / "c.db", progress=reports.append) as a:
        await a.fetch_candles("BTCUSDT", "spot", "1h", ms(date(2023, 1, 1)), ms(date(2023, 4, 1)), now=NOW)
        # One report at the start, one per file's bytes and one per file done.
        assert len(reports) == 1 + 3 + 3
        assert reports[0].done == 0 and reports[0].total == 3 and reports[0].unit == "files"
        check_sequence(reports)
        assert reports[-1].bytes == zip_bytes(archive_server.root, "BTCUSDT")
        assert {r.symbol for r in reports} == {"BTCUSDT"}
        assert reports[-1].text().startswith("BTCUSDT 3/3 files, ")
        reports.clear()
        a.memory.clear()
        await a.fetch_candles("BTCUSDT", "spot", "1h", ms(date(2023, 1, 1)), ms(date(2023, 4, 1)), now=NOW)
        assert reports == [], "a cache hit downloads nothing and reports nothing"


async def test_hyperliquid_reports_its_pages(server: CandleServer, tmp_path: Path) -> None:
    reports: list[LoadProgress] = []
    config = msgspec.convert({"url": server.url, **FAST}, HyperliquidConfig)
    start = ms(date(2024, 1, 1))
    async with HyperliquidSource(config, memory=MemoryCache(), cache_path=tmp_path / "c.db", progress=reports.append) as source:
        await source.fetch_candles("BTC", "1m", start, start + 12_000 * 60_000)  # 12,000 candles: three pages
    assert reports[0].total == 3 and reports[0].unit == "pages"
    check_sequence(reports)
    assert reports[-1].done == 3 == len(server.requests)
    assert reports[-1].bytes > 0 and {r.symbol for r in reports} == {"BTC"}


def test_a_basket_load_reports_each_symbol_through_load_market(live_archive: ArchiveServer) -> None:
    from engine.data import load_market
    from engine.load_progress import LoadProgressBoard

    for symbol in ("BTCUSDT", "ETHUSDT"):
        build_archive(live_archive.root, symbol, "1h", market="spot", months=MONTHS)
    board = LoadProgressBoard()
    reports: list[LoadProgress] = []

    def heard(report: LoadProgress) -> None:
        reports.append(report)
        board(report)

    span = "market=spot,interval=1h,start=2023-01-01,end=2023-04-01"
    basket = load_market([f"binance:BTCUSDT,{span}", f"binance:ETHUSDT,{span}"], progress=heard)
    assert basket.symbols == ("BTCUSDT", "ETHUSDT")  # type: ignore[union-attr]
    assert {r.symbol for r in reports} == {"BTCUSDT", "ETHUSDT"}
    total = board.current()
    assert total is not None and total.done == total.total == 6
    assert total.bytes == zip_bytes(live_archive.root, "BTCUSDT") + zip_bytes(live_archive.root, "ETHUSDT")
    reports.clear()
    load_market([f"binance:BTCUSDT,{span}"], progress=heard)
    assert reports == [], "a cached load reports nothing"


def test_local_sources_report_nothing() -> None:
    from engine.data import load

    reports: list[LoadProgress] = []
    load("synthetic:bars=500,seed=1", progress=reports.append)
    assert reports == []


def test_combined_adds_up_and_names_the_symbol_still_running() -> None:
    done = LoadProgress("a", "BTCUSDT", "files", 3, 3, 300, 1.0)
    running = LoadProgress("b", "ETHUSDT", "files", 1, 4, 100, 2.0)
    both = combined([done, running])
    assert both is not None
    assert (both.symbol, both.done, both.total, both.bytes, both.elapsed_s) == ("ETHUSDT", 4, 7, 400, 2.0)
    assert combined([done, LoadProgress("c", "SOL", "pages", 2, None)]).total is None  # type: ignore[union-attr]
    assert combined([]) is None


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("tty", [True, False])
def test_the_headless_output_shows_the_download_on_a_terminal_only(tty: bool) -> None:
    err = _Terminal() if tty else io.StringIO()
    output = Output(stdout=io.StringIO(), stderr=err)
    output.data_progress(LoadProgress("binance spot BTCUSDT 1h", "BTCUSDT", "files", 1, 3, 2_000_000, 1.0))
    output.data_progress(LoadProgress("binance spot BTCUSDT 1h", "BTCUSDT", "files", 3, 3, 6_000_000, 2.0))
    output.end_loading()
    if not tty:
        assert err.getvalue() == ""
        return
    lines = err.getvalue().split("\r")[1:]
    assert len(lines) == 2 and lines[0].startswith("loading data: [") and "1/3 files" in lines[0]
    assert "3/3 files  6.0 MB  3.0 MB/s" in lines[1] and lines[1].endswith("\n")


def test_the_progress_line_rewrites_one_line_and_ends_it_once() -> None:
    stream = io.StringIO()
    line = ProgressLine(stream)
    line.close()
    assert stream.getvalue() == ""  # nothing shown: nothing to end
    line(LoadProgress("s", "X", "pages", 2, None, 1_000_000, 1.0))
    line.close()
    line.close()
    assert stream.getvalue() == "\r2 pages  1.0 MB  1.0 MB/s\x1b[K\n"
