"""The parameter space of a study: dimensions, fixed values, constraints, grid, keys.

A :class:`Space` holds one dimension per searched parameter (declaration
order), the parameters held constant, and the constraints between them. Every
point it hands out is a flat ``dict`` of dotted names to values, searched
parameters first, then fixed ones.

Dimensions (the ``[space]`` table of a study file)::

    fast  = { int = [5, 50], step = 5 }           # 5, 10, ..., 50
    win   = { int = [2, 500], log = true }        # log-uniform when sampled
    stop  = { float = [0.01, 0.1], step = 0.01 }  # a lattice for every sampler
    lr    = { float = [1e-4, 1e-1], log = true, points = 8 }  # 8 geometric grid points
    width = { float = [0.5, 3.0] }                # continuous (not on a grid)
    kind  = { choice = ["ema", "sma"] }           # or the shorthand kind = ["ema", "sma"]
    size  = 0.5                                   # a scalar: fixed (also { fixed = 0.5 })
    [space.risk]                                  # a group: risk.stop_loss, ...
    stop_loss = { choice = [0.0, 0.02] }

The grid is lazy: :attr:`Space.grid_size` is a product, :meth:`Space.grid_point`
decodes an index in mixed radix (the last dimension varies fastest, like
``itertools.product``), and walking the grid filters constraints over numpy
blocks of indices, so a ten-million-point grid costs nothing until walked.

:func:`trial_key` is a 64-bit blake2b of the canonical JSON of the parameters
(sorted keys, integral numbers written as integers, ``-0.0`` as ``0``): the
same point gives the same key in every process and run, and ``5`` and ``5.0``
give the same key.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np

from engine.errors import ConfigError
from engine.optimize.constraints import Linear, SpaceConstraint, parse_constraint, tighten

Scalar = bool | int | float | str

KINDS = ("int", "float", "choice", "fixed")
_MODIFIERS = {"int": ("step", "log"), "float": ("step", "log", "points"), "choice": (), "fixed": ()}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BLOCK = 1 << 12  # grid indices decoded per numpy block at first
_MAX_BLOCK = 1 << 16  # ... and at most (a few MB of temporaries)
_MAX_POINTS = 100_000
_INT64_SAFE = 1 << 62
_INF = math.inf


# --------------------------------------------------------------------------- keys


def canonical_value(value: Any) -> Any:
    """A JSON-ready value with numbers normalised (``5.0`` -> ``5``, ``-0.0`` -> ``0``)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"parameter value {number} is not finite")
        if number.is_integer() and abs(number) < 2**53:
            return int(number)
        return number
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return {str(k): canonical_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [canonical_value(v) for v in value]
    raise ValueError(f"unsupported parameter value {value!r} ({type(value).__name__})")


def canonical_json(params: Mapping[str, Any]) -> str:
    """Canonical JSON of a parameter dict: sorted keys, normalised numbers, no spaces.

    Equal to ``json.dumps`` of the :func:`canonical_value` of each value with
    ``sort_keys=True, separators=(",", ":"), ensure_ascii=False``; plain ints,
    floats, strings and booleans take a fast path (this runs once per trial).
    """
    return "{" + ",".join([_part(name, params[name]) for name in sorted(params)]) + "}"


def _part(name: Any, value: Any) -> str:
    """``"name":value`` of :func:`canonical_json`."""
    kind = type(value)
    if kind is int:
        text = int.__repr__(value)
    elif kind is float and value == value and value not in (_INF, -_INF):
        text = str(int(value)) if value.is_integer() and abs(value) < 2**53 else float.__repr__(value)
    elif kind is bool:
        text = "true" if value else "false"
    else:
        text = json.dumps(canonical_value(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f"{_json_key(str(name))}:{text}"


#: Memoised :func:`_part` texts by ``(name, type, value)`` (bounded: cleared when full).
_PARTS: dict[tuple[Any, type, Any], str] = {}
_MAX_PARTS = 1 << 17


def trial_keys(points: Sequence[Mapping[str, Any]]) -> list[str]:
    """:func:`trial_key` of each point; the text of a repeated name and value is built once."""
    columns = _column_texts(points)
    if columns is not None:
        return [_key_of("{" + text + "}") for text in map(",".join, zip(*columns, strict=True))]
    parts = _PARTS
    if len(parts) > _MAX_PARTS:
        parts.clear()
    orders: dict[tuple[str, ...], list[str]] = {}
    keys = []
    for params in points:
        layout = tuple(params)
        names = orders.get(layout)
        if names is None:
            names = orders[layout] = sorted(params)
        texts = []
        for name in names:
            value = params[name]
            cached = (name, type(value), value)
            try:
                text = parts.get(cached)
            except TypeError:  # an unhashable value (a list): not memoised
                text = _part(name, value)
            else:
                if text is None:
                    text = parts[cached] = _part(name, value)
            texts.append(text)
        keys.append(_key_of("{" + ",".join(texts) + "}"))
    return keys


def _column_texts(points: Sequence[Mapping[str, Any]]) -> list[list[str]] | None:
    """Each name's ``"name":value`` texts, by point, in key order: for points that share their names and,
    per name, one type of hashable value (a sampler's batch); ``None`` for any other batch."""
    if not points:
        return None
    names = points[0].keys()
    if not all(params.keys() == names for params in points):
        return None
    parts = _PARTS
    if len(parts) > _MAX_PARTS:
        parts.clear()
    columns = []
    for name in sorted(names):
        values = [params[name] for params in points]
        kinds = set(map(type, values))
        if len(kinds) != 1:  # 1 and 1.0 and True are one dict key, not one text
            return None
        kind = kinds.pop()
        try:
            texts = dict.fromkeys(values, "")
        except TypeError:  # an unhashable value (a list)
            return None
        for value in texts:
            cached = (name, kind, value)
            text = parts.get(cached)
            texts[value] = parts[cached] = _part(name, value) if text is None else text
        columns.append(list(map(texts.__getitem__, values)))
    return columns


def _key_of(text: str) -> str:
    """The key of a canonical JSON text (what :func:`trial_key` and :func:`trial_keys` both hash)."""
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


@functools.lru_cache(maxsize=4096)
def _json_key(name: str) -> str:
    return json.dumps(name, ensure_ascii=False)


def trial_key(params: Mapping[str, Any]) -> str:
    """The 16-hex-digit structural hash of a parameter dict (blake2b, 64 bits)."""
    return _key_of(canonical_json(params))


# --------------------------------------------------------------------------- dimensions

#: Largest dimension whose grid values :meth:`Space.grid_points` tabulates (larger ones go point by point).
_MAX_TABLE = 1 << 16


def _decimals(value: float) -> int:
    exponent = Decimal(repr(float(value))).as_tuple().exponent
    return min(15, max(0, -exponent)) if isinstance(exponent, int) else 15


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class IntDim:
    """Integers ``low, low + step, ...`` up to ``high``; ``log`` samples log-uniformly."""

    name: str
    low: int
    high: int
    step: int = 1
    log: bool = False
    kind: str = field(default="int", init=False)

    @property
    def size(self) -> int:
        return (self.high - self.low) // self.step + 1

    grid_size = size
    discrete = True

    @property
    def top(self) -> int:
        return self.low + (self.size - 1) * self.step

    @property
    def bounds(self) -> tuple[float, float]:
        return float(self.low), float(self.top)

    def grid_value(self, index: int) -> int:
        return self.low + index * self.step

    def grid_values(self, indices: np.ndarray) -> np.ndarray:
        return self.low + indices.astype(np.int64) * self.step

    def sample(self, u: float) -> int:
        if self.log:
            lo, hi = math.log(self.low - 0.5), math.log(self.top + 0.5)
            value = round(math.exp(lo + u * (hi - lo)))
            return min(max(value, self.low), self.top)
        return self.low + min(int(u * self.size), self.size - 1) * self.step

    def sample_array(self, u: np.ndarray) -> np.ndarray:
        if self.log:
            lo, hi = math.log(self.low - 0.5), math.log(self.top + 0.5)
            values = np.rint(np.exp(lo + u * (hi - lo))).astype(np.int64)
            return np.clip(values, self.low, self.top)
        index = np.minimum((u * self.size).astype(np.int64), self.size - 1)
        return self.low + index * self.step

    def index(self, value: Any) -> int | None:
        number = canonical_value(value)
        if not isinstance(number, int) or isinstance(number, bool):
            return None
        offset, remainder = divmod(number - self.low, self.step)
        return offset if remainder == 0 and 0 <= offset < self.size else None

    def normalise(self, value: Any) -> int:
        if self.index(value) is None:
            raise ValueError(f"{self.name}: {value!r} is not in {self.describe()}")
        return int(canonical_value(value))

    def describe(self) -> dict[str, Any]:
        return {"int": [self.low, self.high], "step": self.step, "log": self.log}


@dataclass(frozen=True, slots=True)
class FloatDim:
    """Floats in ``[low, high]``: continuous, on a ``step`` lattice, or with ``points`` grid points."""

    name: str
    low: float
    high: float
    step: float | None = None
    log: bool = False
    points: int | None = None
    kind: str = field(default="float", init=False)
    _table: tuple[float, ...] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.step is None and self.points is not None:
            object.__setattr__(self, "_table", tuple(self._point(i) for i in range(self.points)))

    @property
    def discrete(self) -> bool:
        """Whether every sampler draws from a finite set (a lattice, or a single value)."""
        return self.step is not None or self.low == self.high

    @property
    def size(self) -> int:
        if self.step is not None:
            return math.floor((self.high - self.low) / self.step + 1e-9) + 1
        if self.low == self.high:
            return 1
        raise ValueError(f"{self.name}: a continuous range has no size")

    @property
    def grid_size(self) -> int | None:
        if self.discrete:
            return self.size
        return self.points

    @property
    def bounds(self) -> tuple[float, float]:
        if self.step is not None:
            return self.low, self.grid_value(self.size - 1)
        return self.low, self.high

    def _point(self, i: int) -> float:
        assert self.points is not None
        if self.points == 1 or i == 0:
            return float(self.low)
        if i == self.points - 1:
            return float(self.high)
        if self.log:
            lo, hi = math.log(self.low), math.log(self.high)
            value = math.exp(lo + i * (hi - lo) / (self.points - 1))
        else:
            value = self.low + i * (self.high - self.low) / (self.points - 1)
        return float(f"{value:.12g}")

    def grid_value(self, index: int) -> float:
        if self.step is not None:
            return float(self.grid_values(np.array([index]))[0])
        if self._table is not None:
            return self._table[index]
        if self.low == self.high:
            return float(self.low)
        raise ConfigError(f"space.{self.name}: a float range needs step or points for a grid")

    def grid_values(self, indices: np.ndarray) -> np.ndarray:
        if self.step is not None:
            decimals = max(_decimals(self.low), _decimals(self.step))
            return np.round(self.low + indices.astype(np.float64) * self.step, decimals)
        if self._table is not None:
            return np.asarray(self._table, dtype=np.float64)[indices]
        return np.full(indices.shape, float(self.low))

    def sample(self, u: float) -> float:
        if self.step is not None:
            return self.grid_value(min(int(u * self.size), self.size - 1))
        if self.log:
            lo, hi = math.log(self.low), math.log(self.high)
            return float(min(max(math.exp(lo + u * (hi - lo)), self.low), self.high))
        # A Python float whatever ``u`` is (a sampler's numpy gene): trial params are stored as JSON.
        return float(self.low + u * (self.high - self.low))

    def sample_array(self, u: np.ndarray) -> np.ndarray:
        if self.step is not None:
            return self.grid_values(np.minimum((u * self.size).astype(np.int64), self.size - 1))
        if self.log:
            lo, hi = math.log(self.low), math.log(self.high)
            return np.clip(np.exp(lo + u * (hi - lo)), self.low, self.high)
        return self.low + u * (self.high - self.low)

    def unit(self, value: float) -> float:
        """Inverse of :meth:`sample` for continuous ranges (the genetic sampler's gene)."""
        if self.high == self.low:
            return 0.0
        if self.log:
            lo, hi = math.log(self.low), math.log(self.high)
            return (math.log(value) - lo) / (hi - lo)
        return (value - self.low) / (self.high - self.low)

    def index(self, value: Any) -> int | None:
        if not _is_number(value) and not isinstance(value, np.floating | np.integer):
            return None
        number = float(value)
        if self.step is not None:
            position = round((number - self.low) / self.step)
            if 0 <= position < self.size and self.grid_value(position) == number:
                return position
            return None
        if self.low == self.high:
            return 0 if number == self.low else None
        return None

    def normalise(self, value: Any) -> float:
        if not _is_number(value) and not isinstance(value, np.floating | np.integer):
            raise ValueError(f"{self.name}: {value!r} is not a number")
        number = float(value)
        if self.discrete:
            if self.index(number) is None:
                raise ValueError(f"{self.name}: {number!r} is not in {self.describe()}")
        elif not self.low <= number <= self.high and not (self._table and number in self._table):
            raise ValueError(f"{self.name}: {number!r} is outside [{self.low}, {self.high}]")
        return number + 0.0  # -0.0 -> 0.0

    def describe(self) -> dict[str, Any]:
        return {
            "float": [self.low, self.high],
            "step": self.step,
            "log": self.log,
            "points": self.points,
        }


@dataclass(frozen=True, slots=True)
class ChoiceDim:
    """One of a list of scalar values."""

    name: str
    values: tuple[Scalar, ...]
    kind: str = field(default="choice", init=False)
    discrete = True

    @property
    def size(self) -> int:
        return len(self.values)

    grid_size = size

    @property
    def numeric(self) -> bool:
        return all(_is_number(v) for v in self.values)

    @property
    def bounds(self) -> tuple[float, float] | None:
        if not self.numeric:
            return None
        return float(min(self.values)), float(max(self.values))

    def grid_value(self, index: int) -> Scalar:
        return self.values[index]

    def grid_values(self, indices: np.ndarray) -> np.ndarray:
        if self.numeric:
            return np.asarray(self.values, dtype=np.float64)[indices]
        table = np.empty(len(self.values), dtype=object)
        table[:] = list(self.values)
        return table[indices]

    def sample(self, u: float) -> Scalar:
        return self.values[min(int(u * self.size), self.size - 1)]

    def sample_array(self, u: np.ndarray) -> np.ndarray:
        return self.grid_values(np.minimum((u * self.size).astype(np.int64), self.size - 1))

    def index(self, value: Any) -> int | None:
        try:
            wanted = canonical_value(value)
        except ValueError:
            return None
        for i, candidate in enumerate(self.values):
            if (
                type(canonical_value(candidate)) is type(wanted)
                and canonical_value(candidate) == wanted
            ):
                return i
        return None

    def normalise(self, value: Any) -> Scalar:
        position = self.index(value)
        if position is None:
            raise ValueError(f"{self.name}: {value!r} is not one of {list(self.values)}")
        return self.values[position]

    def describe(self) -> dict[str, Any]:
        return {"choice": list(self.values)}


Dim = IntDim | FloatDim | ChoiceDim


# --------------------------------------------------------------------------- the space


class Space:
    """Searched dimensions, fixed values and constraints; a lazy grid over them."""

    __slots__ = ("_grid_size", "_strides", "_tables", "constraints", "dims", "fixed")

    def __init__(
        self,
        dims: Sequence[Dim],
        fixed: Mapping[str, Scalar] | None = None,
        constraints: Sequence[SpaceConstraint] = (),
    ) -> None:
        self.dims: tuple[Dim, ...] = tuple(dims)
        self.fixed: dict[str, Scalar] = dict(fixed or {})
        self.constraints: tuple[SpaceConstraint, ...] = tuple(constraints)
        names = [d.name for d in self.dims]
        duplicates = sorted(
            {n for n in names if names.count(n) > 1} | (set(names) & set(self.fixed))
        )
        if duplicates:
            raise ConfigError(f"space: parameter {duplicates[0]!r} is declared twice")
        known = set(names) | set(self.fixed)
        for constraint in self.constraints:
            for name in constraint.names:
                if name not in known:
                    raise ConfigError(
                        f"space: constraint {constraint.text!r}: unknown parameter {name!r}"
                        f" (known: {', '.join(sorted(known)) or 'none'})"
                    )
        self._check_constraint_types()
        sizes = [d.grid_size for d in self.dims]
        if all(s is not None for s in sizes):
            strides: list[int] = []
            total = 1
            for size in reversed(sizes):
                strides.append(total)
                total *= int(size)  # type: ignore[arg-type]
            self._strides: tuple[int, ...] | None = tuple(reversed(strides))
            self._grid_size: int | None = total
        else:
            self._strides = None
            self._grid_size = None
        self._tables: list[list[Any]] | None = None  # each dimension's grid values (grid_points), built on use

    def _numeric(self, name: str) -> bool:
        if name in self.fixed:
            return _is_number(self.fixed[name])
        dim = self.dim(name)
        return not isinstance(dim, ChoiceDim) or dim.numeric

    def _check_constraint_types(self) -> None:
        """Arithmetic and ordering need numbers; strings compare only with == and !=."""
        for constraint in self.constraints:
            for side in (constraint.left, constraint.right):
                arithmetic = not (isinstance(side, Linear) and side.is_name)
                for name in side.names:
                    if (arithmetic or constraint.op not in ("==", "!=")) and not self._numeric(
                        name
                    ):
                        raise ConfigError(
                            f"space: constraint {constraint.text!r}: {name!r} is not numeric"
                            " (non-numeric parameters compare only with == or !=)"
                        )

    # ------------------------------------------------------------------ description

    @property
    def names(self) -> tuple[str, ...]:
        """Searched parameter names, in declaration order."""
        return tuple(d.name for d in self.dims)

    def dim(self, name: str) -> Dim:
        for d in self.dims:
            if d.name == name:
                return d
        raise KeyError(name)

    @property
    def griddable(self) -> bool:
        """Whether every dimension has grid points (floats need ``step`` or ``points``)."""
        return self._grid_size is not None

    @property
    def discrete(self) -> bool:
        """Whether every sampler draws from a finite set (no continuous float)."""
        return all(d.discrete for d in self.dims)

    @property
    def grid_size(self) -> int:
        """Number of grid points before constraints (a product; nothing is built)."""
        if self._grid_size is None:
            continuous = [d.name for d in self.dims if d.grid_size is None]
            raise ConfigError(
                f"space.{continuous[0]}: a continuous float range has no grid:"
                " give it a step or a number of points"
            )
        return self._grid_size

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description (dimensions, fixed values, constraints)."""
        return {
            "dims": {d.name: d.describe() for d in self.dims},
            "fixed": {k: canonical_value(v) for k, v in self.fixed.items()},
            "constraints": [c.text for c in self.constraints],
        }

    def fingerprint(self) -> str:
        """A hash of :meth:`describe`: changes whenever the space does."""
        return hashlib.blake2b(
            json.dumps(self.describe(), sort_keys=True, separators=(",", ":")).encode(),
            digest_size=8,
        ).hexdigest()

    def __repr__(self) -> str:
        size = self._grid_size if self._grid_size is not None else "continuous"
        return f"Space({', '.join(self.names)}; fixed={sorted(self.fixed)}; grid={size})"

    # ------------------------------------------------------------------ points

    def complete(self, searched: Mapping[str, Any]) -> dict[str, Any]:
        """Searched values in declaration order followed by the fixed values."""
        point = {name: searched[name] for name in self.names}
        point.update(self.fixed)
        return point

    def canonical(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and normalise a full parameter dict (``5.0`` -> ``5`` for an int)."""
        missing = [n for n in (*self.names, *self.fixed) if n not in params]
        unknown = [n for n in params if n not in self.fixed and n not in self.names]
        if missing or unknown:
            raise ValueError(f"parameters {sorted(params)}: missing {missing}, unknown {unknown}")
        point = {d.name: d.normalise(params[d.name]) for d in self.dims}
        point.update(self.fixed)
        return point

    def trial_key(self, params: Mapping[str, Any]) -> str:
        """:func:`trial_key` of ``params`` (numbers are normalised, so ``5.0`` keys as ``5``).

        No validation: :meth:`canonical` checks a dict against the space.
        """
        return trial_key(params)

    def trial_keys(self, points: Sequence[Mapping[str, Any]]) -> list[str]:
        """:meth:`trial_key` of each point (a batch: shared texts are built once)."""
        return trial_keys(points)

    def is_feasible(self, params: Mapping[str, Any]) -> bool:
        """Whether ``params`` satisfies every constraint."""
        return all(constraint(params) for constraint in self.constraints)

    def sample(self, u: Sequence[float] | np.ndarray) -> dict[str, Any]:
        """The point at unit coordinates ``u`` (one per dimension), fixed values included."""
        point = {d.name: d.sample(float(x)) for d, x in zip(self.dims, u, strict=True)}
        point.update(self.fixed)
        return point

    # ------------------------------------------------------------------ the grid

    def grid_point(self, index: int) -> dict[str, Any]:
        """The grid point at ``index`` (mixed radix, last dimension fastest), no constraint check."""
        size = self.grid_size
        if not 0 <= index < size:
            raise IndexError(f"grid index {index} out of range [0, {size})")
        assert self._strides is not None
        point: dict[str, Any] = {}
        for dim, stride in zip(self.dims, self._strides, strict=True):
            digit, index = divmod(index, stride)
            point[dim.name] = dim.grid_value(digit)
        point.update(self.fixed)
        return point

    def grid_points(self, indices: np.ndarray) -> list[dict[str, Any]]:
        """:meth:`grid_point` of each index, from per-dimension value tables (no per-point arithmetic)."""
        size = self.grid_size
        assert self._strides is not None
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= size):
            raise IndexError(f"grid index out of range [0, {size})")
        if self._tables is None:
            if any(d.grid_size > _MAX_TABLE for d in self.dims):  # type: ignore[operator]
                return [self.grid_point(index) for index in indices.tolist()]
            self._tables = [[d.grid_value(i) for i in range(d.grid_size)] for d in self.dims]  # type: ignore[arg-type]
        columns = []
        rest = indices
        for table, stride in zip(self._tables, self._strides, strict=True):
            digits, rest = np.divmod(rest, stride)
            columns.append([table[digit] for digit in digits.tolist()])
        names = [d.name for d in self.dims]
        # (a zip per point with strict=True would double the cost of a point)
        points = list(map(dict, map(zip, itertools.repeat(names), zip(*columns, strict=True))))
        if self.fixed:
            for point in points:
                point.update(self.fixed)
        return points

    def grid_index(self, params: Mapping[str, Any]) -> int | None:
        """Inverse of :meth:`grid_point` (``None`` when ``params`` is not a grid point)."""
        assert self._strides is not None or not self.dims
        index = 0
        for dim, stride in zip(self.dims, self._strides or (), strict=True):
            if isinstance(dim, FloatDim) and dim._table is not None:
                value = float(params[dim.name])
                digit = dim._table.index(value) if value in dim._table else None
            else:
                digit = dim.index(params[dim.name])
            if digit is None:
                return None
            index += digit * stride
        return index

    def _columns(self, indices: np.ndarray, names: set[str] | None = None) -> dict[str, np.ndarray]:
        assert self._strides is not None
        columns: dict[str, np.ndarray] = {}
        for dim, stride in zip(self.dims, self._strides, strict=True):
            if names is None or dim.name in names:
                columns[dim.name] = dim.grid_values((indices // stride) % dim.grid_size)
        for name, value in self.fixed.items():
            if names is None or name in names:
                column = np.empty(
                    indices.shape[0], dtype=object if isinstance(value, str) else np.float64
                )
                column[:] = value
                columns[name] = column
        return columns

    def feasible_mask(self, indices: np.ndarray) -> np.ndarray:
        """Which grid ``indices`` (an int64 array) satisfy every constraint."""
        mask = np.ones(indices.shape[0], dtype=bool)
        if not self.constraints:
            return mask
        needed = {n for c in self.constraints for n in c.names}
        columns = self._columns(indices, needed)
        for constraint in self.constraints:
            mask &= constraint.evaluate_columns(columns, indices.shape[0])
        return mask

    def feasible_indices(self, start: int, stop: int) -> np.ndarray:
        """Feasible grid indices in ``[start, stop)``, ascending."""
        if stop <= start:
            return np.empty(0, dtype=np.int64)
        if not self.constraints:
            return np.arange(start, stop, dtype=np.int64)
        if stop > _INT64_SAFE:
            kept = [i for i in range(start, stop) if self.is_feasible(self.grid_point(i))]
            return np.asarray(kept, dtype=object)
        indices = np.arange(start, stop, dtype=np.int64)
        return indices[self.feasible_mask(indices)]

    def walk_grid(
        self, start: int = 0, limit: int | None = None
    ) -> tuple[list[tuple[int, dict[str, Any]]], int]:
        """Up to ``limit`` feasible grid points from index ``start``.

        Returns ``(points, cursor)``: ``points`` are ``(index, params)`` pairs and
        ``cursor`` is where the next walk starts (the grid size once exhausted).
        """
        size = self.grid_size
        found: list[tuple[int, dict[str, Any]]] = []
        cursor = start
        block = _BLOCK
        while cursor < size and (limit is None or len(found) < limit):
            stop = min(size, cursor + block)
            for index in self.feasible_indices(cursor, stop):
                found.append((int(index), self.grid_point(int(index))))
                if limit is not None and len(found) >= limit:
                    return found, int(index) + 1
            cursor = stop
            block = min(block * 2, _MAX_BLOCK)  # sparse regions: widen the blocks (bounded memory)
        return found, min(cursor, size)

    def iter_grid(self, start: int = 0) -> Iterator[dict[str, Any]]:
        """Every feasible grid point from ``start``, lazily, in grid order."""
        cursor = start
        size = self.grid_size
        while cursor < size:
            stop = min(size, cursor + _BLOCK)
            for index in self.feasible_indices(cursor, stop):
                yield self.grid_point(int(index))
            cursor = stop

    def _projection(self) -> Space:
        """The space restricted to the dimensions the constraints mention."""
        needed = {n for c in self.constraints for n in c.names}
        return Space([d for d in self.dims if d.name in needed], self.fixed, self.constraints)

    def feasible_grid_size(self, limit: int = 2_000_000) -> int | None:
        """Exact number of feasible grid points, or ``None`` if counting would walk over ``limit``.

        Only the dimensions that constraints mention are walked; the others
        multiply the count.
        """
        size = self.grid_size
        if not self.constraints:
            return size
        projection = self._projection()
        sub_size = projection.grid_size
        if sub_size > limit:
            return None
        free = size // sub_size if sub_size else 0
        count = 0
        for start in range(0, sub_size, _MAX_BLOCK):
            count += int(
                projection.feasible_indices(start, min(sub_size, start + _MAX_BLOCK)).shape[0]
            )
        return count * free

    # ------------------------------------------------------------------ feasibility

    def check_feasible(
        self, where: str = "space", *, grid: bool = False, limit: int = 2_000_000
    ) -> None:
        """Raise ``ConfigError`` when provably no point satisfies the constraints.

        Discrete constraint variables are enumerated exactly (up to ``limit``
        points of the projected space); numeric ranges are narrowed by interval
        propagation, which proves most contradictions. ``grid=True`` checks the
        grid points themselves (what the grid sampler walks).
        """
        if not self.constraints:
            return
        projection = self._projection()
        listed = "; ".join(repr(c.text) for c in self.constraints)
        held = [
            f"{n} = {self.fixed[n]!r}"
            for n in dict.fromkeys(n for c in self.constraints for n in c.names)
            if n in self.fixed
        ]
        if held:
            listed += f" (with {', '.join(held)} held fixed)"
        impossible = ConfigError(
            f"{where}: no point of the space satisfies the constraints {listed}"
        )
        if not projection.dims:
            if not projection.is_feasible(self.fixed):
                raise impossible
            return
        if (grid or projection.discrete) and projection.griddable and projection.grid_size <= limit:
            if projection.feasible_grid_size(limit) == 0:
                if grid and not projection.discrete:
                    raise ConfigError(f"{where}: no grid point satisfies the constraints {listed}")
                raise impossible
            return
        box: dict[str, tuple[float, float]] = {}
        for d in projection.dims:
            if d.bounds is not None:
                box[d.name] = d.bounds
        for name, value in self.fixed.items():
            if _is_number(value):
                box[name] = (float(value), float(value))
        if tighten(self.constraints, box) is None:
            raise impossible
        # No contradiction proven: accept. Should the feasible region be empty
        # after all, the samplers run out of points and the study ends.


# --------------------------------------------------------------------------- parsing


def parse_space(
    table: Mapping[str, Any],
    where: str,
    *,
    fixed: Mapping[str, Any] | None = None,
    constraints: Sequence[str] = (),
) -> Space:
    """Build a :class:`Space` from the decoded ``[space]`` table of ``where`` (a file name).

    ``fixed`` adds ``[strategy].fixed`` values; ``constraints`` adds constraints
    declared elsewhere (the strategy's own). Errors are one line:
    ``study.toml: space.fast: ...``.
    """
    dims: list[Dim] = []
    fixed_values: dict[str, Scalar] = {}
    texts: list[tuple[str, str]] = []
    _parse_group(table, "", where, dims, fixed_values, texts)
    for name, value in (fixed or {}).items():
        key = f"{where}: strategy.fixed.{name}"
        if not _is_scalar(value):
            raise ConfigError(
                f"{key}: expected a number, string or boolean, got {type(value).__name__}"
            )
        if name in fixed_values or any(d.name == name for d in dims):
            raise ConfigError(f"{key}: {name!r} is both fixed and in [space]")
        fixed_values[name] = value
    parsed = [parse_constraint(text, place) for place, text in texts]
    parsed += [parse_constraint(text, f"{where}: strategy constraint") for text in constraints]
    if not dims:
        raise ConfigError(f"{where}: space: no parameter to search (the space is empty)")
    try:
        return Space(dims, fixed_values, _unique(parsed))
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None


def _unique(constraints: list[SpaceConstraint]) -> list[SpaceConstraint]:
    seen: dict[str, SpaceConstraint] = {}
    for c in constraints:
        seen.setdefault(c.text.replace(" ", ""), c)
    return list(seen.values())


def _is_scalar(value: object) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, (bool, int, str))


def _parse_group(
    table: Mapping[str, Any],
    prefix: str,
    where: str,
    dims: list[Dim],
    fixed: dict[str, Scalar],
    constraints: list[tuple[str, str]],
) -> None:
    for key, value in table.items():
        if not prefix and key == "constraints":
            if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
                raise ConfigError(f"{where}: space.constraints: expected a list of strings")
            constraints.extend((f"{where}: space.constraints[{i}]", t) for i, t in enumerate(value))
            continue
        name = f"{prefix}{key}"
        path = f"{where}: space.{name}"
        if not _NAME.match(key):
            raise ConfigError(f"{path}: parameter names are letters, digits and _, not {key!r}")
        if isinstance(value, dict):
            kinds = [k for k in KINDS if k in value]
            if not kinds:
                if not value:
                    raise ConfigError(
                        f"{path}: empty group (expected parameters or int/float/choice/fixed)"
                    )
                _parse_group(value, f"{name}.", where, dims, fixed, constraints)
            elif len(kinds) > 1:
                raise ConfigError(f"{path}: choose one of {' / '.join(kinds)}, not several")
            elif kinds[0] == "fixed":
                _check_keys(value, "fixed", path)
                if not _is_scalar(value["fixed"]):
                    raise ConfigError(f"{path}.fixed: expected a number, string or boolean")
                fixed[name] = value["fixed"]
            else:
                dims.append(_parse_dim(name, kinds[0], value, path))
        elif isinstance(value, list):
            dims.append(_parse_choice(name, value, path))
        elif _is_scalar(value):
            fixed[name] = value
        else:
            raise ConfigError(
                f"{path}: expected a table such as {{ int = [5, 50] }}, a list of choices or a scalar,"
                f" got {type(value).__name__}"
            )


def _check_keys(spec: Mapping[str, Any], kind: str, path: str) -> None:
    allowed = (kind, *_MODIFIERS[kind])
    for key in spec:
        if key not in allowed:
            options = ", ".join(_MODIFIERS[kind]) or "nothing else"
            raise ConfigError(f"{path}.{key}: unknown key (a {kind} parameter takes {options})")


def _parse_dim(name: str, kind: str, spec: Mapping[str, Any], path: str) -> Dim:
    _check_keys(spec, kind, path)
    if kind == "choice":
        if not isinstance(spec["choice"], list):
            raise ConfigError(
                f"{path}.choice: expected a list, got {type(spec['choice']).__name__}"
            )
        return _parse_choice(name, spec["choice"], f"{path}.choice")
    bounds = spec[kind]
    number = (
        (lambda v: isinstance(v, int) and not isinstance(v, bool)) if kind == "int" else _is_number
    )
    if not (isinstance(bounds, list) and len(bounds) == 2 and all(number(v) for v in bounds)):
        raise ConfigError(f"{path}.{kind}: expected [low, high] as two {kind}s, got {bounds!r}")
    low, high = bounds
    if kind == "float" and not all(math.isfinite(v) for v in bounds):
        raise ConfigError(f"{path}.float: bounds must be finite, got {bounds!r}")
    if low > high:
        raise ConfigError(f"{path}.{kind}: low {low} is above high {high}")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{path}.log: expected a boolean, got {type(log).__name__}")
    if kind == "int":
        step = spec.get("step", 1)
        if not (isinstance(step, int) and not isinstance(step, bool)) or step < 1:
            raise ConfigError(f"{path}.step: expected an integer >= 1, got {step!r}")
        if log and low < 1:
            raise ConfigError(f"{path}.log: a log range needs low >= 1, got {low}")
        if log and step != 1:
            raise ConfigError(f"{path}.log: a log range takes no step (the step is 1)")
        return IntDim(name, low, high, step, log)
    step = spec.get("step")
    points = spec.get("points")
    if step is not None and (not _is_number(step) or not step > 0 or not math.isfinite(step)):
        raise ConfigError(f"{path}.step: expected a positive number, got {step!r}")
    if points is not None:
        if not (isinstance(points, int) and not isinstance(points, bool)) or points < 1:
            raise ConfigError(f"{path}.points: expected an integer >= 1, got {points!r}")
        if points > _MAX_POINTS:
            raise ConfigError(f"{path}.points: at most {_MAX_POINTS}, got {points}")
        if points == 1 and low != high:
            raise ConfigError(
                f"{path}.points: a range of two different bounds needs at least 2 points"
            )
    if step is not None and points is not None:
        raise ConfigError(f"{path}: give step or points, not both")
    if log and step is not None:
        raise ConfigError(f"{path}: a log range takes points, not step")
    if log and low <= 0:
        raise ConfigError(f"{path}.log: a log range needs low > 0, got {low}")
    return FloatDim(
        name, float(low), float(high), None if step is None else float(step), log, points
    )


def _parse_choice(name: str, values: list[Any], path: str) -> ChoiceDim:
    if not values:
        raise ConfigError(f"{path}: an empty list of choices")
    keys: set[str] = set()
    for value in values:
        if not _is_scalar(value):
            raise ConfigError(f"{path}: choices are numbers, strings or booleans, got {value!r}")
        key = json.dumps(canonical_value(value))
        if key in keys:
            raise ConfigError(f"{path}: {value!r} is listed twice")
        keys.add(key)
    return ChoiceDim(name, tuple(values))
