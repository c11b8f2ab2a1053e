"""Recorded telemetry frames in the store: the ``recordings`` and ``recording_frames`` tables.

The frames' encoding (msgpack, zlib, deltas) and the recording timer live in
:mod:`engine.headless.recording`; this module only writes and reads the
opaque frame blobs. Frames are written in batched transactions through their
own connection (WAL lets the optimizer's writer and readers carry on).
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from engine.errors import StoreError
from engine.store import sqlite as sqlite_policy
from engine.store.schema import Schema

SCHEMA_COMPONENT = "recording"
SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS recordings (
    id      INTEGER PRIMARY KEY,
    study   TEXT    NOT NULL,
    run     TEXT,                        -- the headless run's id
    started REAL    NOT NULL,            -- epoch seconds
    ended   REAL,
    hz      REAL    NOT NULL,
    frames  INTEGER NOT NULL DEFAULT 0,
    bytes   INTEGER NOT NULL DEFAULT 0,
    codec   TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS recordings_study ON recordings (study, id);
CREATE TABLE IF NOT EXISTS recording_frames (
    recording_id INTEGER NOT NULL REFERENCES recordings(id),
    seq          INTEGER NOT NULL,
    t            REAL    NOT NULL,       -- seconds since the recording started
    keyframe     INTEGER NOT NULL,
    data         BLOB    NOT NULL,
    PRIMARY KEY (recording_id, seq)
) WITHOUT ROWID;
"""

RECORDING_SCHEMA = Schema(SCHEMA_COMPONENT, SCHEMA_VERSION, frozenset({"recordings", "recording_frames"}), SCHEMA)

#: One stored frame: (recording id, sequence number, seconds since start, keyframe 0/1, blob).
FrameRow = tuple[int, int, float, int, bytes]


@dataclass(frozen=True, slots=True)
class RecordingInfo:
    """One stored recording."""

    id: int
    study: str
    run: str | None
    started: float
    ended: float | None
    hz: float
    frames: int
    bytes: int

    @property
    def duration_s(self) -> float:
        return 0.0 if self.ended is None else max(0.0, self.ended - self.started)


class RecordingWriter:
    """Creates one recording and appends its frames (blocking calls: run them in a worker thread)."""

    def __init__(self, db: str | Path, *, study: str, run: str | None, hz: float, codec: str) -> None:
        self.db = Path(db)
        try:
            self._conn: sqlite3.Connection | None = sqlite_policy.connect_sync(
                self.db, check_same_thread=False, schema=RECORDING_SCHEMA
            )
            self.started = time.time()
            cursor = self._conn.execute(
                "INSERT INTO recordings (study, run, started, hz, codec) VALUES (?, ?, ?, ?, ?)",
                (study, run, self.started, hz, codec),
            )
            self.recording_id = int(cursor.lastrowid or 0)
        except sqlite3.Error as error:
            raise StoreError(f"{self.db}: cannot record telemetry: {error}") from None

    def write(self, rows: list[FrameRow], *, frames: int, nbytes: int) -> None:
        """Append ``rows`` and the recording's totals in one transaction (a ``StoreError`` on failure)."""
        conn = self._conn
        if conn is None:
            raise StoreError(f"{self.db}: the recording is closed")
        try:
            self._write(conn, rows, frames, nbytes)
        except sqlite3.Error as error:
            raise StoreError(f"{self.db}: cannot store frames: {error}") from None

    def _write(self, conn: sqlite3.Connection, rows: list[FrameRow], frames: int, nbytes: int) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                "INSERT OR REPLACE INTO recording_frames (recording_id, seq, t, keyframe, data) VALUES (?,?,?,?,?)",
                rows,
            )
            conn.execute(
                "UPDATE recordings SET frames = ?, bytes = ?, ended = ? WHERE id = ?",
                (frames, nbytes, time.time(), self.recording_id),
            )
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def _read_conn(db: Path) -> sqlite3.Connection:
    if not db.exists():
        raise StoreError(f"{db}: no such store")
    try:
        conn = sqlite_policy.connect_sync(db, readonly=True)
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as error:
        raise StoreError(f"{db}: corrupt or unreadable SQLite store ({error})") from None
    if "recordings" not in tables:
        conn.close()
        raise StoreError(f"{db}: holds no recordings (headless runs record them; see docs/headless.md)")
    return conn


def list_recordings(db: str | Path, study: str | None = None) -> list[RecordingInfo]:
    """Recordings in ``db`` (of ``study`` if given), oldest first."""
    conn = _read_conn(Path(db))
    try:
        where, params = ("WHERE study = ?", (study,)) if study is not None else ("", ())
        rows = conn.execute(
            f"SELECT id, study, run, started, ended, hz, frames, bytes FROM recordings {where} ORDER BY id", params
        ).fetchall()
    finally:
        conn.close()
    return [RecordingInfo(*row) for row in rows]


def read_frames(db: str | Path, recording_id: int) -> tuple[list[float], list[bool], list[bytes]]:
    """Recording ``recording_id``'s frames in order: their times, keyframe flags and blobs."""
    conn = _read_conn(Path(db))
    try:
        rows = conn.execute(
            "SELECT t, keyframe, data FROM recording_frames WHERE recording_id = ? ORDER BY seq", (recording_id,)
        ).fetchall()
    finally:
        conn.close()
    return [float(r[0]) for r in rows], [bool(r[1]) for r in rows], [bytes(r[2]) for r in rows]
