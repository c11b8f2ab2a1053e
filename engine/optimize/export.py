"""Export a study's trials as CSV or Parquet (one row per trial, params and metrics flattened)."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from engine.errors import InputError
from engine.store.factory import open_study_store
from engine.store.records import TrialRecord

BASE_COLUMNS = ("number", "key", "state", "objective", "started", "duration_s", "worker", "step", "error")


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise InputError(f"--export {path}: unknown format; expected a .csv or .parquet file name")


PAGE = 20_000


def _row(t: TrialRecord, param_names: list[str], metric_names: list[str]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "number": t.number, "key": t.key, "state": t.state.value, "objective": t.objective,
        "started": t.started, "duration_s": t.duration_s, "worker": t.worker, "step": t.step, "error": t.error,
    }
    for name in param_names:
        row[f"param.{name}"] = t.params.get(name)
    metrics = t.metrics or {}
    for name in metric_names:
        row[f"metric.{name}"] = metrics.get(name)
    return row


def _write_csv(tmp: Path, columns: list[str], pages: Any, names: tuple[list[str], list[str]]) -> int:
    count = 0
    with tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for page in pages:
            writer.writerows(_row(t, *names) for t in page)
            count += len(page)
    return count


def _arrow_column(values: list[Any]) -> Any:
    import pyarrow as pa

    kinds = {type(v) for v in values if v is not None}
    if len(kinds) > 1 and not kinds <= {int, float}:
        values = [None if v is None else v if isinstance(v, str) else json.dumps(v) for v in values]
    elif kinds == {int, float}:
        values = [None if v is None else float(v) for v in values]
    return pa.array(values)


def _write_parquet(tmp: Path, columns: list[str], pages: Any, names: tuple[list[str], list[str]]) -> int:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError("parquet export needs pyarrow (pip install 'genesis-console[parquet]')") from None
    # Parquet needs one schema: the whole table is built (columns only, a few values per trial).
    data: dict[str, list[Any]] = {c: [] for c in columns}
    count = 0
    for page in pages:
        for t in page:
            for column, value in _row(t, *names).items():
                data[column].append(value)
        count += len(page)
    pq.write_table(pa.table({c: _arrow_column(v) for c, v in data.items()}), tmp)
    return count


async def export_trials(db: str | Path, name: str, path: str | Path) -> int:
    """Write every trial of study ``name`` to ``path`` (.csv or .parquet, atomically); the row count.

    Trials are read page by page in the order they were stored, so a CSV
    export of any size runs in constant memory.
    """
    path = Path(path)
    kind = _format_of(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise InputError(f"--export {path}: directory {directory} does not exist")
    store = await open_study_store(db, readonly=True)
    try:
        study = await store.require_study(name)
        first = await store.trials_after(study.id, 0, limit=PAGE)
        param_names: dict[str, None] = {}
        metric_names: dict[str, None] = {}
        for t in first:
            param_names.update(dict.fromkeys(t.params))
            metric_names.update(dict.fromkeys(t.metrics or {}))
        names = (list(param_names), list(metric_names))
        columns = [*BASE_COLUMNS, *(f"param.{n}" for n in names[0]), *(f"metric.{n}" for n in names[1])]
        loop = asyncio.get_running_loop()

        def pages() -> Any:
            page = first
            while page:
                yield page
                cursor = page[-1].rowid
                page = asyncio.run_coroutine_threadsafe(
                    store.trials_after(study.id, cursor, limit=PAGE), loop
                ).result()

        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            writer = _write_csv if kind == "csv" else _write_parquet
            count = await asyncio.to_thread(writer, tmp, columns, pages(), names)
            tmp.replace(path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    finally:
        await store.close()
    return count
