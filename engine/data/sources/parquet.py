"""``parquet:PATH`` bars, read with pyarrow (the ``parquet`` extra).

Only the needed columns are read. Timestamps may be native timestamp columns
(naive means UTC), dates, epoch numbers or ISO text; rows are named ``row N``
(1-based, in file order) in messages.
"""

from __future__ import annotations

from pathlib import Path

from engine.data.bars import Bars
from engine.data.sources.table import FILE_OPTIONS, bars_from_columns, file_settings, match_columns
from engine.data.spec import DataSpec, check_options
from engine.errors import DataError

OPTIONS = FILE_OPTIONS
INSTALL_HINT = "pip install 'genesis-console[parquet]'"


def load_parquet(spec: DataSpec, *, strict: bool = False) -> Bars:
    """Bars from a ``parquet:`` spec."""
    check_options(spec.options, OPTIONS, spec.where)
    where = spec.target
    path = Path(spec.target).expanduser()
    settings = file_settings(spec, path, strict)
    import pandas as pd

    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(f"{where}: reading parquet files needs pyarrow; install the parquet extra: {INSTALL_HINT}") from None

    if path.is_dir():
        raise DataError(f"{where}: cannot read file: it is a directory")
    if not path.exists():
        raise DataError(f"{where}: cannot read file: no such file")
    try:
        handle = pq.ParquetFile(path)
        found = list(handle.schema_arrow.names)
        columns = match_columns(found, where)
        table = handle.read(columns=[found[i] for i in columns.positions.values()])
    except DataError:
        raise
    except PermissionError:
        raise DataError(f"{where}: cannot read file: permission denied") from None
    except (pa.ArrowException, OSError) as error:
        detail = " ".join(str(error).split())
        raise DataError(f"{where}: not a readable parquet file ({detail})") from None
    if table.num_rows == 0:
        raise DataError(f"{where}: no rows; expected at least one bar")

    def integers(arrow_type: pa.DataType) -> pd.api.extensions.ExtensionDtype | None:
        return pd.Int64Dtype() if pa.types.is_integer(arrow_type) else None  # nulls without floats

    raw = {
        column: table.column(i).to_pandas(date_as_object=False, types_mapper=integers)
        for i, column in enumerate(columns.positions)
    }

    def label(row: int) -> str:
        return f"row {row + 1}"

    def cell_text(row: int, column: str) -> str:
        value = table.column(list(columns.positions).index(column))[row]
        return str(value.as_py()) if value.is_valid else ""  # a null shows as an empty cell

    meta: dict[str, object] = {"source": "parquet", "path": str(path), "spec": spec.text}
    return bars_from_columns(
        raw, columns.names, where=where, label=label, settings=settings, meta=meta, cell_text=cell_text
    )
