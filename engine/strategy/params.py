"""A strategy's declared parameters, constraints and lookback: parsed, checked, never evaluated as code.

:class:`Param` (name, kind, default, bounds) and :class:`Constraint`
(``fast < slow``) are what the optimizer reads to build a search space and what
``--param K=V`` is checked against; :class:`Lookback` is the history the
signals need (``"slow"``, ``200``, ``"3*slow + 10"``).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from engine.errors import StrategyError

ParamKind = Literal["int", "float", "choice"]
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True)
class Param:
    """One strategy parameter: ``int`` and ``float`` have inclusive bounds
    ``[low, high]``; ``choice`` has a tuple of allowed values.

    Declare them with :meth:`Param.int`, :meth:`Param.float` and :meth:`Param.choice`.
    """

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
        if self.kind == "int":
            ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
            if not ok and isinstance(value, (float, np.floating)) and float(value).is_integer():
                value, ok = int(value), True
            assert self.low is not None and self.high is not None  # int parameters always have bounds
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

    def check(self, strategy: str) -> None:
        """Raise a one-line StrategyError unless the declaration itself is sound."""
        if not isinstance(self.name, str) or not _IDENTIFIER.fullmatch(self.name):
            raise StrategyError(f"{strategy}: parameter name {self.name!r} is not a Python identifier")
        if self.kind == "choice":
            if not self.choices:
                raise StrategyError(f"{strategy}: parameter {self.name} has no choices")
        elif self.low is None or self.high is None or not self.low <= self.high:
            raise StrategyError(f"{strategy}: parameter {self.name} needs low <= high, got [{self.low}, {self.high}]")
        self.coerce(self.default, strategy)  # the default must be a valid value

    # Constructors, named after the kinds (defined last: inside the class body
    # they shadow the builtins int and float).

    @classmethod
    def int(cls, name: str, default: int, low: int, high: int, *, help: str = "") -> Param:
        """An integer parameter in ``[low, high]``."""
        return cls(name, "int", default, low, high, help=help)

    @classmethod
    def float(cls, name: str, default: float, low: float, high: float, *, help: str = "") -> Param:
        """A real parameter in ``[low, high]``."""
        return cls(name, "float", default, low, high, help=help)

    @classmethod
    def choice(cls, name: str, default: Any, choices: Sequence[Any], *, help: str = "") -> Param:
        """A parameter taking one of ``choices``."""
        return cls(name, "choice", default, choices=tuple(choices), help=help)


_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_CONSTRAINT = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|<|>)\s*([A-Za-z_][A-Za-z0-9_]*)\s*")


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

    @classmethod
    def parse(cls, text: str, where: str) -> Constraint:
        """``"fast < slow"`` as a Constraint (a regular expression, never ``eval``)."""
        match = _CONSTRAINT.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise StrategyError(
                f"{where}: constraint {text!r} must be NAME OP NAME with OP one of <, <=, >, >= (e.g. 'fast < slow')"
            )
        left, op, right = match.groups()
        return cls(left, op, right)  # type: ignore[arg-type]


_TERM = re.compile(r"\s*(?:(\d+)\s*\*\s*([A-Za-z_]\w*)|([A-Za-z_]\w*)\s*\*\s*(\d+)|(\d+)|([A-Za-z_]\w*))\s*")


@dataclass(frozen=True, slots=True)
class Lookback:
    """Bars of history the signals need: a sum of terms, each a whole number, a
    parameter name, or a number times a name (``"slow"``, ``200``, ``"3*slow + 10"``)."""

    text: str
    terms: tuple[tuple[int, str | None], ...]  # (factor, parameter name or None for a constant)

    @classmethod
    def parse(cls, value: str | int, where: str) -> Lookback:
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            if value < 0:
                raise StrategyError(f"{where}: lookback must be >= 0, got {value}")
            return cls(str(int(value)), ((int(value), None),))
        if not isinstance(value, str):
            raise StrategyError(f"{where}: lookback must be a parameter name or a whole number, got {value!r}")
        terms: list[tuple[int, str | None]] = []
        for part in value.split("+"):
            match = _TERM.fullmatch(part)
            if match is None:
                raise StrategyError(
                    f"{where}: lookback {value!r} must be a sum of numbers, parameter names and "
                    "number*name terms (e.g. 'slow' or '3*slow + 10')"
                )
            factor_a, name_a, name_b, factor_b, constant, name = match.groups()
            if constant is not None:
                terms.append((int(constant), None))
            else:
                terms.append((int(factor_a or factor_b or 1), name_a or name_b or name))
        return cls(value.strip(), tuple(terms))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for _, name in self.terms if name is not None)

    def bars(self, params: Mapping[str, Any]) -> int:
        """The number of bars for one parameter set."""
        return int(sum(factor * (1 if name is None else params[name]) for factor, name in self.terms))
