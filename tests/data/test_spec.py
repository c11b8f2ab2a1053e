"""Data-spec parsing and typed options: every bad spec is one line naming the spec."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.data import DataSpec, load, parse_spec
from engine.data.spec import (
    check_options,
    epoch_scale,
    option_bool,
    option_float,
    option_int,
    option_timeframe,
    option_timestamp,
    parse_timestamp,
)
from engine.errors import DataError

WHERE = "data spec 'x'"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("synthetic:bars=10,seed=3", DataSpec("synthetic", "", {"bars": "10", "seed": "3"})),
        ("synthetic:", DataSpec("synthetic", "", {})),
        ("synthetic", DataSpec("synthetic", "", {})),
        ("SYNTHETIC: bars = 5 ", DataSpec("synthetic", "", {"bars": "5"})),
        ("csv:data/prices.csv", DataSpec("csv", "data/prices.csv", {})),
        ("csv:data/a,b.csv,timeframe=1h", DataSpec("csv", "data/a,b.csv", {"timeframe": "1h"})),
        ("parquet:/x/y.parquet,symbol=BTC,strict=yes", DataSpec("parquet", "/x/y.parquet", {"symbol": "BTC", "strict": "yes"})),
        ("hyperliquid:BTC,interval=1h,start=2024-01-01", DataSpec("hyperliquid", "BTC", {"interval": "1h", "start": "2024-01-01"})),
        ("prices.csv", DataSpec("csv", "prices.csv", {})),
        ("dir/prices.parquet,timeframe=1d", DataSpec("parquet", "dir/prices.parquet", {"timeframe": "1d"})),
    ],
)
def test_parse_spec(text: str, expected: DataSpec) -> None:
    spec = parse_spec(text)
    assert (spec.kind, spec.target, spec.options) == (expected.kind, expected.target, expected.options)
    assert spec.text == text.strip()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty; expected synthetic:"),
        ("foo:bar", "data spec 'foo:bar': unknown source 'foo:'; expected synthetic:bars=N,seed=S, csv:PATH"),
        ("prices.xlsx", "no source prefix; expected synthetic:"),
        ("csv:", "data spec 'csv:': expected a path after 'csv:'"),
        ("hyperliquid:", "expected a coin such as BTC after 'hyperliquid:'"),
        ("synthetic:bars=10,bars=20", "option bars given twice"),
        ("synthetic:bars=", "option bars has no value"),
        ("synthetic:bars=10,oops", "expected key=value options separated by commas, got 'oops'"),
        ("synthetic:bars=10,", "expected key=value options separated by commas, got ''"),
    ],
)
def test_parse_spec_errors(text: str, message: str) -> None:
    with pytest.raises(DataError) as caught:
        parse_spec(text)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("synthetic:bars=abc", "data spec 'synthetic:bars=abc': option bars: expected a whole number, got 'abc'"),
        ("synthetic:bars=1.5", "option bars: expected a whole number, got '1.5'"),
        ("synthetic:bars=0", "option bars: expected a value >= 1, got '0'"),
        ("synthetic:seed=-1", "option seed: expected a value >= 0, got '-1'"),
        ("synthetic:vol=nan", "option vol: expected a finite number, got 'nan'"),
        ("synthetic:timeframe=5x", "option timeframe: expected a timeframe such as 1m, 15m, 1h, 4h, 1d, 1w, 1M, got '5x'"),
        ("synthetic:start=yesterday", "option start: expected an ISO date such as 2024-01-31"),
        ("synthetic:start=0001-01-01", "option start: expected a time between 1677 and 2262, got '0001-01-01'"),
        ("synthetic:start=1e400", "option start: expected a time between 1677 and 2262, got '1e400'"),
        ("csv:x.csv,end=99999999999999999999999", "option end: expected a time between 1677 and 2262"),
        ("synthetic:regimes=maybe", "option regimes: expected true or false, got 'maybe'"),
        ("synthetic:bars=10,colour=red", "unknown option 'colour' (expected one of: bars, seed, timeframe"),
        ("csv:x.csv,color=red", "data spec 'csv:x.csv,color=red': unknown option 'color' (expected one of: timeframe, symbol, strict, start, end, delimiter)"),
        ("parquet:x.parquet,delimiter=tab", "unknown option 'delimiter'"),
    ],
)
def test_load_rejects_bad_options(spec: str, message: str) -> None:
    with pytest.raises(DataError) as caught:
        load(spec)
    assert message in str(caught.value)


def test_numbers_accept_underscores_and_exponents() -> None:
    assert option_int({"bars": "1_000_000"}, "bars", WHERE, default=1) == 1_000_000
    assert option_int({"bars": "1e6"}, "bars", WHERE, default=1) == 1_000_000
    assert option_int({}, "bars", WHERE, default=7) == 7
    assert option_float({"vol": "0.25"}, "vol", WHERE, default=1.0, maximum=1.0) == 0.25
    with pytest.raises(DataError, match="option vol: expected a value <= 1, got '2'"):
        option_float({"vol": "2"}, "vol", WHERE, default=1.0, maximum=1.0)


@pytest.mark.parametrize(("raw", "value"), [("true", True), ("YES", True), ("1", True), ("off", False), ("0", False)])
def test_option_bool(raw: str, value: bool) -> None:
    assert option_bool({"k": raw}, "k", WHERE, default=not value) is value


def test_option_timeframe_and_check_options() -> None:
    assert option_timeframe({"timeframe": "4h"}, "timeframe", WHERE, default="1m") == "4h"
    assert option_timeframe({}, "timeframe", WHERE, default="1m") == "1m"
    check_options({"a": "1"}, ("a", "b"), WHERE)
    with pytest.raises(DataError, match=r"data spec 'x': unknown option 'c' \(expected one of: a, b\)"):
        check_options({"c": "1"}, ("a", "b"), WHERE)


@pytest.mark.parametrize(
    ("raw", "ns"),
    [
        ("2024-01-01", 1_704_067_200_000_000_000),
        ("2024-01-01T00:00:00Z", 1_704_067_200_000_000_000),
        ("2024-01-01 02:00:00+02:00", 1_704_067_200_000_000_000),
        ("2024-01-01T00:00:00.5", 1_704_067_200_500_000_000),
        ("1704067200", 1_704_067_200_000_000_000),
        ("1704067200.25", 1_704_067_200_250_000_000),
        ("1704067200000", 1_704_067_200_000_000_000),
        ("1704067200000000", 1_704_067_200_000_000_000),
        ("1704067200123456789", 1_704_067_200_123_456_789),
    ],
)
def test_parse_timestamp(raw: str, ns: int) -> None:
    assert parse_timestamp(raw) == ns
    assert option_timestamp({"start": raw}, "start", WHERE, default=None) == ns


def test_epoch_scale_boundaries() -> None:
    assert epoch_scale(0) == 1_000_000_000
    assert epoch_scale(9.9e10) == 1_000_000_000
    assert epoch_scale(1.7e12) == 1_000_000
    assert epoch_scale(1.7e15) == 1_000
    assert epoch_scale(1.7e18) == 1


def test_hyperliquid_dispatches_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    """``hyperliquid:`` goes to engine.data.hyperliquid.load_hyperliquid(coin, options, progress=...)."""
    import sys
    import types

    seen: list[tuple[str, dict[str, str]]] = []
    fake = types.ModuleType("engine.data.hyperliquid")

    def load_hyperliquid(coin: str, options: dict[str, str], *, progress: object = None) -> object:
        seen.append((coin, options))
        return "bars"

    fake.load_hyperliquid = load_hyperliquid  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "engine.data.hyperliquid", fake)
    assert load("hyperliquid:ETH,interval=4h,start=2024-01-01") == "bars"
    assert seen == [("ETH", {"interval": "4h", "start": "2024-01-01"})]


_KEYS = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True)
_VALUES = st.from_regex(r"[A-Za-z0-9.:+_-]{1,12}", fullmatch=True)


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(["synthetic", "csv", "parquet", "hyperliquid"]),
    target=st.from_regex(r"[A-Za-z0-9_./-]{1,20}(,[A-Za-z0-9_./-]{1,8})?", fullmatch=True),
    options=st.dictionaries(_KEYS, _VALUES, max_size=5),
)
def test_parse_spec_round_trips(kind: str, target: str, options: dict[str, str]) -> None:
    """Formatting a spec and parsing it back gives the same kind, target and options."""
    text = kind + ":" + ("" if kind == "synthetic" else target)
    pieces = [f"{key}={value}" for key, value in options.items()]
    if pieces:
        text += ("" if kind == "synthetic" else ",") + ",".join(pieces)
    spec = parse_spec(text)
    assert spec.kind == kind
    assert spec.target == ("" if kind == "synthetic" else target)
    assert spec.options == options


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=60))
def test_any_text_parses_or_raises_one_line_data_error(text: str) -> None:
    """parse_spec, the synthetic options reader and small simulations never fail any other way."""
    from engine.data.sources.synthetic import params_from_spec, simulate

    for candidate in (text, "synthetic:" + text, "synthetic:bars=5," + text):
        try:
            spec = parse_spec(candidate)
            if spec.kind == "synthetic":
                params = params_from_spec(spec)
                if params.bars <= 1000:
                    simulate(params)
        except DataError as error:
            assert "\n" not in str(error) or "\n" in candidate


_SYNTHETIC_OPTIONS = st.sampled_from(
    ["seed", "timeframe", "start", "symbol", "price", "vol", "drift", "jumps", "jump_size", "regimes",
     "calm_days", "stress_days", "volume"]
)
_OPTION_VALUES = st.one_of(
    st.from_regex(r"[0-9eE.+-]{1,25}", fullmatch=True),
    st.from_regex(r"[0-9]{1,4}[smhdwM]", fullmatch=True),
    st.from_regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2})?", fullmatch=True),
    st.text(alphabet="abcXYZ_.:", min_size=1, max_size=8),
)


@settings(max_examples=200, deadline=None)
@given(options=st.dictionaries(_SYNTHETIC_OPTIONS, _OPTION_VALUES, max_size=6), bars=st.integers(1, 500))
def test_any_synthetic_options_load_or_raise_one_data_error(options: dict[str, str], bars: int) -> None:
    text = f"synthetic:bars={bars}" + "".join(f",{key}={value}" for key, value in options.items())
    try:
        result = load(text)
    except DataError as error:
        assert str(error).startswith(f"data spec {text!r}: ")
    else:
        assert len(result) == bars
