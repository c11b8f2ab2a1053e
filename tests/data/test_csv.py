"""The csv: source: round trips, header and delimiter handling, dropped rows, and
one-line errors that name the file and the file's own line number."""

from __future__ import annotations

import bz2
import gzip
import lzma
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.data import Bars, dropped_rows_note, load
from engine.errors import DataError

Writer = Callable[[str, str], Path]
HEADER = "timestamp,open,high,low,close,volume"


def _rows(bars: Bars, ts: list[str], sep: str = ",") -> str:
    lines = []
    for i, stamp in enumerate(ts):
        values = [repr(float(getattr(bars, c)[i])) for c in ("open", "high", "low", "close", "volume")]
        lines.append(sep.join([stamp, *values]))
    return "\n".join(lines) + "\n"


def _assert_same(loaded: Bars, reference: Bars, *, volume: bool = True) -> None:
    np.testing.assert_array_equal(loaded.ts, reference.ts)
    for column in ("open", "high", "low", "close"):
        np.testing.assert_array_equal(getattr(loaded, column), getattr(reference, column))
    if volume:
        np.testing.assert_array_equal(loaded.volume, reference.volume)


def _stamps(bars: Bars, unit: str) -> list[str]:
    ns = bars.ts
    if unit == "s":
        return [str(t // 10**9) for t in ns]
    if unit == "ms":
        return [str(t // 10**6) for t in ns]
    if unit == "us":
        return [str(t // 10**3) for t in ns]
    if unit == "ns":
        return [str(t) for t in ns]
    if unit == "s-float":
        return [f"{t / 1e9:.3f}" for t in ns]
    stamps = pd.to_datetime(ns, unit="ns", utc=True)
    if unit == "iso-naive":
        return [s.strftime("%Y-%m-%d %H:%M:%S") for s in stamps]
    if unit == "iso-t":
        return [s.strftime("%Y-%m-%dT%H:%M:%S") for s in stamps]
    if unit == "iso-z":
        return [s.strftime("%Y-%m-%dT%H:%M:%SZ") for s in stamps]
    if unit == "iso-offset":  # the same instants written in UTC+02:00
        return [s.tz_convert("Etc/GMT-2").isoformat() for s in stamps]
    if unit == "iso-ms":
        return [s.strftime("%Y-%m-%dT%H:%M:%S.000Z") for s in stamps]
    raise AssertionError(unit)


@pytest.mark.parametrize(
    ("unit", "expected_unit"),
    [
        ("s", "s"), ("ms", "ms"), ("us", "us"), ("ns", "ns"), ("s-float", "s"),
        ("iso-naive", "iso"), ("iso-t", "iso"), ("iso-z", "iso"), ("iso-offset", "iso"), ("iso-ms", "iso"),
    ],
)
def test_round_trip_every_timestamp_form(write: Writer, hourly: Bars, unit: str, expected_unit: str) -> None:
    path = write("BTCUSD.csv", HEADER + "\n" + _rows(hourly, _stamps(hourly, unit)))
    bars = load(f"csv:{path}")
    _assert_same(bars, hourly)
    assert bars.timeframe == "1h"
    assert bars.symbol == "BTCUSD"
    assert bars.meta["timestamp_unit"] == expected_unit
    assert bars.meta["dropped_rows"] == 0


def test_iso_dates_give_a_daily_timeframe(write: Writer) -> None:
    reference = load("synthetic:bars=30,seed=1,timeframe=1d")
    stamps = [str(d.date()) for d in pd.to_datetime(reference.ts, unit="ns")]
    path = write("d.csv", "Date,Open,High,Low,Close,Volume\n" + _rows(reference, stamps))
    bars = load(f"csv:{path}")
    _assert_same(bars, reference)
    assert bars.timeframe == "1d"


def test_compact_yyyymmdd_dates(write: Writer) -> None:
    text = "date,open,high,low,close\n20240130,1,2,0.5,1.5\n20240131,1,2,0.5,1.5\n20240201,1,2,0.5,1.5\n"
    bars = load(f"csv:{write('d.csv', text)}")
    np.testing.assert_array_equal(bars.ts, pd.to_datetime(["2024-01-30", "2024-01-31", "2024-02-01"]).as_unit("ns").asi8)
    assert (bars.meta["timestamp_unit"], bars.timeframe) == ("yyyymmdd", "1d")
    text = "time,open,high,low,close\n20240130093000,1,2,0.5,1.5\n20240130093500,1,2,0.5,1.5\n"
    bars = load(f"csv:{write('t.csv', text)}")
    np.testing.assert_array_equal(bars.ts, pd.to_datetime(["2024-01-30 09:30", "2024-01-30 09:35"]).as_unit("ns").asi8)
    # Not a calendar date (February 31st): read as epoch seconds instead.
    text = "date,open,high,low,close\n20240130,1,2,0.5,1.5\n20240231,1,2,0.5,1.5\n"
    assert load(f"csv:{write('e.csv', text)}").meta["timestamp_unit"] == "s"


def test_pandas_to_csv_round_trip(tmp_path: Path, hourly: Bars) -> None:
    frame = pd.DataFrame(
        {c: getattr(hourly, c) for c in ("open", "high", "low", "close", "volume")},
        index=pd.DatetimeIndex(pd.to_datetime(hourly.ts, unit="ns", utc=True), name="datetime"),
    )
    path = tmp_path / "frame.csv"
    frame.to_csv(path)
    _assert_same(load(f"csv:{path}"), hourly)


@pytest.mark.parametrize(
    "header",
    [
        "TIMESTAMP,OPEN,HIGH,LOW,CLOSE,VOLUME",
        "Time,Open,High,Low,Close,Volume",
        "datetime,Open,HIGH,low,Close,vOlUmE",
        " Date , open , high , low , close , volume ",
        "t,o,h,l,c,v",
        '"timestamp","open","high","low","close","volume"',
    ],
)
def test_headers_match_case_insensitively(write: Writer, hourly: Bars, header: str) -> None:
    path = write("x.csv", header + "\n" + _rows(hourly, _stamps(hourly, "ms")))
    _assert_same(load(f"csv:{path}"), hourly)


def test_columns_in_any_order_and_extra_columns_ignored(write: Writer, hourly: Bars) -> None:
    stamps = _stamps(hourly, "ms")
    lines = ["volume,close,trades,Low,high,open,time"]
    for i, stamp in enumerate(stamps):
        lines.append(",".join([repr(float(hourly.volume[i])), repr(float(hourly.close[i])), "7",
                               repr(float(hourly.low[i])), repr(float(hourly.high[i])), repr(float(hourly.open[i])), stamp]))
    _assert_same(load(f"csv:{write('x.csv', chr(10).join(lines) + chr(10))}"), hourly)


def test_missing_volume_reads_as_zeros(write: Writer, hourly: Bars) -> None:
    text = "timestamp,open,high,low,close\n" + "".join(
        f"{s},{float(hourly.open[i])!r},{float(hourly.high[i])!r},{float(hourly.low[i])!r},{float(hourly.close[i])!r}\n"
        for i, s in enumerate(_stamps(hourly, "s"))
    )
    bars = load(f"csv:{write('x.csv', text)}")
    _assert_same(bars, hourly, volume=False)
    assert np.all(bars.volume == 0.0)
    assert bars.meta["volume_column"] is False


@pytest.mark.parametrize(("sep", "name"), [(";", "semi.csv"), ("\t", "tabs.tsv"), ("|", "pipes.txt")])
def test_delimiters_are_detected(write: Writer, hourly: Bars, sep: str, name: str) -> None:
    path = write(name, HEADER.replace(",", sep) + "\n" + _rows(hourly, _stamps(hourly, "ms"), sep))
    bars = load(f"csv:{path}")
    _assert_same(bars, hourly)
    assert bars.meta["delimiter"] == sep


def test_delimiter_option_overrides_detection(write: Writer, hourly: Bars) -> None:
    path = write("x.csv", HEADER.replace(",", "|") + "\n" + _rows(hourly, _stamps(hourly, "ms"), "|"))
    _assert_same(load(f"csv:{path},delimiter=pipe"), hourly)
    with pytest.raises(DataError, match="option delimiter: expected comma, semicolon, tab or pipe, got 'space'"):
        load(f"csv:{path},delimiter=space")


def test_decimal_commas_with_semicolons(write: Writer) -> None:
    path = write("eu.csv", "Date;Open;High;Low;Close;Volume\n"
                 "2024-01-01;1,5;2,25;1,0;1,75;10\n2024-01-02;1,75;2,0;1,5;1,8;12,5\n")
    bars = load(f"csv:{path}")
    np.testing.assert_array_equal(bars.open, [1.5, 1.75])
    np.testing.assert_array_equal(bars.volume, [10.0, 12.5])


def test_headerless_exchange_dump(write: Writer, hourly: Bars) -> None:
    """Binance-style kline dumps: no header, ts/open/high/low/close/volume then more columns."""
    body = "".join(f"{line},{int(s) + 3_599_999},0,12,0,0,0\n"
                   for line, s in zip(_rows(hourly, _stamps(hourly, "ms")).splitlines(), _stamps(hourly, "ms"), strict=True))
    bars = load(f"csv:{write('BTCUSDT-1h-2024-01.csv', body)}")
    _assert_same(bars, hourly)
    assert bars.meta["headerless"] is True
    assert bars.symbol == "BTCUSDT-1h-2024-01"


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".xz", ".zip"])
def test_compressed_files(tmp_path: Path, hourly: Bars, suffix: str) -> None:
    data = (HEADER + "\n" + _rows(hourly, _stamps(hourly, "ms"))).encode()
    path = tmp_path / f"ETH.csv{suffix}"
    if suffix == ".gz":
        path.write_bytes(gzip.compress(data))
    elif suffix == ".bz2":
        path.write_bytes(bz2.compress(data))
    elif suffix == ".xz":
        path.write_bytes(lzma.compress(data))
    else:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("ETH.csv", data)
    bars = load(f"csv:{path}")
    _assert_same(bars, hourly)
    assert bars.symbol == "ETH"


def test_bare_path_spec_and_options(write: Writer, hourly: Bars) -> None:
    path = write("x.csv", HEADER + "\n" + _rows(hourly, _stamps(hourly, "ms")))
    _assert_same(load(str(path)), hourly)
    _assert_same(load(path), hourly)  # a pathlib.Path
    bars = load(f"csv:{path},timeframe=30m,symbol=ABC")
    assert (bars.timeframe, bars.symbol) == ("30m", "ABC")
    assert bars.meta["timeframe_inferred"] is False


def test_start_and_end_select_a_window(write: Writer, hourly: Bars) -> None:
    path = write("x.csv", HEADER + "\n" + _rows(hourly, _stamps(hourly, "ms")))
    start, end = (str(pd.Timestamp(int(hourly.ts[i]), unit="ns").isoformat()) for i in (5, 10))
    bars = load(f"csv:{path},start={start},end={end}")
    _assert_same(bars, hourly.slice(5, 10))
    with pytest.raises(DataError, match=r"x.csv: no bars between start and end \(the file covers 2024-01-01T00:00:00 to"):
        load(f"csv:{path},start=2030-01-01")


def test_timeframe_is_the_most_common_gap(write: Writer) -> None:
    # 15-minute bars with a two-hour hole: the hole does not change the timeframe.
    ts = [0, 900, 1800, 2700, 9900, 10800, 11700]
    text = HEADER + "\n" + "".join(f"{1_700_000_100 + t},1,2,0.5,1.5,3\n" for t in ts)
    assert load(f"csv:{write('x.csv', text)}").timeframe == "15m"


def test_single_row_defaults_to_daily(write: Writer) -> None:
    bars = load(f"csv:{write('x.csv', HEADER + chr(10) + '2024-01-01,1,2,0.5,1.5,3' + chr(10))}")
    assert len(bars) == 1 and bars.timeframe == "1d"


def test_trailing_delimiters_do_not_shift_columns(write: Writer, hourly: Bars) -> None:
    rows = _rows(hourly, _stamps(hourly, "ms")).replace("\n", ",\n")
    _assert_same(load(f"csv:{write('x.csv', HEADER + chr(10) + rows)}"), hourly)


def test_leading_comments_and_blank_lines_keep_line_numbers(write: Writer) -> None:
    text = "# exported by X\n\n" + HEADER + "\n1,1,2,0.5,1.5,3\n2,1,2,0.5,1.5,3\n3,1,2,0.5,abc,3\n"
    with pytest.raises(DataError) as caught:
        load(f"csv:{write('x.csv', text)}")
    assert str(caught.value).endswith("x.csv: line 6, column close: expected a number, got 'abc'")


# --- NaN / inf: dropped and counted, or rejected under strict -------------------------------

NAN_FILE = (
    HEADER + "\n"
    "1,1,2,0.5,1.5,3\n"        # line 2
    "2,1,2,0.5,nan,3\n"        # line 3: NaN close
    "3,1,inf,0.5,1.5,3\n"      # line 4: inf high
    "4,1,2,0.5,1.5,\n"         # line 5: empty volume
    "5,1,2,0.5,1.5,3\n"        # line 6
    ",1,2,0.5,1.5,3\n"         # line 7: empty timestamp
    "7,1,2,0.5,-inf,3\n"       # line 8: -inf close
    "\n"                       # line 9: blank, skipped silently
    "9,1,2,0.5,1.5,3\n"        # line 10
)


def test_nan_and_inf_rows_are_dropped_and_counted(write: Writer) -> None:
    bars = load(f"csv:{write('nan.csv', NAN_FILE)}")
    assert len(bars) == 3
    np.testing.assert_array_equal(bars.ts, np.array([1, 5, 9]) * 10**9)
    assert bars.meta["dropped_rows"] == 5
    assert bars.meta["rows"] == 9
    assert bars.meta["first_dropped"] == "line 3"
    note = dropped_rows_note(bars)
    assert note is not None and note.startswith("dropped 5 rows with empty, NaN or inf values from ")
    assert note.endswith("nan.csv (first: line 3); add strict=true to the spec to reject them")
    assert dropped_rows_note(load("synthetic:bars=5,seed=1")) is None


@pytest.mark.parametrize("how", ["kwarg", "option"])
def test_strict_rejects_the_first_nan_row(write: Writer, how: str) -> None:
    path = write("nan.csv", NAN_FILE)
    with pytest.raises(DataError) as caught:
        if how == "kwarg":
            load(f"csv:{path}", strict=True)
        else:
            load(f"csv:{path},strict=true")
    message = str(caught.value)
    assert message == (
        f"{path}: line 3, column close: expected a finite number, got 'nan' (strict mode rejects rows with NaN or inf)"
    )


def test_strict_names_empty_cells(write: Writer) -> None:
    path = write("e.csv", HEADER + "\n1,1,2,0.5,1.5,3\n2,1,2,0.5,1.5,\n")
    with pytest.raises(DataError, match=r"e.csv: line 3, column volume: expected a finite number, got an empty cell"):
        load(f"csv:{path}", strict=True)


def test_errors_after_dropped_rows_name_the_file_line(write: Writer) -> None:
    text = HEADER + "\n1,1,2,0.5,1.5,3\n2,1,2,0.5,nan,3\n3,1,2,0.5,nan,3\n4,1,2,0.5,1.5,3\n4,1,2,0.5,1.5,3\n"
    with pytest.raises(DataError) as caught:
        load(f"csv:{write('x.csv', text)}")
    assert str(caught.value).endswith(
        "x.csv: line 6: duplicate timestamp 1970-01-01T00:00:04 (same as line 5); expected strictly increasing timestamps"
    )


def test_all_rows_nan(write: Writer) -> None:
    with pytest.raises(DataError, match=r"x.csv: all 2 data rows have empty, NaN or inf values; nothing to load"):
        load(f"csv:{write('x.csv', HEADER + chr(10) + '1,nan,2,1,1,1' + chr(10) + '2,1,2,1,inf,1' + chr(10))}")


# --- bad input: one line naming the file, the line and what was expected ---------------------

BAD_CASES = [
    pytest.param("timestamp,open,high,low,volume\n1,1,2,0.5,3\n",
                 "missing column close; columns found: 'timestamp', 'open', 'high', 'low', 'volume'", id="missing-close"),
    pytest.param("when,open,high,low,close\n1,1,2,0.5,1\n",
                 "missing column timestamp (or date, datetime, time); columns found: 'when', 'open', 'high', 'low', 'close'",
                 id="missing-timestamp"),
    pytest.param("timestamp,Close,close,open,high,low\n1,1,1,1,2,0.5\n",
                 "column 'close' appears 2 times ('Close', 'close'); expected one", id="ambiguous"),
    pytest.param(HEADER + "\n1,1,2,0.5,1.5,3\n3,1,2,0.5,1.5,3\n2,1,2,0.5,1.5,3\n",
                 "line 4: timestamp 1970-01-01T00:00:02 is earlier than 1970-01-01T00:00:03 on line 3; "
                 "expected rows sorted by time, oldest first", id="unsorted"),
    pytest.param(HEADER + "\n1,1,2,0.5,1.5,3\n2,1,2,0.5,1.5,3\n2,1,2,0.5,1.5,3\n",
                 "line 4: duplicate timestamp 1970-01-01T00:00:02 (same as line 3); expected strictly increasing timestamps",
                 id="duplicate"),
    pytest.param(HEADER + "\n1,1,2,0.5,1.5,3\n2,1,2,0,1.5,3\n",
                 "line 3, column low: expected a positive price, got 0", id="zero-price"),
    pytest.param(HEADER + "\n1,1,2,0.5,1.5,3\n2,1,2,0.5,1.5,3\n3,-1,2,0.5,1.5,3\n",
                 "line 4, column open: expected a positive price, got -1", id="negative-price"),
    pytest.param(HEADER + "\n1,1,2,0.5,1.5,-3\n",
                 "line 2, column volume: expected a volume >= 0, got -3", id="negative-volume"),
    pytest.param(HEADER + "\n1,1,2,0.5,1.5,3\n2,1,2,0.5,1.5,3\n3,1,2,0.5,1.5,3\n4,1,2,0.5,1.5,3\n5,1,2,0.5,1.5,3\n6,1,2,0.5,abc,3\n",
                 "line 7, column close: expected a number, got 'abc'", id="text-in-number"),
    pytest.param(HEADER + "\n1,1,2,0.5,1.5,3\n2,1,1.2,0.5,1.5,3\n",
                 "line 3: high must be >= max(open, close) (high 1.2 < max(1.0, 1.5))", id="high-below-close"),
    pytest.param(HEADER + "\n1,1,2,1.2,1.5,3\n",
                 "line 2: low must be <= min(open, close) (low 1.2 > min(1.0, 1.5))", id="low-above-open"),
    pytest.param(HEADER + "\n2024-01-01,1,2,0.5,1.5,3\n2024-13-01,1,2,0.5,1.5,3\n",
                 "line 3, column timestamp: expected an ISO date or datetime such as 2024-01-31 or "
                 "2024-01-31T12:00:00Z, got '2024-13-01'", id="bad-date"),
    pytest.param(HEADER + "\n1700000000,1,2,0.5,1.5,3\nsoon,1,2,0.5,1.5,3\n",
                 "line 3, column timestamp: expected an epoch number like the rows before, got 'soon'", id="text-in-epoch"),
    pytest.param(HEADER + "\n1,1,2,0.5,1.5,3\n20000000000000000000,1,2,0.5,1.5,3\n",
                 "line 3, column timestamp: timestamp 20000000000000000000 is out of range "
                 "(expected a time between 1677 and 2262)", id="huge-integer-epoch"),
    pytest.param(HEADER + "\n1E100,1,2,0.5,1.5,3\n",
                 "line 2, column timestamp: timestamp 1e+100 is out of range (expected a time between 1677 and 2262)",
                 id="huge-float-epoch"),
    pytest.param(HEADER + "\n1,1,2,0.5,1.5,3\n,1,2,0.5,1.5,3\n123456789012345678901234,1,2,0.5,1.5,3\n",
                 "line 4, column timestamp: timestamp 123456789012345678901234 is out of range "
                 "(expected a time between 1677 and 2262)", id="huge-text-epoch"),
    pytest.param("", "file is empty; expected a header line and at least one row", id="empty"),
    pytest.param("\n\n  \n", "file is empty; expected a header line and at least one row", id="blank"),
    pytest.param(HEADER + "\n", "no data rows after the header (line 1); expected at least one bar", id="header-only"),
    pytest.param("timestamp open high low close\n1 1 2 0.5 1.5\n",
                 "line 1: cannot find the column separator; expected columns separated by ',', ';', tab or '|', "
                 "got 'timestamp open high low close'", id="wrong-delimiter"),
    pytest.param(HEADER + "\n1,1,2,0.5,1.5,3\n2,1,2,0.5,1.5,3,9\n",
                 "line 3: expected 6 fields separated by ',' as in the header, found 7", id="extra-field"),
    pytest.param(HEADER + "\n1,1,2,0.5,1.5,3,9\n2,1,2,0.5,1.5,3,9\n",
                 "line 2: expected 6 fields separated by ',' as in the header, found 7", id="extra-field-first-row"),
]


@pytest.mark.parametrize(("text", "message"), BAD_CASES)
def test_bad_files_give_one_line_naming_file_and_line(write: Writer, text: str, message: str) -> None:
    path = write("bad.csv", text)
    with pytest.raises(DataError) as caught:
        load(f"csv:{path}")
    assert str(caught.value) == f"{path}: {message}"


def test_unreadable_files(tmp_path: Path) -> None:
    missing = tmp_path / "missing.csv"
    with pytest.raises(DataError, match=r"missing.csv: cannot read file: no such file$"):
        load(f"csv:{missing}")
    # A folder is a basket (one symbol per file): an empty one says so.
    with pytest.raises(DataError, match=r": the folder holds no \.csv .* files; expected one per symbol$"):
        load(f"csv:{tmp_path}")
    binary = tmp_path / "blob.csv"
    binary.write_bytes(b"\x00\x01\x02garbage")
    with pytest.raises(DataError, match=r"blob.csv: not a text file \(found binary data\); expected CSV text$"):
        load(f"csv:{binary}")
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"timestamp,open,high,low,close\n1,1,2,0.5,1\xe9\n")
    with pytest.raises(DataError, match=r"latin.csv: line 2: not UTF-8 text; expected a UTF-8 CSV file$"):
        load(f"csv:{latin}")
    parquet = tmp_path / "p.csv"
    parquet.write_bytes(b"PAR1\x15\x04")
    with pytest.raises(DataError, match=r"p.csv: this is a parquet file, not CSV; use parquet:"):
        load(f"csv:{parquet}")
    broken = tmp_path / "broken.csv.gz"
    broken.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match=r"broken.csv.gz: cannot read file: "):
        load(f"csv:{broken}")


def test_text_deep_in_a_large_file_names_its_line(write: Writer) -> None:
    """The reader parses in chunks; text far down a number column is still found, with its line."""
    rows = [f"{i + 1},1,2,0.5,1.5,3" for i in range(120_000)]
    rows[100_000] = "100001,1,2,0.5,oops,3"
    path = write("big.csv", HEADER + "\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError) as caught:
        load(f"csv:{path}")
    assert str(caught.value) == f"{path}: line 100002, column close: expected a number, got 'oops'"
    rows[100_000] = "100001,1,2,0.5,1.5,3"
    rows[110_000] = "soon,1,2,0.5,1.5,3"
    path = write("big2.csv", HEADER + "\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError) as caught:
        load(f"csv:{path}")
    assert str(caught.value) == (
        f"{path}: line 110002, column timestamp: expected an epoch number like the rows before, got 'soon'"
    )


@pytest.mark.parametrize("header", [HEADER, " Timestamp , open,high,low,close,volume"])
def test_nanosecond_epochs_with_gaps_stay_exact(write: Writer, header: str) -> None:
    text = header + "\n1704067200123456789,1,2,0.5,1.5,3\n,1,2,0.5,1.5,3\n1704067260123456790,1,2,0.5,1.5,3\n"
    bars = load(f"csv:{write('ns.csv', text)}")
    np.testing.assert_array_equal(bars.ts, [1704067200123456789, 1704067260123456790])
    assert bars.meta["dropped_rows"] == 1
    assert bars.timeframe == "1m"  # 60.000000001 s apart: rounded to whole seconds


def test_sub_second_bars_are_rejected(write: Writer) -> None:
    text = HEADER + "\n1704067200000,1,2,0.5,1.5,3\n1704067200100,1,2,0.5,1.5,3\n"
    with pytest.raises(DataError, match=r"x.csv: the most common gap between bars is 0.1 s; timeframes shorter than a second"):
        load(f"csv:{write('x.csv', text)}")
    assert load(f"csv:{write('y.csv', text)},timeframe=1s").timeframe == "1s"


def test_separate_date_and_time_columns(write: Writer) -> None:
    text = ("<DATE>,<TIME>,<OPEN>,<HIGH>,<LOW>,<CLOSE>\n"
            "2024-01-02,09:30,1,2,0.5,1.5\n2024-01-02,09:35:00,1,2,0.5,1.5\n2024-01-02,09:40,1,2,0.5,1.5\n")
    bars = load(f"csv:{write('x.csv', text)}")
    np.testing.assert_array_equal(bars.ts, pd.to_datetime(["2024-01-02 09:30", "2024-01-02 09:35", "2024-01-02 09:40"]).as_unit("ns").asi8)
    assert bars.timeframe == "5m"
    bad = write("y.csv", "Date,Time,Open,High,Low,Close\n2024-01-02,09:30,1,2,0.5,1.5\n2024-01-02,25:99,1,2,0.5,1.5\n")
    with pytest.raises(DataError) as caught:
        load(f"csv:{bad}")
    assert str(caught.value) == (
        f"{bad}: line 3, column Date+Time: expected an ISO date or datetime such as 2024-01-31 or "
        "2024-01-31T12:00:00Z, got '2024-01-02 25:99'"
    )


def test_windows_line_endings(write: Writer, hourly: Bars) -> None:
    text = (HEADER + "\n" + _rows(hourly, _stamps(hourly, "ms"))).replace("\n", "\r\n")
    _assert_same(load(f"csv:{write('crlf.csv', text)}"), hourly)
    bad = write("crlf-bad.csv", (HEADER + "\n1,1,2,0.5,1.5,3\n2,1,2,0.5,nan,3\n").replace("\n", "\r\n"))
    with pytest.raises(DataError, match=r"line 3, column close: expected a finite number, got 'nan'"):
        load(f"csv:{bad}", strict=True)


@pytest.mark.parametrize(
    ("seconds", "timeframe"),
    [(1, "1s"), (90, "90s"), (60, "1m"), (900, "15m"), (3600, "1h"), (4 * 3600, "4h"), (86_400, "1d"),
     (3 * 86_400, "3d"), (7 * 86_400, "1w"), (14 * 86_400, "2w"), (28 * 86_400, "1M"), (31 * 86_400, "1M"),
     (59.6, "1m"), (3599.9996, "1h")],
)
def test_timeframe_from_gap(seconds: float, timeframe: str) -> None:
    from engine.data.sources.table import timeframe_from_gap

    assert timeframe_from_gap(round(seconds * 1e9), "x") == timeframe
