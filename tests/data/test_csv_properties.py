"""Property test of the csv: NaN policy and line numbering against a pure-Python reference.

Random bars are written with random cells replaced by empty/NaN/inf text and with
blank and comment lines interleaved; the reference walks the file line by line
and says which rows survive, how many are dropped, and which line and column the
strict error must name.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.data import load
from engine.errors import DataError

COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
NAN_TEXT = ("", "nan", "NaN")
BAD_TEXT = (*NAN_TEXT, "inf", "-inf")


@st.composite
def corrupted_files(draw: st.DrawFn) -> tuple[str, dict[str, object]]:
    n = draw(st.integers(1, 30))
    seed = draw(st.integers(0, 1000))
    bars = load(f"synthetic:bars={n},seed={seed},timeframe=1h")
    cells = [
        [str(int(bars.ts[i]) // 10**6), *(repr(float(getattr(bars, c)[i])) for c in COLUMNS[1:])]
        for i in range(n)
    ]
    corrupt: dict[tuple[int, int], str] = {}
    for _ in range(draw(st.integers(0, 2 * n))):
        row = draw(st.integers(0, n - 1))
        column = draw(st.integers(0, 5))
        corrupt[(row, column)] = draw(st.sampled_from(NAN_TEXT if column == 0 else BAD_TEXT))
    for (row, column), text in corrupt.items():
        cells[row][column] = text
    comments = draw(st.integers(0, 2))
    blanks_before = [draw(st.integers(0, 2)) if draw(st.booleans()) else 0 for _ in range(n)]

    # The reference: walk the lines as they are written.
    lines = ["# comment"] * comments + [",".join(COLUMNS)]
    kept: list[int] = []
    dropped_lines: list[tuple[int, int]] = []  # (line, first bad column)
    for row in range(n):
        lines.extend([""] * blanks_before[row])
        lines.append(",".join(cells[row]))
        line_number = len(lines)
        bad_columns = sorted(column for (r, column) in corrupt if r == row)
        all_nan = len(bad_columns) == 6 and all(corrupt[(row, c)] in NAN_TEXT for c in range(6))
        if not bad_columns:
            kept.append(int(bars.ts[row]))
        elif not all_nan:  # a row with no value at all is skipped silently
            dropped_lines.append((line_number, bad_columns[0]))
    expected: dict[str, object] = {"kept": kept, "dropped": dropped_lines, "cells": cells, "corrupt": corrupt}
    return "\n".join(lines) + "\n", expected


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=corrupted_files())
def test_nan_rows_dropped_and_strict_lines_match_the_reference(case: tuple[str, dict[str, object]]) -> None:
    text, expected = case
    kept: list[int] = expected["kept"]  # type: ignore[assignment]
    dropped: list[tuple[int, int]] = expected["dropped"]  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x.csv"
        path.write_text(text)
        if not kept:
            try:
                load(f"csv:{path}")
            except DataError as error:
                assert "nothing to load" in str(error) or "no data rows" in str(error)
            else:
                raise AssertionError("expected an error: no row survives")
        else:
            bars = load(f"csv:{path}")
            np.testing.assert_array_equal(bars.ts, np.array(kept, dtype=np.int64))
            assert bars.meta["dropped_rows"] == len(dropped)
            assert bars.meta["first_dropped"] == (f"line {dropped[0][0]}" if dropped else None)
        if dropped:
            line, column = dropped[0]
            try:
                load(f"csv:{path}", strict=True)
            except DataError as error:
                message = str(error)
            else:
                raise AssertionError("strict mode accepted a NaN row")
            assert message.startswith(f"{path}: line {line}, column {COLUMNS[column]}: expected ")
            cell = text.splitlines()[line - 1].split(",")[column]
            shown = "an empty cell" if cell == "" else repr(cell)
            assert f", got {shown} (strict mode" in message


_HEADERS = st.sampled_from([
    "timestamp,open,high,low,close,volume", "Date;Open;High;Low;Close", "t|o|h|l|c|v", "time\topen\thigh\tlow\tclose",
    "open,close", "", "#x", "a b c",
])
_BODY = st.text(alphabet=",;|\t\n 0123456789.-+eE:TZnaifbcNAI\"#", max_size=300)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(header=_HEADERS, body=_BODY, strict=st.booleans())
def test_any_text_loads_or_raises_one_line_data_error(header: str, body: str, strict: bool) -> None:
    """Whatever the file holds, load() returns valid bars or raises a one-line DataError."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.csv"
        path.write_text(header + "\n" + body)
        try:
            bars = load(f"csv:{path}", strict=strict)
        except DataError as error:
            assert "\n" not in str(error)
            assert str(error).startswith(str(path))
        else:
            assert len(bars) >= 1
