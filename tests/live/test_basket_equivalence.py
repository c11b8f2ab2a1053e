"""The basket paper loop (one feed per symbol on one bus) equals the basket backtest trade for trade,
under both allocations (shared cash included), on baskets with missing bars."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.backtest import EXIT_REASONS, run_portfolio
from engine.bus import EventBus
from engine.data import Bars, align
from engine.live.basket import replay_basket
from tests.live.conftest import hypothesis_bars

REL = 1e-9


@st.composite
def baskets(draw: st.DrawFn) -> list[Bars]:
    """2 or 3 symbols, each a random walk with some of its bars missing (the timeline has holes)."""
    out = []
    for k in range(draw(st.integers(2, 3))):
        bars = draw(hypothesis_bars(min_size=40, max_size=120))
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        keep = rng.random(len(bars)) >= draw(st.sampled_from([0.0, 0.15]))
        keep[:2] = True
        columns = {name: array[keep] for name, array in bars.columns().items()}
        out.append(Bars(**columns, symbol=f"S{k}", timeframe=bars.timeframe))
    return out


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=REL, abs_tol=1e-9)


def assert_same(loop: object, members: list[Bars], params: dict, options: dict) -> None:
    ref = run_portfolio(members, "sma_cross", params, trades=True, **options)
    assert ref.trades is not None
    want = sorted(ref.trades.tolist(), key=lambda r: (r[0], r[1]))  # (symbol, entry_idx, ...)
    names = ref.trades.dtype.names
    got = sorted(loop.trades, key=lambda t: (ref.symbols.index(t.symbol), t.entry_idx))  # type: ignore[attr-defined]
    assert len(got) == len(want), (len(got), len(want))
    for trade, row in zip(got, want, strict=True):
        record = dict(zip(names, row, strict=True))
        assert (ref.symbols.index(trade.symbol), trade.entry_idx, trade.exit_idx, trade.direction) == (
            record["symbol"], record["entry_idx"], record["exit_idx"], record["direction"])
        assert trade.exit_reason == EXIT_REASONS[record["exit_reason"]]
        for field, key in (("units", "units"), ("entry_price", "entry_price"), ("exit_price", "exit_price"),
                           ("entry_fee", "entry_fee"), ("exit_fee", "exit_fee"), ("pnl", "pnl"), ("ret", "return")):
            assert _close(getattr(trade, field), record[key]), (field, getattr(trade, field), record[key])
    assert _close(loop.final_equity, ref.metrics.final_value), (loop.final_equity, ref.metrics.final_value)  # type: ignore[attr-defined]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data(), members=baskets())
async def test_the_basket_loop_equals_the_basket_backtest(data: st.DataObject, members: list[Bars]) -> None:
    params = {"fast": data.draw(st.integers(2, 5), label="fast"), "slow": data.draw(st.integers(6, 14), label="slow")}
    options = {
        "allocation": data.draw(st.sampled_from(["shared", "split"]), label="allocation"),
        "max_positions": data.draw(st.integers(0, len(members)), label="max_positions"),
        "fee": data.draw(st.sampled_from([0.0, 0.001]), label="fee"),
        "slippage": data.draw(st.sampled_from([0.0, 0.0005]), label="slippage"),
        "fill": data.draw(st.sampled_from(["next_open", "close"]), label="fill"),
        "direction": data.draw(st.sampled_from(["long", "short", "both"]), label="direction"),
        "size": data.draw(st.sampled_from([1.0, 0.5]), label="size"),
        "stop_loss": data.draw(st.sampled_from([0.0, 0.01, 0.03]), label="stop_loss"),
        "take_profit": data.draw(st.sampled_from([0.0, 0.05]), label="take_profit"),
        "trailing_stop": data.draw(st.sampled_from([0.0, 0.02]), label="trailing_stop"),
    }
    if options["stop_loss"] and data.draw(st.booleans(), label="risk sizing"):
        options.update(sizing="risk", risk=0.01)
    result = await replay_basket(members, "sma_cross", params, **options)
    assert result.allocation == options["allocation"] and result.symbols == tuple(b.symbol for b in members)
    assert_same(result, members, params, options)


async def test_the_feeds_share_one_bus_and_fills_go_out_on_it() -> None:
    from engine.data import load_basket

    members = load_basket("synthetic:bars=600,seed=4,timeframe=1h,symbols=3")
    bus = EventBus()
    await bus.start()
    seen: list[str] = []
    fills: list[object] = []
    bus.subscribe("market.bar.#", lambda event: seen.append(event.topic), name="watch")
    bus.subscribe("fills.#", lambda event: fills.append(event.payload), name="fills")
    try:
        result = await replay_basket(align(members), "sma_cross", {"fast": 5, "slow": 20}, bus=bus,
                                     allocation="shared", max_positions=2, fee=0.001)  # fmt: skip
    finally:
        await bus.stop(drain=True)
    assert {topic.split(".")[2] for topic in seen} == {"synth1", "synth2", "synth3"}
    assert len(seen) == 3 * 600
    assert len(fills) == len(result.trades) + sum(t.exit_reason != "open" for t in result.trades) > 0
    assert_same(result, members, {"fast": 5, "slow": 20}, {"allocation": "shared", "max_positions": 2, "fee": 0.001})


@pytest.mark.parametrize("allocation", ["shared", "split"])
async def test_the_basket_paper_loop_run_to_the_end_equals_the_backtest_and_reports_each_symbol(
    allocation: str,
) -> None:
    from engine.backtest import BacktestOptions
    from engine.data import load_basket
    from engine.live import BasketPaperLoop, LoopConfig

    members = load_basket("synthetic:bars=500,seed=9,timeframe=1h,symbols=3")
    options = {"allocation": allocation, "fee": 0.001, "max_positions": 2}
    loop = BasketPaperLoop(members, "sma_cross", {"fast": 5, "slow": 20}, LoopConfig(BacktestOptions(**options)))
    result = await loop.run()
    assert_same(result, members, {"fast": 5, "slow": 20}, options)
    state = result.state
    assert not state.running and state.finished and result.bars == state.bars_seen == 500
    assert [m.symbol for m in state.members] == list(result.symbols)
    closed = [t for t in result.trades if t.exit_reason != "open"]
    for member in state.members:  # each symbol's row adds up its own closed trades
        mine = [t for t in closed if t.symbol == member.symbol]
        assert member.trades == len(mine) > 0
        assert math.isclose(member.realized_pnl, sum(t.pnl for t in mine), rel_tol=1e-9, abs_tol=1e-9)
        still_open = [t for t in result.trades if t.symbol == member.symbol and t.exit_reason == "open"]
        assert member.side == (still_open[0].direction if still_open else 0)
    assert math.isclose(state.equity, result.final_equity) and state.equity_curve[-1] == pytest.approx(state.equity)


async def test_a_killed_shared_basket_flattens_every_symbol_and_opens_nothing_more() -> None:
    from engine.backtest import BacktestOptions
    from engine.data import load_basket
    from engine.live import BasketPaperLoop, LoopConfig

    members = load_basket("synthetic:bars=400,seed=3,timeframe=1h,symbols=3")
    config = LoopConfig(BacktestOptions(allocation="shared", fee=0.001))
    loop = BasketPaperLoop(members, "sma_cross", {"fast": 3, "slow": 8}, config, bars_per_s=100_000)
    task = asyncio.create_task(loop.run())
    while loop.state().bars_seen < 150 or not any(m.side for m in loop.state().members):
        await asyncio.sleep(0)  # the replay moves on between these yields
        assert not task.done()
    loop.kill("test")
    killed = loop.state()
    assert killed.risk.kill_switch and not any(m.side for m in killed.members)
    assert killed.fills[-1].reason == "kill"
    result = await task
    assert not [t for t in result.trades if t.entry_idx >= killed.bars_seen]  # nothing entered after the kill
    assert math.isclose(result.final_equity, result.cash)


async def test_a_killed_split_basket_flattens_every_symbol_s_loop() -> None:
    from engine.backtest import BacktestOptions
    from engine.data import load_basket
    from engine.live import BasketPaperLoop, LoopConfig
    from tests.waiting import until

    members = load_basket("synthetic:bars=400,seed=3,timeframe=1h,symbols=3")
    config = LoopConfig(BacktestOptions(allocation="split", fee=0.001))
    loop = BasketPaperLoop(members, "sma_cross", {"fast": 3, "slow": 8}, config, bars_per_s=500)
    task = asyncio.create_task(loop.run())
    await until(lambda: sum(bool(m.side) for m in loop.state().members) >= 2, "two open positions")
    loop.kill("test")
    await until(lambda: loop.state().risk.kill_switch and not any(m.side for m in loop.state().members), "the kill")
    assert loop.state().risk.message == "test"
    result = await task
    assert math.isclose(result.final_equity, result.cash) and not any(t.exit_reason == "open" for t in result.trades)
