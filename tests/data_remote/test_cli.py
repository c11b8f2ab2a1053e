"""``genesis data fetch|ls|rm`` end to end.

The candle server runs on a thread of the test process; ``genesis`` runs in a
subprocess pointed at it by ``GENESIS_HYPERLIQUID_URL`` (with the isolated XDG
directories of the test), so a second run proves the SQLite cache, not memory.
"""

from __future__ import annotations

import json

from tests.data_remote.conftest import genesis
from tests.data_remote.server import CandleServer

SPEC = "hyperliquid:BTC,interval=1h,start=2024-01-01,end=2024-01-21"


def test_data_fetch_ls_rm(live: CandleServer) -> None:
    live.fail("status", status=500, coin="BAD", times=100)
    result = genesis(live, "data", "fetch", SPEC, "ETH,interval=1d,start=2024-01-01,end=2024-02-01", "BAD", "--json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["loaded"][SPEC]["candles"] == 480
    assert report["loaded"][SPEC]["first"] == "2024-01-01T00:00:00"
    assert report["loaded"]["ETH,interval=1d,start=2024-01-01,end=2024-02-01"]["candles"] == 31
    assert report["failed"]["BAD"].startswith("hyperliquid BAD 1h: HTTP 500")
    assert "Traceback" not in result.stderr

    listing = genesis(live, "data", "ls", "--json")
    assert listing.returncode == 0, listing.stderr
    series = {(s["symbol"], s["interval"]): s for s in json.loads(listing.stdout)["series"]}
    assert series[("BTC", "1h")]["candles"] == 480
    assert series[("BTC", "1h")]["covered"] == [["2024-01-01T00:00:00", "2024-01-21T00:00:00"]]
    assert series[("ETH", "1d")]["candles"] == 31
    assert ("BAD", "1h") not in series
    table = genesis(live, "data", "ls")
    assert "BTC" in table.stdout and "480" in table.stdout

    requests = len(live.requests)
    again = genesis(live, "data", "fetch", SPEC)
    assert again.returncode == 0 and len(live.requests) == requests
    assert again.stdout.startswith(f"{SPEC}: 480 candles 2024-01-01T00:00:00 .. 2024-01-20T23:00:00 (0 requests")

    removed = genesis(live, "data", "rm", "BTC")
    assert removed.returncode == 0 and "removed 480 candles" in removed.stdout
    after = json.loads(genesis(live, "data", "ls", "--json").stdout)["series"]
    assert [(s["symbol"], s["interval"]) for s in after] == [("ETH", "1d")]
    assert genesis(live, "data", "rm", "--all").stdout.startswith("removed 31 candles")


def test_data_commands_reject_bad_input_in_one_line(live: CandleServer) -> None:
    bad = genesis(live, "data", "fetch", "hyperliquid:BTC,interval=9m")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "genesis: data spec 'hyperliquid:BTC': interval '9m': expected one of "
        "1m, 3m, 5m, 15m, 30m, 1h, 2h, 4h, 8h, 12h, 1d, 3d, 1w, 1M"
    ]
    assert genesis(live, "data", "rm").returncode == 2
    assert genesis(live, "data", "fetch", "csv:prices.csv").returncode == 2
    assert live.requests == []
