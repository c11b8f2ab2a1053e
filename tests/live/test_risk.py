"""Risk actions: a stop-loss on the CRITICAL lane, the drawdown circuit breaker
refusing new orders, the kill switch; operator controls; the state snapshot."""

from __future__ import annotations

import asyncio
import dataclasses
import math

import numpy as np
import pytest

from engine.backtest import BacktestOptions, run_signals
from engine.bus import EventBus, Lane
from engine.live import ArraySignals, LoopConfig, PaperTradingLoop, ReplayFeed, RiskConfig
from tests.live.conftest import bars_from


def array_source(n: int, entries: list[int], exits: list[int]) -> ArraySignals:
    e = np.zeros(n, dtype=bool)
    x = np.zeros(n, dtype=bool)
    e[entries] = True
    x[exits] = True
    # the source only ever sees the prefix: it indexes by how many bars it was given
    return ArraySignals("arr", lambda o, h, lo, c, v: (e[: c.shape[0]], x[: c.shape[0]]))


def record(bus: EventBus, pattern: str) -> list[tuple[str, Lane, object]]:
    seen: list[tuple[str, Lane, object]] = []
    bus.subscribe(pattern, lambda ev: seen.append((ev.topic, ev.lane, ev.payload)))
    return seen


async def run_loop(bars, source, config, bus: EventBus | None = None, hook=None, **feed: float):
    own = bus is None
    bus = bus or EventBus()
    await bus.start()
    loop = PaperTradingLoop(ReplayFeed(bars, **feed), source, config, bus=bus)
    if hook is not None:
        bus.subscribe("market.bar.#", lambda ev: hook(loop, ev.payload))
    result = await loop.run()
    await bus.join()
    if own:
        await bus.stop()
    return loop, result


async def test_stop_loss_fires_on_the_critical_lane() -> None:
    close = [100.0] * 4 + [101.0, 99.5, 94.0, 95.0, 96.0, 97.0]
    bars = bars_from(close, wick=[0.001] * 10)
    n = len(close)
    bus = EventBus()
    stops = record(bus, "risk.#")
    fills = record(bus, "fills.*")
    cfg = LoopConfig(BacktestOptions(fee=0.001, slippage=0.0005, stop_loss=0.03))
    loop, result = await run_loop(bars, array_source(n, [2], []), cfg, bus)
    await bus.stop()
    assert [(t, lane) for t, lane, _ in stops] == [(loop.topics.stop, Lane.CRITICAL)]
    assert loop.topics.stop == f"risk.{loop.name}.stop"
    trade = result.trades[0]
    entry_fill = bars.open[3] * 1.0005
    stop = entry_fill * 0.97
    assert (trade.entry_idx, trade.exit_idx, trade.exit_reason) == (3, 6, "stop_loss")
    assert trade.exit_price == pytest.approx(min(bars.open[6], stop) * (1 - 0.0005), rel=1e-12)
    assert [f.reason for _, _, f in fills] == ["signal", "stop_loss"]
    assert loop.state().risk.stops_hit == 1 and loop.state().side == 0
    # and it is what the backtester does with the same signals
    e = np.zeros(n, dtype=bool)
    e[2] = True
    ref = run_signals(
        bars, e, np.zeros(n, dtype=bool), trades=True, fee=0.001, slippage=0.0005, stop_loss=0.03
    )
    assert int(ref.trades[0]["exit_idx"]) == 6 and math.isclose(
        result.final_equity, ref.metrics.final_value, rel_tol=1e-12
    )


async def test_circuit_breaker_trips_and_refuses_new_orders() -> None:
    close = [
        100.0,
        100.0,
        100.0,
        98.0,
        95.0,
        93.0,
        94.0,
        95.0,
        96.0,
        97.0,
        98.0,
        99.0,
        100.0,
        101.0,
    ]
    bars = bars_from(close)
    n = len(close)
    bus = EventBus()
    actions = record(bus, "risk.*.breaker")
    rejected = record(bus, "orders.*.rejected")
    cfg = LoopConfig(risk=RiskConfig(max_drawdown=0.05))
    # long from bar 2's signal; the slide trips the breaker; exit at bar 8 is allowed
    # (it only closes); the entries at bars 10 and 11 are refused
    loop, result = await run_loop(bars, array_source(n, [1, 10, 11], [8]), cfg, bus)
    await bus.stop()
    assert [(t, lane) for t, lane, _ in actions] == [(loop.topics.breaker, Lane.CRITICAL)]
    assert actions[0][2].index == 4  # 95 / 100 - 1 = -5% at bar 4's close
    state = loop.state()
    assert state.risk.breaker == "open" and state.risk.halted and "drawdown" in state.risk.message
    assert [(t.entry_idx, t.exit_idx, t.exit_reason) for t in result.trades] == [(2, 9, "signal")]
    assert len(rejected) == 2 and {o.status for _, _, o in rejected} == {"rejected"}
    assert state.side == 0


async def test_kill_switch_flattens_and_halts() -> None:
    close = [100.0 + i for i in range(12)]
    bars = bars_from(close)
    n = len(close)
    bus = EventBus()
    kills = record(bus, "control.*.kill")

    def hook(loop: PaperTradingLoop, bar) -> None:
        if bar.index == 5:
            loop.kill("operator pressed K")

    cfg = LoopConfig(BacktestOptions(fee=0.001))
    loop, result = await run_loop(bars, array_source(n, [1, 6, 8], [7]), cfg, bus, hook)
    await bus.stop()
    assert [(t, lane) for t, lane, _ in kills] == [(loop.topics.control + ".kill", Lane.CRITICAL)]
    assert [(t.entry_idx, t.exit_idx, t.exit_reason) for t in result.trades] == [(2, 5, "kill")]
    assert result.trades[0].exit_price == pytest.approx(bars.close[5])
    state = loop.state()
    assert state.risk.kill_switch and state.risk.halted and state.side == 0
    assert state.risk.message == "operator pressed K"
    assert sum(o.status == "rejected" for o in state.orders) == 2  # the entries at bars 6 and 8


@pytest.mark.parametrize("pace", [0.0, 1e6], ids=["pumped", "iterated"])
async def test_stop_and_pause_commands(pace: float) -> None:
    bars = bars_from([100.0 + math.sin(i / 3) for i in range(40)])
    n = len(bars.close)
    paused_seen: list[bool] = []

    def hook(loop: PaperTradingLoop, bar) -> None:
        if bar.index == 5:
            loop.pause()
            asyncio.get_running_loop().call_later(
                0.01, lambda: (paused_seen.append(loop.state().paused), loop.resume())
            )
        if bar.index == 20:
            loop.stop()

    _loop, result = await run_loop(
        bars, array_source(n, [], []), LoopConfig(), None, hook, bars_per_s=pace
    )
    assert paused_seen == [True]
    assert result.bars == 21 and result.state.finished and not result.state.running


async def test_state_is_an_immutable_bounded_snapshot() -> None:
    bars = bars_from([100.0 + (i % 7) for i in range(300)])
    n = len(bars.close)
    cfg = LoopConfig(equity_points=25, recent=4)
    entries = list(range(3, n, 14))
    exits = list(range(10, n, 14))
    _loop, result = await run_loop(bars, array_source(n, entries, exits), cfg)
    state = result.state
    assert len(state.equity_curve) == 25 and state.equity_curve[-1] == result.final_equity
    assert len(state.orders) == 4 and len(state.fills) == 4
    assert state.bars_seen == state.bars_total == 300
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.cash = 0.0  # type: ignore[misc]
    assert state.trades == len([t for t in result.trades if t.exit_reason != "open"])


async def test_feed_replays_every_bar_in_order_when_paced() -> None:
    bars = bars_from([100.0 + i for i in range(30)])
    got = [bar.index async for bar in ReplayFeed(bars, bars_per_s=5_000)]
    assert got == list(range(30))
    assert [bar.close async for bar in ReplayFeed(bars, speed=1e6)] == bars.close.tolist()


async def test_two_loops_share_one_bus_without_crosstalk() -> None:
    bars_a = bars_from([100.0 + i % 9 for i in range(120)], symbol="BTC")
    bars_b = bars_from([50.0 + i % 5 for i in range(80)], symbol="ETH")
    bus = EventBus()
    await bus.start()
    fills = record(bus, "fills.*")
    alone = []
    for bars in (bars_a, bars_b):
        n = len(bars.close)
        source = array_source(n, list(range(2, n, 10)), list(range(6, n, 10)))
        alone.append(
            await PaperTradingLoop(ReplayFeed(bars), source, LoopConfig(BacktestOptions(fee=0.001)), bus=bus).run()
        )
    fills.clear()
    loops = []
    for bars in (bars_a, bars_b):
        n = len(bars.close)
        source = array_source(n, list(range(2, n, 10)), list(range(6, n, 10)))
        loops.append(PaperTradingLoop(ReplayFeed(bars), source, LoopConfig(BacktestOptions(fee=0.001)), bus=bus))
    together = await asyncio.gather(*(loop.run() for loop in loops))
    await bus.stop()
    assert loops[0].name != loops[1].name
    for one, both in zip(alone, together, strict=True):
        assert one.trades == both.trades and one.final_equity == both.final_equity
    assert {t for t, _, _ in fills} == {loops[0].topics.fill, loops[1].topics.fill}


async def test_a_bar_dropped_by_a_flooded_shared_lane_is_sent_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from engine.bus import BusConfig, LaneConfig

    monkeypatch.setattr(PaperTradingLoop, "WATCH_S", 0.005)
    bars = bars_from([100.0 + (i % 11) for i in range(60)])
    n = len(bars.close)
    source = array_source(n, list(range(2, n, 10)), list(range(6, n, 10)))
    _, solo = await run_loop(bars, source, LoopConfig(BacktestOptions(fee=0.001)))

    bus = EventBus(BusConfig(normal=LaneConfig(capacity=4, policy="drop_oldest")))
    await bus.start()
    loop = PaperTradingLoop(ReplayFeed(bars), source, LoopConfig(BacktestOptions(fee=0.001)), bus=bus)
    emit = loop._emit

    def emit_then_flood(topic: str, payload: object, lane: int) -> None:
        emit(topic, payload, lane)
        if lane == Lane.NORMAL and payload.index % 7 == 3:  # type: ignore[attr-defined]
            for _ in range(10):  # another feed floods the shared lane: the bar is the oldest
                bus.publish_nowait("market.noise", None, Lane.NORMAL)

    loop._emit = emit_then_flood  # type: ignore[method-assign]
    result = await asyncio.wait_for(loop.run(), timeout=60)
    await bus.stop(drain=False)
    assert loop.bars_resent == len(range(3, n, 7))
    assert (
        result.bars == n
        and result.trades == solo.trades
        and result.final_equity == solo.final_equity
    )


async def test_paced_and_unpaced_replays_agree() -> None:
    bars = bars_from([100.0 + 3 * math.sin(i / 4) for i in range(150)])
    n = len(bars.close)
    cfg = LoopConfig(BacktestOptions(fee=0.001, slippage=0.0003, direction="both", stop_loss=0.01))
    source = array_source(n, list(range(3, n, 9)), list(range(7, n, 9)))
    _, fast = await run_loop(bars, source, cfg)
    loop, paced = await run_loop(bars, source, cfg, bars_per_s=50_000)
    assert (
        not loop._pump and fast.trades == paced.trades and fast.final_equity == paced.final_equity
    )


def test_paper_config_from_the_global_file(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.errors import ConfigError
    from engine.live import load_loop_config

    path = tmp_path / "config.toml"
    path.write_text("[paper]\nrecent = 7\n[paper.backtest]\nfee = 0.001\nfill = 'close'\n[paper.risk]\nmax_drawdown = 0.2\n")
    monkeypatch.setenv("GENESIS_CONFIG", str(path))
    cfg = load_loop_config()
    assert cfg.backtest == BacktestOptions(fee=0.001, fill="close")
    assert (cfg.recent, cfg.risk.max_drawdown) == (7, 0.2)
    path.write_text("[paper.backtest]\nstop_loss = 1.5\n")
    with pytest.raises(ConfigError, match=r"\[paper\]: backtest: stop_loss must be a number in \[0, 1\), got 1.5"):
        load_loop_config()
    path.write_text("[paper.backtest]\nfill = 'vwap'\n")
    with pytest.raises(ConfigError, match=r"\[paper\]: backtest.fill: invalid enum value 'vwap'"):
        load_loop_config()
    path.write_text("[paper.risk]\nmax_drawdown = 1.5\n")
    with pytest.raises(ConfigError, match=r"\[paper\]\.risk\.max_drawdown: expected a fraction"):
        load_loop_config()
