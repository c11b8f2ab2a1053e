"""A foreign SQLite file given as the candle cache is refused untouched (exit 2), and a
cut-off JSON answer is a network fault (exit 1) wherever the decoder trips first."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.data.hyperliquid import parse_candles
from engine.errors import DataError, NetworkError, StoreError
from engine.store import candles
from engine.store.candles import RECORD_DTYPE, CandleStore, SeriesKey
from tests.store.test_candle_chunks import V1_SCHEMA


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _foreign(path: Path, schema: str) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(schema)
    conn.commit()
    conn.close()
    return path


FOREIGN = {
    "other-tables": "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes (body) VALUES ('hi');",
    "same-name-other-columns": "CREATE TABLE candles (id INTEGER PRIMARY KEY, price REAL); INSERT INTO candles (price) VALUES (1.5);",
    "ours-plus-one": (
        "CREATE TABLE candles (source TEXT, symbol TEXT, interval TEXT, open_time INTEGER, bar BLOB);"
        "CREATE TABLE extra (x);"
    ),
}


@pytest.mark.parametrize("kind", sorted(FOREIGN))
async def test_foreign_database_is_refused_untouched(tmp_path: Path, kind: str) -> None:
    path = _foreign(tmp_path / "other.db", FOREIGN[kind])
    before = _digest(path)
    store = CandleStore(path)
    with pytest.raises(StoreError) as error:
        await store.open()
    message = str(error.value)
    assert message.startswith(f"{path}: not a Genesis candle cache") and "left untouched" in message
    assert error.value.exit_code == 2
    assert _digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]  # no -wal or -shm either


async def test_own_cache_reopens(tmp_path: Path) -> None:
    path = tmp_path / "candles.db"
    async with CandleStore(path):
        pass
    async with CandleStore(path) as store:
        assert await store.count() == 0


async def test_a_cache_from_before_the_registry_is_adopted_with_its_candles(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    record = np.zeros(1, dtype=RECORD_DTYPE)
    record["t"], record["close"] = 60_000, 1.5
    conn = sqlite3.connect(path)
    conn.executescript(V1_SCHEMA + "PRAGMA user_version = 1;")
    conn.execute("INSERT INTO candles VALUES ('hl', 'BTC', '1m', 60000, ?)", (record.tobytes(),))
    conn.commit()
    conn.close()
    async with CandleStore(path) as store:
        read = await store.read(SeriesKey("hl", "BTC", "1m"), 0, 120_000)
    assert read["close"].tolist() == [1.5]
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT version FROM schema_versions WHERE component = 'candles'").fetchone() == (
        candles.SCHEMA_VERSION,
    )
    conn.close()


def test_data_ls_on_a_foreign_database_exits_2_with_one_line(tmp_path: Path) -> None:
    path = _foreign(tmp_path / "other.db", FOREIGN["same-name-other-columns"])
    before = _digest(path)
    result = subprocess.run(
        [sys.executable, "-m", "genesis_tui.cli", "data", "ls", "--cache", str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"genesis: {path}: not a Genesis candle cache (it holds a table 'candles' of another application); "
        "refused, the file is left untouched"
    ]
    assert _digest(path) == before


@pytest.mark.parametrize("body", [b'{"err', b"[1, 2", b'[{"t": "x", "o": ', b"<html>", b""])
def test_malformed_json_is_a_network_error(body: bytes) -> None:
    with pytest.raises(NetworkError, match=r"^hyperliquid BTC 1h: malformed JSON in response") as error:
        parse_candles(body, "BTC", "1h")
    assert error.value.exit_code == 1


def test_well_formed_json_of_the_wrong_shape_stays_a_data_error() -> None:
    with pytest.raises(DataError, match="unexpected candle data: expected `array`, got `object`"):
        parse_candles(b'{"error": "x"}', "BTC", "1h")


def test_a_huge_price_text_is_cut_in_the_message() -> None:
    body = b'[{"t": 1, "o": "' + b"9" * 1_000_000 + b'x", "h": "1", "l": "1", "c": "1", "v": "1"}]'
    with pytest.raises(DataError) as error:
        parse_candles(body, "BTC", "1h")
    assert "field 'o': expected a number" in str(error.value) and len(str(error.value)) < 300
