"""Monte Carlo of trades: seeded, reshuffling keeps the final return, drawdowns and fan as defined,
and the trades' returns are on the account's equity, so in their own order they end at the trial's final value."""

from __future__ import annotations

import numpy as np
import pytest

from engine.analysis.montecarlo import monte_carlo, returns_on_equity


def test_reshuffle_keeps_the_final_return_and_moves_the_drawdown() -> None:
    returns = np.array([0.1, -0.2, 0.05, 0.3, -0.1, 0.02])
    result = monte_carlo(returns, paths=2000, mode="reshuffle", seed=3)
    final = float(np.prod(1 + returns) - 1)
    assert all(v == pytest.approx(final, abs=1e-12) for v in result.final_return.values())
    # Drawdown over orders: at least the worst single loss, at most both losses in a row.
    assert result.max_drawdown[5] >= 0.2 - 1e-12
    assert result.max_drawdown[95] <= 1 - 0.8 * 0.9 + 1e-12
    assert result.max_drawdown[5] < result.max_drawdown[95]


def test_two_trades_of_plus_and_minus_half_always_fall_by_half() -> None:
    result = monte_carlo(np.array([0.5, -0.5]), paths=500, mode="reshuffle", seed=1, threshold=0.4)
    assert result.max_drawdown == {5: pytest.approx(0.5), 50: pytest.approx(0.5), 95: pytest.approx(0.5)}
    assert result.prob_drawdown_over == 1.0


def test_winning_trades_never_draw_down_and_the_fan_ends_at_the_finals() -> None:
    returns = np.full(40, 0.01)
    result = monte_carlo(returns, paths=300, seed=2, fan_points=10)
    assert result.max_drawdown[95] == 0.0 and result.prob_drawdown_over == 0.0
    assert result.marks[0] == 0 and result.marks[-1] == 40
    assert np.allclose(result.fan[:, 0], 1.0) and np.allclose(result.fan[:, -1], 1.01**40)


def test_bootstrap_is_seeded_and_centred_on_the_trades() -> None:
    returns = np.random.default_rng(0).normal(0.002, 0.02, 400)
    a = monte_carlo(returns, paths=4000, seed=9)
    assert a.as_dict() == monte_carlo(returns, paths=4000, seed=9).as_dict()
    assert a.final_return != monte_carlo(returns, paths=4000, seed=10).final_return
    # The median path compounds the mean log return (to a few per cent of the spread).
    expected = float(np.expm1(np.log1p(returns).sum()))
    spread = a.final_return[95] - a.final_return[5]
    assert abs(a.final_return[50] - expected) < 0.1 * spread
    assert a.final_return[5] < a.final_return[50] < a.final_return[95]
    with pytest.raises(ValueError, match="no trades"):
        monte_carlo(np.array([np.nan]))


CASH = 10_000.0


def _bars(seed: int, symbol: str = "SYN") -> object:
    from engine.data import load

    return load(f"synthetic:bars=3000,seed={seed},timeframe=1h,symbol={symbol}")


def _in_order_ends_at(trades: np.ndarray, final_value: float) -> None:
    """The trades' returns on equity, unresampled or reshuffled, compound to the trial's own final value."""
    returns = returns_on_equity(trades["pnl"], CASH)
    assert np.isfinite(returns).all()
    want = final_value / CASH - 1.0
    result = monte_carlo(returns, paths=200, mode="reshuffle", seed=4)
    assert result.in_order_return == pytest.approx(want, rel=1e-9, abs=1e-12)
    assert all(v == pytest.approx(want, rel=1e-9, abs=1e-12) for v in result.final_return.values())
    # The returns on each trade's notional (the old input) compound to another figure: the fixture sees the bug.
    assert abs(float(np.prod(1.0 + trades["return"]) - 1.0) - want) > 0.02


def test_a_quarter_sized_trial_resampled_in_order_ends_at_its_final_value() -> None:
    from engine.backtest import run

    result = run(_bars(5), "sma_cross", {"fast": 5, "slow": 30}, fee=0.001, slippage=0.0005, size=0.25,
                 cash=CASH, trades=True)
    assert result.trades is not None and len(result.trades) > 20
    _in_order_ends_at(result.trades, result.metrics.final_value)


def test_a_split_basket_resampled_in_order_ends_at_its_final_value() -> None:
    from engine.backtest import run_portfolio

    bars = [_bars(seed, symbol) for seed, symbol in ((1, "A"), (2, "B"), (3, "C"), (4, "D"))]
    result = run_portfolio(bars, "sma_cross", {"fast": 5, "slow": 30}, fee=0.001, allocation="split",
                           cash=CASH, trades=True)
    assert result.trades is not None and len(set(result.trades["symbol"].tolist())) == 4
    _in_order_ends_at(result.trades, result.metrics.final_value)


def test_all_in_on_one_symbol_without_fees_resamples_as_before() -> None:
    """At size 1 and no fee a trade's notional is the equity before it: the figures are today's."""
    from engine.backtest import run

    result = run(_bars(5), "sma_cross", {"fast": 5, "slow": 30}, slippage=0.0005, cash=CASH, trades=True)
    assert result.trades is not None
    returns = returns_on_equity(result.trades["pnl"], CASH)
    np.testing.assert_allclose(returns, result.trades["return"], rtol=1e-9, atol=1e-15)
    new, old = monte_carlo(returns, paths=500, seed=3), monte_carlo(result.trades["return"], paths=500, seed=3)
    for p in new.final_return:
        assert new.final_return[p] == pytest.approx(old.final_return[p], rel=1e-8, abs=1e-12)
        assert new.max_drawdown[p] == pytest.approx(old.max_drawdown[p], rel=1e-8, abs=1e-12)


def test_returns_on_equity_divide_by_the_equity_before_each_trade() -> None:
    returns = returns_on_equity(np.array([100.0, -550.0, 45.0, -700.0, 10.0]), 1000.0)
    # equity before: 1000, 1100, 550, 595, -105 (gone: no return)
    np.testing.assert_allclose(returns[:4], [0.1, -0.5, 45 / 550, -700 / 595])
    assert np.isnan(returns[4])
    assert returns_on_equity(np.empty(0), 1000.0).shape == (0,)
