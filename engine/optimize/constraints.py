"""Constraints between parameters: ``"fast < slow"``, ``"fast * 2 <= slow - 10"``.

A constraint is two sides and one comparison (``<  <=  >  >=  ==  !=``). Each
side is either a quoted string (compared with ``==``/``!=`` only) or a linear
expression: a sum of terms, each a number, a parameter name, or a number
times a name (``2 * fast``, ``fast * 2``, ``fast / 2``). Nothing else: no
parentheses, no products of names, and never ``eval``; a tiny tokenizer and
parser turn the text into a :class:`SpaceConstraint` that evaluates on one
parameter dict or, vectorised, on numpy columns of many points.

Comparisons are exact float comparisons: ``0.1 * 3 <= 0.3`` is false, as in
Python.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.errors import ConfigError

OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
#: The comparison seen from the other side: ``a < b`` is ``b > a``.
MIRRORED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
      | (?P<string>"[^"]*"|'[^']*')
      | (?P<op><=|>=|==|!=|<|>)
      | (?P<arith>[-+*/])
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class Linear:
    """``sum(coefficient * name) + constant``; a lone name keeps its raw value."""

    terms: tuple[tuple[str, float], ...]
    constant: float = 0.0

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.terms)

    @property
    def is_name(self) -> bool:
        """A bare parameter name (compared by value, so strings work too)."""
        return len(self.terms) == 1 and self.terms[0][1] == 1.0 and self.constant == 0.0

    def evaluate(self, params: Mapping[str, Any]) -> Any:
        if self.is_name:
            return params[self.terms[0][0]]
        total: Any = self.constant
        for name, coefficient in self.terms:
            total = total + coefficient * params[name]
        return total

    def bounds(self, box: Mapping[str, tuple[float, float]]) -> tuple[float, float]:
        """Smallest and largest value over a box of per-name bounds."""
        low = high = self.constant
        for name, coefficient in self.terms:
            lo, hi = box[name]
            a, b = coefficient * lo, coefficient * hi
            low += min(a, b)
            high += max(a, b)
        return low, high


@dataclass(frozen=True, slots=True)
class Literal:
    """A quoted string side."""

    value: str

    @property
    def names(self) -> tuple[str, ...]:
        return ()

    def evaluate(self, params: Mapping[str, Any]) -> Any:
        return self.value


Side = Linear | Literal


@dataclass(frozen=True, slots=True)
class SpaceConstraint:
    """A search-space constraint from a study file: ``left OP right``; ``text`` is the source as written.

    Not :class:`engine.backtest.strategies.Constraint`, a built-in strategy's own rule
    between two of its parameters; a study's space parses those too (from their text) into this form.
    """

    text: str
    left: Side
    op: str
    right: Side

    @property
    def names(self) -> tuple[str, ...]:
        """The parameter names referenced, in order of first appearance."""
        return tuple(dict.fromkeys((*self.left.names, *self.right.names)))

    @property
    def is_linear(self) -> bool:
        return isinstance(self.left, Linear) and isinstance(self.right, Linear)

    def __call__(self, params: Mapping[str, Any]) -> bool:
        """Whether ``params`` satisfies the constraint (mismatched types never do)."""
        try:
            return bool(OPERATORS[self.op](self.left.evaluate(params), self.right.evaluate(params)))
        except TypeError:
            return False

    def evaluate_columns(self, columns: Mapping[str, np.ndarray], n: int) -> np.ndarray:
        """Vectorised check over ``n`` points given as one column per name."""
        try:
            left = _side_column(self.left, columns, n)
            right = _side_column(self.right, columns, n)
        except (TypeError, ValueError):  # arithmetic on strings: never satisfied
            return np.zeros(n, dtype=bool)
        try:
            result = OPERATORS[self.op](left, right)
        except (TypeError, ValueError):
            return np.zeros(n, dtype=bool)
        if not isinstance(result, np.ndarray):  # e.g. comparing two plain strings
            return np.full(n, bool(result), dtype=bool)
        return result.astype(bool, copy=False)

    def difference(self) -> Linear:
        """``left - right`` as one linear expression (linear constraints only)."""
        assert isinstance(self.left, Linear) and isinstance(self.right, Linear)
        coefficients: dict[str, float] = {}
        for name, c in self.left.terms:
            coefficients[name] = coefficients.get(name, 0.0) + c
        for name, c in self.right.terms:
            coefficients[name] = coefficients.get(name, 0.0) - c
        terms = tuple((name, c) for name, c in coefficients.items() if c != 0.0)
        return Linear(terms, self.left.constant - self.right.constant)


def _side_column(side: Side, columns: Mapping[str, np.ndarray], n: int) -> Any:
    if isinstance(side, Literal):
        return side.value
    if side.is_name:
        return columns[side.terms[0][0]]
    total: Any = np.full(n, side.constant, dtype=np.float64)
    for name, coefficient in side.terms:
        total = total + coefficient * columns[name].astype(np.float64, copy=False)
    return total


def parse_constraint(text: str, where: str = "constraint") -> SpaceConstraint:
    """Parse one constraint; a syntax error is a ``ConfigError`` naming ``where``."""
    tokens = _tokenize(text, where)
    ops = [i for i, (kind, _) in enumerate(tokens) if kind == "op"]
    if len(ops) != 1:
        found = "no comparison" if not ops else f"{len(ops)} comparisons"
        raise ConfigError(
            f"{where}: {text!r}: expected one comparison (< <= > >= == !=), found {found}"
        )
    split = ops[0]
    op = tokens[split][1]
    left = _parse_side(tokens[:split], text, where, "left")
    right = _parse_side(tokens[split + 1 :], text, where, "right")
    if isinstance(left, Literal) or isinstance(right, Literal):
        if op not in ("==", "!="):
            raise ConfigError(f"{where}: {text!r}: strings compare only with == or !=")
        other = right if isinstance(left, Literal) else left
        if isinstance(other, Literal) or not other.is_name:
            raise ConfigError(f"{where}: {text!r}: a string compares with one parameter name")
    constraint = SpaceConstraint(text=text.strip(), left=left, op=op, right=right)
    if not constraint.names:
        raise ConfigError(f"{where}: {text!r}: references no parameter")
    return constraint


def parse_constraints(texts: Sequence[str], where: str) -> tuple[SpaceConstraint, ...]:
    """Parse a list of constraints; errors name ``where[i]``."""
    return tuple(parse_constraint(text, f"{where}[{i}]") for i, text in enumerate(texts))


def _tokenize(text: str, where: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    stripped = text.rstrip()
    while position < len(stripped):
        match = _TOKEN.match(stripped, position)
        if match is None or match.end() == position:
            rest = stripped[position:].lstrip()
            raise ConfigError(f"{where}: {text!r}: unexpected {rest[:1]!r} at {rest[:12]!r}")
        kind = match.lastgroup
        assert kind is not None
        tokens.append((kind, match.group(kind)))
        position = match.end()
    if not tokens:
        raise ConfigError(f"{where}: empty constraint")
    return tokens


def _parse_side(tokens: list[tuple[str, str]], text: str, where: str, which: str) -> Side:
    if not tokens:
        raise ConfigError(f"{where}: {text!r}: the {which} side is empty")
    if tokens[0][0] == "string":
        if len(tokens) != 1:
            raise ConfigError(f"{where}: {text!r}: a string stands alone on its side")
        return Literal(tokens[0][1][1:-1])
    terms: dict[str, float] = {}
    constant = 0.0
    sign = 1.0
    i = 0
    expect_term = True
    while i < len(tokens):
        kind, value = tokens[i]
        if expect_term:
            if kind == "arith" and value in "+-":
                sign = -sign if value == "-" else sign
                i += 1
                continue
            name, coefficient, i = _parse_term(tokens, i, text, where)
            if name is None:
                constant += sign * coefficient
            else:
                terms[name] = terms.get(name, 0.0) + sign * coefficient
            sign = 1.0
            expect_term = False
        else:
            if kind != "arith" or value not in "+-":
                raise ConfigError(f"{where}: {text!r}: expected + or - before {value!r}")
            sign = -1.0 if value == "-" else 1.0
            expect_term = True
            i += 1
    if expect_term:
        raise ConfigError(f"{where}: {text!r}: the {which} side ends with an operator")
    return Linear(tuple(terms.items()), constant)


def _parse_term(
    tokens: list[tuple[str, str]], i: int, text: str, where: str
) -> tuple[str | None, float, int]:
    """``factor (('*'|'/') factor)*`` with at most one name; returns (name, coefficient, next)."""
    name: str | None = None
    coefficient = 1.0
    divide = False
    while True:
        if i >= len(tokens):
            raise ConfigError(f"{where}: {text!r}: expected a number or a name at the end")
        kind, value = tokens[i]
        if kind == "number":
            number = float(value)
            if divide:
                if number == 0.0:
                    raise ConfigError(f"{where}: {text!r}: division by zero")
                coefficient /= number
            else:
                coefficient *= number
        elif kind == "name":
            if divide:
                raise ConfigError(f"{where}: {text!r}: cannot divide by a parameter ({value})")
            if name is not None:
                raise ConfigError(
                    f"{where}: {text!r}: products of parameters are not supported ({name} * {value})"
                )
            name = value
        else:
            raise ConfigError(f"{where}: {text!r}: expected a number or a name, got {value!r}")
        i += 1
        if i < len(tokens) and tokens[i][0] == "arith" and tokens[i][1] in "*/":
            divide = tokens[i][1] == "/"
            i += 1
            continue
        if not math.isfinite(coefficient):
            raise ConfigError(f"{where}: {text!r}: coefficient out of range")
        return name, coefficient, i


def tighten(
    constraints: Sequence[SpaceConstraint],
    box: dict[str, tuple[float, float]],
    rounds: int = 64,
) -> dict[str, tuple[float, float]] | None:
    """Interval propagation over numeric bounds; ``None`` proves the set infeasible.

    Each linear constraint ``sum(a_i x_i) + c OP 0`` narrows every variable's
    interval given the others' (strict comparisons are relaxed to non-strict,
    which is sound: the relaxed set contains the strict one). Returns the
    narrowed box when no contradiction is found (which does not prove a
    feasible point exists).
    """
    box = dict(box)
    linear = [
        c for c in constraints if c.is_linear and c.op != "!=" and all(n in box for n in c.names)
    ]
    for _ in range(rounds):
        changed = False
        for constraint in linear:
            expression = constraint.difference()
            if not expression.terms:
                if not OPERATORS[constraint.op](expression.constant, 0.0):
                    return None
                continue
            # Normalise to expression <= 0 (and >= 0 for ==).
            forms = []
            if constraint.op in ("<", "<=", "=="):
                forms.append(expression)
            if constraint.op in (">", ">=", "=="):
                forms.append(
                    Linear(tuple((n, -c) for n, c in expression.terms), -expression.constant)
                )
            for form in forms:
                low, _ = form.bounds(box)
                if low > _slack(low):
                    return None
                for name, coefficient in form.terms:
                    lo, hi = box[name]
                    own_low = min(coefficient * lo, coefficient * hi)
                    rest_low = low - own_low
                    # coefficient * x <= -rest_low
                    limit = -rest_low / coefficient
                    if coefficient > 0 and limit < hi:
                        hi, changed = limit, True
                    elif coefficient < 0 and limit > lo:
                        lo, changed = limit, True
                    if lo > hi + _slack(hi):
                        return None
                    box[name] = (lo, hi)
                    low, _ = form.bounds(box)
        if not changed:
            break
    return box


def _slack(value: float) -> float:
    """Tolerance for float round-off in propagation."""
    return 1e-9 * max(1.0, abs(value))
