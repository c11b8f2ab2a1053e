"""User strategies: declared with @strategy, loaded by content, run by the existing kernel,
equal bit for bit to the built-ins they restate, with errors naming the user's file and line."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from engine.backtest import METRIC_NAMES, STRATEGIES, get_strategy, run, run_many
from engine.backtest.nb import signals_nb
from engine.data import Bars, load
from engine.errors import StrategyError
from engine.strategy import (
    IndicatorCache,
    Param,
    StrategyCodeError,
    StrategyLoadError,
    StrategySource,
    load_source,
    load_spec,
    strategy,
    ta,
    user_strategies,
)
from engine.strategy.check import check
from genesis_tui.cli import main
from tests.strategy.conftest import FILES

CLEAN = f"{FILES / 'clean.py'}"
FAULTY = f"{FILES / 'faulty.py'}"


@pytest.fixture(scope="module")
def bars() -> Bars:
    return load("synthetic:bars=5000,seed=11,timeframe=1h")


def metrics_bits(result: object) -> list[int]:
    metrics = result.metrics  # type: ignore[attr-defined]
    return np.array([float(getattr(metrics, name)) for name in METRIC_NAMES]).view(np.uint64).tolist()


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"fee": 0.001, "slippage": 0.0005, "direction": "both"},
        {"fill": "close", "stop_loss": 0.02, "take_profit": 0.05, "direction": "short"},
    ],
)
@pytest.mark.parametrize("params", [{"fast": 10, "slow": 50}, {"fast": 3, "slow": 7}, {"fast": 40, "slow": 200}])
def test_user_sma_cross_equals_the_builtin_bit_for_bit(bars: Bars, params: dict, options: dict) -> None:
    user = run(bars, f"{CLEAN}:sma_cross", params, equity=True, trades=True, **options)
    builtin = run(bars, "sma_cross", params, equity=True, trades=True, **options)
    assert int(builtin.metrics.trades) > 0
    assert metrics_bits(user) == metrics_bits(builtin)
    assert user.trades.tobytes() == builtin.trades.tobytes()
    assert user.equity.tobytes() == builtin.equity.tobytes()


def test_run_many_of_a_user_strategy_equals_run_and_shares_the_cache(bars: Bars) -> None:
    record = load_spec(f"{CLEAN}:sma_cross")
    sets = [{"fast": f, "slow": s} for f in (5, 10) for s in (20, 40, 80)]
    cache = IndicatorCache()
    rows = run_many(bars, record, sets, cache=cache, fee=0.001)
    for row, params in zip(rows, sets, strict=True):
        assert row.view(np.uint64).tolist() == metrics_bits(run(bars, "sma_cross", params, fee=0.001))
    assert len(cache) == 5  # each distinct window computed once: 5, 10, 20, 40, 80


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_builtins_written_with_ta_give_their_fused_rules_signals(bars: Bars, name: str) -> None:
    spec = STRATEGIES[name]
    values = spec.validate(None)
    inputs = spec.kernel_inputs(bars, values, IndicatorCache())
    want = signals_nb(inputs.kind, bars.close, inputs.a, inputs.b, inputs.p0, inputs.p1)
    got = spec.signals(bars, values)
    assert got[0].any() and got[1].any()
    assert got[0].tolist() == want[0].tolist() and got[1].tolist() == want[1].tolist()


def test_a_record_defined_in_python_runs_directly(bars: Bars) -> None:
    @strategy(params=[Param.int("window", 20, 2, 100), Param.choice("side", "up", ["up", "down"])], lookback="window")
    def breakout(bars: Bars, window: int, side: str) -> tuple[np.ndarray, np.ndarray]:
        """Close crosses its SMA."""
        s = ta.sma(bars.close, window)
        up, down = ta.crossed_above(bars.close, s), ta.crossed_below(bars.close, s)
        return (up, down) if side == "up" else (down, up)

    assert breakout.description == "Close crosses its SMA."
    assert breakout.lookback_bars({"window": 30}) == 30
    assert breakout.file == __file__ and breakout.line > 0
    result = run(bars, breakout, {"side": "down"})
    assert result.strategy == "breakout" and result.params == {"window": 20, "side": "down"}
    with pytest.raises(StrategyError, match="must be one of up, down"):
        run(bars, breakout, {"side": "sideways"})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"params": [Param.int("fast", 10, 2, 5)]}, "fast must be an integer in"),
        ({"params": [Param.int("fast", 1, 2, 5)], "constraints": []}, "fast must be an integer in"),
        ({"params": [Param.int("fast", 3, 2, 5)], "constraints": ["fast < 2 * slow"]}, "must be NAME OP NAME"),
        ({"params": [Param.int("fast", 3, 2, 5)], "constraints": ["fast < slow"]}, "names 'slow', not a parameter"),
        ({"params": [Param.int("fast", 3, 2, 5)], "lookback": "fast ** 2"}, "lookback 'fast \\*\\* 2' must be a sum"),
        ({"params": [Param.float("fast", 3.0, 2, 5)], "lookback": "fast"}, "not an int parameter"),
        ({"params": [Param.int("fast", 3, 2, 5), Param.int("fast", 3, 2, 5)]}, "declared twice"),
        ({"params": [Param.int("slow", 3, 2, 5)]}, "does not take parameter 'slow'"),
        ({"params": []}, "argument 'fast' is not a declared parameter"),
    ],
)
def test_declarations_are_checked_when_decorated(kwargs: dict, message: str) -> None:
    def cross(bars: Bars, fast: int) -> None: ...

    with pytest.raises(StrategyError, match=message) as caught:
        strategy(**kwargs)(cross)
    assert f"{__file__}:" in str(caught.value)


def test_lookback_expressions() -> None:
    @strategy(params=[Param.int("slow", 10, 2, 50), Param.int("signal", 3, 1, 9)], lookback="3*slow + signal + 2")
    def f(bars: Bars, slow: int, signal: int) -> None: ...

    assert f.lookback_bars({"slow": 20, "signal": 4}) == 66


def test_source_is_loaded_by_content(private_folders: Path) -> None:
    path = private_folders / "mine.py"
    path.write_text((FILES / "clean.py").read_text() + f"\n# {private_folders}\n")  # content new to this process
    first = load_spec(f"{path}:sma_cross")
    assert first.file == str(path) and first.source is not None
    copy = private_folders / "cache" / "genesis" / "strategies" / first.source.hash / "mine.py"
    assert copy.read_text() == path.read_text()
    assert first.function.__code__.co_filename == str(copy)
    assert load_spec(f"{path}:sma_cross").function is first.function  # imported once per content
    path.write_text(path.read_text() + "\n# edited\n")
    edited = load_spec(f"{path}:sma_cross")
    assert edited.source.hash != first.source.hash and edited.function is not first.function
    # A worker gets (path, text, hash) and imports the same module.
    src = StrategySource(first.source.path, first.source.text, first.source.hash)
    assert load_source(src).sma_cross.function is first.function


def test_the_strategies_folder_is_found_by_name(private_folders: Path, bars: Bars) -> None:
    folder = private_folders / "config" / "genesis" / "strategies"
    folder.mkdir(parents=True)
    (folder / "mine.py").write_text((FILES / "clean.py").read_text())
    assert set(user_strategies()) == {"sma_cross", "momentum", "donchian_prev"}
    assert get_strategy("momentum").file == str(folder / "mine.py")
    assert get_strategy("sma_cross") is STRATEGIES["sma_cross"]  # a built-in's name is not shadowed
    run(bars, "momentum", {"window": 30})
    (folder / "other.py").write_text((FILES / "clean.py").read_text().replace("# ", "#  "))
    with pytest.raises(StrategyError, match="defined in both"):
        get_strategy("momentum")
    (folder / "other.py").unlink()
    with pytest.raises(StrategyError, match="unknown strategy 'nope'"):
        get_strategy("nope")


def test_spec_errors() -> None:
    with pytest.raises(StrategyLoadError, match=r"missing\.py: not found"):
        load_spec("missing.py:x")
    with pytest.raises(StrategyError, match="no strategy named 'nope' \\(defined: sma_cross, momentum, donchian_prev\\)"):
        load_spec(f"{CLEAN}:nope")
    with pytest.raises(StrategyError, match="name the strategy"):
        load_spec(CLEAN)


# -------------------------------------------------------------- errors


def faulty(name: str) -> str:
    return f"{FAULTY}:{name}"


def line_of(text: str) -> int:
    return next(i for i, line in enumerate((FILES / "faulty.py").read_text().splitlines(), 1) if text in line)


@pytest.mark.parametrize(
    ("name", "pattern"),
    [
        ("raises", r"faulty.py:{raises}: raises\(window=5\) raised KeyError: 'missing'"),
        ("not_a_pair", r"faulty.py:\d+: not_a_pair\(window=5\) must return \(entries, exits\), two bool arrays; got ndarray"),
        ("floats", r"faulty.py:\d+: floats\(window=5\): entries has dtype float64, expected bool"),
        ("too_short", r"faulty.py:\d+: too_short\(window=5\): entries has shape \(4999,\), expected \(5000,\)"),
        ("two_dimensional", r"two_dimensional\(window=5\): entries has shape \(5000, 2\), expected \(5000,\)"),
        (
            "untypable",
            r"faulty.py:{untypable}: untypable\(window=5\): numba cannot compile it; run as plain Python it raises "
            r"(UFuncTypeError|TypeError|numpy\S*): ",
        ),
        ("python_only", r"faulty.py:{python_only}: python_only\(window=5\): numba cannot compile it \(TypingError\): "),
    ],
)
def test_code_errors_name_the_file_line_and_params(bars: Bars, name: str, pattern: str) -> None:
    lines = {
        "raises": line_of('{}["missing"]'),
        "untypable": line_of('x[i] + "label"'),
        "python_only": line_of('d[2] = "text"'),
    }
    with pytest.raises(StrategyCodeError) as caught:
        run(bars, faulty(name), {"window": 5})
    message = str(caught.value)
    assert "\n" not in message
    assert re.search(pattern.format(**lines), message), message
    assert str(FILES / "faulty.py") in message and "genesis_strategy_" not in message


def test_code_errors_exit_2_at_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["backtest", "--data", "synthetic:bars=500,seed=1", "--strategy", faulty("raises")])
    err = capsys.readouterr().err
    assert code == 2
    line = line_of('{}["missing"]')
    assert err.count("\n") == 1 and f"faulty.py:{line}: raises(window=5) raised KeyError" in err


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("x = 1\ndef f(:\n", r"bad.py:2: SyntaxError: "),
        ("import numpy\n\nraise RuntimeError('boom')\n", r"bad.py:3: cannot be imported: RuntimeError: boom"),
        ("import no_such_module_here\n", r"bad.py:1: cannot be imported: ModuleNotFoundError: "),
        (
            "from engine.strategy import Param, strategy\n\n@strategy(params=[Param.int('w', 1, 2, 3)])\ndef f(bars, w):\n    pass\n",
            r"bad.py:3: strategy f: parameter w must be an integer in \[2, 3\], got 1",
        ),
    ],
)
def test_a_file_that_cannot_be_imported_is_one_line_exit_2(
    private_folders: Path, capsys: pytest.CaptureFixture[str], text: str, pattern: str
) -> None:
    path = private_folders / "bad.py"
    path.write_text(text)
    with pytest.raises(StrategyLoadError, match=pattern):
        load_spec(f"{path}:f")
    code = main(["backtest", "--data", "synthetic:bars=100,seed=1", "--strategy", f"{path}:f"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and re.search(pattern, err) and "Traceback" not in err


def test_check_of_a_record_uses_its_signals(bars: Bars) -> None:
    report = check(load_spec(f"{CLEAN}:sma_cross"), bars, {"fast": 5, "slow": 30}, fast=True)
    assert report.clean and report.lookback == 30 and report.windows > 0 and report.cuts > 0
