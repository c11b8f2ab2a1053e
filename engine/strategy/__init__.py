"""The public strategy API: ``from engine.strategy import Param, strategy, ta``.

A strategy is a function of the bars and its parameters returning entry and
exit bool arrays, declared with :func:`strategy`; built-in and user strategies
are the same kind of record (:class:`StrategyDef`). Files are loaded by
content (:mod:`engine.strategy.loader`). This layer sits below
``engine.backtest`` and imports only ``engine.data``, ``engine.profile`` and
the shared leaf modules. Contract: ``docs/strategies.md``.
"""

from __future__ import annotations

from engine.strategy import ta
from engine.strategy.cache import INDICATORS, IndicatorCache
from engine.strategy.core import StrategyCodeError, StrategyDef, StrategyLoadError, define, strategy
from engine.strategy.loader import (
    StrategySource,
    is_spec,
    load_source,
    load_spec,
    load_strategy,
    strategies_dir,
    strategies_in,
    user_strategies,
)
from engine.strategy.params import Constraint, Lookback, Param

__all__ = [
    "INDICATORS",
    "Constraint",
    "IndicatorCache",
    "Lookback",
    "Param",
    "StrategyCodeError",
    "StrategyDef",
    "StrategyLoadError",
    "StrategySource",
    "define",
    "is_spec",
    "load_source",
    "load_spec",
    "load_strategy",
    "strategies_dir",
    "strategies_in",
    "strategy",
    "ta",
    "user_strategies",
]
