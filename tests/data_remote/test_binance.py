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
from engine.data.funding import FundingRates
from engine.errors import DataError
from tests.data_remote.archive import (
    ArchiveServer,
    ThreadedArchiveServer,
    build_archive,
    candles,
    kline_csv,
    ms,
    reference_csv,
    write_funding,
)
from tests.data_remote.conftest import assert_matches, candle_rows

NOW = ms(date(2024, 6, 15))  # every file of these tests has long been published
APRIL = ms(date(2024, 4, 20))  # April 2024 is the current month: read from daily files
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
    rows = await candle_rows(source.store)
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


def test_plan_uses_monthly_files_for_ended_months_and_daily_ones_for_the_rest() -> None:
    files = plan_files("um", "BTCUSDT", "1h", ms(date(2024, 1, 30)), ms(date(2024, 4, 2)) + 1, now=APRIL)
    names = [f.name for f in files]
    assert names == [
        "BTCUSDT-1h-2024-01.zip", "BTCUSDT-1h-2024-02.zip", "BTCUSDT-1h-2024-03.zip",
        "BTCUSDT-1h-2024-04-01.zip", "BTCUSDT-1h-2024-04-02.zip",
    ]
    assert files[1].path == "data/futures/um/monthly/klines/BTCUSDT/1h/BTCUSDT-1h-2024-02.zip"
    assert (files[0].start_ms, files[0].end_ms) == (ms(date(2024, 1, 1)), ms(date(2024, 2, 1)))
    # A month that ended days ago may not be published yet: its days are read instead.
    early = plan_files("um", "BTCUSDT", "1h", ms(date(2024, 3, 30)), ms(date(2024, 4, 2)), now=ms(date(2024, 4, 3)))
    assert [f.name for f in early] == [
        "BTCUSDT-1h-2024-03-30.zip", "BTCUSDT-1h-2024-03-31.zip", "BTCUSDT-1h-2024-04-01.zip",
    ]
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
    bars = await make_archive().fetch_candles("BTCUSDT", "um", "1h", start, end, now=APRIL)
    assert_matches(bars, archive.records[archive.records["t"] < end])
    assert archive_server.zips() == 5  # three months, two days
    assert archive_server.requests["data/futures/um/daily/klines/BTCUSDT/1h/BTCUSDT-1h-2024-04-03.zip"] == 0

    seen = sum(archive_server.requests.values())
    again = await make_archive().fetch_candles("BTCUSDT", "um", "1h", start, end, now=APRIL)
    assert_matches(again, archive.records[archive.records["t"] < end])
    assert sum(archive_server.requests.values()) == seen  # nothing more

    longer = await make_archive().fetch_candles("BTCUSDT", "um", "1h", start, ms(date(2024, 4, 6)), now=APRIL)
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
    assert archive_server.requests[daily.replace("06-14.zip.CHECKSUM", "06-13.zip")] == 1


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


async def test_usdm_bars_carry_the_funding_events_of_their_range(
    archive_server: ArchiveServer, make_archive: Callable[..., BinanceArchive]
) -> None:
    build_archive(archive_server.root, "ETHUSDT", "8h", months=[(2024, 1), (2024, 2)])
    events = write_funding(archive_server.root, "ETHUSDT", [(2024, 1), (2024, 2)])
    start, end = ms(date(2024, 1, 10)), ms(date(2024, 2, 20))
    bars = await make_archive().fetch_candles("ETHUSDT", "um", "8h", start, end, now=NOW)
    funding = bars.meta["funding"]
    assert isinstance(funding, FundingRates)
    inside = [(t, r) for t, r in events if start <= t < end]
    assert funding.ts.tolist() == [t * 1_000_000 for t, _ in inside]
    assert funding.rate.tolist() == [r for _, r in inside]
    assert any(r < 0 for _, r in inside) and any(r > 0 for _, r in inside)
    seen = sum(archive_server.requests.values())
    again = await make_archive().fetch_candles("ETHUSDT", "um", "8h", start, end, now=NOW)
    assert sum(archive_server.requests.values()) == seen
    assert again.meta["funding"].ts.tolist() == funding.ts.tolist()  # type: ignore[attr-defined]
    # Spot data has no funding.
    build_archive(archive_server.root, "ETHUSDT", "8h", market="spot", months=[(2024, 1)])
    spot = await make_archive().fetch_candles("ETHUSDT", "spot", "8h", start, ms(date(2024, 2, 1)), now=NOW)
    assert "funding" not in spot.meta


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

    async def peak_of(chosen: list) -> int:
        tracemalloc.start()  # after pandas is imported: the import's own memory is not the fetch's
        try:
            await source._fetch_files(chosen, "test", "BTCUSDT", sink, NOW)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    # The same parser (pyarrow or pandas, whichever is installed) on one month, then on six.
    one = await peak_of(files[:1])
    stored.clear()
    six = await peak_of(files)
    assert len(stored) == 6 and sum(stored) == 181 * 288
    assert six < 2 * one, (six, one, one_month)  # six parsed at once would be about six times one
    assert six < 6 * one_month, (six, one_month)  # nor six months' bodies held besides one parse


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
        live_archive.root, months=[(2023, 11), (2023, 12), (2024, 1)], headered={"2023-12"}, micro={"2024-01"},
    )
    reference = reference_csv(archive.records[archive.records["t"] < ms(date(2024, 1, 3))], tmp_path / "BTCUSDT.csv")
    strategy = ("--strategy", "sma_cross", "--param", "fast=5", "--param", "slow=20", "--fee", "0.001", "--json")
    spec = "binance:BTCUSDT,interval=1h,start=2023-11-01,end=2024-01-03"
    first = genesis(live_archive, "backtest", "--data", spec, *strategy)
    assert first.returncode == 0, first.stderr
    assert live_archive.zips() == 3
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


def test_format_progress() -> None:
    from engine.load_progress import format_progress

    assert format_progress(3, 12, 4_500_000, 1_500_000.0, 9.4, width=12) == (
        "[###.........] 3/12 files  4.5 MB  1.5 MB/s  ETA 9s"
    )
    assert format_progress(12, 12, 1, 0.0, 0.0, width=4) == "[####] 12/12 files  0.0 MB  0.0 MB/s"


def test_data_fetch_shows_progress_resumes_and_ls_verify_rm(
    live_archive: ArchiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[binance]\nconcurrency = 1\n")  # files in order: the bad April comes last
    monkeypatch.setenv("GENESIS_CONFIG", str(config))
    build_archive(live_archive.root, "SOLUSDT", "4h", months=[(2023, 1), (2023, 2), (2023, 4)])
    spec = "binance:SOLUSDT,interval=4h,start=2023-01-01,end=2023-05-01"
    # A fetch stopped by a bad file keeps the files it finished: the rerun fetches only the rest.
    bad = live_archive.root / "data/futures/um/monthly/klines/SOLUSDT/4h/SOLUSDT-4h-2023-04.zip.CHECKSUM"
    good = bad.read_text()
    bad.write_text("0" * 64 + "  SOLUSDT-4h-2023-04.zip\n")
    first = genesis(live_archive, "data", "fetch", spec, "--progress")
    assert first.returncode == 2
    assert "SOLUSDT-4h-2023-04.zip: checksum mismatch" in first.stderr
    assert "/4 files" in first.stderr and "MB/s" in first.stderr  # the progress line
    bad.write_text(good)
    zips = live_archive.zips()
    again = genesis(live_archive, "data", "fetch", spec, "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["loaded"][spec]["candles"] == (31 + 28 + 30) * 6
    assert "files" not in again.stderr  # no progress line unless asked for (stderr is not a terminal)
    assert live_archive.zips() == zips + 1  # only April: January and February were kept, March is a gap

    listing = genesis(live_archive, "data", "ls", "--json")
    series = {(s["source"], s["interval"]): s for s in json.loads(listing.stdout)["series"]}
    candles = series[("binance-um", "4h")]
    assert candles["candles"] == (31 + 28 + 30) * 6 and candles["bytes"] == candles["candles"] * 48
    assert candles["covered"] == [["2023-01-01T00:00:00", "2023-05-01T00:00:00"]]
    assert candles["gaps"] == []
    verify = genesis(live_archive, "data", "verify", "--json")
    assert verify.returncode == 0, verify.stderr
    checked = {entry["series"]: entry for entry in json.loads(verify.stdout)["series"]}
    assert checked["binance-um SOLUSDT 4h"]["holes"] == 1  # March: the symbol had no candles
    assert checked["binance-um SOLUSDT 4h"]["problems"] == []
    removed = genesis(live_archive, "data", "rm", "SOLUSDT", "--source", "binance-um", "--interval", "4h")
    assert removed.returncode == 0 and f"removed {(31 + 28 + 30) * 6} candles" in removed.stdout


def test_hyperliquid_funding_is_paged_cached_and_settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """``hyperliquid:COIN,funding=true``: fundingHistory paged (500 an answer), cached, on the bars."""
    from engine.backtest import run
    from engine.data import load
    from engine.data.hyperliquid import shared_memory_cache
    from tests.data_remote.server import JAN_2024_MS, ThreadedCandleServer, funding_rate

    with ThreadedCandleServer() as server:
        monkeypatch.setenv("GENESIS_HYPERLIQUID_URL", server.url)
        spec = "hyperliquid:BTC,interval=1h,start=2024-01-01,end=2024-02-01,funding=true"
        bars = load(spec)
        funding = bars.meta["funding"]
        assert isinstance(funding, FundingRates)
        hours = list(range(JAN_2024_MS, JAN_2024_MS + 31 * 24 * 3_600_000, 3_600_000))
        assert funding.ts.tolist() == [t * 1_000_000 for t in hours]
        assert funding.rate.tolist() == [funding_rate(t) for t in hours]
        assert len(server.funding_requests) == 2  # 744 events: 500, then 244
        shared_memory_cache().clear()
        again = load(spec)  # from L2 this time
        assert len(server.funding_requests) == 2
        funded = run(again, "sma_cross", {"fast": 5, "slow": 20}, direction="both").metrics
        assert funded.funding_paid != 0.0
        plain = load("hyperliquid:BTC,interval=1h,start=2024-01-01,end=2024-02-01")
        assert "funding" not in plain.meta  # the same candles from L1, without the rates
        assert len(server.funding_requests) == 2
