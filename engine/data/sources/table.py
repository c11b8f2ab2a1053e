"""Tables to ``Bars``: the shared half of the ``csv:`` and ``parquet:`` importers.

A reader hands over the raw columns (pandas Series, at this edge only) and a
function that names a data row the way the user sees it (``line 7`` in a CSV
file, ``row 7`` in a parquet file). This module matches the column names, turns
timestamps into int64 nanoseconds UTC, drops (or, under ``strict``, rejects)
rows with NaN or inf, checks order and prices with messages that name the file
and the line, infers the timeframe, and builds the validated ``Bars``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from engine.data.bars import Bars, BarsValidationError
from engine.data.spec import (
    EPOCH_UNITS,
    DataSpec,
    epoch_scale,
    format_ns,
    option_bool,
    option_timeframe,
    option_timestamp,
)
from engine.errors import DataError, quoted
from engine.profile import profiler

#: Accepted column names (compared case-insensitively, spaces and underscores alike).
ALIASES: dict[str, tuple[str, ...]] = {
    "ts": (
        "timestamp",
        "datetime",
        "date",
        "time",
        "ts",
        "open_time",
        "date_time",
        "t",
        "__index_level_0__",
    ),
    "open": ("open", "o"),
    "high": ("high", "h"),
    "low": ("low", "l"),
    "close": ("close", "c"),
    "volume": ("volume", "vol", "v"),
}
#: Cell texts that mean "no value" (pandas' defaults, lower-cased), dropped like NaN.
MISSING_TEXT = (
    "",
    "nan",
    "-nan",
    "na",
    "n/a",
    "null",
    "none",
    "<na>",
    "#n/a",
    "#n/a n/a",
    "#na",
    "-1.#ind",
    "-1.#qnan",
    "1.#ind",
    "1.#qnan",
)
REQUIRED = ("ts", "open", "high", "low", "close")
NUMBER_COLUMNS = ("open", "high", "low", "close", "volume")
#: Options every file source accepts.
FILE_OPTIONS = ("timeframe", "symbol", "strict", "start", "end")
_INT64_MAX = np.iinfo(np.int64).max

RowLabel = Callable[[int], str]


@dataclass(frozen=True, slots=True)
class ColumnMap:
    """Which source column feeds each bar column (positions into the source's columns)."""

    positions: dict[str, int]
    names: dict[str, str]


def normalise_name(name: object) -> str:
    """A header cell as compared against the aliases: trimmed, unquoted, without
    ``<>`` (MetaTrader), lower-case, ``_`` for spaces and dashes."""
    text = str(name).strip().strip('"').strip("'").strip("<>").strip()
    return text.lower().replace(" ", "_").replace("-", "_")


def match_columns(found: Sequence[object], where: str) -> ColumnMap:
    """Map ``found`` header names to bar columns; raise naming a missing or ambiguous column."""
    normalised = [normalise_name(name) for name in found]
    positions: dict[str, int] = {}
    for column, aliases in ALIASES.items():
        for alias in aliases:  # aliases are in order of preference
            hits = [i for i, name in enumerate(normalised) if name == alias]
            if len(hits) > 1:
                raise DataError(
                    f"{where}: column {column!r} appears {len(hits)} times "
                    f"({', '.join(quoted(found[i]) for i in hits)}); expected one"
                )
            if hits:
                positions[column] = hits[0]
                break
    if (
        positions.get("ts") is not None
        and normalised[positions["ts"]] == "date"
        and "time" in normalised
    ):
        positions["clock"] = normalised.index("time")  # separate date and time-of-day columns
    missing = [column for column in REQUIRED if column not in positions]
    if missing:
        column = missing[0]
        expected = "timestamp (or date, datetime, time)" if column == "ts" else column
        listed = ", ".join(quoted(name) for name in found[:20]) or "none"
        if len(found) > 20:
            listed += f", ... ({len(found)} columns)"
        raise DataError(f"{where}: missing column {expected}; columns found: {listed}")
    return ColumnMap(positions, {column: str(found[i]) for column, i in positions.items()})


def _cell(value: object) -> str:
    if (
        value is None
        or (isinstance(value, float) and np.isnan(value))
        or value is pd.NA
        or value is pd.NaT
    ):
        return "an empty cell"
    if isinstance(value, str) and not value.strip():
        return "an empty cell"
    return quoted(value)


def _numbers(series: pd.Series, column: str, where: str, label: RowLabel) -> np.ndarray:
    """A number column as float64 (NaN where empty); text that is not a number is an error."""
    if pd.api.types.is_bool_dtype(series.dtype):
        raise DataError(f"{where}: column {column}: expected numbers, got true/false values")
    if pd.api.types.is_numeric_dtype(series.dtype):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        raise DataError(f"{where}: column {column}: expected numbers, got dates")
    text = series.astype("string").str.strip()
    values = pd.to_numeric(text, errors="coerce")
    missing = text.isna() | text.str.lower().isin(MISSING_TEXT)
    bad = values.isna().to_numpy() & ~missing.fillna(True).to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{where}: {label(row)}, column {column}: expected a number, got {_cell(series.iloc[row])}"
        )
    return values.to_numpy(dtype=np.float64, na_value=np.nan)


def _out_of_range(where: str, label: RowLabel, row: int, column: str, value: object) -> DataError:
    return DataError(
        f"{where}: {label(row)}, column {column}: timestamp {value} is out of range "
        "(expected a time between 1677 and 2262)"
    )


def _epoch(
    values: np.ndarray, valid: np.ndarray, column: str, where: str, label: RowLabel
) -> tuple[np.ndarray, str]:
    """Epoch numbers (int64 or float64) to ns; the unit is told by the largest magnitude."""
    ns = np.zeros(values.shape[0], dtype=np.int64)
    if not valid.any():
        return ns, "s"
    compact = _compact_dates(values[valid])
    if compact is not None:
        ns[valid] = compact
        return ns, "yyyymmdd"
    rows = np.flatnonzero(valid)
    largest = int(rows[int(np.argmax(np.abs(values[valid])))])
    magnitude = abs(float(values[largest]))
    scale = epoch_scale(magnitude)
    if magnitude * scale >= float(_INT64_MAX):
        raise _out_of_range(where, label, largest, column, values[largest])
    if values.dtype.kind in "iu":
        ns[valid] = values[valid].astype(np.int64) * scale
    else:
        whole = np.floor(values[valid])
        ns[valid] = whole.astype(np.int64) * scale + np.round(
            (values[valid] - whole) * scale
        ).astype(np.int64)
    return ns, EPOCH_UNITS[scale]


_DAY_NS = 86_400 * 1_000_000_000


def _compact_dates(values: np.ndarray) -> np.ndarray | None:
    """``20240131`` or ``20240131093000`` numbers as ns, or None when they are not all
    such dates (as epoch seconds they would all fall in August 1970)."""
    if not (values.min() >= 19_000_101 and values.max() <= 21_001_231_235_959):
        return None
    if values.dtype.kind == "f":
        if not np.all(values == np.floor(values)):
            return None
        values = values.astype(np.int64)
    low, high = int(values.min()), int(values.max())
    if low >= 19_000_101 and high <= 21_001_231:
        days, clock = values, np.zeros_like(values)
    elif low >= 19_000_101_000_000 and high <= 21_001_231_235_959:
        days, clock = values // 1_000_000, values % 1_000_000
    else:
        return None
    year, month, day = days // 10_000, days // 100 % 100, days % 100
    hour, minute, second = clock // 10_000, clock // 100 % 100, clock % 100
    if np.any(
        (month < 1)
        | (month > 12)
        | (day < 1)
        | (day > 31)
        | (hour > 23)
        | (minute > 59)
        | (second > 59)
    ):
        return None
    months = (year - 1970) * 12 + (month - 1)
    first_of_month = months.astype("datetime64[M]").astype("datetime64[D]")
    dates = first_of_month + (day - 1).astype("timedelta64[D]")
    if np.any(dates.astype("datetime64[M]") != months.astype("datetime64[M]")):
        return None  # a day past the month's end (20240231): not a date
    return dates.astype(np.int64) * _DAY_NS + (hour * 3_600 + minute * 60 + second) * 1_000_000_000


def _datetimes(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """datetime64 (naive = UTC, or tz-aware) to ns int64 and a validity mask."""
    converted = pd.to_datetime(series, utc=True).dt.tz_convert(None).dt.as_unit("ns")
    valid = converted.notna().to_numpy()
    ns = converted.to_numpy(dtype="datetime64[ns]").view(np.int64).copy()
    ns[~valid] = 0
    return ns, valid


def timestamps(
    series: pd.Series, column: str, where: str, label: RowLabel
) -> tuple[np.ndarray, np.ndarray, str]:
    """A timestamp column as int64 ns UTC, a validity mask (False where empty) and the unit found.

    Epoch seconds, milliseconds, microseconds or nanoseconds (told apart by
    magnitude), ISO 8601 dates and datetimes (naive means UTC), or native
    datetime values.
    """
    dtype = series.dtype
    if pd.api.types.is_datetime64_any_dtype(dtype):
        ns, valid = _datetimes(series)
        return ns, valid, "datetime"
    if pd.api.types.is_bool_dtype(dtype):
        raise DataError(f"{where}: column {column}: expected timestamps, got true/false values")
    if pd.api.types.is_integer_dtype(dtype):  # also nullable Int64: exact, even for nanoseconds
        valid = series.notna().to_numpy()
        if (
            pd.api.types.is_unsigned_integer_dtype(dtype)
            and valid.any()
            and series.max() > _INT64_MAX
        ):
            row = int(np.argmax(series.to_numpy(dtype=np.float64, na_value=0.0)))
            raise _out_of_range(where, label, row, column, series.iloc[row])
        values = series.to_numpy(dtype=np.int64, na_value=0)
        ns, unit = _epoch(values, valid, column, where, label)
        return ns, valid, unit
    if pd.api.types.is_float_dtype(dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        valid = np.isfinite(values)
        ns, unit = _epoch(values, valid, column, where, label)
        return ns, valid, unit
    # Text: epoch numbers written as text, or ISO dates.
    text = series.astype("string").str.strip()
    present = ~(text.isna() | text.str.lower().isin(MISSING_TEXT)).fillna(True).to_numpy()
    if not present.any():
        return np.zeros(len(series), dtype=np.int64), present, "s"
    first = str(text[present].iloc[0])
    if _is_number(first):
        integers = text.str.fullmatch(r"[+-]?\d+").fillna(False).to_numpy()
        if (integers | ~present).all():  # exact integer parsing, even for nanoseconds
            too_long = present & (text.str.lstrip("+-").str.len().fillna(0).to_numpy() > 18)
            if too_long.any():  # beyond 18 digits only values below 9.22e18 fit
                big = np.flatnonzero(too_long)
                over = [int(r) for r in big if abs(int(str(text.iloc[int(r)]))) > _INT64_MAX]
                if over:
                    raise _out_of_range(where, label, over[0], column, text.iloc[over[0]])
            values = np.zeros(len(series), dtype=np.int64)
            values[present] = text[present].astype("int64").to_numpy()
            ns, unit = _epoch(values, present, column, where, label)
            return ns, present, unit
        numbers = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = present & np.isnan(numbers)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{where}: {label(row)}, column {column}: expected an epoch number like the rows before, "
                f"got {_cell(series.iloc[row])}"
            )
        valid = present & np.isfinite(numbers)
        ns, unit = _epoch(numbers, valid, column, where, label)
        return ns, valid, unit
    parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    valid = parsed.notna().to_numpy()
    bad = present & ~valid
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{where}: {label(row)}, column {column}: expected an ISO date or datetime such as "
            f"2024-01-31 or 2024-01-31T12:00:00Z, got {_cell(series.iloc[row])}"
        )
    ns = (
        parsed.dt.tz_convert(None)
        .dt.as_unit("ns")
        .to_numpy(dtype="datetime64[ns]")
        .view(np.int64)
        .copy()
    )
    ns[~valid] = 0
    return ns, valid, "iso"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def timeframe_from_gap(gap_ns: int, where: str) -> str:
    """The timeframe string of a bar spacing (``3_600e9`` -> ``"1h"``)."""
    if gap_ns < 500_000_000:
        raise DataError(
            f"{where}: the most common gap between bars is {gap_ns / 1e9:g} s; "
            "timeframes shorter than a second are not supported"
        )
    seconds = (gap_ns + 500_000_000) // 1_000_000_000  # jittered stamps round to whole seconds
    day = 86_400
    if seconds % day == 0 and 28 <= seconds // day <= 31:
        return "1M"
    for unit, length in (("w", 7 * day), ("d", day), ("h", 3_600), ("m", 60)):
        if seconds % length == 0:
            return f"{seconds // length}{unit}"
    return f"{seconds}s"


def infer_timeframe(ts: np.ndarray, where: str) -> str | None:
    """The most common spacing of ``ts`` as a timeframe, or None for a single bar."""
    if ts.shape[0] < 2:
        return None
    gaps, counts = np.unique(np.diff(ts), return_counts=True)
    # Ties go to the shortest gap (the bar length, when the longer ones are holes).
    return timeframe_from_gap(int(gaps[int(np.argmax(counts))]), where)


@dataclass(frozen=True, slots=True)
class FileSettings:
    """The options shared by file sources, read from the spec."""

    timeframe: str | None
    symbol: str
    strict: bool
    start_ns: int | None
    end_ns: int | None


def file_settings(spec: DataSpec, path: Path, strict: bool) -> FileSettings:
    """Read ``timeframe``, ``symbol``, ``strict``, ``start`` and ``end`` from a file spec."""
    options, where = spec.options, spec.where
    timeframe = option_timeframe(options, "timeframe", where, default="") or None
    name = path.name
    for suffix in (".gz", ".bz2", ".xz", ".zip", ".zst"):
        name = name.removesuffix(suffix)
    symbol = options.get("symbol") or Path(name).stem or "DATA"
    return FileSettings(
        timeframe=timeframe,
        symbol=symbol,
        strict=option_bool(options, "strict", where, default=strict),
        start_ns=option_timestamp(options, "start", where, default=None),
        end_ns=option_timestamp(options, "end", where, default=None),
    )


def bars_from_columns(
    raw: dict[str, pd.Series],
    names: dict[str, str],
    *,
    where: str,
    label: RowLabel,
    settings: FileSettings,
    meta: dict[str, object],
    cell_text: Callable[[int, str], str | None] | None = None,
) -> Bars:
    """Validated ``Bars`` from raw columns keyed by bar column (``volume`` optional).

    ``names`` are the columns' names in the file (for messages); ``label(i)``
    names data row ``i`` (0-based, before any row is dropped); ``cell_text``, when
    given, recovers a cell as written (a parsed NaN may have been ``nan`` or empty).
    """
    total = len(raw["ts"])
    if "clock" in raw:
        raw, names = _join_date_and_time(raw, names)
    ts, ts_valid, unit = timestamps(raw["ts"], names["ts"], where, label)
    values = {
        column: _numbers(raw[column], names[column], where, label)
        for column in NUMBER_COLUMNS
        if column in raw
    }
    has_volume = "volume" in values
    if not has_volume:
        values["volume"] = np.zeros(total)

    # Rows empty in every column (blank lines) are skipped without a note.
    blank = ~ts_valid & np.logical_and.reduce(
        [np.isnan(values[c]) for c in NUMBER_COLUMNS if c in raw]
    )
    bad_by_column = {"ts": ~ts_valid & ~blank}
    for column in NUMBER_COLUMNS:
        bad_by_column[column] = ~np.isfinite(values[column]) & ~blank
    bad = np.logical_or.reduce(list(bad_by_column.values()))
    if settings.strict and bad.any():
        row = int(np.flatnonzero(bad)[0])
        column = next(c for c, mask in bad_by_column.items() if mask[row])
        cell = raw[column].iloc[row]
        written = cell_text(row, column) if cell_text is not None else None
        shown = _cell(cell) if written is None else _cell(written)
        expected = "a timestamp" if column == "ts" else "a finite number"
        raise DataError(
            f"{where}: {label(row)}, column {names[column]}: expected {expected}, got {shown} "
            "(strict mode rejects rows with NaN or inf)"
        )
    keep = np.flatnonzero(~bad & ~blank)
    dropped = int(bad.sum())
    if keep.shape[0] == 0:
        if dropped:
            raise DataError(
                f"{where}: all {dropped} data rows have empty, NaN or inf values; nothing to load"
            )
        raise DataError(f"{where}: no data rows (expected at least one bar after the header)")
    if keep.shape[0] < total:
        ts = ts[keep]
        values = {column: column_values[keep] for column, column_values in values.items()}

    def kept_label(i: int) -> str:
        return label(int(keep[i]))

    with profiler.stage("data.validate"):
        _check_order(ts, where, kept_label)
        _check_values(values, names, where, kept_label)
        timeframe = settings.timeframe or infer_timeframe(ts, where) or "1d"
        meta.update(
            rows=total,
            dropped_rows=dropped,
            first_dropped=label(int(np.flatnonzero(bad)[0])) if dropped else None,
            timestamp_unit=unit,
            volume_column=has_volume,
            timeframe_inferred=settings.timeframe is None,
        )
        try:
            bars = Bars(
                ts,
                values["open"],
                values["high"],
                values["low"],
                values["close"],
                values["volume"],
                symbol=settings.symbol,
                timeframe=timeframe,
                meta=meta,
            )
        except BarsValidationError as error:
            raise DataError(
                f"{where}: {kept_label(error.row)}: {error.rule} ({error.detail})"
            ) from None
    return _window(bars, settings, where)


_CLOCK = re.compile(r"^\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$")


def _join_date_and_time(
    raw: dict[str, pd.Series], names: dict[str, str]
) -> tuple[dict[str, pd.Series], dict[str, str]]:
    """Separate date and time-of-day columns (``2024-01-02``, ``09:30``) as one timestamp."""
    raw, names = dict(raw), dict(names)
    clock = raw.pop("clock").astype("string").str.strip()
    time_name = names.pop("clock")
    first = clock.dropna()
    if first.empty or not _CLOCK.match(str(first.iloc[0])):
        return raw, names  # not a time of day: the date column alone is the timestamp
    date = raw["ts"].astype("string").str.strip()
    raw["ts"] = (date + " " + clock).where(
        date.notna() & clock.notna() & (date != "") & (clock != "")
    )
    names["ts"] = f"{names['ts']}+{time_name}"
    return raw, names


def _check_order(ts: np.ndarray, where: str, label: RowLabel) -> None:
    if ts.shape[0] < 2:
        return
    steps = np.diff(ts)
    wrong = np.flatnonzero(steps <= 0)
    if wrong.size == 0:
        return
    i = int(wrong[0]) + 1
    if steps[i - 1] == 0:
        raise DataError(
            f"{where}: {label(i)}: duplicate timestamp {format_ns(int(ts[i]))} (same as {label(i - 1)}); "
            "expected strictly increasing timestamps"
        )
    raise DataError(
        f"{where}: {label(i)}: timestamp {format_ns(int(ts[i]))} is earlier than {format_ns(int(ts[i - 1]))} "
        f"on {label(i - 1)}; expected rows sorted by time, oldest first"
    )


def _check_values(
    values: dict[str, np.ndarray], names: dict[str, str], where: str, label: RowLabel
) -> None:
    failures: list[tuple[int, str, str]] = []
    for column in ("open", "high", "low", "close"):
        hits = np.flatnonzero(values[column] <= 0.0)
        if hits.size:
            failures.append(
                (
                    int(hits[0]),
                    names[column],
                    f"expected a positive price, got {values[column][hits[0]]:g}",
                )
            )
    hits = np.flatnonzero(values["volume"] < 0.0)
    if hits.size:
        failures.append(
            (
                int(hits[0]),
                names.get("volume", "volume"),
                f"expected a volume >= 0, got {values['volume'][hits[0]]:g}",
            )
        )
    if failures:
        row, column, what = min(failures, key=lambda failure: failure[0])
        raise DataError(f"{where}: {label(row)}, column {column}: {what}")


def _window(bars: Bars, settings: FileSettings, where: str) -> Bars:
    """The bars within ``[start, end)`` when the spec asks for a window."""
    if settings.start_ns is None and settings.end_ns is None:
        return bars
    lo = (
        0
        if settings.start_ns is None
        else int(np.searchsorted(bars.ts, settings.start_ns, side="left"))
    )
    hi = (
        len(bars)
        if settings.end_ns is None
        else int(np.searchsorted(bars.ts, settings.end_ns, side="left"))
    )
    if hi <= lo:
        raise DataError(
            f"{where}: no bars between start and end (the file covers "
            f"{format_ns(int(bars.ts[0]))} to {format_ns(int(bars.ts[-1]))})"
        )
    return bars.slice(lo, hi)
