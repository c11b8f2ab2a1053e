"""The strategy registry: parameters, constraints and signal rules.

A strategy declares its parameters (:class:`Param`: name, kind, default, bounds)
and constraints (:class:`Constraint`, such as ``fast < slow``) in a form the
optimizer reads to build a search space, and maps a parameter set onto one of
the kernel's signal rules (``enums.KIND_*``) over indicator arrays fetched
through an :class:`~engine.backtest.indicators.IndicatorCache`.

Signals are for the long side: ``entries`` open a long and ``exits`` close it.
With ``direction="short"`` an exit signal opens a short and an entry signal
covers it; with ``"both"`` each signal reverses the position.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import numpy as np

from engine.backtest import enums, nb
from engine.backtest.indicators import IndicatorCache
from engine.errors import StrategyError

if TYPE_CHECKING:
    from engine.data import Bars

ParamKind = Literal["int", "float", "choice"]


@dataclass(frozen=True, slots=True)
class Param:
    """One strategy parameter: ``int`` and ``float`` have inclusive bounds
    ``[low, high]``; ``choice`` has a tuple of allowed values."""

    name: str
    kind: ParamKind
    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()
    help: str = ""

    def coerce(self, value: Any, strategy: str) -> Any:
        """``value`` checked against this parameter; raises a one-line StrategyError."""
        if self.kind == "choice":
            if value not in self.choices:
                raise StrategyError(
                    f"{strategy}: parameter {self.name} must be one of "
                    f"{', '.join(map(str, self.choices))}, got {value!r}"
                )
            return value
        assert self.low is not None and self.high is not None, f"{strategy}: {self.name} has no bounds"
        if self.kind == "int":
            ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
            if not ok and isinstance(value, (float, np.floating)) and float(value).is_integer():
                value, ok = int(value), True
            if not ok or not (self.low <= value <= self.high):
                raise StrategyError(
                    f"{strategy}: parameter {self.name} must be an integer in "
                    f"[{int(self.low)}, {int(self.high)}], got {value!r}"
                )
            return int(value)
        ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or not (self.low <= value <= self.high):
            raise StrategyError(
                f"{strategy}: parameter {self.name} must be a number in "
                f"[{self.low:g}, {self.high:g}], got {value!r}"
            )
        return float(value)

    def parse(self, text: str, strategy: str) -> Any:
        """``text`` from the command line converted to this parameter's type."""
        try:
            if self.kind == "int":
                value: Any = float(text) if "." in text or "e" in text.lower() else int(text)
            elif self.kind == "float":
                value = float(text)
            else:
                value = next((c for c in self.choices if str(c) == text), text)
        except ValueError:
            raise StrategyError(
                f"{strategy}: parameter {self.name} expects {'an integer' if self.kind == 'int' else 'a number'}, "
                f"got {text!r}"
            ) from None
        return self.coerce(value, strategy)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description."""
        spec: dict[str, Any] = {"name": self.name, "kind": self.kind, "default": self.default}
        if self.kind == "choice":
            spec["choices"] = list(self.choices)
        else:
            spec["low"] = self.low
            spec["high"] = self.high
        if self.help:
            spec["help"] = self.help
        return spec


_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


@dataclass(frozen=True, slots=True)
class Constraint:
    """``left op right`` between two parameters, e.g. ``fast < slow``."""

    left: str
    op: Literal["<", "<=", ">", ">="]
    right: str

    @property
    def expr(self) -> str:
        return f"{self.left} {self.op} {self.right}"

    def holds(self, params: Mapping[str, Any]) -> bool:
        return _OPERATORS[self.op](params[self.left], params[self.right])


class KernelInputs(NamedTuple):
    """What the simulation kernel needs besides bars and options."""

    kind: int
    a: np.ndarray
    b: np.ndarray
    p0: float
    p1: float


@dataclass(frozen=True, slots=True)
class Strategy:
    """A named strategy: its parameters, constraints and signal rule."""

    name: str
    description: str
    params: tuple[Param, ...]
    constraints: tuple[Constraint, ...]
    rule: str  # a line for the docs: when it enters and exits
    _inputs: Callable[[Bars, dict[str, Any], IndicatorCache], KernelInputs] = field(repr=False)

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise StrategyError(
            f"{self.name}: unknown parameter {name!r} (known: {', '.join(p.name for p in self.params)})"
        )

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def validate(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """Defaults filled in, types and bounds checked, constraints enforced."""
        given = dict(params or {})
        for name in given:
            self.param(name)  # raises on an unknown name
        values = {p.name: p.coerce(given[p.name], self.name) if p.name in given else p.default for p in self.params}
        for constraint in self.constraints:
            if not constraint.holds(values):
                raise StrategyError(
                    f"{self.name}: {constraint.left} must be {constraint.op} {constraint.right}, got "
                    f"{constraint.left}={values[constraint.left]}, {constraint.right}={values[constraint.right]}"
                )
        return values

    def parse_params(self, texts: Mapping[str, str]) -> dict[str, Any]:
        """Command-line ``K=V`` strings converted and validated."""
        return self.validate({name: self.param(name).parse(text, self.name) for name, text in texts.items()})

    def kernel_inputs(self, bars: Bars, params: Mapping[str, Any], cache: IndicatorCache) -> KernelInputs:
        """Signal rule and indicator arrays for validated ``params``."""
        return self._inputs(bars, dict(params), cache)

    def signals(
        self, bars: Bars, params: Mapping[str, Any] | None = None, cache: IndicatorCache | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Entry and exit boolean arrays (evaluated on each bar's close)."""
        values = self.validate(params)
        inputs = self.kernel_inputs(bars, values, cache or IndicatorCache())
        return nb.signals_nb(inputs.kind, bars.close, inputs.a, inputs.b, inputs.p0, inputs.p1)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (what the optimizer and ``--help`` read)."""
        return {
            "name": self.name,
            "description": self.description,
            "rule": self.rule,
            "params": [p.to_dict() for p in self.params],
            "constraints": [c.expr for c in self.constraints],
        }


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


def _fast_slow(fast: int, slow: int) -> tuple[Param, ...]:
    return (
        Param("fast", "int", fast, 2, 500, help="fast moving-average window (bars)"),
        Param("slow", "int", slow, 3, 1000, help="slow moving-average window (bars)"),
    )


_REGISTRY: tuple[Strategy, ...] = (
    Strategy(
        "sma_cross",
        "simple moving-average crossover",
        _fast_slow(10, 50),
        (Constraint("fast", "<", "slow"),),
        "entry: SMA(fast) crosses above SMA(slow); exit: it crosses below",
        _ma_cross("sma"),
    ),
    Strategy(
        "ema_cross",
        "exponential moving-average crossover",
        _fast_slow(12, 26),
        (Constraint("fast", "<", "slow"),),
        "entry: EMA(fast) crosses above EMA(slow); exit: it crosses below",
        _ma_cross("ema"),
    ),
    Strategy(
        "rsi_reversion",
        "buy oversold, sell overbought (Wilder RSI)",
        (
            Param("window", "int", 14, 2, 200, help="RSI window (bars)"),
            Param("lower", "float", 30.0, 1.0, 99.0, help="entry when RSI crosses below this"),
            Param("upper", "float", 70.0, 1.0, 99.0, help="exit when RSI crosses above this"),
        ),
        (Constraint("lower", "<", "upper"),),
        "entry: RSI(window) crosses below lower; exit: it crosses above upper",
        _rsi_inputs,
    ),
    Strategy(
        "bollinger_breakout",
        "breakout above the upper Bollinger band",
        (
            Param("window", "int", 20, 2, 500, help="band window (bars)"),
            Param("k", "float", 2.0, 0.1, 5.0, help="band width in standard deviations"),
        ),
        (),
        "entry: close crosses above SMA + k*std; exit: close crosses below SMA (population std)",
        _bollinger_inputs,
    ),
    Strategy(
        "donchian_breakout",
        "channel breakout (turtle style)",
        (
            Param("window", "int", 20, 2, 500, help="entry channel: highest high of the previous bars"),
            Param("exit_window", "int", 10, 2, 500, help="exit channel: lowest low of the previous bars"),
        ),
        (),
        "entry: close > highest high of the previous window bars; exit: close < lowest low of the previous exit_window bars",
        _donchian_inputs,
    ),
    Strategy(
        "zscore_reversion",
        "mean reversion on the rolling z-score of the close",
        (
            Param("window", "int", 20, 2, 500, help="z-score window (bars)"),
            Param("entry_z", "float", 2.0, 0.1, 5.0, help="entry when z crosses below -entry_z"),
            Param("exit_z", "float", 0.0, -5.0, 5.0, help="exit when z crosses above exit_z"),
        ),
        (),
        "entry: z = (close - SMA)/std crosses below -entry_z; exit: z crosses above exit_z",
        _zscore_inputs,
    ),
)

#: Every strategy by name.
STRATEGIES: dict[str, Strategy] = {s.name: s for s in _REGISTRY}


def get_strategy(name: str) -> Strategy:
    """The strategy registered as ``name``; raises StrategyError naming the known ones."""
    strategy = STRATEGIES.get(name)
    if strategy is None:
        raise StrategyError(f"unknown strategy {name!r} (known: {', '.join(STRATEGIES)})")
    return strategy
