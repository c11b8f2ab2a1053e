"""The headless runs of each study, as rows of a ``headless_runs`` table in the store.

One row per ``genesis run --headless``: when it started and ended, how it
stopped (complete, budget, signal, failure), its exit code, the trials stored
before and after, its summary, its profile report and where its report went.
Reports list every night of a study from these rows; ``genesis report --out``
rebuilds them from the store alone.

Also here: archiving a study for ``--rerun`` (its rows are renamed, never
deleted, so earlier nights stay readable).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import StoreError
from engine.store import sqlite as sqlite_policy
from engine.store.schema import Schema
from engine.timestamps import iso_utc

SCHEMA_COMPONENT = "headless"
SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS headless_runs (
    id            INTEGER PRIMARY KEY,
    study         TEXT    NOT NULL,
    started       REAL    NOT NULL,
    ended         REAL,
    pid           INTEGER,
    state         TEXT    NOT NULL,      -- running | complete | stopped | failed
    stop_reason   TEXT,                  -- complete | budget | signal | failure
    exit_code     INTEGER,
    trials_before INTEGER NOT NULL DEFAULT 0,
    trials_after  INTEGER,
    max_runtime_s REAL,
    summary       TEXT,                  -- JSON
    profile       TEXT,                  -- JSON (ProfileReport.to_dict)
    report_dir    TEXT,
    recording_id  INTEGER
);
CREATE INDEX IF NOT EXISTS headless_runs_study ON headless_runs (study, id);
"""

HISTORY_SCHEMA = Schema(SCHEMA_COMPONENT, SCHEMA_VERSION, frozenset({"headless_runs"}), SCHEMA)

_COLUMNS = (
    "id, study, started, ended, pid, state, stop_reason, exit_code, trials_before, trials_after, "
    "max_runtime_s, summary, profile, report_dir, recording_id"
)


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One headless run of a study."""

    id: int
    study: str
    started: float
    ended: float | None
    pid: int | None
    state: str
    stop_reason: str | None
    exit_code: int | None
    trials_before: int
    trials_after: int | None
    max_runtime_s: float | None
    summary: dict[str, Any] | None
    profile: dict[str, Any] | None
    report_dir: str | None
    recording_id: int | None

    @property
    def trials_this_run(self) -> int | None:
        return None if self.trials_after is None else self.trials_after - self.trials_before

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "started": iso_utc(self.started),
            "ended": iso_utc(self.ended),
            "elapsed_s": None if self.ended is None else round(self.ended - self.started, 3),
            "pid": self.pid,
            "state": self.state,
            "stop_reason": self.stop_reason,
            "exit_code": self.exit_code,
            "trials_before": self.trials_before,
            "trials_after": self.trials_after,
            "trials_this_run": self.trials_this_run,
            "max_runtime_s": self.max_runtime_s,
            "report_dir": self.report_dir,
            "recording_id": self.recording_id,
        }


def _loads(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _record(row: tuple[Any, ...]) -> RunRecord:
    return RunRecord(
        id=row[0], study=row[1], started=row[2], ended=row[3], pid=row[4], state=row[5], stop_reason=row[6],
        exit_code=row[7], trials_before=row[8] or 0, trials_after=row[9], max_runtime_s=row[10],
        summary=_loads(row[11]), profile=_loads(row[12]), report_dir=row[13], recording_id=row[14],
    )


def _connect(db: Path) -> sqlite3.Connection:
    try:
        conn = sqlite_policy.connect_sync(db, schema=HISTORY_SCHEMA)
    except sqlite3.Error as error:
        raise StoreError(f"{db}: cannot open the store: {error}") from None
    return conn


class RunHistory:
    """Writes and reads ``headless_runs`` rows (short statements; call from a thread if on a loop)."""

    def __init__(self, db: str | Path) -> None:
        self.db = Path(db)

    def begin(self, study: str, *, trials_before: int, max_runtime_s: float | None, pid: int) -> int:
        conn = _connect(self.db)
        try:
            cursor = conn.execute(
                "INSERT INTO headless_runs (study, started, pid, state, trials_before, max_runtime_s) "
                "VALUES (?, ?, ?, 'running', ?, ?)",
                (study, time.time(), pid, trials_before, max_runtime_s),
            )
            return int(cursor.lastrowid or 0)
        except sqlite3.Error as error:
            raise StoreError(f"{self.db}: cannot record the run: {error}") from None
        finally:
            conn.close()

    def finish(self, run_id: int, **fields: Any) -> None:
        """Set the run's closing fields (``summary`` and ``profile`` as dicts)."""
        allowed = {"state", "stop_reason", "exit_code", "trials_after", "summary", "profile", "report_dir",
                   "recording_id"}
        values = {k: v for k, v in fields.items() if k in allowed}
        for key in ("summary", "profile"):
            if key in values and values[key] is not None:
                values[key] = json.dumps(values[key], default=str)
        values["ended"] = time.time()
        assignments = ", ".join(f"{k} = ?" for k in values)
        conn = _connect(self.db)
        try:
            conn.execute(f"UPDATE headless_runs SET {assignments} WHERE id = ?", (*values.values(), run_id))
        except sqlite3.Error as error:
            raise StoreError(f"{self.db}: cannot record the run's end: {error}") from None
        finally:
            conn.close()

    def runs(self, study: str) -> list[RunRecord]:
        """The study's runs, oldest first (none if the table does not exist yet)."""
        if not self.db.exists():
            return []
        try:
            conn = sqlite_policy.connect_sync(self.db, readonly=True)
        except sqlite3.Error:
            return []
        try:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "headless_runs" not in tables:
                return []
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM headless_runs WHERE study = ? ORDER BY id", (study,)
            ).fetchall()
        except sqlite3.DatabaseError as error:
            raise StoreError(f"{self.db}: cannot read the runs: {error}") from None
        finally:
            conn.close()
        return [_record(row) for row in rows]


def archive_study(db: str | Path, name: str) -> str | None:
    """Rename study ``name`` (its trials, alerts, runs and recordings follow) so that a fresh one can start.

    Returns the archive name (``name@2026-11-22T03:51:09Z``), or ``None`` if there was no such study.
    """
    db = Path(db)
    if not db.exists():
        return None
    conn = _connect(db)
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "studies" not in tables:
            return None
        row = conn.execute("SELECT id, created FROM studies WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        stamp = dt.datetime.fromtimestamp(float(row[1]), tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        archived = f"{name}@{stamp}"
        suffix = 1
        while conn.execute("SELECT 1 FROM studies WHERE name = ?", (archived,)).fetchone() is not None:
            suffix += 1
            archived = f"{name}@{stamp}.{suffix}"
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("UPDATE studies SET name = ? WHERE id = ?", (archived, row[0]))
            for table, column in (("alerts", "study"), ("headless_runs", "study"), ("recordings", "study")):
                if table in tables:
                    conn.execute(f"UPDATE {table} SET {column} = ? WHERE {column} = ?", (archived, name))
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        return archived
    except sqlite3.Error as error:
        raise StoreError(f"{db}: cannot archive study {name!r}: {error}") from None
    finally:
        conn.close()
