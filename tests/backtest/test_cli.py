"""``genesis backtest``: JSON shape, the table, exit codes and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.backtest import METRIC_NAMES, STRATEGIES, run
from engine.data import load
from genesis_tui.cli import main

SPEC = "synthetic:bars=3000,seed=5"


def genesis(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = main(["backtest", *args])
    except SystemExit as exit_:  # argparse usage errors
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_json_output_shape_and_values(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = genesis(
        capsys, "--data", SPEC, "--strategy", "sma_cross", "--param", "fast=10", "--param", "slow=50",
        "--fee", "0.001", "--slippage", "0.0005", "--fill", "close", "--direction", "both", "--json",
    )
    assert code == 0, err
    report = json.loads(out)
    assert set(report) >= {"strategy", "params", "data", "options", "metrics", "elapsed_s"}
    assert list(report["metrics"]) == list(METRIC_NAMES)
    assert report["strategy"] == "sma_cross"
    assert report["params"] == {"fast": 10, "slow": 50}
    assert report["data"]["bars"] == 3000
    assert report["data"]["timeframe"] == "1m"
    assert report["options"]["direction"] == "both"
    assert isinstance(report["elapsed_s"], float)
    expected = run(load(SPEC), "sma_cross", {"fast": 10, "slow": 50}, fee=0.001, slippage=0.0005,
                   fill="close", direction="both")
    assert report["metrics"] == expected.metrics.as_json()


def test_defaults_and_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = genesis(capsys, "--data", SPEC, "--strategy", "rsi_reversion", "--stop-loss", "0.02")
    assert code == 0
    assert "rsi_reversion(window=14, lower=30.0, upper=70.0)" in out
    for name in ("final_value", "sharpe", "max_drawdown", "profit_factor"):
        assert name in out


def test_list_json_describes_every_strategy(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = genesis(capsys, "--list", "--json")
    assert code == 0
    described = json.loads(out)
    assert set(described) == set(STRATEGIES)
    assert described["sma_cross"]["constraints"] == ["fast < slow"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strategy", "nope"], "unknown strategy 'nope'"),
        (["--strategy", "sma_cross", "--param", "speed=3"], "sma_cross: unknown parameter 'speed'"),
        (["--strategy", "sma_cross", "--param", "fast=1"], "sma_cross: parameter fast must be an integer in [2, 500], got 1"),
        (["--strategy", "sma_cross", "--param", "fast=70"], "sma_cross: fast must be < slow"),
        (["--strategy", "sma_cross", "--param", "fast"], "--param 'fast': expected NAME=VALUE"),
        (["--strategy", "sma_cross", "--param", "=3"], "--param '=3': expected NAME=VALUE"),
        (["--strategy", "sma_cross", "--param", "fast=ten"], "sma_cross: parameter fast expects an integer, got 'ten'"),
        (["--strategy", "sma_cross", "--param", "fast=5", "--param", "fast=6"], "--param fast given twice"),
        (["--strategy", "bollinger_breakout", "--param", "k=wide"], "bollinger_breakout: parameter k expects a number"),
        (["--strategy", "sma_cross", "--fee", "1.5"], "fee must be a number in [0, 1)"),
        (["--strategy", "sma_cross", "--size", "2"], "size must be a number in (0, 1]"),
        (["--strategy", "sma_cross", "--fee", "abc"], "argument --fee: invalid float value"),
        (["--strategy", "sma_cross", "--fill", "open"], "argument --fill: invalid choice"),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    code, out, err = genesis(capsys, "--data", SPEC, *args)
    assert code == 2
    assert out == ""
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_missing_data_or_strategy(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = genesis(capsys, "--strategy", "sma_cross")
    assert code == 2 and "--data SPEC is required" in err
    code, _, err = genesis(capsys, "--data", SPEC)
    assert code == 2 and "--strategy NAME is required" in err


GOOD_CSV = "timestamp,open,high,low,close,volume\n" + "".join(
    f"{1_700_000_000 + 60 * i},{100 + i},{101 + i},{99 + i},{100.5 + i},10\n" for i in range(60)
)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("missing_column.csv", GOOD_CSV.replace(",close", ",price")),
        ("unsorted.csv", GOOD_CSV.replace(f"{1_700_000_000 + 60 * 5},", f"{1_700_000_000 + 60 * 50},", 1)),
        ("duplicate.csv", GOOD_CSV.replace(f"{1_700_000_000 + 60 * 6},", f"{1_700_000_000 + 60 * 5},", 1)),
        ("negative.csv", GOOD_CSV.replace(",100.5,", ",-100.5,", 1)),
        ("zero.csv", GOOD_CSV.replace(",100,101,", ",0,101,", 1)),
        ("text.csv", GOOD_CSV.replace(",100.5,", ",abc,", 1)),
        ("empty.csv", ""),
        # the source sniffs the delimiter; a header and rows that disagree are an error
        ("mixed_delimiters.csv", GOOD_CSV.split("\n", 1)[0] + "\n" + GOOD_CSV.split("\n", 1)[1].replace(",", ";")),
    ],
)
def test_bad_csv_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str, text: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    code, out, err = genesis(capsys, "--data", f"csv:{path}", "--strategy", "sma_cross", "--json")
    assert code == 2, (out, err)
    assert out == ""
    assert err.startswith("genesis: ") and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_good_csv_runs(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "good.csv"
    path.write_text(GOOD_CSV)
    code, out, err = genesis(capsys, "--data", f"csv:{path}", "--strategy", "sma_cross",
                             "--param", "fast=3", "--param", "slow=7", "--json")
    assert code == 0, err
    assert json.loads(out)["data"]["bars"] == 60


def test_real_process_exit_codes() -> None:
    """The installed entry point: exit 0 with JSON on stdout; exit 2 with one stderr line."""
    command = [sys.executable, "-m", "genesis_tui.cli", "backtest", "--data", "synthetic:bars=500,seed=1",
               "--strategy", "sma_cross", "--param", "fast=5", "--param", "slow=20", "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["metrics"]["final_value"] > 0
    done = subprocess.run([*command[:-5], "--param", "fast=500", "--param", "slow=20"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip() == "genesis: sma_cross: fast must be < slow, got fast=500, slow=20"
