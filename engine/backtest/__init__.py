"""Backtests at compiled speed: numba kernels, indicators, strategies, ``run()``.

Kernels compile on first use (and are cached on disk), and the names below
import their submodule on first use, so importing this package (or its light
submodules such as ``options``) does not load numba. Conventions: ``docs/backtest.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.backtest.api import (
        BacktestResult,
        block_returns,
        run,
        run_many,
        run_portfolio,
        run_signals,
        simulate,
    )
    from engine.backtest.benchmark import (
        Benchmark,
        benchmark,
        buy_and_hold_equity,
        buy_and_hold_return,
    )
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

_LAZY = {
    **dict.fromkeys(
        ("BacktestResult", "block_returns", "run", "run_many", "run_portfolio", "run_signals", "simulate"),
        "engine.backtest.api",
    ),
    **dict.fromkeys(
        ("Benchmark", "benchmark", "buy_and_hold_equity", "buy_and_hold_return"), "engine.backtest.benchmark"
    ),
    **dict.fromkeys(("EXIT_REASONS", "METRIC_NAMES", "TRADE_DTYPE"), "engine.backtest.enums"),
    **dict.fromkeys(("INDICATORS", "IndicatorCache"), "engine.backtest.indicators"),
    "Metrics": "engine.backtest.metrics",
    **dict.fromkeys(("signals_nb", "simulate_nb", "simulate_variant"), "engine.backtest.nb"),
    **dict.fromkeys(("OPTION_NAMES", "OPTIONS", "BacktestOptions", "OptionError", "Options"), "engine.backtest.options"),
    **dict.fromkeys(
        ("STRATEGIES", "Constraint", "KernelInputs", "Param", "Strategy", "get_strategy", "resolve_strategy"),
        "engine.backtest.strategies",
    ),
}


def __getattr__(name: str) -> Any:
    """Import the submodule that defines ``name`` on first use (numba loads only with the kernels)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'engine.backtest' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), "BacktestOptions" if name == "Options" else name)
    globals()[name] = value
    return value


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
