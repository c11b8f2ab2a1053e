"""``genesis compare``: studies of one store side by side (a store written directly, no backtests)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.errors import InputError
from engine.optimize.compare import comparison_from_db, distribution, quantile
from engine.store.records import TrialRecord, TrialState
from engine.store.study_sqlite import SqliteStore

GENESIS = [sys.executable, "-m", "genesis_tui.cli"]

SPEC = """name = "{name}"
[data]
spec = "synthetic:bars=500,seed=1"
[strategy]
name = "sma_cross"
[space]
fast = {{ int = [2, 10] }}
[search]
sampler = "random"
objective = "{objective}"
"""


def _trial(number: int, value: float | None, state: TrialState = TrialState.COMPLETE) -> TrialRecord:
    metrics = None if value is None else {"sharpe": value, "total_return": value / 10, "trades": 7}
    return TrialRecord(number, f"k{number}", {"fast": number}, state, metrics, value, 0.0, 0.01, "w0",
                       None if state is TrialState.COMPLETE else "boom")


async def _write(db: Path, objective: str = "sharpe") -> None:
    store = await SqliteStore.open(db)
    try:
        alpha = await store.create_study("alpha", SPEC.format(name="alpha", objective="sharpe"))
        await store.add_trials(alpha.id, [_trial(i, float(i)) for i in range(1, 102)])  # 1..101
        await store.add_trials(alpha.id, [_trial(200, None, TrialState.FAILED)])
        beta = await store.create_study("beta", SPEC.format(name="beta", objective=objective))
        await store.add_trials(beta.id, [_trial(i, -float(i)) for i in range(1, 6)])
        await store.flush()
    finally:
        await store.close()


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    db = tmp_path / "store.db"
    asyncio.run(_write(db))
    return db


def test_quantiles_interpolate_between_ranks() -> None:
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert quantile([5.0], 0.95) == 5.0
    d = distribution([3.0, None, float("nan"), 1.0, 2.0])
    assert d["count"] == 3 and d["p50"] == 2.0 and d["min"] == 1.0 and d["max"] == 3.0 and d["mean"] == 2.0
    assert distribution([])["p50"] is None


def test_each_study_gets_its_best_trial_counts_and_objective_distribution(store_path: Path) -> None:
    comparison = asyncio.run(comparison_from_db(store_path, ["alpha", "beta"]))
    alpha, beta = comparison["studies"]
    assert (alpha["study"], beta["study"]) == ("alpha", "beta")  # in the order asked
    assert alpha["best"]["number"] == 101 and alpha["best"]["objective"] == 101.0
    assert alpha["counts"] == {"complete": 101, "failed": 1, "pruned": 0} and alpha["trials"] == 102
    dist = alpha["objective_distribution"]
    assert dist["count"] == 101 and dist["p05"] == 6.0 and dist["p50"] == 51.0 and dist["p95"] == 96.0
    assert beta["best"]["number"] == 1 and beta["objective_distribution"]["max"] == -1.0
    assert alpha["validation"] is None and comparison["notes"] == []


def test_different_objectives_are_said_to_not_compare(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    asyncio.run(_write(db, objective="calmar"))
    comparison = asyncio.run(comparison_from_db(db, ["alpha", "beta"]))
    assert comparison["notes"] and "calmar" in comparison["notes"][0] and "sharpe" in comparison["notes"][0]


def test_one_study_or_a_repeated_one_is_bad_input(store_path: Path) -> None:
    with pytest.raises(InputError, match="at least two"):
        asyncio.run(comparison_from_db(store_path, ["alpha"]))
    with pytest.raises(InputError, match="named twice"):
        asyncio.run(comparison_from_db(store_path, ["alpha", "alpha"]))


def test_the_command_prints_text_markdown_and_json(store_path: Path) -> None:
    def genesis(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*GENESIS, "compare", "alpha", "beta", "--db", str(store_path), *args],
                              capture_output=True, text=True, timeout=120)

    text = genesis()
    assert text.returncode == 0, text.stderr
    rows = {line.split("  ")[0].strip(): line for line in text.stdout.splitlines()}
    assert rows["best trial"].split()[-2:] == ["#101", "#1"]
    assert rows["objective p50"].split()[-2:] == ["51", "-3"]
    md = genesis("--format", "md")
    assert md.returncode == 0 and "| | `alpha` | `beta` |" in md.stdout and "| complete | 101 | 5 |" in md.stdout
    js = genesis("--format", "json")
    assert [s["study"] for s in json.loads(js.stdout)["studies"]] == ["alpha", "beta"]


@pytest.mark.parametrize("names", [["alpha", "nope"], ["alpha"]])
def test_unknown_study_or_too_few_is_one_line_exit_2(store_path: Path, names: list[str]) -> None:
    result = subprocess.run([*GENESIS, "compare", *names, "--db", str(store_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
