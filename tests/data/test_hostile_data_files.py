"""Hostile data files: a runaway line is named as such, a huge field stays a short
one-line error, and prices whose arithmetic would overflow are refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.data import load
from engine.data.bars import MAX_PRICE, MIN_PRICE, Bars, BarsValidationError
from engine.data.sources.csv import MAX_LINE_BYTES
from engine.errors import DataError

HEADER = "timestamp,open,high,low,close,volume"


def _row(i: int, close: str = "100.5") -> str:
    return f"{1_700_000_000 + 60 * i},100,101,99,{close},10"


def test_runaway_first_data_line_is_named_not_taken_for_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    path.write_text("\n".join([HEADER, _row(0, "1" * (4 * MAX_LINE_BYTES)), _row(1)]) + "\n")
    with pytest.raises(DataError) as error:
        load(f"csv:{path}")
    assert str(error.value) == f"{path}: line 2: longer than {MAX_LINE_BYTES} bytes; expected one bar per line"


def test_runaway_header_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    path.write_text(HEADER + "x" * (2 * MAX_LINE_BYTES) + "\n" + _row(0) + "\n")
    with pytest.raises(DataError, match=f"line 1: longer than {MAX_LINE_BYTES} bytes"):
        load(f"csv:{path}")


def test_a_line_just_under_the_limit_is_read_as_data(tmp_path: Path) -> None:
    # A long first line is not refused for its length alone: the sample reads it whole.
    path = tmp_path / "wide.csv"
    padding = " " * (MAX_LINE_BYTES - 200)
    path.write_text("\n".join([HEADER, _row(0) + padding, *(_row(i) for i in range(1, 30))]) + "\n")
    assert len(load(f"csv:{path}")) == 30


def test_huge_field_past_the_sample_gives_a_short_one_line_error(tmp_path: Path) -> None:
    rows = [_row(i) for i in range(3000)]  # past the 64 KiB the head sample reads
    rows[2500] = _row(2500, "x" * 5_000_000)
    path = tmp_path / "field.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    for strict in (False, True):
        with pytest.raises(DataError) as error:
            load(f"csv:{path}", strict=strict)
        message = str(error.value)
        assert message.startswith(f"{path}: line 2502, column close: expected a number, got 'xxx")
        assert message.endswith("... (5000000 characters)") and len(message) < 300 + len(str(path))


def test_huge_header_names_are_cut(tmp_path: Path) -> None:
    path = tmp_path / "names.csv"
    path.write_text("timestamp," + "y" * 20_000 + ",high,low,close\n1,1,2,0.5,1.5\n")
    with pytest.raises(DataError, match="missing column open") as error:
        load(f"csv:{path}")
    assert len(str(error.value)) < 500 + len(str(path))


@pytest.mark.parametrize("price", ["1e308", "1e101", "1e-308", "1e-101"])
def test_prices_whose_arithmetic_overflows_are_refused(tmp_path: Path, price: str) -> None:
    path = tmp_path / "huge.csv"
    path.write_text("\n".join([HEADER, *(_row(i) for i in range(5)), _row(5, price).replace(",100,101,99,", f",{price},{price},{price},")]) + "\n")
    with pytest.raises(DataError) as error:
        load(f"csv:{path}")
    assert str(error.value).startswith(
        f"{path}: line 7: prices must lie between {MIN_PRICE:g} and {MAX_PRICE:g} (beyond, the arithmetic overflows)"
    )


def test_bars_refuse_out_of_range_prices_and_volume() -> None:
    ts = np.arange(3, dtype=np.int64)
    ok = np.array([1.0, 2.0, 3.0])
    with pytest.raises(BarsValidationError) as error:
        Bars(ts, ok, np.array([1.0, 2.0, 1e300]), ok, ok, np.zeros(3))
    assert error.value.row == 2 and "prices must lie between" in error.value.rule
    with pytest.raises(BarsValidationError, match="volume must be at most"):
        Bars(ts, ok, ok, ok, ok, np.array([0.0, 1e200, 0.0]))
    big = ok * (MAX_PRICE / 4)
    assert len(Bars(ts, big, big, big, big, np.zeros(3))) == 3


def test_backtest_on_a_runaway_line_exits_2_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    path.write_text("\n".join([HEADER, _row(0, "9" * (2 * MAX_LINE_BYTES)), _row(1)]) + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "genesis_tui.cli", "backtest", "--data", f"csv:{path}", "--strategy", "sma_cross"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"genesis: {path}: line 2: longer than {MAX_LINE_BYTES} bytes; expected one bar per line"
    ]
