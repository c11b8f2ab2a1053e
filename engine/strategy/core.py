"""The strategy record and the ``@strategy`` decorator that makes one from a user's function.

A :class:`StrategyDef` is what every part of Genesis reads: name, declared
parameters, constraints (parsed, never evaluated), lookback, the signal
function and where it was written. Built-in strategies are records too; they
also carry a ``fused`` recipe, the backtest kernel's compiled signal rule.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.errors import StrategyError
from engine.strategy.params import Constraint, Lookback, Param

if TYPE_CHECKING:
    from engine.data import Bars
    from engine.strategy.cache import IndicatorCache
    from engine.strategy.loader import StrategySource


class StrategyCodeError(StrategyError):
    """A strategy's own code failed: it raised, returned the wrong thing, or numba could not compile it."""


class StrategyLoadError(StrategyError):
    """A strategy file cannot be read or imported."""


@dataclass(frozen=True, slots=True)
class StrategyDef:
    """A named strategy: its parameters, constraints, lookback and signal function.

    ``function(bars, **params)`` returns ``(entries, exits)``, two bool arrays of
    one value per bar. ``fused`` (built-ins only) maps ``(bars, params,
    cache)`` onto the backtest kernel's signal rule, a faster path to the same
    signals. ``source`` is the file's content for a strategy loaded from a file.
    """

    name: str
    description: str
    params: tuple[Param, ...]
    constraints: tuple[Constraint, ...]
    rule: str = ""  # a line for the docs: when it enters and exits
    fused: Callable[..., Any] | None = None
    function: Callable[..., Any] | None = None
    lookback: Lookback | None = None
    file: str = ""
    line: int = 0
    source: StrategySource | None = None

    @property
    def builtin(self) -> bool:
        return self.source is None and self.fused is not None

    @property
    def where(self) -> str:
        """``file:line`` of the strategy's definition."""
        return f"{self.file}:{self.line}" if self.file else self.name

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise StrategyError(
            f"{self.name}: unknown parameter {name!r} (known: {', '.join(p.name for p in self.params) or 'none'})"
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

    def lookback_bars(self, params: Mapping[str, Any] | None = None) -> int:
        """Bars of history the signals need for validated ``params`` (0 when undeclared)."""
        return 0 if self.lookback is None else self.lookback.bars(self.validate(params))

    def label(self, params: Mapping[str, Any]) -> str:
        """``name(fast=10, slow=50)`` for messages."""
        return f"{self.name}({', '.join(f'{k}={v!r}' for k, v in params.items())})"

    def kernel_inputs(self, bars: Bars, params: Mapping[str, Any], cache: IndicatorCache) -> Any:
        """The backtest kernel's fused rule and indicator arrays for validated ``params`` (built-ins only)."""
        if self.fused is None:
            raise StrategyError(f"{self.name}: a strategy written in Python has no fused kernel rule")
        return self.fused(bars, dict(params), cache)

    def signals(
        self, bars: Bars, params: Mapping[str, Any] | None = None, cache: IndicatorCache | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Entry and exit bool arrays (evaluated on each bar's close), checked;
        a failure of the strategy's code raises :class:`StrategyCodeError`
        naming its file and line and the parameters."""
        # Imported here: evaluate imports the loader, which imports this module.
        from engine.strategy.evaluate import evaluate

        return evaluate(self, bars, self.validate(params), cache)

    def __call__(self, bars: Bars, **params: Any) -> Any:
        """The signal function itself, unchecked (for a quick look in a notebook)."""
        if self.function is None:
            raise StrategyError(f"{self.name}: no signal function")
        return self.function(bars, **params)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (what the optimizer, ``--list`` and reports read)."""
        return {
            "name": self.name,
            "description": self.description,
            "rule": self.rule,
            "params": [p.to_dict() for p in self.params],
            "constraints": [c.expr for c in self.constraints],
            "lookback": None if self.lookback is None else self.lookback.text,
            "builtin": self.builtin,
            "file": self.file,
            "line": self.line,
            "hash": None if self.source is None else self.source.hash,
        }


def _location(function: Callable[..., Any]) -> tuple[str, int]:
    code = getattr(getattr(function, "py_func", function), "__code__", None)
    if code is None:
        return "", 0
    return code.co_filename, code.co_firstlineno


def define(
    function: Callable[..., Any],
    *,
    params: Sequence[Param] = (),
    constraints: Sequence[str | Constraint] = (),
    lookback: str | int | None = None,
    name: str | None = None,
    description: str | None = None,
    rule: str = "",
    fused: Callable[..., Any] | None = None,
) -> StrategyDef:
    """A checked :class:`StrategyDef` for ``function`` (what ``@strategy`` builds)."""
    file, line = _location(function)
    name = str(name or getattr(function, "__name__", "strategy"))
    where = f"{file}:{line}: strategy {name}" if file else f"strategy {name}"
    params = tuple(params)
    for p in params:
        if not isinstance(p, Param):
            raise StrategyError(f"{where}: params must be Param.int/float/choice(...), got {p!r}")
        p.check(where)
    names = [p.name for p in params]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise StrategyError(f"{where}: parameter {duplicated[0]} declared twice")
    _check_signature(function, names, where)
    parsed = tuple(c if isinstance(c, Constraint) else Constraint.parse(c, where) for c in constraints)
    for c in parsed:
        for side in (c.left, c.right):
            if side not in names:
                raise StrategyError(f"{where}: constraint {c.expr!r} names {side!r}, not a parameter")
    window = None
    if lookback is not None:
        window = Lookback.parse(lookback, where)
        kinds = {p.name: p.kind for p in params}
        for term in window.names:
            if kinds.get(term) != "int":
                raise StrategyError(f"{where}: lookback {window.text!r} names {term!r}, not an int parameter")
    doc = inspect.getdoc(function) or ""
    record = StrategyDef(
        name=name,
        description=description if description is not None else (doc.splitlines()[0] if doc else ""),
        params=params,
        constraints=parsed,
        rule=rule,
        fused=fused,
        function=function,
        lookback=window,
        file=file,
        line=line,
    )
    record.validate(None)  # the defaults must satisfy the constraints
    return record


def _check_signature(function: Callable[..., Any], names: list[str], where: str) -> None:
    if not callable(function):
        raise StrategyError(f"{where}: @strategy decorates a function, got {function!r}")
    try:
        signature = inspect.signature(getattr(function, "py_func", function))
    except (TypeError, ValueError):
        return
    kinds = inspect.Parameter
    given = list(signature.parameters.values())
    if not given or given[0].kind not in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD):
        raise StrategyError(f"{where}: the function must take the bars as its first argument")
    if any(p.kind == kinds.VAR_KEYWORD for p in given):
        return
    accepted = {p.name for p in given[1:] if p.kind in (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY)}
    missing = [n for n in names if n not in accepted]
    if missing:
        raise StrategyError(f"{where}: the function does not take parameter {missing[0]!r} (add it as an argument)")
    extra = [p.name for p in given[1:] if p.name not in names and p.default is inspect.Parameter.empty
             and p.kind in (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY)]  # fmt: skip
    if extra:
        raise StrategyError(f"{where}: argument {extra[0]!r} is not a declared parameter (declare it with Param)")


def strategy(
    params: Sequence[Param] = (),
    constraints: Sequence[str] = (),
    lookback: str | int | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
) -> Callable[[Callable[..., Any]], StrategyDef]:
    """Declare a strategy::

        @strategy(params=[Param.int("fast", 10, 2, 200), Param.int("slow", 50, 5, 500)],
                  constraints=["fast < slow"], lookback="slow")
        def my_cross(bars, fast, slow):
            f, s = ta.sma(bars.close, fast), ta.sma(bars.close, slow)
            return ta.crossed_above(f, s), ta.crossed_below(f, s)

    The function gets the ``Bars`` and the parameters as keyword arguments and
    returns ``(entries, exits)``, two bool arrays of one value per bar.
    """

    def decorate(function: Callable[..., Any]) -> StrategyDef:
        return define(
            function, params=params, constraints=constraints, lookback=lookback, name=name, description=description
        )

    return decorate
