"""The paper loop runs a user's strategy over its declared lookback and equals the backtest trade for trade."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.data import load
from engine.data.bars import Bars
from engine.errors import StrategyError
from engine.live import UserSignals, replay, signals_for
from engine.strategy import Param, strategy, ta
from engine.strategy.loader import load_spec
from tests.live.test_equivalence import assert_same, hypothesis_bars
from tests.strategy.conftest import FILES

CLEAN = f"{FILES / 'clean.py'}"


@pytest.mark.parametrize(("name", "params"), [("sma_cross", {"fast": 3, "slow": 9}), ("momentum", {"window": 5})])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), bars=hypothesis_bars())
async def test_loop_equals_backtest_for_a_user_strategy(name: str, params: dict, data: st.DataObject,
                                                        bars: Bars) -> None:
    record = load_spec(f"{CLEAN}:{name}")
    options: dict[str, Any] = {
        "fee": data.draw(st.sampled_from([0.0, 0.001]), label="fee"),
        "fill": data.draw(st.sampled_from(["next_open", "close"]), label="fill"),
        "direction": data.draw(st.sampled_from(["long", "short", "both"]), label="direction"),
        "stop_loss": data.draw(st.sampled_from([0.0, 0.02]), label="stop_loss"),
    }
    result = await replay(bars, record, params, **options)
    assert result.bars == len(bars)
    assert_same(result, bars, record, params, options)  # type: ignore[arg-type]


def test_a_user_strategy_gets_the_window_its_lookback_declares() -> None:
    record = load_spec(f"{CLEAN}:sma_cross")
    source = signals_for(record, {"fast": 3, "slow": 9})
    assert isinstance(source, UserSignals) and source.window == 9 + 1 + UserSignals.MARGIN


def test_a_strategy_without_a_lookback_is_refused_by_the_loop() -> None:
    @strategy(params=[Param.int("window", 5, 2, 50)])
    def no_lookback(bars: Bars, window: int) -> Any:
        s = ta.sma(bars.close, window)
        return ta.crossed_above(bars.close, s), ta.crossed_below(bars.close, s)

    with pytest.raises(StrategyError, match="needs the strategy's lookback"):
        signals_for(no_lookback, {"window": 5})


async def test_a_user_strategy_in_the_loop_sees_the_feeds_symbol_and_timeframe() -> None:
    seen: set[tuple[str, str]] = set()

    @strategy(params=[Param.int("window", 3, 2, 50)], lookback="window")
    def labelled(bars: Bars, window: int) -> Any:
        seen.add((bars.symbol, bars.timeframe))
        s = ta.sma(bars.close, window)
        return ta.crossed_above(bars.close, s), ta.crossed_below(bars.close, s)

    bars = load("synthetic:bars=40,seed=3,timeframe=1h,symbol=ETH")
    await replay(bars, labelled, {"window": 3})
    assert seen == {("ETH", "1h")}
