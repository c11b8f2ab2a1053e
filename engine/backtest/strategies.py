"""The strategy registry: built-in strategies, user strategies by name or file, signal rules.

Every strategy is an :class:`engine.strategy.StrategyDef`: declared parameters
(:class:`Param`), constraints (:class:`Constraint`, such as ``fast < slow``)
and lookback, which the optimizer reads to build a search space, and a signal
function. The six built-ins are written with ``engine.strategy.ta`` like any
user strategy, and also carry a fused recipe mapping a parameter set onto one
of the kernel's signal rules (``enums.KIND_*``) over indicator arrays fetched
through an :class:`~engine.strategy.cache.IndicatorCache`: the same signals,
computed inside the simulation loop. User strategies go to the kernel as
explicit entry/exit arrays (``KIND_SIGNALS``).

Signals are for the long side: ``entries`` open a long and ``exits`` close it.
With ``direction="short"`` an exit signal opens a short and an entry signal
covers it; with ``"both"`` each signal reverses the position.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from engine.backtest import enums
from engine.errors import StrategyError
from engine.strategy import ta
from engine.strategy.cache import IndicatorCache
from engine.strategy.core import StrategyDef, define
from engine.strategy.loader import (
    StrategySource,
    is_spec,
    load_spec,
    load_strategy,
    user_strategies,
)
from engine.strategy.params import Constraint, Param

if TYPE_CHECKING:
    from engine.data import Bars

#: The record every strategy is (built in or written by the user).
Strategy = StrategyDef

__all__ = ["STRATEGIES", "Constraint", "KernelInputs", "Param", "Strategy", "available", "get_strategy", "signal_inputs"]


class KernelInputs(NamedTuple):
    """What the simulation kernel needs besides bars and options."""

    kind: int
    a: np.ndarray
    b: np.ndarray
    p0: float
    p1: float


def _ma_cross(indicator: str) -> Callable[[Bars, dict[str, Any], IndicatorCache], KernelInputs]:
    def inputs(bars: Bars, p: dict[str, Any], cache: IndicatorCache) -> KernelInputs:
        fast = cache.get(bars, indicator, p["fast"])
        slow = cache.get(bars, indicator, p["slow"])
        return KernelInputs(enums.KIND_CROSS, fast, slow, 0.0, 0.0)

    return inputs


def _rsi_inputs(bars: Bars, p: dict[str, Any], cache: IndicatorCache) -> KernelInputs:
    rsi = cache.get(bars, "rsi", p["window"])
    return KernelInputs(enums.KIND_OSC, rsi, rsi, float(p["lower"]), float(p["upper"]))


def _bollinger_inputs(bars: Bars, p: dict[str, Any], cache: IndicatorCache) -> KernelInputs:
    mid = cache.get(bars, "sma", p["window"])
    std = cache.get(bars, "std", p["window"])
    return KernelInputs(enums.KIND_BAND, mid, std, float(p["k"]), 0.0)


def _donchian_inputs(bars: Bars, p: dict[str, Any], cache: IndicatorCache) -> KernelInputs:
    upper = cache.get(bars, "highest", p["window"])
    lower = cache.get(bars, "lowest", p["exit_window"])
    return KernelInputs(enums.KIND_CHANNEL, upper, lower, 0.0, 0.0)


def _zscore_inputs(bars: Bars, p: dict[str, Any], cache: IndicatorCache) -> KernelInputs:
    mid = cache.get(bars, "sma", p["window"])
    std = cache.get(bars, "std", p["window"])
    return KernelInputs(enums.KIND_ZSCORE, mid, std, float(p["entry_z"]), float(p["exit_z"]))




# -- the built-in strategies' signal functions, written with ta --------------


def _sma_cross(bars: Bars, fast: int, slow: int) -> tuple[np.ndarray, np.ndarray]:
    f, s = ta.sma(bars.close, fast), ta.sma(bars.close, slow)
    return ta.crossed_above(f, s), ta.crossed_below(f, s)


def _ema_cross(bars: Bars, fast: int, slow: int) -> tuple[np.ndarray, np.ndarray]:
    f, s = ta.ema(bars.close, fast), ta.ema(bars.close, slow)
    return ta.crossed_above(f, s), ta.crossed_below(f, s)


def _rsi_reversion(bars: Bars, window: int, lower: float, upper: float) -> tuple[np.ndarray, np.ndarray]:
    rsi = ta.rsi(bars.close, window)
    return ta.crossed_below(rsi, lower), ta.crossed_above(rsi, upper)


def _bollinger_breakout(bars: Bars, window: int, k: float) -> tuple[np.ndarray, np.ndarray]:
    mid = ta.sma(bars.close, window)
    upper = mid + k * ta.rolling_std(bars.close, window)
    return ta.crossed_above(bars.close, upper), ta.crossed_below(bars.close, mid)


def _donchian_breakout(bars: Bars, window: int, exit_window: int) -> tuple[np.ndarray, np.ndarray]:
    upper = ta.shift(ta.highest(bars.high, window))
    lower = ta.shift(ta.lowest(bars.low, exit_window))
    return bars.close > upper, bars.close < lower


def _zscore_reversion(bars: Bars, window: int, entry_z: float, exit_z: float) -> tuple[np.ndarray, np.ndarray]:
    z = ta.zscore(bars.close, window)
    return ta.crossed_below(z, -entry_z), ta.crossed_above(z, exit_z)


_FAST_SLOW = (
    Param.int("fast", 10, 2, 500, help="fast moving-average window (bars)"),
    Param.int("slow", 50, 3, 1000, help="slow moving-average window (bars)"),
)

_REGISTRY: tuple[StrategyDef, ...] = (
    define(
        _sma_cross,
        name="sma_cross",
        description="simple moving-average crossover",
        params=_FAST_SLOW,
        constraints=["fast < slow"],
        lookback="slow",
        rule="entry: SMA(fast) crosses above SMA(slow); exit: it crosses below",
        fused=_ma_cross("sma"),
    ),
    define(
        _ema_cross,
        name="ema_cross",
        description="exponential moving-average crossover",
        params=(
            Param.int("fast", 12, 2, 500, help="fast moving-average window (bars)"),
            Param.int("slow", 26, 3, 1000, help="slow moving-average window (bars)"),
        ),
        constraints=["fast < slow"],
        lookback="10*slow",  # an EMA remembers every bar; this much history settles it
        rule="entry: EMA(fast) crosses above EMA(slow); exit: it crosses below",
        fused=_ma_cross("ema"),
    ),
    define(
        _rsi_reversion,
        name="rsi_reversion",
        description="buy oversold, sell overbought (Wilder RSI)",
        params=(
            Param.int("window", 14, 2, 200, help="RSI window (bars)"),
            Param.float("lower", 30.0, 1.0, 99.0, help="entry when RSI crosses below this"),
            Param.float("upper", 70.0, 1.0, 99.0, help="exit when RSI crosses above this"),
        ),
        constraints=["lower < upper"],
        lookback="10*window",  # Wilder smoothing remembers every bar
        rule="entry: RSI(window) crosses below lower; exit: it crosses above upper",
        fused=_rsi_inputs,
    ),
    define(
        _bollinger_breakout,
        name="bollinger_breakout",
        description="breakout above the upper Bollinger band",
        params=(
            Param.int("window", 20, 2, 500, help="band window (bars)"),
            Param.float("k", 2.0, 0.1, 5.0, help="band width in standard deviations"),
        ),
        lookback="window",
        rule="entry: close crosses above SMA + k*std; exit: close crosses below SMA (population std)",
        fused=_bollinger_inputs,
    ),
    define(
        _donchian_breakout,
        name="donchian_breakout",
        description="channel breakout (turtle style)",
        params=(
            Param.int("window", 20, 2, 500, help="entry channel: highest high of the previous bars"),
            Param.int("exit_window", 10, 2, 500, help="exit channel: lowest low of the previous bars"),
        ),
        lookback="window + exit_window",
        rule="entry: close > highest high of the previous window bars; exit: close < lowest low of the previous exit_window bars",
        fused=_donchian_inputs,
    ),
    define(
        _zscore_reversion,
        name="zscore_reversion",
        description="mean reversion on the rolling z-score of the close",
        params=(
            Param.int("window", 20, 2, 500, help="z-score window (bars)"),
            Param.float("entry_z", 2.0, 0.1, 5.0, help="entry when z crosses below -entry_z"),
            Param.float("exit_z", 0.0, -5.0, 5.0, help="exit when z crosses above exit_z"),
        ),
        lookback="window",
        rule="entry: z = (close - SMA)/std crosses below -entry_z; exit: z crosses above exit_z",
        fused=_zscore_inputs,
    ),
)

#: Every built-in strategy by name.
STRATEGIES: dict[str, StrategyDef] = {s.name: s for s in _REGISTRY}


def get_strategy(strategy: str | StrategyDef) -> StrategyDef:
    """A strategy record from a record, a built-in's name, ``PATH.py:NAME``, or the
    name of a strategy in the user's strategies folder; raises a one-line
    StrategyError naming the known ones."""
    if isinstance(strategy, StrategyDef):
        return strategy
    if not isinstance(strategy, str):
        raise StrategyError(f"a strategy is a name, PATH.py:NAME or a strategy record, got {strategy!r}")
    if strategy in STRATEGIES:
        return STRATEGIES[strategy]
    if is_spec(strategy):
        return load_spec(strategy)
    user = user_strategies()
    if strategy in user:
        return user[strategy]
    raise StrategyError(f"unknown strategy {strategy!r} (known: {', '.join([*STRATEGIES, *user])}; or PATH.py:NAME)")


def resolve_strategy(name: str, source: StrategySource | None) -> StrategyDef:
    """The strategy a study names: ``name`` in ``source`` (a file's content), else by name."""
    return load_strategy(source, name) if source is not None else get_strategy(name)


def available() -> dict[str, StrategyDef]:
    """The built-ins, then the strategies of the user's folder (a built-in's name is not shadowed)."""
    found = dict(STRATEGIES)
    for name, record in user_strategies().items():
        found.setdefault(name, record)
    return found


def signal_inputs(
    strategy: StrategyDef, bars: Bars, values: Mapping[str, Any], cache: IndicatorCache
) -> tuple[KernelInputs, np.ndarray, np.ndarray]:
    """What the kernel needs for validated ``values``: a built-in's fused rule
    (with no signal arrays), or a Python strategy's entries and exits under ``KIND_SIGNALS``."""
    if strategy.fused is not None:
        return strategy.kernel_inputs(bars, values, cache), _NO_SIGNALS, _NO_SIGNALS
    entries, exits = strategy.signals(bars, values, cache)
    return KernelInputs(enums.KIND_SIGNALS, bars.close, bars.close, 0.0, 0.0), entries, exits


_NO_SIGNALS = np.zeros(0, dtype=np.bool_)
