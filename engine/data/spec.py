"""Data specs: ``kind:target,key=value,...`` strings and their typed options.

``parse_spec`` splits a spec into a :class:`DataSpec`; the ``option_*`` helpers
read one option as a typed value. Every helper raises a one-line
:class:`~engine.errors.DataError` naming the spec (``where``), the option and
what was expected, so every source reports bad options the same way.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

import numpy as np

from engine.data.timeframes import timeframe_seconds
from engine.errors import DataError, quoted

#: Source kinds and whether each takes a target (a path or a coin) before its options.
SOURCES: dict[str, bool] = {
    "synthetic": False, "csv": True, "parquet": True, "hyperliquid": True, "binance": True, "ccxt": True,
}
#: A bare path with one of these endings is read as that kind (``--data prices.csv``).
FILE_SUFFIXES: dict[str, str] = {
    ".csv": "csv",
    ".csv.gz": "csv",
    ".csv.bz2": "csv",
    ".csv.xz": "csv",
    ".csv.zip": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_OPTION = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$")
_EXPECTED_KINDS = "synthetic:bars=N,seed=S, csv:PATH, parquet:PATH, hyperliquid:COIN, binance:SYMBOL or ccxt:EXCHANGE:SYMBOL"


@dataclass(frozen=True, slots=True)
class DataSpec:
    """A parsed data spec: ``kind`` (``csv``), ``target`` (a path, a coin, or ``""``)
    and the ``key=value`` options as strings."""

    kind: str
    target: str
    options: dict[str, str] = field(default_factory=dict)
    text: str = ""

    @property
    def where(self) -> str:
        """How errors name this spec: ``data spec 'csv:x.csv'``."""
        return f"data spec {self.text!r}"


def parse_spec(spec: str) -> DataSpec:
    """Split ``kind:target,key=value,...`` into a :class:`DataSpec`.

    Options are the trailing comma-separated ``key=value`` segments; for kinds
    that take a target, everything before them is the target, so a path may
    itself contain commas. A bare path ending in ``.csv`` or ``.parquet`` (and
    the like) is read as that kind.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise DataError(f"data spec {spec!r}: empty; expected {_EXPECTED_KINDS}")
    text = spec.strip()
    where = f"data spec {text!r}"
    kind, sep, rest = text.partition(":")
    kind = kind.strip().lower()
    if not sep and kind in SOURCES and not SOURCES[kind]:
        sep = ":"  # a bare "synthetic" means its defaults
    if not sep or kind not in SOURCES:
        guessed = _kind_from_suffix(text)
        if guessed is None:
            shown = f"unknown source {kind + ':'!r}" if sep else "no source prefix"
            raise DataError(f"{where}: {shown}; expected {_EXPECTED_KINDS}")
        kind, rest = guessed, text
    segments = rest.split(",")
    if not SOURCES[kind]:
        target = ""
        option_segments = [] if not rest.strip() else segments
    else:
        # Options are the longest run of trailing key=value segments.
        first_option = len(segments)
        while first_option > 1 and _OPTION.match(segments[first_option - 1]):
            first_option -= 1
        target = ",".join(segments[:first_option]).strip()
        option_segments = segments[first_option:]
        if not target:
            what = {"csv": "a path", "parquet": "a path", "binance": "a symbol such as BTCUSDT",
                "ccxt": "an exchange and a symbol such as binance:BTC/USDT"}.get(
                kind, "a coin such as BTC"
            )
            raise DataError(f"{where}: expected {what} after '{kind}:'")
    options: dict[str, str] = {}
    for segment in option_segments:
        match = _OPTION.match(segment)
        if match is None:
            raise DataError(f"{where}: expected key=value options separated by commas, got {quoted(segment.strip())}")
        key, value = match.group(1).lower(), match.group(2).strip()
        if key in options:
            raise DataError(f"{where}: option {key} given twice")
        if not value:
            raise DataError(f"{where}: option {key} has no value")
        options[key] = value
    return DataSpec(kind=kind, target=target, options=options, text=text)


def _kind_from_suffix(text: str) -> str | None:
    lowered = text.lower().split(",")[0]
    for suffix, kind in FILE_SUFFIXES.items():
        if lowered.endswith(suffix):
            return kind
    return None


def check_options(options: Mapping[str, str], allowed: Iterable[str], where: str) -> None:
    """Raise on the first option not in ``allowed``, listing the accepted ones."""
    allowed = tuple(allowed)
    for key in options:
        if key not in allowed:
            listed = ", ".join(allowed) if allowed else "none"
            raise DataError(f"{where}: unknown option {quoted(key)} (expected one of: {listed})")


def _number(options: Mapping[str, str], key: str, where: str, what: str = "a number") -> float | None:
    raw = options.get(key)
    if raw is None:
        return None
    try:
        value = float(raw.replace("_", ""))
    except ValueError:
        raise DataError(f"{where}: option {key}: expected {what}, got {quoted(raw)}") from None
    if not math.isfinite(value):
        raise DataError(f"{where}: option {key}: expected a finite number, got {quoted(raw)}")
    return value


def _check_bounds(
    value: float, key: str, where: str, minimum: float | None, maximum: float | None, raw: str
) -> None:
    if minimum is not None and value < minimum:
        raise DataError(f"{where}: option {key}: expected a value >= {minimum:g}, got {quoted(raw)}")
    if maximum is not None and value > maximum:
        raise DataError(f"{where}: option {key}: expected a value <= {maximum:g}, got {quoted(raw)}")


def option_int(
    options: Mapping[str, str],
    key: str,
    where: str,
    *,
    default: int,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    """A whole-number option (``1000000``, ``1_000_000`` and ``1e6`` all read as one million)."""
    raw = options.get(key)
    value = _number(options, key, where, "a whole number")
    if value is None or raw is None:
        return default
    if value != int(value):
        raise DataError(f"{where}: option {key}: expected a whole number, got {quoted(raw)}")
    _check_bounds(value, key, where, minimum, maximum, raw)
    return int(value)


def option_float(
    options: Mapping[str, str],
    key: str,
    where: str,
    *,
    default: float,
    minimum: float | None = None,
    maximum: float | None = None,
) -> float:
    """A finite real-number option within ``[minimum, maximum]``."""
    raw = options.get(key)
    value = _number(options, key, where)
    if value is None or raw is None:
        return default
    _check_bounds(value, key, where, minimum, maximum, raw)
    return value


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def option_bool(options: Mapping[str, str], key: str, where: str, *, default: bool) -> bool:
    """A yes/no option: true/false, yes/no, on/off, 1/0."""
    raw = options.get(key)
    if raw is None:
        return default
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise DataError(f"{where}: option {key}: expected true or false, got {quoted(raw)}")


def option_timeframe(options: Mapping[str, str], key: str, where: str, *, default: str) -> str:
    """A timeframe option such as ``1m``, ``4h``, ``1d``."""
    raw = options.get(key)
    if raw is None:
        return default
    try:
        timeframe_seconds(raw)
    except DataError:
        raise DataError(
            f"{where}: option {key}: expected a timeframe such as 1m, 15m, 1h, 4h, 1d, 1w, 1M, got {quoted(raw)}"
        ) from None
    return raw


def option_timestamp(options: Mapping[str, str], key: str, where: str, *, default: int | None) -> int | None:
    """A point in time as int64 nanoseconds UTC: an ISO date/datetime (naive = UTC)
    or epoch seconds/milliseconds/nanoseconds (told apart by magnitude)."""
    raw = options.get(key)
    if raw is None:
        return default
    try:
        ns = parse_timestamp(raw)
    except ValueError:
        raise DataError(
            f"{where}: option {key}: expected an ISO date such as 2024-01-31 or 2024-01-31T12:00:00Z, "
            f"or epoch seconds/milliseconds, got {quoted(raw)}"
        ) from None
    if not _NS_MIN <= ns <= _NS_MAX:
        raise DataError(f"{where}: option {key}: expected a time between 1677 and 2262, got {quoted(raw)}")
    return ns


_NS_MIN = -(2**63) + 1  # int64 nanoseconds: 1677-09-21 to 2262-04-11 (the minimum is NaT)
_NS_MAX = 2**63 - 1


def parse_timestamp(raw: str) -> int:
    """One timestamp (ISO text or an epoch number) as int64 nanoseconds UTC; ``ValueError`` if neither."""
    text = raw.strip().replace("_", "")
    if re.fullmatch(r"[+-]?\d+", text):
        whole = int(text)  # exact, even for nanoseconds
        return whole * epoch_scale(abs(whole))
    try:
        number = Decimal(text)
    except InvalidOperation:
        number = None
    if number is not None:
        if not number.is_finite():
            raise ValueError(raw)
        return int((number * epoch_scale(float(abs(number)))).to_integral_value())
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    from datetime import UTC, datetime

    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(raw) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = int(moment.timestamp() // 1)
    return seconds * 1_000_000_000 + moment.microsecond * 1_000


def epoch_scale(magnitude: float) -> int:
    """Nanoseconds per unit of an epoch number of this magnitude.

    Seconds below 1e11 (until year 5138), milliseconds below 1e14, microseconds
    below 1e17, nanoseconds above.
    """
    if magnitude < 1e11:
        return 1_000_000_000
    if magnitude < 1e14:
        return 1_000_000
    if magnitude < 1e17:
        return 1_000
    return 1


EPOCH_UNITS = {1_000_000_000: "s", 1_000_000: "ms", 1_000: "us", 1: "ns"}


def format_ns(ts: int) -> str:
    """An int64 ns timestamp as ISO text in UTC (``2024-01-01T00:00:00``)."""
    return str(np.datetime64(int(ts), "ns").astype("datetime64[s]" if ts % 1_000_000_000 == 0 else "datetime64[ns]"))
