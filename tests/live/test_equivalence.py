"""The loop and the kernels are two implementations of one semantics: for every
registered strategy the paper-trading loop's trades and final equity equal
``engine.backtest.run()``'s to 1e-9 relative."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from engine.backtest import EXIT_REASONS, STRATEGIES, Param, run
from engine.data.bars import Bars
from engine.errors import StrategyError
from engine.live import LoopResult, replay
from tests.backtest import gen
from tests.backtest import reference as ref
from tests.backtest.test_strategies import SMALL_PARAMS, KernelIndicators
from tests.live.conftest import hypothesis_bars

REL = 1e-9


def _param_strategy(p: Param) -> st.SearchStrategy[Any]:
    if p.kind == "int":
        return st.integers(int(p.low), int(min(p.high, 30)))
    if p.kind == "float":
        return st.floats(p.low, p.high, allow_nan=False)
    return st.sampled_from(p.choices)


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=REL, abs_tol=1e-9)


def assert_same(
    loop: LoopResult, bars: Bars, strategy: str, params: dict[str, Any], options: dict[str, Any]
) -> None:
    ref = run(bars, strategy, params, trades=True, **options)
    records = ref.trades
    assert len(loop.trades) == len(records), (len(loop.trades), len(records))
    for got, want in zip(loop.trades, records, strict=True):
        assert (got.entry_idx, got.exit_idx, got.direction) == (
            int(want["entry_idx"]),
            int(want["exit_idx"]),
            int(want["direction"]),
        )
        assert got.exit_reason == EXIT_REASONS[int(want["exit_reason"])]
        for field, key in [
            ("units", "units"),
            ("entry_price", "entry_price"),
            ("exit_price", "exit_price"),
            ("entry_fee", "entry_fee"),
            ("exit_fee", "exit_fee"),
            ("pnl", "pnl"),
            ("ret", "return"),
        ]:
            assert close(getattr(got, field), float(want[key])), (
                field,
                getattr(got, field),
                float(want[key]),
            )
    assert close(loop.final_equity, ref.metrics.final_value), (
        loop.final_equity,
        ref.metrics.final_value,
    )
    closed = [t for t in loop.trades if t.exit_reason != "open"]
    assert len(closed) == ref.metrics.trades


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data(), bars=hypothesis_bars())
async def test_loop_equals_backtest(strategy: str, data: st.DataObject, bars: Bars) -> None:
    spec = STRATEGIES[strategy]
    params = {p.name: data.draw(_param_strategy(p), label=p.name) for p in spec.params}
    try:
        params = spec.validate(params)
    except StrategyError:
        assume(False)
    options = {
        "fee": data.draw(st.sampled_from([0.0, 0.0005, 0.003]), label="fee"),
        "slippage": data.draw(st.sampled_from([0.0, 0.0002, 0.002]), label="slippage"),
        "fill": data.draw(st.sampled_from(["next_open", "close"]), label="fill"),
        "direction": data.draw(st.sampled_from(["long", "short", "both"]), label="direction"),
        "size": data.draw(st.sampled_from([1.0, 0.5]), label="size"),
        "stop_loss": data.draw(st.sampled_from([0.0, 0.01, 0.03]), label="stop_loss"),
        "take_profit": data.draw(st.sampled_from([0.0, 0.02, 0.05]), label="take_profit"),
        "trailing_stop": data.draw(st.sampled_from([0.0, 0.01, 0.04]), label="trailing_stop"),
    }
    if options["stop_loss"] and data.draw(st.booleans(), label="risk sizing"):
        options.update(sizing="risk", risk=data.draw(st.sampled_from([0.005, 0.02]), label="risk"))
    result = await replay(bars, strategy, params, **options)
    assert result.bars == len(bars)
    assert_same(result, bars, strategy, params, options)


@pytest.mark.parametrize("strategy", sorted(SMALL_PARAMS))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data(), bars=st.one_of(hypothesis_bars(), gen.grid_bars(min_size=20, max_size=80)))
async def test_loop_equals_the_pure_python_reference(strategy: str, data: st.DataObject, bars: Bars) -> None:
    """An oracle that shares no rule code with the loop: the docs' rules and fills written in plain
    Python (tests/backtest/reference.py), on the kernels' indicators so that ties are exact.
    The grid bars make fast and slow lines touch often; a touch is no cross."""
    params = SMALL_PARAMS[strategy]
    options = {
        "fee": data.draw(st.sampled_from([0.0, 0.001]), label="fee"),
        "fill": data.draw(st.sampled_from(["next_open", "close"]), label="fill"),
        "direction": data.draw(st.sampled_from(["long", "short", "both"]), label="direction"),
    }
    result = await replay(bars, strategy, params, **options)
    o, h, l, c = (getattr(bars, k).tolist() for k in ("open", "high", "low", "close"))  # noqa: E741
    entries, exits = ref.signals(strategy, params, o, h, l, c, ind=KernelIndicators)
    equity, trades, _ = ref.simulate(o, h, l, c, entries, exits, **options)
    got = [(t.entry_idx, t.exit_idx, t.direction, t.exit_reason) for t in result.trades]
    assert got == [(t["entry_idx"], t["exit_idx"], t["direction"], t["exit_reason"]) for t in trades]
    assert close(result.final_equity, equity[-1]), (result.final_equity, equity[-1])


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
async def test_defaults_on_a_longer_series(strategy: str) -> None:
    """Default parameters over 600 bars: enough for every warm-up to finish and trade."""
    bars = _long_bars()
    options = {
        "fee": 0.001,
        "slippage": 0.0005,
        "fill": "next_open",
        "direction": "both",
        "stop_loss": 0.02,
    }
    result = await replay(bars, strategy, None, **options)
    assert_same(result, bars, strategy, STRATEGIES[strategy].defaults(), options)


def _long_bars() -> Bars:
    import numpy as np

    from tests.live.conftest import bars_from

    rng = np.random.default_rng(7)
    close_ = (100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, 600)))).tolist()
    return bars_from(
        close_,
        gap=rng.normal(0.0, 0.002, 600).tolist(),
        wick=np.abs(rng.normal(0.0, 0.006, 600)).tolist(),
    )


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
async def test_no_look_ahead(strategy: str) -> None:
    """Rewriting the future leaves every decision before it unchanged."""
    import numpy as np

    base = _long_bars()
    n, cut = len(base), 400
    rng = np.random.default_rng(99)
    cols = {k: getattr(base, k).copy() for k in ("open", "high", "low", "close")}
    path = base.close[cut - 1] * np.exp(np.cumsum(rng.normal(0.0, 0.03, n - cut)))
    cols["open"][cut:] = path * (1 + rng.normal(0.0, 0.01, n - cut))
    cols["close"][cut:] = path
    cols["high"][cut:] = np.maximum(cols["open"][cut:], path) * 1.004
    cols["low"][cut:] = np.minimum(cols["open"][cut:], path) * 0.996
    other = Bars(
        ts=base.ts, volume=base.volume, symbol=base.symbol, timeframe=base.timeframe, **cols
    )
    for k in ("open", "high", "low", "close"):  # the same past, a different future
        assert np.array_equal(getattr(other, k)[:cut], getattr(base, k)[:cut])
    options = {"fee": 0.001, "fill": "next_open", "direction": "both", "stop_loss": 0.03}
    a = await replay(base.slice(0, n), strategy, None, **options)
    b = await replay(other, strategy, None, **options)
    before = lambda r: [t for t in r.trades if t.exit_idx < cut and t.exit_reason != "open"]  # noqa: E731
    assert before(a) == before(b)
    assert [t.entry_idx for t in a.trades if t.entry_idx < cut] == [
        t.entry_idx for t in b.trades if t.entry_idx < cut
    ]
