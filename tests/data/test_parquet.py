"""The parquet: source: every timestamp representation, dropped rows, and one-line errors
naming the file and the 1-based row."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.data import Bars, load
from engine.errors import DataError

PRICES = ("open", "high", "low", "close", "volume")


def _table(bars: Bars, ts: object, names: dict[str, str] | None = None) -> pa.Table:
    names = names or {}
    columns = {names.get("ts", "timestamp"): ts}
    columns.update({names.get(c, c): pa.array(getattr(bars, c)) for c in PRICES})
    return pa.table(columns)


def _assert_same(loaded: Bars, reference: Bars) -> None:
    for column in ("ts", *PRICES):
        np.testing.assert_array_equal(getattr(loaded, column), getattr(reference, column), err_msg=column)


def _timestamps(bars: Bars, form: str) -> pa.Array:
    ns = np.asarray(bars.ts)
    if form == "s":
        return pa.array(ns // 10**9)
    if form == "ms":
        return pa.array(ns // 10**6)
    if form == "us":
        return pa.array(ns // 10**3)
    if form == "ns":
        return pa.array(ns)
    if form == "float-s":
        return pa.array(ns / 1e9)
    if form == "timestamp-ns":
        return pa.array(ns, type=pa.timestamp("ns"))
    if form == "timestamp-ms-utc":
        return pa.array(ns // 10**6, type=pa.timestamp("ms", tz="UTC"))
    if form == "timestamp-s-newyork":
        return pa.array(ns // 10**9, type=pa.timestamp("s", tz="America/New_York"))
    if form == "iso-text":
        return pa.array([pd.Timestamp(int(t), unit="ns", tz="UTC").isoformat() for t in ns])
    raise AssertionError(form)


FORMS = ["s", "ms", "us", "ns", "float-s", "timestamp-ns", "timestamp-ms-utc", "timestamp-s-newyork", "iso-text"]


@pytest.mark.parametrize("form", FORMS)
def test_round_trip_every_timestamp_form(tmp_path: Path, hourly: Bars, form: str) -> None:
    path = tmp_path / "SOLUSD.parquet"
    pq.write_table(_table(hourly, _timestamps(hourly, form)), path)
    bars = load(f"parquet:{path}")
    _assert_same(bars, hourly)
    assert (bars.symbol, bars.timeframe) == ("SOLUSD", "1h")
    assert bars.meta["dropped_rows"] == 0


def test_dates_column(tmp_path: Path) -> None:
    daily = load("synthetic:bars=20,seed=2,timeframe=1d")
    dates = pa.array(np.asarray(daily.ts).astype("datetime64[ns]").astype("datetime64[D]"), type=pa.date32())
    path = tmp_path / "d.parquet"
    pq.write_table(_table(daily, dates, {"ts": "Date"}), path)
    bars = load(f"parquet:{path}")
    _assert_same(bars, daily)
    assert bars.timeframe == "1d"


@pytest.mark.parametrize("index_name", ["Datetime", None])
def test_pandas_frame_with_a_datetime_index(tmp_path: Path, hourly: Bars, index_name: str | None) -> None:
    frame = pd.DataFrame(
        {c.capitalize(): getattr(hourly, c) for c in PRICES},
        index=pd.DatetimeIndex(pd.to_datetime(hourly.ts, unit="ns", utc=True), name=index_name),
    )
    path = tmp_path / "frame.parquet"
    frame.to_parquet(path)
    _assert_same(load(f"parquet:{path}"), hourly)


def test_nan_rows_dropped_or_rejected(tmp_path: Path) -> None:
    table = pa.table({
        "ts": pa.array([1, 2, 3, 4, 5], type=pa.int64()),
        "open": [1.0, 1.0, float("nan"), 1.0, 1.0],
        "high": [2.0, 2.0, 2.0, float("inf"), 2.0],
        "low": [0.5, 0.5, 0.5, 0.5, 0.5],
        "close": pa.array([1.5, 1.5, 1.5, 1.5, None], type=pa.float64()),
    })
    path = tmp_path / "n.parquet"
    pq.write_table(table, path)
    bars = load(f"parquet:{path}")
    np.testing.assert_array_equal(bars.ts, [10**9, 2 * 10**9])
    assert bars.meta["dropped_rows"] == 3
    assert bars.meta["first_dropped"] == "row 3"
    with pytest.raises(DataError) as caught:
        load(f"parquet:{path}", strict=True)
    assert str(caught.value) == (
        f"{path}: row 3, column open: expected a finite number, got 'nan' (strict mode rejects rows with NaN or inf)"
    )


def _write(tmp_path: Path, columns: dict[str, object]) -> Path:
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table(columns), path)
    return path


GOOD = {"ts": [1, 2, 3], "open": [1.0, 1.0, 1.0], "high": [2.0, 2.0, 2.0], "low": [0.5, 0.5, 0.5], "close": [1.5, 1.5, 1.5]}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"close": None}, "missing column close; columns found: 'ts', 'open', 'high', 'low'"),
        ({"ts": [1, 3, 2]}, "row 3: timestamp 1970-01-01T00:00:02 is earlier than 1970-01-01T00:00:03 on row 2; "
                            "expected rows sorted by time, oldest first"),
        ({"ts": [1, 1, 2]}, "row 2: duplicate timestamp 1970-01-01T00:00:01 (same as row 1); expected strictly increasing timestamps"),
        ({"low": [0.5, 0.0, 0.5]}, "row 2, column low: expected a positive price, got 0"),
        ({"close": ["1.5", "1.5", "x"]}, "row 3, column close: expected a number, got 'x'"),
        ({"high": [2.0, 2.0, 1.2]}, "row 3: high must be >= max(open, close) (high 1.2 < max(1.0, 1.5))"),
    ],
)
def test_bad_tables_name_the_row(tmp_path: Path, change: dict[str, object], message: str) -> None:
    columns = {**GOOD, **change}
    path = _write(tmp_path, {k: v for k, v in columns.items() if v is not None})
    with pytest.raises(DataError) as caught:
        load(f"parquet:{path}")
    assert str(caught.value) == f"{path}: {message}"


def test_empty_table(tmp_path: Path) -> None:
    path = _write(tmp_path, {k: pa.array([], type=pa.float64()) for k in GOOD})
    with pytest.raises(DataError, match=r"bad.parquet: no rows; expected at least one bar$"):
        load(f"parquet:{path}")


def test_unreadable_parquet(tmp_path: Path) -> None:
    text = tmp_path / "text.parquet"
    text.write_text("timestamp,open\n1,2\n")
    with pytest.raises(DataError, match=r"text.parquet: not a readable parquet file \("):
        load(f"parquet:{text}")
    with pytest.raises(DataError, match=r"nope.parquet: cannot read file: no such file$"):
        load(f"parquet:{tmp_path / 'nope.parquet'}")
    # A folder is a basket (one symbol per file): its unreadable file is named.
    with pytest.raises(DataError, match=r"text.parquet: not a readable parquet file \("):
        load(f"parquet:{tmp_path}")


def test_parquet_without_pyarrow_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, GOOD)
    for name in [m for m in sys.modules if m == "pyarrow" or m.startswith("pyarrow.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # makes `import pyarrow` raise ImportError
    with pytest.raises(DataError) as caught:
        load(f"parquet:{path}")
    assert str(caught.value) == (
        f"{path}: reading parquet files needs pyarrow; install the parquet extra: pip install 'genesis-console[parquet]'"
    )


def test_nullable_nanosecond_epochs_stay_exact(tmp_path: Path) -> None:
    path = _write(tmp_path, {
        "ts": pa.array([1704067200123456789, None, 1704067260987654321], type=pa.int64()),
        "open": [1.0, 1.0, 1.0], "high": [2.0, 2.0, 2.0], "low": [0.5, 0.5, 0.5], "close": [1.5, 1.5, 1.5],
    })
    bars = load(f"parquet:{path}")
    np.testing.assert_array_equal(bars.ts, [1704067200123456789, 1704067260987654321])
    assert bars.meta["first_dropped"] == "row 2"
    with pytest.raises(DataError, match=r"row 2, column ts: expected a timestamp, got an empty cell"):
        load(f"parquet:{path}", strict=True)


def test_text_columns_with_missing_markers(tmp_path: Path) -> None:
    """Text number columns: 'nan', 'NULL', 'N/A' and empty cells are missing values, other text is an error."""
    path = _write(tmp_path, {
        **GOOD,
        "ts": [1, 2, 3, 4, 5, 6],
        "open": ["1", "nan", "NULL", "N/A", "", "1"],
        "high": [2.0] * 6, "low": [0.5] * 6, "close": [1.5] * 6,
    })
    bars = load(f"parquet:{path}")
    np.testing.assert_array_equal(bars.ts, [10**9, 6 * 10**9])
    assert bars.meta["dropped_rows"] == 4
    with pytest.raises(DataError, match=r"row 2, column open: expected a finite number, got 'nan'"):
        load(f"parquet:{path}", strict=True)


def test_iso_text_timestamps_with_missing_markers(tmp_path: Path) -> None:
    path = _write(tmp_path, {
        "ts": ["2024-01-01", "NULL", "2024-01-03"],
        "open": [1.0] * 3, "high": [2.0] * 3, "low": [0.5] * 3, "close": [1.5] * 3,
    })
    bars = load(f"parquet:{path}")
    assert len(bars) == 2 and bars.meta["dropped_rows"] == 1
    with pytest.raises(DataError, match=r"row 2, column ts: expected a timestamp, got 'NULL'"):
        load(f"parquet:{path}", strict=True)


_CELLS = {
    "int": st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
    "float": st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
    "text": st.one_of(st.none(), st.text(max_size=12)),
    "bool": st.one_of(st.none(), st.booleans()),
}
_TYPES = {"int": pa.int64(), "float": pa.float64(), "text": pa.string(), "bool": pa.bool_()}


@st.composite
def _random_tables(draw: st.DrawFn) -> pa.Table:
    n = draw(st.integers(0, 6))
    columns = {}
    for name in draw(st.permutations(["ts", "open", "high", "low", "close", "volume"])):
        if name != "ts" and draw(st.integers(0, 9)) == 0:
            continue  # sometimes a column is missing
        kind = draw(st.sampled_from(sorted(_CELLS)))
        columns[name] = pa.array(draw(st.lists(_CELLS[kind], min_size=n, max_size=n)), type=_TYPES[kind])
    return pa.table(columns)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=_random_tables(), strict=st.booleans())
def test_any_table_loads_or_raises_one_line_data_error(table: pa.Table, strict: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.parquet"
        pq.write_table(table, path)
        try:
            bars = load(f"parquet:{path}", strict=strict)
        except DataError as error:
            assert "\n" not in str(error)
            assert str(error).startswith(str(path))
        else:
            assert len(bars) >= 1
