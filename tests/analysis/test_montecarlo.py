"""Monte Carlo of trades: seeded, reshuffling keeps the final return, drawdowns and fan as defined."""

from __future__ import annotations

import numpy as np
import pytest

from engine.analysis.montecarlo import monte_carlo


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
