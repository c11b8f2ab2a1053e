"""Specs naming several symbols: ``csv:DIR``/``parquet:DIR``, ``synthetic:symbols=N``, several ``--data``;
bad baskets are one line naming the spec, exit 2 (through the ``genesis`` command)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from engine.data import Bars, load, load_basket
from engine.errors import DataError

GENESIS = [sys.executable, "-m", "genesis_tui.cli"]


def _backtest(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GENESIS, "backtest", *args], capture_output=True, text=True, timeout=300)


def _write(bars: Bars, path: Path) -> None:
    frame = pd.DataFrame({"timestamp": bars.ts // 10**9, "open": bars.open, "high": bars.high, "low": bars.low,
                          "close": bars.close, "volume": bars.volume})  # fmt: skip
    if path.suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False)


def _folder(tmp_path: Path, suffix: str = ".csv", timeframes: tuple[str, ...] = ("1h", "1h", "1h")) -> Path:
    folder = tmp_path / "basket"
    folder.mkdir()
    for k, (name, timeframe) in enumerate(zip(("CCC", "AAA", "BBB"), timeframes, strict=False)):
        _write(load(f"synthetic:bars=400,seed={k},timeframe={timeframe}"), folder / f"{name}{suffix}")
    (folder / "notes.md").write_text("not a symbol")  # files of another kind are left alone
    return folder


def test_a_csv_folder_is_one_symbol_per_file_named_after_it(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    bars = load_basket(f"csv:{folder}")
    assert [b.symbol for b in bars] == ["AAA", "BBB", "CCC"]  # sorted by file name
    assert bars[1].close.tolist() == load(f"csv:{folder / 'BBB.csv'}").close.tolist()
    with pytest.raises(DataError, match="holds 3 symbols"):
        load(f"csv:{folder}")


def test_a_parquet_folder_backtests_as_a_basket_from_the_command_line(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    folder = _folder(tmp_path, ".parquet")
    args = ("--strategy", "sma_cross", "--param", "fast=5", "--param", "slow=20", "--json")
    basket = _backtest("--data", f"parquet:{folder}", *args)
    assert basket.returncode == 0, basket.stderr
    report = json.loads(basket.stdout)
    assert list(report["symbols"]) == ["AAA", "BBB", "CCC"]
    # The same files named one by one give the same portfolio.
    one_by_one = _backtest(*(x for name in ("AAA", "BBB", "CCC") for x in ("--data", f"parquet:{folder / name}.parquet")),
                           *args)  # fmt: skip
    assert json.loads(one_by_one.stdout)["metrics"] == report["metrics"]


def test_synthetic_symbols_gives_n_independent_series_on_one_timeline() -> None:
    bars = load_basket("synthetic:bars=500,seed=7,symbols=3")
    assert [b.symbol for b in bars] == ["SYNTH1", "SYNTH2", "SYNTH3"]
    assert bars[2].close.tolist() == load("synthetic:bars=500,seed=9").close.tolist()
    assert [b.symbol for b in load_basket("synthetic:bars=50,symbols=1")] == ["SYNTH"]
    result = _backtest("--data", "synthetic:bars=3000,seed=1,symbols=3", "--strategy", "sma_cross", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert list(report["symbols"]) == ["SYNTH1", "SYNTH2", "SYNTH3"]
    contributions = sum(row["return_contribution"] for row in report["symbols"].values())
    assert math.isclose(contributions, report["metrics"]["total_return"], rel_tol=1e-9, abs_tol=1e-12)


def _bad(tmp_path: Path) -> dict[str, tuple[tuple[str, ...], str]]:
    mixed = _folder(tmp_path, timeframes=("1h", "1m", "1h"))  # AAA is 1m
    empty = tmp_path / "empty"
    empty.mkdir()
    far = tmp_path / "far.csv"
    _write(load("synthetic:bars=100,seed=1,timeframe=1h,start=2030-01-01"), far)
    near = "synthetic:bars=100,seed=2,timeframe=1h"
    return {
        "timeframes": (("--data", f"csv:{mixed}"), f"symbol BBB (data spec 'csv:{mixed / 'BBB.csv'}') has timeframe 1h"),
        "empty folder": (("--data", f"csv:{empty}"), f"data spec 'csv:{empty}': the folder holds no"),
        "no overlap": (("--data", near, "--data", f"csv:{far}"), f"symbol SYNTH (data spec {near!r}) has no bar"),
        "twice": (("--data", near, "--data", near), "appears twice"),
        "risk without a stop": (("--data", "synthetic:bars=300,symbols=2", "--sizing", "risk", "--risk", "0.01"),
                                "stop_loss"),
        "symbol in a folder": (("--data", f"csv:{empty},symbol=X"), "option symbol"),
        "symbols=0": (("--data", "synthetic:symbols=0"), "option symbols"),
    }  # fmt: skip


@pytest.mark.parametrize("case", ["timeframes", "empty folder", "no overlap", "twice", "risk without a stop",
                                  "symbol in a folder", "symbols=0"])  # fmt: skip
def test_bad_baskets_are_one_line_naming_the_spec_and_exit_2(tmp_path: Path, case: str) -> None:
    args, expected = _bad(tmp_path)[case]
    result = _backtest(*args, "--strategy", "sma_cross")
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
