"""``examples/binance-basket.toml``: a valid study whose basket loads from a local copy of the
archive (dates moved to the copy's months), funding included, then from the cache alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.data.basket import Basket
from engine.data.hyperliquid import shared_memory_cache
from engine.data.load import load_market
from engine.optimize.spec import load_study
from tests.data_remote.archive import ThreadedArchiveServer, build_archive, write_funding

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "binance-basket.toml"
MONTHS = [(2023, 11), (2023, 12)]


def test_the_example_basket_loads_from_the_archive_then_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = load_study(EXAMPLE)
    specs = study.data.all
    assert [spec.split(":")[0] for spec in specs] == ["binance"] * 3
    moved = [spec.replace("2022-01-01", "2023-11-01").replace("2025-01-01", "2024-01-01") for spec in specs]
    with ThreadedArchiveServer(tmp_path / "archive") as server:
        expected = {}
        for symbol in ("BTCUSDT", "ETHUSDT", "SOLUSDT"):
            expected[symbol] = build_archive(server.root, symbol, "4h", months=MONTHS).records
            write_funding(server.root, symbol, MONTHS)
        monkeypatch.setenv("GENESIS_BINANCE_ARCHIVE_URL", server.url)
        basket = load_market(moved)
        assert isinstance(basket, Basket)
        assert basket.symbols == ("BTCUSDT", "ETHUSDT", "SOLUSDT")
        for k, symbol in enumerate(basket.symbols):
            np.testing.assert_array_equal(basket.members[k].close, expected[symbol]["close"])
            assert len(basket.members[k].meta["funding"]) == 61 * 3  # type: ignore[arg-type]
        assert server.zips() == 3 * 2 + 3 * 2  # klines and funding, each month once
        shared_memory_cache().clear()
        again = load_market(moved)
        assert server.zips() == 12  # from the SQLite cache
        assert isinstance(again, Basket)
        np.testing.assert_array_equal(again.close, basket.close)
