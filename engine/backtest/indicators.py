"""Indicator functions and the cache a sweep shares, as the backtest has always named them.

They live in the strategy layer (``engine.strategy.ta`` and
``engine.strategy.cache``); this module keeps the backtest's names.
"""

from __future__ import annotations

from engine.profile.caches import indicator_cache_budget
from engine.strategy.cache import CACHE_NAME, INDICATORS, IndicatorCache
from engine.strategy.ta import atr, bollinger, donchian, ema, rolling_std, rsi, sma, zscore
from engine.strategy.ta import highest as rolling_max
from engine.strategy.ta import lowest as rolling_min

__all__ = [
    "CACHE_NAME",
    "INDICATORS",
    "IndicatorCache",
    "atr",
    "bollinger",
    "donchian",
    "ema",
    "indicator_cache_budget",
    "rolling_max",
    "rolling_min",
    "rolling_std",
    "rsi",
    "sma",
    "zscore",
]
