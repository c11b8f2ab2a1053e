"""``genesis backtest`` over a basket: --data repeated, the portfolio and each symbol."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

GENESIS = [sys.executable, "-m", "genesis_tui.cli"]
A = "synthetic:bars=3000,seed=1,symbol=AAA"
B = "synthetic:bars=3000,seed=2,symbol=BBB"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GENESIS, "backtest", *args], capture_output=True, text=True, timeout=300)


def _json(*args: str) -> dict:
    result = _run(*args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_split_basket_is_the_sum_of_its_symbols_on_their_share_of_the_cash() -> None:
    common = ("--strategy", "sma_cross", "--param", "fast=5", "--param", "slow=30", "--fee", "0.001",
              "--trailing-stop", "0.02")
    basket = _json("--data", A, "--data", B, *common, "--cash", "10000")
    singles = [_json("--data", spec, *common, "--cash", "5000") for spec in (A, B)]
    assert basket["allocation"] == "split" and set(basket["symbols"]) == {"AAA", "BBB"}
    total = sum(single["metrics"]["final_value"] for single in singles)
    assert math.isclose(basket["metrics"]["final_value"], total, rel_tol=1e-9)
    assert [basket["symbols"][s]["trades"] for s in ("AAA", "BBB")] == [s["metrics"]["trades"] for s in singles]


def test_a_shared_basket_reports_every_symbol() -> None:
    report = _json("--data", A, "--data", B, "--strategy", "sma_cross", "--allocation", "shared",
                   "--max-positions", "1")
    assert report["allocation"] == "shared" and report["options"]["max_positions"] == 1.0
    contributions = sum(row["return_contribution"] for row in report["symbols"].values())
    assert math.isclose(contributions, report["metrics"]["total_return"], rel_tol=1e-9, abs_tol=1e-12)


@pytest.mark.parametrize(("extra", "expected"), [
    (("--data", "synthetic:bars=3000,seed=3,symbol=CCC,timeframe=1h"), "timeframe"),
    (("--data", A), "appears twice"),
    (("--max-positions", "1.5"), "max_positions must be a whole number"),
])
def test_bad_baskets_are_one_line_and_exit_2(extra: tuple[str, ...], expected: str) -> None:
    result = _run("--data", A, "--data", B, "--strategy", "sma_cross", *extra)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and expected in result.stderr, result.stderr
