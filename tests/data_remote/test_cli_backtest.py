"""``genesis backtest --data hyperliquid:...`` end to end: a second run makes no request."""

from __future__ import annotations

import json

from tests.data_remote.conftest import genesis
from tests.data_remote.server import JAN_2024_MS, CandleServer

HOUR = 3_600_000
SPEC = "hyperliquid:BTC,interval=1h,start=2024-01-01,end=2024-01-21"


def test_backtest_on_exchange_candles_twice(live: CandleServer) -> None:
    args = (
        "backtest", "--data", SPEC, "--strategy", "sma_cross",
        "--param", "fast=5", "--param", "slow=20", "--json",
    )
    first = genesis(live, *args)
    assert first.returncode == 0, first.stderr
    assert len(live.requests) == 1
    assert live.requests[0].start == JAN_2024_MS and live.requests[0].end == JAN_2024_MS + 480 * HOUR - 1
    metrics = json.loads(first.stdout)["metrics"]
    second = genesis(live, *args)
    assert second.returncode == 0, second.stderr
    assert len(live.requests) == 1  # the second run read SQLite, not the network
    assert json.loads(second.stdout)["metrics"] == metrics


def test_a_basket_of_coins_loads_through_the_cache_and_equals_the_coins_one_by_one(live: CandleServer) -> None:
    options = ",interval=1h,start=2024-01-01,end=2024-01-21"
    args = ("backtest", "--strategy", "sma_cross", "--param", "fast=5", "--param", "slow=20", "--json")
    basket = genesis(live, *args, "--data", f"hyperliquid:BTC+ETH+SOL{options}")
    assert basket.returncode == 0, basket.stderr
    assert sorted(request.coin for request in live.requests) == ["BTC", "ETH", "SOL"]
    report = json.loads(basket.stdout)
    assert list(report["symbols"]) == ["BTC", "ETH", "SOL"]
    # Each coin named on its own reads the cache (no request) and gives the same portfolio.
    one_by_one = genesis(live, *args, *(x for coin in ("BTC", "ETH", "SOL") for x in ("--data", f"hyperliquid:{coin}{options}")))
    assert one_by_one.returncode == 0, one_by_one.stderr
    assert len(live.requests) == 3
    assert json.loads(one_by_one.stdout)["metrics"] == report["metrics"]
