"""genesis check: strategies that cheat in the usual ways are caught, causal ones pass."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.backtest import STRATEGIES
from engine.data import Bars, load
from engine.strategy import load_spec
from engine.strategy.check import check
from genesis_tui.cli import main
from tests.strategy.conftest import FILES

CHEATS = FILES / "cheats.py"
CLEAN = FILES / "clean.py"
EXAMPLES = Path(__file__).parents[2] / "examples" / "strategies"


@pytest.fixture(scope="module")
def bars() -> Bars:
    return load("synthetic:bars=3000,seed=1,timeframe=1h")


@pytest.mark.parametrize("name", ["rolled", "centred", "normalised", "shifted_wrong_way"])
@pytest.mark.parametrize("fast", [False, True])
def test_look_ahead_is_caught(bars: Bars, name: str, fast: bool) -> None:
    report = check(load_spec(f"{CHEATS}:{name}"), bars, fast=fast)
    assert not report.clean
    first = report.first()
    assert first is not None and first.kind == "look-ahead"
    assert first.full != first.other
    assert "reads later bars" in report.hint(first)


def test_a_too_short_lookback_is_caught(bars: Bars) -> None:
    report = check(load_spec(f"{CHEATS}:short_lookback"), bars)
    assert report.count("look-ahead") == 0 and report.count("lookback") > 0
    first = report.first()
    assert first is not None and first.history == 11  # the bar and its declared 10 bars of history
    assert "declare a longer lookback" in report.hint(first)
    # Declaring the history it needs makes it clean.
    assert check(load_spec(f"{CLEAN}:sma_cross"), bars, {"fast": 10, "slow": 50}).clean


@pytest.mark.parametrize("name", ["sma_cross", "momentum", "donchian_prev"])
def test_causal_strategies_are_clean(bars: Bars, name: str) -> None:
    report = check(load_spec(f"{CLEAN}:{name}"), bars)
    assert report.clean and report.cuts >= 40 and report.windows >= 200


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_builtins_are_clean_with_their_declared_lookback(bars: Bars, name: str) -> None:
    assert check(STRATEGIES[name], bars, fast=True).clean


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.py")), ids=lambda p: p.stem)
def test_every_example_passes_genesis_check(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from engine.strategy import StrategySource, strategies_in

    names = list(strategies_in(StrategySource.read(path)))
    assert names
    for name in names:
        assert main(["check", f"{path}:{name}"]) == 0, capsys.readouterr()


def test_cli_exit_codes_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", f"{CLEAN}:sma_cross", "--param", "fast=5", "--param", "slow=30", "--fast"]) == 0
    assert "clean" in capsys.readouterr().out
    assert main(["check", f"{CHEATS}:rolled"]) == 4
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cheats.py:" in err and "look-ahead at bar" in err
    assert main(["check", f"{CHEATS}:short_lookback", "--json"]) == 4
    report = json.loads(capsys.readouterr().out)
    assert report["clean"] is False and report["look_ahead_bars"] == [] and report["lookback_bars"]
    assert report["first"]["kind"] == "lookback" and report["first"]["bar"] == report["lookback_bars"][0]
    assert main(["check", "no_such_strategy"]) == 2
    assert main(["check", f"{CLEAN}:sma_cross", "--param", "fast=90"]) == 2  # fast < slow


def test_new_strategy_writes_a_template_that_runs_and_passes(private_folders: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["new", "strategy", "my_idea"]) == 0
    path = private_folders / "config" / "genesis" / "strategies" / "my_idea.py"
    text = path.read_text()
    assert "@strategy(" in text and "def my_idea(bars" in text
    assert main(["check", "my_idea"]) == 0
    assert main(["backtest", "--strategy", "my_idea", "--data", "synthetic:bars=2000,seed=1", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(out)["strategy"] == "my_idea"
    assert main(["backtest", "--list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["my_idea"]["file"] == str(path) and listed["sma_cross"]["builtin"] is True
    assert main(["new", "strategy", "my_idea"]) == 2  # never overwritten
    assert path.read_text() == text
    assert "already exists" in capsys.readouterr().err
    assert main(["new", "strategy", "../escape"]) == 2
    assert main(["new", "strategy", "not-an-identifier"]) == 2
    assert sorted(p.name for p in path.parent.iterdir()) == ["my_idea.py"]
