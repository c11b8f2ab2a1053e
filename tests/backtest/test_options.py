"""``BacktestOptions``: validation in one place, and one record from every front end to the kernel.

The record is built once by ``genesis backtest``, the study file's ``[backtest]``
and the paper loop's config, and must reach ``run``/``run_many``, the
optimizer's workers and the paper broker unchanged (the same object, or an
equal one after pickling to a worker process).
"""

from __future__ import annotations

import argparse
import math
import pickle
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

import engine.backtest
from engine.backtest import OPTION_NAMES, OPTIONS, BacktestOptions, OptionError, run, run_many
from engine.backtest import api as backtest_api
from engine.backtest.options import override
from engine.data import load
from engine.errors import ConfigError, InputError
from engine.optimize.spec import load_study
from genesis_tui.cli import main

SPEC = "synthetic:bars=600,seed=3,timeframe=1m"
#: Every option set to a value other than its default.
CUSTOM = BacktestOptions(
    fee=0.001, slippage=0.0005, fill="close", direction="both", size=0.5, cash=2_500.0,
    stop_loss=0.02, take_profit=0.05, trailing_stop=0.03, sizing="risk", risk=0.01, allocation="shared",
    max_positions=2.0, funding="false",
)  # fmt: skip


def _bad_values(name: str) -> list[Any]:
    info = OPTIONS[name]
    if info.choices:
        return ["sideways", 1, None, True]
    values: list[Any] = [math.nan, -math.inf, math.inf, "0.1", True, None, info.low - 0.5]
    if info.low_open:
        values.append(info.low)
    if math.isfinite(info.high):
        values.append(info.high + 0.5)
        if info.high_open:
            values.append(info.high)
    return values


BAD = [(name, value) for name in OPTION_NAMES for value in _bad_values(name)]


# --------------------------------------------------------------------------- the record


def test_every_option_differs_from_its_default_in_custom() -> None:
    # The cross-front-end tests below use CUSTOM: a field left at its default would prove nothing.
    assert BacktestOptions.__struct_fields__ == OPTION_NAMES
    for name in OPTION_NAMES:
        assert getattr(CUSTOM, name) != getattr(BacktestOptions(), name), name


@pytest.mark.parametrize(("name", "value"), BAD, ids=[f"{n}={v!r}" for n, v in BAD])
def test_each_bad_value_is_refused_naming_its_key(name: str, value: Any) -> None:
    with pytest.raises(OptionError) as caught:
        BacktestOptions(**{name: value})
    message = str(caught.value)
    assert message.startswith(f"{name} must be "), message
    assert "\n" not in message
    assert isinstance(caught.value, InputError)
    # The same rule when a valid record is changed (a searched option in a trial).
    with pytest.raises(OptionError, match=f"^{name} must be "):
        CUSTOM.replace(**{name: value})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"fee": 1.0}, "fee must be a number in [0, 1), got 1.0"),
        ({"size": 0}, "size must be a number in (0, 1], got 0.0"),
        ({"cash": math.inf}, "cash must be a number in (0, inf), got inf"),
        ({"take_profit": math.nan}, "take_profit must be a number in [0, inf), got nan"),
        ({"fill": "open"}, "fill must be one of next_open, close, got 'open'"),
        ({"direction": "up"}, "direction must be one of long, short, both, got 'up'"),
    ],
)
def test_messages_say_what_was_expected(values: dict[str, Any], message: str) -> None:
    with pytest.raises(OptionError) as caught:
        BacktestOptions(**values)
    assert str(caught.value) == message


def test_edges_of_each_interval() -> None:
    ok = BacktestOptions(fee=0.0, slippage=0.999, size=1.0, cash=1e-9, stop_loss=0.0, take_profit=1e6)
    assert (ok.size, ok.take_profit) == (1.0, 1e6)


def test_numbers_are_stored_as_python_floats() -> None:
    options = BacktestOptions(cash=5_000, size=np.float32(0.5), fee=np.float64(0.001), take_profit=np.int64(2))
    for name in ("cash", "size", "fee", "take_profit"):
        assert type(getattr(options, name)) is float, name
    assert options == BacktestOptions(cash=5_000.0, size=0.5, fee=0.001, take_profit=2.0)


def test_the_record_is_frozen_and_hashable() -> None:
    with pytest.raises(AttributeError):
        CUSTOM.fee = 0.5  # type: ignore[misc]
    assert hash(CUSTOM) == hash(CUSTOM.replace())
    assert CUSTOM.replace() is CUSTOM  # nothing to change: the same record
    assert {CUSTOM, CUSTOM.replace(fee=0.001)} == {CUSTOM}


def test_unknown_names_are_refused_naming_them() -> None:
    with pytest.raises(OptionError, match=r"unknown backtest option 'leverage' \(known: fee, slippage,"):
        BacktestOptions.of(leverage=2.0)
    with pytest.raises(OptionError, match="unknown backtest option 'stoploss'"):
        CUSTOM.replace(stoploss=0.1)
    with pytest.raises(OptionError, match="options must be a BacktestOptions, got dict"):
        BacktestOptions.of({"fee": 0.1})  # type: ignore[arg-type]


def test_of_builds_overrides_and_keeps_the_base() -> None:
    assert BacktestOptions.of() == BacktestOptions()
    assert BacktestOptions.of(CUSTOM) is CUSTOM
    changed = BacktestOptions.of(CUSTOM, fee=0.002)
    assert changed.fee == 0.002 and changed.replace(fee=CUSTOM.fee) == CUSTOM


# --------------------------------------------------------------------------- per-trial overrides


def test_override_validates_each_distinct_set_once() -> None:
    memo: dict[Any, BacktestOptions] = {}
    assert override(CUSTOM, {}, memo) is CUSTOM
    a = override(CUSTOM, {"stop_loss": 0.03}, memo)
    assert a == CUSTOM.replace(stop_loss=0.03)
    assert override(CUSTOM, {"stop_loss": 0.03}, memo) is a  # memoised: no second validation
    assert override(CUSTOM, {"stop_loss": 0.04}, memo) is not a
    assert len(memo) == 2
    with pytest.raises(OptionError, match=r"^stop_loss must be a number in"):
        override(CUSTOM, {"stop_loss": 1.5}, memo)


def test_worker_split_passes_only_the_options_a_trial_changes() -> None:
    from engine.optimize.trial import WorkerSetup, split_params

    setup = WorkerSetup(
        "sma_cross", fixed={"slow": 40}, backtest=CUSTOM,
        routes={"risk.stop_loss": ("backtest", "stop_loss"), "fast": ("strategy", "fast")},
    )  # fmt: skip
    assert split_params({"fast": 5, "risk.stop_loss": CUSTOM.stop_loss}, setup) == ({"slow": 40, "fast": 5}, {})
    assert split_params({"fast": 5, "risk.stop_loss": 0.07, "fee": 0.003}, setup) == (
        {"slow": 40, "fast": 5},
        {"stop_loss": 0.07, "fee": 0.003},
    )


# --------------------------------------------------------------------------- run / run_many / run_signals


def test_options_record_and_keywords_give_the_same_backtest() -> None:
    bars = load(SPEC)
    params = {"fast": 5, "slow": 20}
    by_record = run(bars, "sma_cross", params, options=CUSTOM)
    by_keywords = run(bars, "sma_cross", params, **CUSTOM.as_dict())
    assert by_record.options is CUSTOM
    assert by_keywords.options == CUSTOM
    assert by_record.metrics == by_keywords.metrics
    mixed = run(bars, "sma_cross", params, options=CUSTOM, fee=0.0)
    assert mixed.options == CUSTOM.replace(fee=0.0)
    many = run_many(bars, "sma_cross", [params, {**params, "stop_loss": 0.01}], options=CUSTOM)
    again = run_many(bars, "sma_cross", [params, {**params, "stop_loss": 0.01}], **CUSTOM.as_dict())
    np.testing.assert_array_equal(many, again)
    single = run(bars, "sma_cross", params, options=CUSTOM.replace(stop_loss=0.01))
    assert many[1].tolist() == [float(v) for v in single.metrics.as_dict().values()]


def test_run_refuses_an_unknown_keyword_naming_it() -> None:
    with pytest.raises(OptionError, match="unknown backtest option 'stop_los'"):
        run(load(SPEC), "sma_cross", {}, stop_los=0.1)


# --------------------------------------------------------------------------- the study file


def _study(tmp_path: Path, backtest: str, space_extra: str = "") -> Path:
    path = tmp_path / "s.toml"
    path.write_text(
        f'[data]\nspec = "{SPEC}"\n[strategy]\nname = "sma_cross"\n'
        f'[space]\nfast = {{ choice = [5, 8] }}\nslow = {{ choice = [20, 30] }}\n{space_extra}'
        f"[backtest]\n{backtest}\n[execution]\nbackend = \"inline\"\n"
    )
    return path


def _toml(options: BacktestOptions) -> str:
    return "\n".join(f"{k} = {v!r}" if isinstance(v, str) else f"{k} = {v}" for k, v in options.as_dict().items())


def test_backtest_table_round_trips_into_the_record(tmp_path: Path) -> None:
    spec = load_study(_study(tmp_path, _toml(CUSTOM)))
    assert type(spec.backtest) is BacktestOptions
    assert spec.backtest == CUSTOM
    assert load_study(_study(tmp_path, "")).backtest == BacktestOptions()


def test_unknown_key_in_the_backtest_table_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"s\.toml: backtest\.leverage: unknown key$"):
        load_study(_study(tmp_path, "leverage = 2.0"))


@pytest.mark.parametrize(("name", "value"), [(n, v) for n, v in BAD if isinstance(v, float)])
def test_bad_value_in_the_backtest_table_is_one_line_naming_the_key(tmp_path: Path, name: str, value: float) -> None:
    text = "nan" if math.isnan(value) else ("inf" if value == math.inf else "-inf" if value == -math.inf else repr(value))
    with pytest.raises(ConfigError) as caught:
        load_study(_study(tmp_path, f"{name} = {text}"))
    message = str(caught.value)
    assert "\n" not in message
    if math.isfinite(value):
        assert f"s.toml: backtest: {name} must be a number in {OPTIONS[name].interval}" in message, message
    else:  # refused while the file is read, before the record sees it
        assert f"s.toml: backtest.{name}: expected a finite number, got {text}" in message, message


def test_searched_option_values_follow_the_same_rules(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"space\.stop_loss: stop_loss must be a number in \[0, 1\), got 1\.0"):
        load_study(_study(tmp_path, "", "stop_loss = { choice = [0.0, 1.0] }\n"))
    with pytest.raises(ConfigError, match=r"space\.cash: cash must be a number in \(0, inf\), got 0\.0"):
        load_study(_study(tmp_path, "", "cash = 0\n"))
    with pytest.raises(ConfigError, match=r"space\.size: size must be a number in \(0, 1\], got 2\.0"):
        load_study(_study(tmp_path, "", "size = { float = [0.5, 2.0], step = 0.5 }\n"))


async def test_a_study_hands_its_record_to_the_workers_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.optimize import Study

    seen: list[tuple[Any, list[dict[str, Any]]]] = []
    real = engine.backtest.run_many

    def spy(bars: Any, strategy: str, sets: Any, **kwargs: Any) -> Any:
        sets = list(sets)
        seen.append((kwargs.get("options"), sets))
        return real(bars, strategy, sets, **kwargs)

    monkeypatch.setattr(engine.backtest, "run_many", spy)
    path = _study(tmp_path, _toml(CUSTOM), "stop_loss = { choice = [0.02, 0.03] }\n")
    study = Study.from_file(path, db=tmp_path / "s.db", backend="inline")
    summary = await study.run()
    assert summary.complete == 8
    assert seen, "run_many was never called"
    # The very record the spec decoded: no dict, no copy on the way (inline: same process).
    assert all(options is study.spec.backtest for options, _ in seen)
    overrides = [{k: v for k, v in s.items() if k in OPTIONS} for _, sets in seen for s in sets]
    # Only a searched value that differs from [backtest] travels with the trial.
    assert {tuple(o.items()) for o in overrides} <= {(), (("stop_loss", 0.03),)}
    assert (("stop_loss", 0.03),) in {tuple(o.items()) for o in overrides}


def test_a_worker_process_receives_an_equal_record() -> None:
    from engine.optimize.trial import WorkerSetup

    setup = WorkerSetup("sma_cross", backtest=CUSTOM)
    # The process backend pickles the setup to its workers; dask scatters it (pickle, or cloudpickle).
    shipped = pickle.loads(pickle.dumps(setup))
    assert type(shipped.backtest) is BacktestOptions
    assert shipped.backtest == CUSTOM and hash(shipped.backtest) == hash(CUSTOM)
    cloudpickle = pytest.importorskip("cloudpickle")
    assert cloudpickle.loads(cloudpickle.dumps(setup)).backtest == CUSTOM


# --------------------------------------------------------------------------- the command line


def _parser() -> argparse.ArgumentParser:
    from genesis_tui.commands import backtest as command

    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return parser


def _flags(options: BacktestOptions) -> list[str]:
    return [item for k, v in options.as_dict().items() for item in (OPTIONS[k].flag, str(v))]


def test_cli_flags_round_trip_into_the_record() -> None:
    from genesis_tui.commands.backtest import options_from_args

    assert options_from_args(_parser().parse_args([])) == BacktestOptions()  # the flags' defaults
    assert options_from_args(_parser().parse_args(_flags(CUSTOM))) == CUSTOM
    names = {action.dest for action in _parser()._actions}
    assert set(OPTION_NAMES) <= names  # one flag per option, generated from the record
    assert "--stop-loss" in _parser().format_help()


def test_cli_hands_the_record_to_the_kernel(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[BacktestOptions] = []
    real = backtest_api.simulate

    def spy(bars: Any, inputs: Any, options: BacktestOptions, **kwargs: Any) -> Any:
        seen.append(options)
        return real(bars, inputs, options, **kwargs)

    monkeypatch.setattr(backtest_api, "simulate", spy)
    code = main(["backtest", "--data", SPEC, "--strategy", "sma_cross", *_flags(CUSTOM), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert seen == [CUSTOM]
    assert msgspec.json.decode(out)["options"] == CUSTOM.as_dict()


def test_cli_bad_flag_value_is_one_line_naming_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["backtest", "--data", SPEC, "--strategy", "sma_cross", "--take-profit", "inf"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.strip().endswith("take_profit must be a number in [0, inf), got inf")
    assert len(err.strip().splitlines()) == 1


# --------------------------------------------------------------------------- the paper loop


async def test_paper_loop_passes_its_record_to_broker_and_risk_manager() -> None:
    from engine.live import LoopConfig, PaperTradingLoop, RegistrySignals, ReplayFeed, replay

    bars = load(SPEC)
    loop = PaperTradingLoop(ReplayFeed(bars), RegistrySignals("sma_cross", {"fast": 5, "slow": 20}), LoopConfig(CUSTOM))
    assert loop.broker.options is CUSTOM and loop.risk.options is CUSTOM
    assert loop.portfolio.cash == CUSTOM.cash
    by_record = await replay(bars, "sma_cross", {"fast": 5, "slow": 20}, options=CUSTOM)
    by_keywords = await replay(bars, "sma_cross", {"fast": 5, "slow": 20}, **CUSTOM.as_dict())
    assert by_record.final_equity == by_keywords.final_equity
    assert by_record.trades == by_keywords.trades
    reference = run(bars, "sma_cross", {"fast": 5, "slow": 20}, options=CUSTOM)
    assert math.isclose(by_record.final_equity, reference.metrics.final_value, rel_tol=1e-9)


def test_paper_config_table_decodes_into_the_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.live import load_loop_config

    path = tmp_path / "config.toml"
    path.write_text(f"[paper.backtest]\n{_toml(CUSTOM)}\n")
    monkeypatch.setenv("GENESIS_CONFIG", str(path))
    assert load_loop_config().backtest == CUSTOM
    path.write_text("[paper.backtest]\ncash = -1\n")
    with pytest.raises(ConfigError, match=r"\[paper\]: backtest: cash must be a number in \(0, inf\), got -1\.0$"):
        load_loop_config()
