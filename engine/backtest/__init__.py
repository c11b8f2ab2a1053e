"""Backtests at compiled speed: numba kernels, indicators, strategies, ``run()``.

Kernels compile on first use (and are cached on disk), so importing this
package is cheap. Conventions: ``docs/backtest.md``.
"""

from __future__ import annotations

from engine.backtest.api import (
    BacktestResult,
    block_returns,
    run,
    run_many,
    run_portfolio,
    run_signals,
    simulate,
)
from engine.backtest.benchmark import Benchmark, benchmark, buy_and_hold_equity, buy_and_hold_return
from engine.backtest.enums import EXIT_REASONS, METRIC_NAMES, TRADE_DTYPE
from engine.backtest.indicators import INDICATORS, IndicatorCache
from engine.backtest.metrics import Metrics
from engine.backtest.nb import signals_nb, simulate_nb, simulate_variant
from engine.backtest.options import OPTION_NAMES, OPTIONS, BacktestOptions, OptionError
from engine.backtest.strategies import (
    STRATEGIES,
    Constraint,
    KernelInputs,
    Param,
    Strategy,
    get_strategy,
    resolve_strategy,
)

#: The name ``run``'s result used before :class:`BacktestOptions` (kept for callers).
Options = BacktestOptions

__all__ = [
    "EXIT_REASONS",
    "INDICATORS",
    "METRIC_NAMES",
    "OPTIONS",
    "OPTION_NAMES",
    "STRATEGIES",
    "TRADE_DTYPE",
    "BacktestOptions",
    "BacktestResult",
    "Benchmark",
    "Constraint",
    "IndicatorCache",
    "KernelInputs",
    "Metrics",
    "OptionError",
    "Options",
    "Param",
    "Strategy",
    "benchmark",
    "block_returns",
    "buy_and_hold_equity",
    "buy_and_hold_return",
    "get_strategy",
    "resolve_strategy",
    "run",
    "run_many",
    "run_portfolio",
    "run_signals",
    "signals_nb",
    "simulate",
    "simulate_nb",
    "simulate_variant",
]
