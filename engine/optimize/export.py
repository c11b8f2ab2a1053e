"""Export a study's trials as CSV or Parquet (one row per trial, params and metrics flattened)."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from engine.errors import InputError
from engine.optimize.records import TrialRecord
from engine.optimize.store import SqliteStore

BASE_COLUMNS = ("number", "key", "state", "objective", "started", "duration_s", "worker", "step", "error")


def trial_rows(trials: list[TrialRecord]) -> tuple[list[str], list[dict[str, Any]]]:
    """Column names and flat rows (``param.<name>``, ``metric.<name>``)."""
    param_names: dict[str, None] = {}
    metric_names: dict[str, None] = {}
    for trial in trials:
        param_names.update(dict.fromkeys(trial.params))
        metric_names.update(dict.fromkeys(trial.metrics or {}))
    columns = [*BASE_COLUMNS, *(f"param.{n}" for n in param_names), *(f"metric.{n}" for n in metric_names)]
    rows = []
    for t in trials:
        row: dict[str, Any] = {
            "number": t.number, "key": t.key, "state": t.state.value, "objective": t.objective,
            "started": t.started, "duration_s": t.duration_s, "worker": t.worker, "step": t.step, "error": t.error,
        }
        for name in param_names:
            row[f"param.{name}"] = t.params.get(name)
        metrics = t.metrics or {}
        for name in metric_names:
            row[f"metric.{name}"] = metrics.get(name)
        rows.append(row)
    return columns, rows


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise InputError(f"--export {path}: unknown format; expected a .csv or .parquet file name")


def _write_csv(tmp: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    with tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def _write_parquet(tmp: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError("parquet export needs pyarrow (pip install 'genesis-console[parquet]')") from None
    data: dict[str, list[Any]] = {c: [r.get(c) for r in rows] for c in columns}
    arrays = {}
    for name, values in data.items():
        kinds = {type(v) for v in values if v is not None}
        if len(kinds) > 1 and not kinds <= {int, float}:
            values = [None if v is None else json.dumps(v) if not isinstance(v, str) else v for v in values]
        elif kinds == {int, float}:
            values = [None if v is None else float(v) for v in values]
        arrays[name] = pa.array(values)
    pq.write_table(pa.table(arrays), tmp)


async def export_trials(db: str | Path, name: str, path: str | Path) -> int:
    """Write every trial of study ``name`` to ``path`` (.csv or .parquet, atomically); the row count."""
    path = Path(path)
    kind = _format_of(path)
    store = await SqliteStore.open(db, readonly=True)
    try:
        study = await store.require_study(name)
        trials = await store.trials(study.id)
    finally:
        await store.close()
    columns, rows = trial_rows(trials)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise InputError(f"--export {path}: directory {directory} does not exist")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        (_write_csv if kind == "csv" else _write_parquet)(tmp, columns, rows)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return len(rows)
