"""``csv:PATH`` bars: delimited text files (also ``.gz``, ``.bz2``, ``.xz``, ``.zip``).

The header line names the columns (matched case-insensitively; see
``table.ALIASES``); a file whose first line is all numbers is read as headerless
``timestamp, open, high, low, close[, volume]`` (exchange dumps such as
Binance's). The delimiter is detected among ``,`` ``;`` tab and ``|``; with
``;`` or tab, decimal commas (``1,5``) are understood. Line numbers in every
message are the file's own, counting the header and any blank lines.
"""

from __future__ import annotations

import bz2
import csv as csv_module
import gzip
import io
import lzma
import re
import warnings
import zipfile
from pathlib import Path

import pandas as pd

from engine.data.bars import Bars
from engine.data.sources.table import (
    ALIASES,
    FILE_OPTIONS,
    bars_from_columns,
    file_settings,
    match_columns,
    normalise_name,
)
from engine.data.spec import DataSpec, check_options
from engine.errors import DataError, quoted

OPTIONS = (*FILE_OPTIONS, "delimiter")
DELIMITERS = {",": ",", ";": ";", "\t": "\t", "|": "|", "comma": ",", "semicolon": ";", "tab": "\t", "pipe": "|"}
_SHOWN = {",": "','", ";": "';'", "\t": "tab", "|": "'|'"}
_SNIFF_BYTES = 1 << 16
#: The longest line the sampled head may have: a bar is a few dozen bytes, so a longer
#: line is a runaway field (and stays under the csv module's field limit of 128 KiB).
MAX_LINE_BYTES = 1 << 16
_DECIMAL_COMMA = re.compile(r"^\s*[+-]?\d+,\d+\s*$")
_KNOWN_NAMES = {alias for aliases in ALIASES.values() for alias in aliases}


def _open_binary(path: Path) -> io.BufferedIOBase:
    """The decompressed bytes of ``path`` (by its suffix)."""
    suffix = path.suffix.lower()
    if suffix == ".gz":
        return gzip.open(path, "rb")
    if suffix == ".bz2":
        return bz2.open(path, "rb")
    if suffix == ".xz":
        return lzma.open(path, "rb")
    if suffix == ".zip":
        archive = zipfile.ZipFile(path)
        members = [info for info in archive.infolist() if not info.is_dir()]
        if len(members) != 1:
            raise DataError(f"{path}: expected a zip archive holding one CSV file, found {len(members)} files")
        return archive.open(members[0])  # type: ignore[return-value]
    return open(path, "rb")


def _head(path: Path, where: str) -> list[str]:
    """The first complete lines of the file; one-line errors for unreadable or binary files."""
    try:
        with _open_binary(path) as handle:
            data = handle.read(_SNIFF_BYTES)
            if len(data) == _SNIFF_BYTES and not data.endswith(b"\n"):
                # Finish the line the sample cut, so that a runaway first line is
                # reported as such, not as a file without data rows.
                data += handle.readline(MAX_LINE_BYTES)
    except DataError:
        raise
    except IsADirectoryError:
        raise DataError(f"{where}: cannot read file: it is a directory") from None
    except FileNotFoundError:
        raise DataError(f"{where}: cannot read file: no such file") from None
    except PermissionError:
        raise DataError(f"{where}: cannot read file: permission denied") from None
    except (OSError, EOFError, zipfile.BadZipFile, lzma.LZMAError) as error:
        raise DataError(f"{where}: cannot read file: {error}") from None
    if data.startswith(b"PAR1"):
        raise DataError(f"{where}: this is a parquet file, not CSV; use parquet:{where}")
    if b"\x00" in data:
        raise DataError(f"{where}: not a text file (found binary data); expected CSV text")
    _check_line_lengths(data, where)
    if len(data) >= _SNIFF_BYTES:
        data = data[: data.rfind(b"\n") + 1] or data  # whole lines only
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise DataError(f"{where}: line {line}: not UTF-8 text; expected a UTF-8 CSV file") from None
    return text.splitlines()


def _check_line_lengths(data: bytes, where: str) -> None:
    """Refuse a line longer than ``MAX_LINE_BYTES`` in the sample, naming it."""
    start = 0
    for number, end in enumerate(_line_ends(data), start=1):
        if end - start > MAX_LINE_BYTES:
            raise DataError(
                f"{where}: line {number}: longer than {MAX_LINE_BYTES} bytes; expected one bar per line"
            )
        start = end + 1


def _line_ends(data: bytes) -> list[int]:
    ends, at = [], data.find(b"\n")
    while at >= 0:
        ends.append(at)
        at = data.find(b"\n", at + 1)
    return [*ends, len(data)]


def _fields(line: str, delimiter: str) -> list[str]:
    return next(csv_module.reader([line], delimiter=delimiter), [])


def _detect_delimiter(header: str, sample: list[str], where: str, header_line: int) -> str:
    """The candidate that splits the header into the most fields, preferring one the
    first data line agrees with."""
    scored: list[tuple[int, int, str]] = []
    for delimiter in (",", ";", "\t", "|"):
        count = len(_fields(header, delimiter))
        if count > 1:
            agrees = all(len(_fields(line, delimiter)) == count for line in sample)
            scored.append((int(agrees), count, delimiter))
    if not scored:
        raise DataError(
            f"{where}: line {header_line}: cannot find the column separator; expected columns separated by "
            f"',', ';', tab or '|', got {quoted(header, 60)}"
        )
    return max(scored)[2]


def _looks_headerless(fields: list[str]) -> bool:
    if any(normalise_name(field) in _KNOWN_NAMES for field in fields):
        return False
    numeric = 0
    for field in fields:
        try:
            float(field.strip().replace(",", "."))
            numeric += 1
        except ValueError:
            pass
    return len(fields) >= 5 and numeric >= len(fields) - 1


def load_csv(spec: DataSpec, *, strict: bool = False) -> Bars:
    """Bars from a ``csv:`` spec (see the module docstring)."""
    check_options(spec.options, OPTIONS, spec.where)
    where = spec.target
    path = Path(spec.target).expanduser()
    settings = file_settings(spec, path, strict)

    lines = _head(path, where)
    first = next((i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")), None)
    if first is None:
        raise DataError(f"{where}: file is empty; expected a header line and at least one row")
    header = lines[first]
    sample = [line for line in lines[first + 1 :] if line.strip()][:3]
    chosen = spec.options.get("delimiter")
    if chosen is not None:
        if chosen.lower() not in DELIMITERS:
            raise DataError(f"{spec.where}: option delimiter: expected comma, semicolon, tab or pipe, got {quoted(chosen)}")
        delimiter = DELIMITERS[chosen.lower()]
    else:
        delimiter = _detect_delimiter(header, sample, where, first + 1)
    header_fields = _fields(header, delimiter)
    headerless = _looks_headerless(header_fields)
    if headerless:
        found: list[str] = ["timestamp", "open", "high", "low", "close", "volume"][: len(header_fields)]
        found += [f"column {i + 1}" for i in range(len(found), len(header_fields))]
    else:
        found = [field.strip() for field in header_fields]
        if not sample:
            raise DataError(f"{where}: no data rows after the header (line {first + 1}); expected at least one bar")
    columns = match_columns(found, where)
    _check_first_row(lines, first, len(header_fields), delimiter, where, headerless)
    decimal = "."
    if delimiter != "," and any(
        _DECIMAL_COMMA.match(field) for line in (sample or [header]) for field in _fields(line, delimiter)
    ):
        decimal = ","

    first_data_line = first + 1 if headerless else first + 2  # 1-based line of data row 0

    def label(row: int) -> str:
        return f"line {first_data_line + row}"

    frame = _read(path, where, delimiter, decimal, skip=first, headerless=headerless, count=len(found))
    if len(frame) == 0:
        raise DataError(f"{where}: no data rows after the header (line {first + 1}); expected at least one bar")
    raw = {column: frame.iloc[:, position] for column, position in columns.positions.items()}
    stamps = raw["ts"]
    if pd.api.types.is_float_dtype(stamps.dtype) and stamps.hasnans and float(stamps.abs().max()) >= 2.0**53:
        # Integer epochs with gaps were read as floats: read them again as text, exactly.
        position = columns.positions["ts"]
        text = _read(path, where, delimiter, decimal, skip=first, headerless=headerless, count=len(found),
                     usecols=[position], dtype=str)
        raw["ts"] = text.iloc[:, 0]
    meta: dict[str, object] = {
        "source": "csv", "path": str(path), "spec": spec.text, "delimiter": delimiter, "headerless": headerless,
    }

    def cell_text(row: int, column: str) -> str | None:
        return _raw_cell(path, first_data_line + row, delimiter, columns.positions[column])

    return bars_from_columns(
        raw, columns.names, where=where, label=label, settings=settings, meta=meta, cell_text=cell_text
    )


def _raw_cell(path: Path, line_number: int, delimiter: str, position: int) -> str | None:
    """The text of one cell as written in the file (for error messages only)."""
    try:
        # typeshed: TextIOWrapper wants a buffer with a .name, which BufferedIOBase does not declare.
        with _open_binary(path) as handle, io.TextIOWrapper(handle, encoding="utf-8-sig") as text:  # type: ignore[type-var]
            for number, line in enumerate(text, start=1):
                if number == line_number:
                    fields = _fields(line.rstrip("\r\n"), delimiter)
                    return fields[position].strip() if position < len(fields) else None
    except (OSError, UnicodeDecodeError, EOFError, zipfile.BadZipFile, lzma.LZMAError, csv_module.Error):
        return None
    return None


def _check_first_row(
    lines: list[str], first: int, count: int, delimiter: str, where: str, headerless: bool
) -> None:
    """A first data row longer than the header would make pandas shift every column
    (it takes the first one for an index): only empty trailing fields are allowed."""
    start = first if headerless else first + 1
    for number, line in enumerate(lines[start:], start=start + 1):
        if not line.strip():
            continue
        fields = _fields(line, delimiter)
        if len(fields) > count and any(field.strip() for field in fields[count:]):
            raise DataError(
                f"{where}: line {number}: expected {count} fields separated by {_SHOWN[delimiter]} "
                f"as in the header, found {len(fields)}"
            )
        return


def _read(
    path: Path, where: str, delimiter: str, decimal: str, *, skip: int, headerless: bool, count: int,
    **extra: object,
) -> pd.DataFrame:
    """The whole table, every column, parsed by pandas' C reader."""
    try:
        with warnings.catch_warnings():
            # Chunked parsing may see text in a number column late: the column is then
            # mixed, which the caller reports with the first bad cell.
            warnings.simplefilter("ignore", pd.errors.DtypeWarning)
            # Trailing empty fields (checked by _check_first_row) are dropped on purpose.
            warnings.simplefilter("ignore", pd.errors.ParserWarning)
            return pd.read_csv(
                path,  # pandas decompresses by suffix, as _open_binary does
                sep=delimiter,
                decimal=decimal,
                header=None if headerless else 0,
                names=list(range(count)) if headerless else None,
                skiprows=skip,
                skip_blank_lines=False,
                skipinitialspace=True,
                engine="c",
                index_col=False,  # a trailing delimiter never turns the first column into an index
                encoding="utf-8-sig",
                **extra,  # type: ignore[call-overload]  # the caller's read_csv keywords (dtype, usecols)
            )
    except pd.errors.ParserError as error:
        raise DataError(f"{where}: {_parser_message(str(error), delimiter)}") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{where}: file is empty; expected a header line and at least one row") from None
    except UnicodeDecodeError:
        raise DataError(f"{where}: not UTF-8 text (past the first 64 KiB); expected a UTF-8 CSV file") from None
    except (OSError, EOFError, zipfile.BadZipFile, lzma.LZMAError) as error:
        raise DataError(f"{where}: cannot read file: {error}") from None


_FIELDS_ERROR = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def _parser_message(message: str, delimiter: str) -> str:
    match = _FIELDS_ERROR.search(message)
    if match:
        expected, line, saw = match.groups()
        return (
            f"line {line}: expected {expected} fields separated by {_SHOWN[delimiter]} as in the header, "
            f"found {saw}"
        )
    return "cannot parse as CSV: " + " ".join(message.split())
