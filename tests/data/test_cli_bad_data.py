"""Bad market data through the real command line: exit code 2, exactly one line on
stderr naming the file and the line, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HEADER = "timestamp,open,high,low,close,volume"
GOOD_ROWS = [f"{1_700_000_000 + 60 * i},100,101,99,100.5,10" for i in range(60)]


def _genesis(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "genesis_tui.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _backtest(spec: str) -> subprocess.CompletedProcess[str]:
    return _genesis("backtest", "--data", spec, "--strategy", "sma_cross", "--param", "fast=5", "--param", "slow=20")


def _rows(replace: dict[int, str]) -> str:
    """The good file with some data rows replaced (keys are 1-based file line numbers)."""
    lines = [HEADER, *GOOD_ROWS]
    for line, text in replace.items():
        lines[line - 1] = text
    return "\n".join(lines) + "\n"


CASES = [
    pytest.param("timestamp,open,high,low,volume\n1,1,2,0.5,3\n", "missing column close; columns found: 'timestamp'",
                 id="missing-column"),
    pytest.param(_rows({9: f"{1_700_000_000},100,101,99,100.5,10"}),
                 "line 9: timestamp 2023-11-14T22:13:20 is earlier than 2023-11-14T22:19:20 on line 8", id="unsorted"),
    pytest.param(_rows({9: f"{1_700_000_000 + 60 * 6},100,101,99,100.5,10"}),
                 "line 9: duplicate timestamp 2023-11-14T22:19:20 (same as line 8)", id="duplicate"),
    pytest.param(_rows({12: f"{1_700_000_000 + 60 * 10},0,101,99,100.5,10"}),
                 "line 12, column open: expected a positive price, got 0", id="zero-price"),
    pytest.param(_rows({13: f"{1_700_000_000 + 60 * 11},100,101,-99,100.5,10"}),
                 "line 13, column low: expected a positive price, got -99", id="negative-price"),
    pytest.param(_rows({7: f"{1_700_000_000 + 60 * 5},100,101,99,abc,10"}),
                 "line 7, column close: expected a number, got 'abc'", id="text-in-number"),
    pytest.param("", "file is empty; expected a header line and at least one row", id="empty"),
    pytest.param(HEADER + "\n", "no data rows after the header (line 1); expected at least one bar", id="header-only"),
    pytest.param(_rows({}).replace(",", " "),
                 "line 1: cannot find the column separator; expected columns separated by ',', ';', tab or '|'",
                 id="wrong-delimiter"),
]


@pytest.mark.parametrize(("text", "message"), CASES)
def test_bad_csv_exits_2_with_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "BAD.csv"
    path.write_text(text)
    result = _backtest(f"csv:{path}")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"genesis: {path}: "), lines[0]
    assert message in lines[0]
    assert result.stdout == ""


def test_unreadable_file_and_bad_spec(tmp_path: Path) -> None:
    fake = tmp_path / "fake.parquet"
    fake.write_text(HEADER + "\n")
    for spec, message in [
        (f"parquet:{fake}", "fake.parquet: not a readable parquet file ("),
        (f"csv:{tmp_path / 'nope.csv'}", "nope.csv: cannot read file: no such file"),
        ("synthetic:bars=abc", "data spec 'synthetic:bars=abc': option bars: expected a whole number, got 'abc'"),
        ("ftp:prices", "unknown source 'ftp:'"),
    ]:
        result = _backtest(spec)
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        assert len(result.stderr.splitlines()) == 1, result.stderr
        assert message in result.stderr


def test_dropped_rows_are_noted_on_stderr(tmp_path: Path) -> None:
    path = tmp_path / "gaps.csv"
    path.write_text(_rows({5: f"{1_700_000_000 + 60 * 3},100,nan,99,100.5,10"}))
    result = _backtest(f"csv:{path}")
    assert result.returncode == 0, result.stderr
    assert "dropped 1 row" in result.stderr and "line 5" in result.stderr
    assert f"genesis: dropped 1 row with empty, NaN or inf values from {path} (first: line 5)" in result.stderr
    expected = [
        f"genesis: {path}: line 5, column high: expected a finite number, got 'nan' "
        "(strict mode rejects rows with NaN or inf)"
    ]
    strict = _backtest(f"csv:{path},strict=true")
    assert (strict.returncode, strict.stderr.splitlines()) == (2, expected)
    flag = _genesis("backtest", "--data", f"csv:{path}", "--strict", "--strategy", "sma_cross",
                    "--param", "fast=5", "--param", "slow=20")
    assert (flag.returncode, flag.stderr.splitlines()) == (2, expected)
