"""Calling a strategy's signal function: the indicator cache installed, its output checked,
its failures turned into one line naming the user's file, line and parameters."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.strategy.cache import evaluating
from engine.strategy.core import StrategyCodeError, StrategyDef
from engine.strategy.loader import user_line, without_jit

if TYPE_CHECKING:
    from engine.data import Bars
    from engine.strategy.cache import IndicatorCache

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_NUMBA_FILE = re.compile(r'File "([^"]+)", line (\d+)')


def evaluate(
    record: StrategyDef, bars: Bars, values: Mapping[str, Any], cache: IndicatorCache | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(entries, exits)`` of ``record`` for validated ``values``, checked to be two
    bool arrays of one value per bar; any failure raises :class:`StrategyCodeError`."""
    if record.function is None:
        raise StrategyCodeError(f"{record.where}: {record.name} has no signal function")
    try:
        with evaluating(bars, cache):
            result = record.function(bars, **values)
    except Exception as error:
        raise StrategyCodeError(_failure(record, bars, values, error)) from None
    return _checked(record, values, result, len(bars))


def _code_file(record: StrategyDef) -> str:
    function = record.function
    code = getattr(getattr(function, "py_func", function), "__code__", None)
    return code.co_filename if code is not None else ""


def _failure(record: StrategyDef, bars: Bars, values: Mapping[str, Any], error: Exception) -> str:
    label = record.label(values)
    code_file = _code_file(record)
    if _is_numba_error(error):
        return _numba_failure(record, bars, values, error, code_file)
    line = user_line(error.__traceback__, code_file) or record.line
    return f"{record.file}:{line}: {label} raised {type(error).__name__}: {_one_line(str(error), code_file, record.file)}"


def _is_numba_error(error: Exception) -> bool:
    try:
        from numba.core.errors import NumbaError
    except ImportError:  # pragma: no cover
        return False
    return isinstance(error, NumbaError)


def _numba_failure(
    record: StrategyDef, bars: Bars, values: Mapping[str, Any], error: Exception, code_file: str
) -> str:
    label = record.label(values)
    text = _ANSI.sub("", str(error))
    plain = without_jit(record)
    if plain is not None and plain.function is not None:
        try:
            plain.function(bars, **values)
        except Exception as python_error:
            line = user_line(python_error.__traceback__, _code_file(plain)) or record.line
            return (
                f"{record.file}:{line}: {label}: numba cannot compile it; run as plain Python it raises "
                f"{type(python_error).__name__}: {_one_line(str(python_error), _code_file(plain), record.file)}"
            )
    # numba names files relative to the working directory.
    lines = [int(m.group(2)) for m in _NUMBA_FILE.finditer(text) if os.path.abspath(m.group(1)) == code_file]
    line = lines[-1] if lines else user_line(error.__traceback__, code_file) or record.line
    summary = _numba_summary(text)
    return f"{record.file}:{line}: {label}: numba cannot compile it ({type(error).__name__}): {summary}"


def _numba_summary(text: str) -> str:
    """The informative lines of a numba error (not its pipeline banner nor its file excerpts)."""
    kept = []
    in_excerpt = False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("File "):
            in_excerpt = True  # a source excerpt follows, up to the next blank line
        if not line:
            in_excerpt = False
        if in_excerpt or not line or line.startswith(("Failed in ", "During:", "^")):
            continue
        kept.append(line)
    summary = " ".join(kept) or text.strip().splitlines()[0]
    summary = summary.split(" There are ")[0]  # the list of overloads numba tried says little to a user
    return summary if len(summary) <= 400 else summary[:400] + "..."


def _one_line(message: str, code_file: str, user_file: str) -> str:
    text = " ".join(message.replace(code_file, user_file).split()) if code_file else " ".join(message.split())
    return text if len(text) <= 400 else text[:400] + "..."


def _checked(record: StrategyDef, values: Mapping[str, Any], result: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    where = f"{record.where}: {record.label(values)}"
    if not isinstance(result, tuple) or len(result) != 2:
        got = f"a tuple of {len(result)}" if isinstance(result, tuple) else type(result).__name__
        raise StrategyCodeError(f"{where} must return (entries, exits), two bool arrays; got {got}")
    out = []
    for what, value in zip(("entries", "exits"), result, strict=True):
        array = np.asarray(value)
        if array.dtype != np.bool_:
            raise StrategyCodeError(
                f"{where}: {what} has dtype {array.dtype}, expected bool (a comparison such as x > y, "
                "or ta.crossed_above)"
            )
        if array.shape != (n,):
            raise StrategyCodeError(f"{where}: {what} has shape {array.shape}, expected ({n},): one value per bar")
        out.append(np.ascontiguousarray(array))
    return out[0], out[1]
