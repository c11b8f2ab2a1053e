"""Perpetual funding in backtests: a hand-computed case and the pure-Python reference."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.backtest import run, run_many, run_signals
from engine.backtest.api import funding_per_bar
from engine.data import Bars, timeframe_ns
from engine.data.funding import FundingRates
from engine.errors import InputError
from tests.backtest import gen
from tests.backtest import reference as ref
from tests.backtest.conftest import make_bars
from tests.backtest.test_simulate import check_against_reference, signal_arrays

DAY = 86_400 * 1_000_000_000
HOUR = DAY // 24


def with_funding(bars: Bars, events: list[tuple[int, float]]) -> Bars:
    times = np.array([t for t, _ in events], dtype=np.int64)
    rates = np.array([r for _, r in events], dtype=np.float64)
    return dataclasses.replace(bars, meta={**bars.meta, "funding": FundingRates(times, rates)})


def test_hand_computed_long_and_short() -> None:
    """Daily bars, close fills, no fees: 10 units bought at 100 on bar 0, sold at 120 on bar 2."""
    bars = make_bars([100.0, 110.0, 120.0, 130.0])
    close0 = int(bars.ts[0]) + DAY
    events = [
        (close0 - HOUR, 0.5),  # before the first close: outside the bars
        (close0, 0.001),  # at bar 0's close: 10 * 100 * 0.001 = 1.0 paid by the long
        (close0 + DAY + 8 * HOUR, -0.002),  # settled at bar 1's close (110): 2.2 received
        (close0 + 2 * DAY, 0.01),  # at bar 2's close: the position was sold at that close
        (close0 + 3 * DAY + HOUR, 0.3),  # after the last close: outside the bars
    ]
    data = with_funding(bars, events)
    entries, exits = signal_arrays(4, [0], [2])
    long = run_signals(data, entries, exits, fill="close", cash=1000.0, trades=True, equity=True)
    assert long.trades is not None and long.equity is not None
    trade = long.trades[0]
    assert trade["funding"] == pytest.approx(1.0 - 2.2)
    assert trade["pnl"] == pytest.approx(10 * 20 - 1.0 + 2.2)
    assert long.metrics.funding_paid == pytest.approx(-1.2)
    assert long.metrics.final_value == pytest.approx(1000.0 + 201.2)
    assert long.equity.tolist() == pytest.approx([999.0, 1101.2, 1201.2, 1201.2])

    # A short over the same bars: receives the positive rate, pays the negative one.
    short = run_signals(data, exits, entries, fill="close", direction="short", cash=1000.0, trades=True)
    assert short.trades is not None
    assert short.trades[0]["funding"] == pytest.approx(-1.0 + 2.2)
    assert short.metrics.funding_paid == pytest.approx(1.2)

    # Funding off: the same run as on bars without rates.
    off = run_signals(data, entries, exits, fill="close", cash=1000.0, funding="false")
    plain = run_signals(bars, entries, exits, fill="close", cash=1000.0)
    assert off.metrics == plain.metrics and plain.metrics.funding_paid == 0.0


def test_events_sum_per_bar_and_fall_at_the_last_close_at_or_before_them() -> None:
    bars = make_bars([1.0, 2.0, 3.0], timeframe="1d")
    close0 = int(bars.ts[0]) + DAY
    data = with_funding(bars, [(close0 - 1, 9.0), (close0, 0.1), (close0 + 8 * HOUR, 0.2), (close0 + DAY, 0.4),
                               (close0 + 2 * DAY, 0.8), (close0 + 2 * DAY + 1, 9.0)])
    assert funding_per_bar(data).tolist() == pytest.approx([0.3, 0.4, 0.8])


def test_funding_true_without_rates_is_one_clear_error() -> None:
    bars = make_bars([1.0, 2.0, 3.0])
    with pytest.raises(InputError, match="funding = true, but the data of TEST carries no funding rates"):
        run(bars, "sma_cross", {"fast": 2, "slow": 3}, funding="true")


@st.composite
def funding_events(draw: st.DrawFn, bars: Bars) -> list[tuple[int, float]]:
    first, last = int(bars.ts[0]), int(bars.ts[-1]) + 2 * timeframe_ns(bars.timeframe)
    times = draw(st.lists(st.integers(first, last), max_size=12, unique=True).map(sorted))
    rate = st.floats(-0.01, 0.01, allow_nan=False)
    return [(t, draw(rate)) for t in times]


@settings(max_examples=200, deadline=None)
@given(st.data(), gen.bars(), gen.options)
def test_kernel_matches_reference_with_funding(data: st.DataObject, bars: Bars, options: dict) -> None:
    entries, exits = data.draw(gen.signals(len(bars)))
    events = data.draw(funding_events(bars))
    funded = with_funding(bars, events)
    closes = (bars.ts + timeframe_ns(bars.timeframe)).tolist()
    o, h, l, c = (getattr(bars, name).tolist() for name in ("open", "high", "low", "close"))  # noqa: E741
    _, trades, _ = ref.simulate(o, h, l, c, entries.tolist(), exits.tolist(), closes=closes, events=events, **options)
    check_against_reference(funded, entries, exits, options, closes=closes, events=events)
    result = run_signals(funded, entries, exits, trades=True, **options)
    assert result.trades is not None
    np.testing.assert_allclose(result.trades["funding"], [t["funding"] for t in trades], rtol=1e-9, atol=1e-9)


def test_run_many_applies_funding_like_run(random_bars: Bars) -> None:
    step = timeframe_ns(random_bars.timeframe)
    times = random_bars.ts[::8] + step
    rates = np.where(np.arange(times.shape[0]) % 3 == 0, -0.0004, 0.0007)
    funded = dataclasses.replace(random_bars, meta={"funding": FundingRates(times, rates)})
    sets = [{"fast": 5, "slow": 20}, {"fast": 8, "slow": 30}]
    many = run_many(funded, "sma_cross", sets, direction="both", fee=0.001)
    for row, params in zip(many, sets, strict=True):
        single = run(funded, "sma_cross", params, direction="both", fee=0.001).metrics
        assert single.funding_paid != 0.0
        assert row.tolist() == list(single.as_dict().values())


def test_workers_bars_carry_the_funding_rates(random_bars: Bars) -> None:
    """The process backend's shared-memory bars keep the rates: a worker settles them too."""
    from engine.optimize.backends.shared_bars import SharedBars, attach_bars

    step = timeframe_ns(random_bars.timeframe)
    funded = dataclasses.replace(
        random_bars, meta={"funding": FundingRates(random_bars.ts[::5] + step, np.full(len(random_bars.ts[::5]), 0.001))}
    )
    shared = SharedBars(funded)
    try:
        attached, block = attach_bars(shared.handle())
        try:
            got = run(attached, "sma_cross", {"fast": 5, "slow": 20}, direction="both").metrics
            del attached
        finally:
            block.close()
    finally:
        shared.close()
    want = run(funded, "sma_cross", {"fast": 5, "slow": 20}, direction="both").metrics
    assert got == want and want.funding_paid != 0.0


@settings(max_examples=20, deadline=None)
@given(st.data(), gen.bars(min_size=5), gen.options)
async def test_the_paper_loop_settles_funding_like_the_backtest(data: st.DataObject, bars: Bars, options: dict) -> None:
    from engine.live.loop import replay

    funded = with_funding(bars, data.draw(funding_events(bars)))
    params = {"fast": 2, "slow": 3}
    loop = await replay(funded, "sma_cross", params, **options)
    ref = run(funded, "sma_cross", params, trades=True, **options)
    assert ref.trades is not None
    assert loop.final_equity == pytest.approx(ref.metrics.final_value, rel=1e-9, abs=1e-9)
    assert [t.funding for t in loop.trades] == pytest.approx(ref.trades["funding"].tolist(), rel=1e-9, abs=1e-9)
    assert [t.pnl for t in loop.trades] == pytest.approx(ref.trades["pnl"].tolist(), rel=1e-9, abs=1e-9)
