"""The shared number formatting: each metric shown as what it is, no negative zero."""

from __future__ import annotations

from genesis_tui import format as fmt


def test_a_metric_is_shown_as_what_it_is() -> None:
    assert fmt.metric("trades", 1767.0) == "1,767"
    assert fmt.metric("trades", 1767) == "1,767"
    assert fmt.metric("total_return", 0.1234) == "12.34%"
    assert fmt.metric("max_drawdown", 0.05) == "5.00%"
    assert fmt.metric("win_rate", 0.5) == "50.00%"
    assert fmt.metric("final_value", 12345.678) == "12,345.68"
    assert fmt.metric("sharpe", 1.23456) == "1.235"
    assert fmt.metric("sharpe", 1.23456, 4) == "1.2346"
    assert fmt.metric("sharpe", float("nan")) == "—"
    assert fmt.metric("calmar", None) == "—"


def test_a_figure_that_rounds_to_zero_has_no_minus_sign() -> None:
    assert fmt.num(-0.0) == "0.00"
    assert fmt.num(-1e-9) == "0.00"
    assert fmt.num(-0.004) == "0.00"
    assert fmt.num(-0.006) == "-0.01"
    assert fmt.signed(-1e-9) == "+0.00"
    assert fmt.pct(-1e-7) == "0.0%"
    assert fmt.pct(-0.5) == "-50.0%"
    assert fmt.num(1234.5) == "1,234.50"
