"""The ``binance:`` archive source against a local copy of the archive's layout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from engine.data.binance import BinanceArchive, BinanceConfig, parse_klines, plan_files
from engine.data.cache import MemoryCache
from engine.errors import DataError
from tests.data_remote.archive import (
    ArchiveServer,
    ThreadedArchiveServer,
    build_archive,
    candles,
    kline_csv,
    ms,
    reference_csv,
)
from tests.data_remote.conftest import assert_matches

NOW = ms(date(2024, 6, 15))  # every file of these tests has long been published
FAST = {"retries": 1, "backoff_base_s": 0.01, "backoff_max_s": 0.02, "concurrency": 3}


@pytest.fixture
async def archive_server(tmp_path: Path) -> AsyncIterator[ArchiveServer]:
    server = ArchiveServer(tmp_path / "archive")
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def make_archive(
    archive_server: ArchiveServer, tmp_path: Path
) -> AsyncIterator[Callable[..., BinanceArchive]]:
    """Sources on the server sharing one cache file, each with a fresh L1; closed at the end."""
    made: list[BinanceArchive] = []

    def build(**overrides: Any) -> BinanceArchive:
        config = msgspec.convert({"url": archive_server.url, **FAST, **overrides}, BinanceConfig)
        source = BinanceArchive(config, memory=MemoryCache(), cache_path=tmp_path / "candles.db")
        made.append(source)
        return source

    yield build
    for source in made:
        await source.close()


async def snapshot(source: BinanceArchive) -> tuple[list[Any], list[Any]]:
    await source.open()
    conn = source.store.conn
    rows = await conn.execute_fetchall("SELECT * FROM candles ORDER BY symbol, open_time")
    spans = await conn.execute_fetchall("SELECT * FROM coverage ORDER BY symbol, start_ms")
    return list(rows), list(spans)


# --------------------------------------------------------------------------- parsing and planning


def test_the_four_file_forms_parse_to_the_same_candles() -> None:
    records = candles("BTCUSDT", "1h", ms(date(2025, 1, 1)), ms(date(2025, 1, 2)))
    for header in (False, True):
        for micro in (False, True):
            parsed = parse_klines(kline_csv(records, "1h", header=header, micro=micro), "f.zip")
            np.testing.assert_array_equal(parsed, records)


def test_a_bad_row_names_the_file_and_line() -> None:
    records = candles("BTCUSDT", "1h", ms(date(2024, 1, 1)), ms(date(2024, 1, 2)))
    lines = kline_csv(records, "1h", header=True, micro=False).decode().splitlines()
    lines[4] = lines[4].replace(",", ",x", 1)
    with pytest.raises(DataError, match=r"^f\.zip: line 5: expected 12 comma-separated numbers"):
        parse_klines("\n".join(lines).encode(), "f.zip")


def test_plan_uses_monthly_files_for_whole_ended_months_and_daily_ones_for_the_rest() -> None:
    files = plan_files("um", "BTCUSDT", "1h", ms(date(2024, 1, 30)), ms(date(2024, 4, 2)) + 1, now=NOW)
    names = [f.name for f in files]
    assert names == [
        "BTCUSDT-1h-2024-01-30.zip", "BTCUSDT-1h-2024-01-31.zip",
        "BTCUSDT-1h-2024-02.zip", "BTCUSDT-1h-2024-03.zip",
        "BTCUSDT-1h-2024-04-01.zip", "BTCUSDT-1h-2024-04-02.zip",
    ]
    assert files[2].path == "data/futures/um/monthly/klines/BTCUSDT/1h/BTCUSDT-1h-2024-02.zip"
    # The current month comes from daily files, and nothing from today on.
    recent = plan_files("spot", "ETHUSDT", "1d", ms(date(2024, 6, 1)), ms(date(2024, 7, 1)), now=NOW)
    assert [f.name for f in recent][-1] == "ETHUSDT-1d-2024-06-14.zip" and len(recent) == 14
    assert recent[0].path.startswith("data/spot/daily/klines/ETHUSDT/1d/")


# --------------------------------------------------------------------------- loading


async def test_load_equals_the_files_then_hits_the_cache_then_fetches_only_what_is_missing(
    archive_server: ArchiveServer, make_archive: Callable[..., BinanceArchive]
) -> None:
    archive = build_archive(
        archive_server.root,
        months=[(2024, 1), (2024, 2), (2024, 3)],
        days=[date(2024, 4, d) for d in range(1, 6)],
        headered={"2024-02", "2024-04-02"},
        micro={"2024-03", "2024-04-03"},
    )
    start, end = ms(date(2024, 1, 1)), ms(date(2024, 4, 3))
    bars = await make_archive().fetch_candles("BTCUSDT", "um", "1h", start, end, now=NOW)
    assert_matches(bars, archive.records[archive.records["t"] < end])
    assert archive_server.zips() == 5  # three months, two days
    assert archive_server.requests["data/futures/um/daily/klines/BTCUSDT/1h/BTCUSDT-1h-2024-04-03.zip"] == 0

    again = await make_archive().fetch_candles("BTCUSDT", "um", "1h", start, end, now=NOW)
    assert_matches(again, archive.records[archive.records["t"] < end])
    assert sum(archive_server.requests.values()) == 10  # nothing more: zips and checksums of the first load

    longer = await make_archive().fetch_candles("BTCUSDT", "um", "1h", start, ms(date(2024, 4, 6)), now=NOW)
    assert_matches(longer, archive.records)
    assert archive_server.zips() == 8  # only the three missing days
    assert all(n == 1 for path, n in archive_server.requests.items())


async def test_a_missing_month_is_a_gap_not_an_error(
    archive_server: ArchiveServer, make_archive: Callable[..., BinanceArchive]
) -> None:
    archive = build_archive(archive_server.root, "NEWUSDT", "4h", months=[(2024, 3), (2024, 4)])
    bars = await make_archive().fetch_candles("NEWUSDT", "um", "4h", ms(date(2024, 1, 1)), ms(date(2024, 5, 1)), now=NOW)
    assert_matches(bars, archive.records)
    first = sum(archive_server.requests.values())
    await make_archive().fetch_candles("NEWUSDT", "um", "4h", ms(date(2024, 1, 1)), ms(date(2024, 5, 1)), now=NOW)
    assert sum(archive_server.requests.values()) == first  # the missing months are known to be empty


async def test_a_recent_missing_file_is_asked_for_again(
    archive_server: ArchiveServer, make_archive: Callable[..., BinanceArchive]
) -> None:
    build_archive(archive_server.root, "BTCUSDT", "1d", days=[date(2024, 6, d) for d in range(1, 14)])
    now = ms(date(2024, 6, 15))  # the file of the 14th may not be published yet
    for _ in range(2):
        bars = await make_archive().fetch_candles("BTCUSDT", "um", "1d", ms(date(2024, 6, 1)), now, now=now)
        assert len(bars) == 13
    daily = "data/futures/um/daily/klines/BTCUSDT/1d/BTCUSDT-1d-2024-06-14.zip.CHECKSUM"
    assert archive_server.requests[daily] == 2
    assert archive_server.requests[daily.replace("06-13", "06-14")] == 2


async def test_a_bad_checksum_is_downloaded_twice_then_one_error_and_the_cache_is_unchanged(
    archive_server: ArchiveServer, make_archive: Callable[..., BinanceArchive]
) -> None:
    build_archive(archive_server.root, months=[(2024, 1), (2024, 2)], bad_checksum={"2024-02"})
    source = make_archive()
    await source.fetch_candles("BTCUSDT", "um", "1h", ms(date(2024, 1, 1)), ms(date(2024, 2, 1)), now=NOW)
    before = await snapshot(source)
    with pytest.raises(DataError) as caught:
        await make_archive().fetch_candles("BTCUSDT", "um", "1h", ms(date(2024, 2, 1)), ms(date(2024, 3, 1)), now=NOW)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("binance um BTCUSDT 1h: BTCUSDT-1h-2024-02.zip: checksum mismatch")
    assert archive_server.requests["data/futures/um/monthly/klines/BTCUSDT/1h/BTCUSDT-1h-2024-02.zip"] == 2
    assert await snapshot(source) == before


async def test_a_corrupt_download_is_retried_once(
    archive_server: ArchiveServer, make_archive: Callable[..., BinanceArchive]
) -> None:
    archive = build_archive(archive_server.root, months=[(2024, 1)])
    path = "data/futures/um/monthly/klines/BTCUSDT/1h/BTCUSDT-1h-2024-01.zip"
    archive_server.corrupt[path] = 1
    bars = await make_archive().fetch_candles("BTCUSDT", "um", "1h", ms(date(2024, 1, 1)), ms(date(2024, 2, 1)), now=NOW)
    assert_matches(bars, archive.records)
    assert archive_server.requests[path] == 2


async def test_files_stream_to_disk_and_are_parsed_one_at_a_time(
    archive_server: ArchiveServer, make_archive: Callable[..., BinanceArchive]
) -> None:
    """Six months downloaded six at a time: the heap's peak stays near what parsing one
    month takes (its CSV, pandas' buffers, its records: about 3.5 CSVs), far below six
    months held at once."""
    import tracemalloc

    months = [(2023, m) for m in range(1, 7)]
    build_archive(archive_server.root, "BTCUSDT", "5m", months=months)
    one_month = len(kline_csv(candles("BTCUSDT", "5m", ms(date(2023, 1, 1)), ms(date(2023, 2, 1))), "5m",
                              header=False, micro=False))
    source = make_archive(concurrency=6)
    await source.open()
    files = plan_files("um", "BTCUSDT", "5m", ms(date(2023, 1, 1)), ms(date(2023, 7, 1)), now=NOW)
    stored: list[int] = []

    async def sink(records: np.ndarray, lo: int, hi: int) -> None:
        stored.append(records.shape[0])  # kept nowhere: only the fetch's own memory counts

    parse_klines(kline_csv(candles("X", "1h", 0, 86_400_000), "1h", header=False, micro=False), "warm-up")
    tracemalloc.start()  # after pandas is imported: the import's own memory is not the fetch's
    try:
        await source._fetch_files(files, "test", sink, NOW)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(stored) == 6 and sum(stored) == 181 * 288
    assert peak < 4.5 * one_month, (peak, one_month)


# --------------------------------------------------------------------------- end to end


@pytest.fixture
def live_archive(tmp_path: Path) -> Iterator[ArchiveServer]:
    with ThreadedArchiveServer(tmp_path / "archive") as server:
        yield server


def genesis(server: ArchiveServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, GENESIS_BINANCE_ARCHIVE_URL=server.url)
    return subprocess.run(
        [sys.executable, "-m", "genesis_tui.cli", *args],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )


def test_backtest_on_the_archive_equals_the_concatenated_csvs_and_a_second_run_downloads_nothing(
    live_archive: ArchiveServer, tmp_path: Path
) -> None:
    archive = build_archive(
        live_archive.root, months=[(2023, 11), (2023, 12)], days=[date(2024, 1, 1), date(2024, 1, 2)],
        headered={"2023-12"}, micro={"2024-01-02"},
    )
    reference = reference_csv(archive.records, tmp_path / "BTCUSDT.csv")
    strategy = ("--strategy", "sma_cross", "--param", "fast=5", "--param", "slow=20", "--fee", "0.001", "--json")
    spec = "binance:BTCUSDT,interval=1h,start=2023-11-01,end=2024-01-03"
    first = genesis(live_archive, "backtest", "--data", spec, *strategy)
    assert first.returncode == 0, first.stderr
    assert live_archive.zips() == 4
    expected = genesis(live_archive, "backtest", "--data", f"csv:{reference}", *strategy)
    assert expected.returncode == 0, expected.stderr
    metrics = json.loads(first.stdout)["metrics"]
    assert metrics == json.loads(expected.stdout)["metrics"]
    assert metrics["trades"] > 0
    seen = sum(live_archive.requests.values())
    second = genesis(live_archive, "backtest", "--data", spec, *strategy)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["metrics"] == metrics
    assert sum(live_archive.requests.values()) == seen


def test_a_bad_checksum_on_the_command_line_is_one_line_and_exit_2(live_archive: ArchiveServer) -> None:
    build_archive(live_archive.root, months=[(2023, 5)], bad_checksum={"2023-05"})
    done = genesis(
        live_archive, "backtest", "--data", "binance:BTCUSDT,interval=1h,start=2023-05-01,end=2023-06-01",
        "--strategy", "sma_cross",
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "BTCUSDT-1h-2023-05.zip: checksum mismatch" in lines[0], done.stderr
