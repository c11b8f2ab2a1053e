"""The study store: SQLite in WAL mode through aiosqlite.

One writer task owns the write connection. Trials, artifacts and checkpoints
are queued in memory and written in batched transactions (``batch_size``
trials or ``batch_interval_s`` seconds, whichever first); a checkpoint (the
sampler state at a sampler-batch boundary) is written in the same transaction
as the trials queued before it, so state and trials never disagree (the queue
and the writer task are :class:`~engine.store.batching.BatchedStore`, shared
with the PostgreSQL store). Nothing
is ever rewritten whole: trials are appended, the study row is updated in
place. Reads go through a second connection and see committed data only, so
an incremental reader (:meth:`SqliteStore.trials_after`) is safe while a
writer runs, in this process or another.

A file that is not SQLite, is corrupt, or holds another application's tables
raises :class:`~engine.errors.StoreError` with one line naming the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import sqlite3
import time
from array import array
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import aiosqlite
import msgspec
import numpy as np

from engine.errors import StoreError
from engine.store import schema as registry
from engine.store import sqlite as sqlite_policy
from engine.store.artifacts import CODECS, decode_array
from engine.store.batching import BatchedStore, Pending, dumps
from engine.store.claims import DriverRecord
from engine.store.known_keys import KnownKeys
from engine.store.records import (
    STATES_BY_VALUE,
    CompleteTrials,
    StudyRecord,
    StudyState,
    TrialPoints,
    TrialRecord,
    TrialResult,
    TrialState,
)
from engine.store.schema import Schema

SCHEMA_COMPONENT = "optimize"
SCHEMA_VERSION = 2
"""2: no unique index on ``(study_id, key)`` (the store keeps first write wins itself, see
:mod:`engine.store.known_keys`) but an append-only one on ``study_id``. A version-1 store keeps its
unique index and works as it did; an older Genesis refuses a version-2 store (it would rely on
the index)."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS studies (
    id             INTEGER PRIMARY KEY,
    name           TEXT    NOT NULL UNIQUE,
    spec_toml      TEXT    NOT NULL,
    spec_hash      TEXT    NOT NULL,
    created        REAL    NOT NULL,
    updated        REAL    NOT NULL,
    state          TEXT    NOT NULL,
    sampler_state  TEXT,                        -- JSON at the last sampler-batch boundary
    checkpoint_seq INTEGER NOT NULL DEFAULT 0,  -- sampler batches completed
    next_number    INTEGER NOT NULL DEFAULT 0,  -- first trial number of the next batch
    validation     TEXT,                        -- JSON
    summary        TEXT,                        -- JSON
    error          TEXT
);
CREATE TABLE IF NOT EXISTS trials (
    id         INTEGER PRIMARY KEY,             -- the incremental readers' cursor
    study_id   INTEGER NOT NULL REFERENCES studies(id),
    number     INTEGER NOT NULL,
    key        TEXT    NOT NULL,
    params     TEXT    NOT NULL,                -- JSON
    state      TEXT    NOT NULL,
    metrics    TEXT,                            -- JSON
    objective  REAL,
    started    REAL,
    duration_s REAL,
    worker     TEXT,
    error      TEXT,
    step       INTEGER,
    batch      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS trials_study ON trials (study_id);
CREATE TABLE IF NOT EXISTS artifacts (
    study_id INTEGER NOT NULL REFERENCES studies(id),
    number   INTEGER NOT NULL,
    name     TEXT    NOT NULL,                  -- equity | trades
    dtype    TEXT    NOT NULL,                  -- numpy dtype string, or JSON field list
    shape    TEXT    NOT NULL,                  -- JSON list
    codec    TEXT    NOT NULL,                  -- zlib
    data     BLOB    NOT NULL,
    PRIMARY KEY (study_id, number, name)
);
"""

STUDY_SCHEMA = Schema(SCHEMA_COMPONENT, SCHEMA_VERSION, frozenset({"studies", "trials", "artifacts"}), SCHEMA)

# Per-block figures (CSCV): a part of its own, so a store made before it gains the table when next opened.
BLOCKS_SCHEMA = Schema(
    "blocks",
    1,
    frozenset({"trial_blocks"}),
    """
CREATE TABLE IF NOT EXISTS trial_blocks (
    study_id INTEGER NOT NULL REFERENCES studies(id),
    number   INTEGER NOT NULL,
    data     BLOB    NOT NULL,                  -- float32 little-endian, one log return per block
    PRIMARY KEY (study_id, number)
);
""",
)
_TRIAL_COLUMNS = "id, number, key, params, state, metrics, objective, started, duration_s, worker, error, step, batch"
_STUDY_COLUMNS = (
    "id, name, spec_toml, spec_hash, created, updated, state, sampler_state, "
    "checkpoint_seq, next_number, validation, summary, error"
)
_INSERT_TRIALS = (
    "INSERT OR IGNORE INTO trials (study_id, number, key, params, state, metrics, objective, "
    "started, duration_s, worker, error, step, batch)"
)
_INSERT_BLOCKS = "INSERT OR IGNORE INTO trial_blocks (study_id, number, data)"
#: Parameters of one many-row INSERT (SQLite's oldest limit is 999): a statement's own cost is most
#: of a small row's (a trial's per-block figures take about half the time this way).
_MAX_VARIABLES = 999

_json_decoder = msgspec.json.Decoder()


def spec_hash(spec_toml: str) -> str:
    """A stable hash of a study file's text (hex, 16 characters)."""
    return hashlib.blake2b(spec_toml.encode(), digest_size=8).hexdigest()


def _loads(text: str | bytes | None) -> Any:
    return None if text is None else _json_decoder.decode(text)


# ---------------------------------------------------------------------------
# row <-> record


def trial_points(rowid: int, rows: Sequence[Sequence[Any]]) -> TrialPoints:
    """A :class:`TrialPoints` page from ``(id, params JSON, objective or None)`` rows (``None``: not complete)."""
    if not rows:
        return TrialPoints(rowid, 0, [], [])
    kept = [(row[1], row[2]) for row in rows if row[2] is not None]
    # one decode for the page's parameters: no per-row decoder call
    params = _json_decoder.decode("[" + ",".join([text for text, _ in kept]) + "]") if kept else []
    return TrialPoints(int(rows[-1][0]), len(rows), params, [float(value) for _, value in kept])


def complete_columns(rows: Sequence[Sequence[Any]]) -> CompleteTrials:
    """:class:`CompleteTrials` from ``(number, params JSON, objective, duration_s)`` rows."""
    params = _json_decoder.decode("[" + ",".join([row[1] for row in rows]) + "]") if rows else []
    return CompleteTrials([row[0] for row in rows], params, [row[2] for row in rows], [row[3] for row in rows])


def _trial_record(row: Sequence[Any]) -> TrialRecord:
    state = STATES_BY_VALUE.get(row[4])
    return TrialRecord(
        rowid=row[0],
        number=row[1],
        key=row[2],
        params=_json_decoder.decode(row[3]),
        state=TrialState(row[4]) if state is None else state,
        metrics=None if row[5] is None else _json_decoder.decode(row[5]),
        objective=row[6],
        started=row[7],
        duration_s=row[8],
        worker=row[9],
        error=row[10],
        step=row[11],
        batch=row[12],
    )


def _study_record(row: Sequence[Any]) -> StudyRecord:
    return StudyRecord(
        id=row[0],
        name=row[1],
        spec_toml=row[2],
        spec_hash=row[3],
        created=row[4],
        updated=row[5],
        state=StudyState(row[6]),
        sampler_state=_loads(row[7]),
        checkpoint_seq=row[8],
        next_number=row[9],
        validation=_loads(row[10]),
        summary=_loads(row[11]) or {},
        error=row[12],
    )


class BlocksBuilder:
    """Collects ``(number, float32 bytes)`` rows compactly (no Python object kept per row), chunk by chunk.

    A million-trial study's per-block returns held as fetched rows cost ~0.5 GB
    of Python objects; here they cost their bytes and two integers per row.
    """

    def __init__(self) -> None:
        self.numbers = array("q")
        self.lengths = array("q")
        self.data = bytearray()

    def add(self, rows: Iterable[Sequence[Any]]) -> None:
        """Append ``(number, data)`` rows (tuples, or a driver's row objects)."""
        for number, data in rows:
            self.numbers.append(int(number))
            self.lengths.append(len(data))
            self.data += data

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """``(numbers, figures)``, as :func:`blocks_matrix` describes them."""
        if not self.numbers:
            return np.empty(0, dtype=np.int64), np.empty((0, 0))
        numbers = np.frombuffer(self.numbers, dtype=np.int64)
        lengths = np.frombuffer(self.lengths, dtype=np.int64)
        values, counts = np.unique(lengths, return_counts=True)
        size = int(values[np.argmax(counts)])  # the most common length (ties: the shortest)
        raw = np.frombuffer(self.data, dtype=np.uint8)
        if len(values) > 1:
            starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
            kept = np.flatnonzero(lengths == size)
            raw = raw[(starts[kept][:, None] + np.arange(size)).ravel()]
            numbers = numbers[kept]
        figures = raw.view("<f4").reshape(len(numbers), size // 4)
        if len(numbers) > 1 and not bool(np.all(numbers[1:] > numbers[:-1])):  # rows given out of order
            order = np.argsort(numbers, kind="stable")
            numbers, figures = numbers[order], figures[order]
        return numbers.copy(), figures.astype(np.float64)


def blocks_matrix(rows: Iterable[tuple[int, bytes]]) -> tuple[np.ndarray, np.ndarray]:
    """``(numbers, figures)`` from ``(number, float32 bytes)`` rows: trial numbers (int64, sorted)
    and one row of per-block log returns per trial (float64); rows of another length than the
    most common one (a study whose block count changed) are left out."""
    builder = BlocksBuilder()
    builder.add(rows)
    return builder.result()


#: Each recorded trial's per-block returns, by trial number (:func:`blocks_matrix` sorts any others).
_BLOCKS_SQL = "SELECT number, data FROM trial_blocks WHERE study_id = ? ORDER BY number"
_BLOCKS_CHUNK = 65_536


def read_trial_blocks(path: str | Path, study_id: int) -> tuple[np.ndarray, np.ndarray]:
    """:meth:`SqliteStore.trial_blocks` on a read-only connection of its own, without an event loop
    (a process that has no store open: the PBO's child reads the figures itself)."""
    builder = BlocksBuilder()
    connection = sqlite_policy.connect_sync(path, readonly=True)
    try:
        cursor = connection.execute(_BLOCKS_SQL, (study_id,))
        while rows := cursor.fetchmany(_BLOCKS_CHUNK):
            builder.add(rows)
    except sqlite3.OperationalError:  # a store made before blocks were recorded
        builder = BlocksBuilder()
    finally:
        connection.close()
    return builder.result()


def trial_record(result: TrialResult, key: str, params: dict[str, Any], batch: int) -> TrialRecord:
    """The stored form of a worker's result."""
    return TrialRecord(
        number=result.number,
        key=key,
        params=params,
        state=result.state,
        metrics=result.metrics,
        objective=result.objective,
        started=result.started,
        duration_s=result.duration_s,
        worker=result.worker,
        error=result.error,
        step=result.step,
        batch=batch,
    )


async def _insert_rows(db: aiosqlite.Connection, insert: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """``insert`` (``INSERT ... (columns)``) of ``rows``, in order, many rows a statement."""
    if not rows:
        return
    width = len(rows[0])
    per = _MAX_VARIABLES // width
    values = "(" + ",".join("?" * width) + ")"
    whole = len(rows) - len(rows) % per
    flat = itertools.chain.from_iterable
    if whole:
        await db.executemany(
            f"{insert} VALUES {','.join([values] * per)}", [list(flat(rows[at : at + per])) for at in range(0, whole, per)]
        )
    if whole < len(rows):
        rest = rows[whole:]
        await db.execute(f"{insert} VALUES {','.join([values] * len(rest))}", list(flat(rest)))


# ---------------------------------------------------------------------------
# file checks


async def _check_schema(connection: aiosqlite.Connection, path: Path) -> None:
    """Refuse a file that holds no Genesis studies, or whose tables are not ours (reads only)."""
    tables, version = await registry.inspect(connection, SCHEMA_COMPONENT)
    if version is None:
        registry.refuse_foreign(path, tables)
        raise StoreError(f"{path}: an empty database, not a Genesis store" if not tables else f"{path}: holds no Genesis studies")
    registry.needs_create(path, STUDY_SCHEMA, tables, version)
    await _check_columns(connection, path)


async def _check_columns(connection: aiosqlite.Connection, path: Path) -> None:
    for table, columns in (("trials", _TRIAL_COLUMNS), ("studies", _STUDY_COLUMNS)):
        async with connection.execute(f"PRAGMA table_info({table})") as cursor:
            have = {row[1] for row in await cursor.fetchall()}
        wanted = {name.strip() for name in columns.split(",")}
        if not wanted <= have:
            raise StoreError(
                f"{path}: table {table} has a foreign layout (missing columns: {', '.join(sorted(wanted - have))})"
            )


class SqliteStore(BatchedStore):
    """A study store in one SQLite file (see the module docstring).

    Open with :meth:`open` (creates the file and tables unless ``readonly``),
    close with :meth:`close` (flushes). Writes are async and batched; reads
    see what has been committed.
    """

    def __init__(
        self,
        path: Path,
        reader: aiosqlite.Connection,
        writer: aiosqlite.Connection | None,
        *,
        batch_size: int,
        batch_interval_s: float,
    ) -> None:
        self.path = path
        self._reader = reader
        self._writer = writer
        self._known: dict[int, KnownKeys] = {}  # committed keys of the studies this store has written
        self._seen_id = 0  # the largest trials.id reflected in ``_known``
        self._start_writer(batch_size=batch_size, batch_interval_s=batch_interval_s, writable=writer is not None)

    # -- life cycle ---------------------------------------------------------

    @classmethod
    async def open(
        cls,
        path: str | Path,
        *,
        readonly: bool = False,
        batch_size: int = 500,
        batch_interval_s: float = 1.0,
    ) -> SqliteStore:
        """Open (or create, unless ``readonly``) the store at ``path``."""
        path = Path(path)
        sqlite_policy.check_path(path)
        if readonly and not path.exists():
            raise StoreError(f"{path}: no such store")
        if not readonly:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise StoreError(f"{path}: cannot create the store's directory: {error.strerror}") from None
        writer = reader = None
        try:
            if not readonly:
                writer = await sqlite_policy.connect(path, schema=STUDY_SCHEMA)
                await _check_columns(writer, path)
                found = await registry.inspect(writer, BLOCKS_SCHEMA.component)
                if registry.needs_create(path, BLOCKS_SCHEMA, *found):
                    await registry.create(writer, BLOCKS_SCHEMA)
            reader = await sqlite_policy.connect(path, readonly=True)
            if readonly:
                await _check_schema(reader, path)
        except sqlite3.DatabaseError as error:
            for connection in (writer, reader):
                if connection is not None:
                    await connection.close()
            raise sqlite_policy.store_error(path, error) from None
        except BaseException:
            for connection in (writer, reader):
                if connection is not None:
                    await connection.close()
            raise
        return cls(path, reader, writer, batch_size=batch_size, batch_interval_s=batch_interval_s)

    async def close(self) -> None:
        """Flush queued writes and close both connections."""
        await self._stop_writer()
        if self._writer is not None:
            await self._writer.close()
            self._writer = None
        await self._reader.close()
        self._raise_closed_error()

    async def _transaction(self, pending: Pending) -> None:
        assert self._writer is not None
        db = self._writer
        await db.execute("BEGIN IMMEDIATE")
        added: dict[int, list[str]] = {}
        try:
            if pending.trials:
                rows, added = await self._first_writes(db, pending.trials)
                await _insert_rows(db, _INSERT_TRIALS, rows)
                async with db.execute("SELECT max(id) FROM trials") as cursor:
                    row = await cursor.fetchone()
                self._seen_id = 0 if row is None or row[0] is None else int(row[0])
            await _insert_rows(db, _INSERT_BLOCKS, pending.blocks)
            if pending.drops:
                await db.executemany("DELETE FROM artifacts WHERE study_id = ? AND number = ?", pending.drops)
            if pending.artifacts:
                await db.executemany(
                    "INSERT OR REPLACE INTO artifacts (study_id, number, name, dtype, shape, codec, data) "
                    "VALUES (?,?,?,?,?,?,?)",
                    pending.artifacts,
                )
            for study_id, (state_json, seq, next_number) in pending.checkpoints.items():
                await db.execute(
                    "UPDATE studies SET sampler_state = ?, checkpoint_seq = ?, next_number = ?, updated = ? "
                    "WHERE id = ?",
                    (state_json, seq, next_number, time.time(), study_id),
                )
            await db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(Exception):
                await db.execute("ROLLBACK")
            self._known.clear()  # read again from the store by the next transaction
            raise
        for study_id, keys in added.items():
            self._known[study_id].add(keys)

    async def _first_writes(
        self, db: aiosqlite.Connection, rows: list[tuple[Any, ...]]
    ) -> tuple[list[tuple[Any, ...]], dict[int, list[str]]]:
        """The queued rows whose key the study has not committed (first write wins), and their keys by study.

        Runs inside the write transaction, so what it reads cannot change before the commit.
        """
        if self._known:
            # Rows committed by another connection since this one last wrote (another process).
            async with db.execute("SELECT study_id, key FROM trials WHERE id > ?", (self._seen_id,)) as cursor:
                foreign = await cursor.fetchall()
            for study_id, key in foreign:
                if study_id in self._known:
                    self._known[study_id].add([key])
        studies = {row[0] for row in rows}
        for study_id in studies - self._known.keys():
            known = KnownKeys()
            async with db.execute("SELECT key FROM trials WHERE study_id = ?", (study_id,)) as cursor:
                while chunk := await cursor.fetchmany(65_536):
                    known.add([row[0] for row in chunk])
            self._known[study_id] = known
        if len(studies) == 1:
            (study_id,) = studies
            keep = self._known[study_id].fresh([row[2] for row in rows])
            kept = [row for row, fresh in zip(rows, keep, strict=True) if fresh]
            return kept, {study_id: [row[2] for row in kept]}
        kept = []
        added: dict[int, list[str]] = {}
        for study_id in studies:
            mine = [row for row in rows if row[0] == study_id]
            keep = self._known[study_id].fresh([row[2] for row in mine])
            added[study_id] = [row[2] for row, fresh in zip(mine, keep, strict=True) if fresh]
        taken = {study_id: set(keys) for study_id, keys in added.items()}
        for row in rows:  # queue order kept across studies (ids follow the writes)
            if row[2] in taken[row[0]]:
                taken[row[0]].discard(row[2])
                kept.append(row)
        return kept, added

    # -- studies ------------------------------------------------------------

    async def create_study(self, name: str, spec_toml: str) -> StudyRecord:
        """Create study ``name``, or return it if it exists with the same spec text.

        A stored study of the same name with a different spec is an error:
        resuming it would mix trials of two different searches.
        """
        self._raise_if_failed()
        existing = await self.get_study(name)
        digest = spec_hash(spec_toml)
        if existing is not None:
            if existing.spec_hash != digest:
                raise StoreError(
                    f"{self.path}: study {name!r} exists with a different spec (hash {existing.spec_hash}, "
                    f"this file {digest}); rename the study or use another --db"
                )
            return existing
        now = time.time()
        await self._write_now(
            "INSERT INTO studies (name, spec_toml, spec_hash, created, updated, state) VALUES (?,?,?,?,?,?)",
            (name, spec_toml, digest, now, now, StudyState.CREATED.value),
        )
        study = await self.get_study(name)
        assert study is not None
        return study

    async def _write_now(self, sql: str, parameters: Sequence[Any], *, after_failure: bool = False) -> None:
        """One statement in its own transaction, after everything queued before it."""
        await self._before_write_now(after_failure=after_failure)
        assert self._writer is not None
        try:
            await self._commit_one(sql, parameters)
        except sqlite3.OperationalError:
            if not after_failure:
                raise
            # The failed batch may have left the WAL without room for even this row (a
            # file-size limit, a full disk): folding the WAL into the database file and
            # truncating it can make that room.
            await self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            await self._commit_one(sql, parameters)

    async def _commit_one(self, sql: str, parameters: Sequence[Any]) -> None:
        assert self._writer is not None
        await self._writer.execute("BEGIN IMMEDIATE")
        try:
            await self._writer.execute(sql, parameters)
            await self._writer.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(Exception):
                await self._writer.execute("ROLLBACK")
            raise
        self.commits += 1

    async def check_integrity(self) -> None:
        """Refuse a damaged file before anything is written to it (``PRAGMA quick_check``, one line)."""
        try:
            async with self._reader.execute("PRAGMA quick_check(1)") as cursor:
                row = await cursor.fetchone()
        except sqlite3.DatabaseError as error:
            raise sqlite_policy.store_error(self.path, error) from None
        if row is None or row[0] != "ok":
            problem = "no answer" if row is None else " ".join(str(row[0]).split())[:200]
            raise StoreError(f"{self.path}: the store is damaged ({problem}); nothing was written to it")

    async def get_study(self, name: str) -> StudyRecord | None:
        """The stored study ``name`` (with its last checkpoint), or ``None``."""
        async with self._reader.execute(f"SELECT {_STUDY_COLUMNS} FROM studies WHERE name = ?", (name,)) as cursor:
            row = await cursor.fetchone()
        return None if row is None else _study_record(row)

    async def require_study(self, name: str) -> StudyRecord:
        """Like :meth:`get_study`, but a missing study is a one-line ``StoreError``."""
        study = await self.get_study(name)
        if study is None:
            names = [s.name for s in await self.studies()]
            known = f"; studies here: {', '.join(names[:8])}" if names else "; the store holds no studies"
            raise StoreError(f"{self.path}: no study named {name!r}{known}")
        return study

    async def studies(self) -> list[StudyRecord]:
        """Every stored study, oldest first."""
        async with self._reader.execute(f"SELECT {_STUDY_COLUMNS} FROM studies ORDER BY id") as cursor:
            return [_study_record(row) for row in await cursor.fetchall()]

    async def set_study_state(
        self, study_id: int, state: StudyState, error: str | None = None, *, after_failure: bool = False
    ) -> None:
        """Record the study's lifecycle state (after the queued writes; ``after_failure`` as in ``_write_now``)."""
        await self._write_now(
            "UPDATE studies SET state = ?, error = ?, updated = ? WHERE id = ?",
            (state.value, error, time.time(), study_id),
            after_failure=after_failure,
        )

    async def save_validation(self, study_id: int, validation: dict[str, Any]) -> None:
        """Store the end-of-study validation (JSON)."""
        await self._write_now(
            "UPDATE studies SET validation = ?, updated = ? WHERE id = ?", (dumps(validation), time.time(), study_id)
        )

    async def save_summary(self, study_id: int, summary: dict[str, Any]) -> None:
        """Store the run summary (JSON) shown by reports."""
        await self._write_now(
            "UPDATE studies SET summary = ?, updated = ? WHERE id = ?", (dumps(summary), time.time(), study_id)
        )

    # -- reads --------------------------------------------------------------

    async def trials(
        self, study_id: int, *, states: Iterable[TrialState] | None = None, order: str = "number"
    ) -> list[TrialRecord]:
        """Committed trials of a study (by number, or ``order="rowid"``)."""
        order_by = "number" if order == "number" else "id"
        sql = f"SELECT {_TRIAL_COLUMNS} FROM trials WHERE study_id = ?"
        parameters: list[Any] = [study_id]
        if states is not None:
            wanted = [TrialState(s).value for s in states]
            sql += f" AND state IN ({','.join('?' * len(wanted))})"
            parameters.extend(wanted)
        async with self._reader.execute(f"{sql} ORDER BY {order_by}", parameters) as cursor:
            return [_trial_record(row) for row in await cursor.fetchall()]

    async def trials_after(self, study_id: int, rowid: int, limit: int = 1000) -> list[TrialRecord]:
        """Committed trials written after ``rowid`` (the last record's ``rowid`` is the next cursor)."""
        async with self._reader.execute(
            f"SELECT {_TRIAL_COLUMNS} FROM trials WHERE study_id = ? AND id > ? ORDER BY id LIMIT ?",
            (study_id, rowid, limit),
        ) as cursor:
            return [_trial_record(row) for row in await cursor.fetchall()]

    async def points_after(self, study_id: int, rowid: int, limit: int = 1000) -> TrialPoints:
        """Like :meth:`trials_after`, as columns: the complete trials' parameters and objectives."""
        async with self._reader.execute(
            "SELECT id, params, CASE WHEN state = ? THEN objective END FROM trials "
            "WHERE study_id = ? AND id > ? ORDER BY id LIMIT ?",
            (TrialState.COMPLETE.value, study_id, rowid, limit),
        ) as cursor:
            return trial_points(rowid, list(await cursor.fetchall()))

    async def complete_trials(self, study_id: int) -> CompleteTrials:
        """The complete trials, in the order stored, as columns (what a report reads of them)."""
        async with self._reader.execute(
            "SELECT number, params, objective, duration_s FROM trials WHERE study_id = ? AND state = ? ORDER BY id",
            (study_id, TrialState.COMPLETE.value),
        ) as cursor:
            return complete_columns(list(await cursor.fetchall()))

    async def trial_outcomes(
        self, study_id: int, *, batch: int | None = None
    ) -> dict[str, tuple[TrialState, float | None, int, int]]:
        """``key -> (state, objective, number, batch)`` of committed trials (of one sampler ``batch``)."""
        sql = "SELECT key, state, objective, number, batch FROM trials WHERE study_id = ?"
        parameters: tuple[Any, ...] = (study_id,)
        if batch is not None:
            sql += " AND batch = ?"
            parameters = (study_id, batch)
        async with self._reader.execute(sql, parameters) as cursor:
            return {row[0]: (TrialState(row[1]), row[2], row[3], row[4]) for row in await cursor.fetchall()}

    async def best(self, study_id: int, *, maximize: bool, k: int = 1) -> list[TrialRecord]:
        """The ``k`` best complete trials by objective (ties: lower number first)."""
        direction = "DESC" if maximize else "ASC"
        async with self._reader.execute(
            f"SELECT {_TRIAL_COLUMNS} FROM trials WHERE study_id = ? AND state = ? AND objective IS NOT NULL "
            f"ORDER BY objective {direction}, number ASC LIMIT ?",
            (study_id, TrialState.COMPLETE.value, k),
        ) as cursor:
            return [_trial_record(row) for row in await cursor.fetchall()]

    async def counts(self, study_id: int) -> dict[TrialState, int]:
        """How many committed trials ended in each state."""
        async with self._reader.execute(
            "SELECT state, count(*) FROM trials WHERE study_id = ? GROUP BY state", (study_id,)
        ) as cursor:
            found = {TrialState(row[0]): row[1] for row in await cursor.fetchall()}
        return {state: found.get(state, 0) for state in TrialState if state is not TrialState.RUNNING}

    async def timings(self, study_id: int) -> list[tuple[TrialState, float | None, str | None, int | None]]:
        """``(state, duration_s, error, step)`` of every committed trial (no JSON decoded: for reports)."""
        async with self._reader.execute(
            "SELECT state, duration_s, error, step FROM trials WHERE study_id = ?", (study_id,)
        ) as cursor:
            return [(TrialState(row[0]), row[1], row[2], row[3]) for row in await cursor.fetchall()]

    async def metric_values(self, study_id: int, metric: str) -> list[float | None]:
        """One metric of every complete trial, by trial number (read inside SQLite, without decoding whole
        rows; the order is fixed, so sums over it do not depend on which worker wrote first)."""
        async with self._reader.execute(
            "SELECT json_extract(metrics, ?) FROM trials WHERE study_id = ? AND state = ? ORDER BY number",
            (f"$.{metric}", study_id, TrialState.COMPLETE.value),
        ) as cursor:
            return [row[0] for row in await cursor.fetchall()]

    async def drivers(self, study_id: int) -> list[DriverRecord]:
        """Drivers sharing the study: none on SQLite (one run at a time, under its lock)."""
        return []

    async def trial_blocks(self, study_id: int) -> tuple[np.ndarray, np.ndarray]:
        """``(numbers, figures)``: each recorded trial's per-block log returns (see :func:`blocks_matrix`)."""
        try:
            builder = BlocksBuilder()
            async with self._reader.execute(_BLOCKS_SQL, (study_id,)) as cursor:
                while rows := await cursor.fetchmany(_BLOCKS_CHUNK):  # a chunk at a time: memory stays flat
                    builder.add(rows)
        except sqlite3.OperationalError:  # a store made before blocks were recorded, opened read-only
            builder = BlocksBuilder()
        return builder.result()

    async def artifact_numbers(self, study_id: int) -> list[int]:
        """Trial numbers that have stored artifacts."""
        async with self._reader.execute(
            "SELECT DISTINCT number FROM artifacts WHERE study_id = ? ORDER BY number", (study_id,)
        ) as cursor:
            return [row[0] for row in await cursor.fetchall()]

    async def artifacts(self, study_id: int, number: int) -> dict[str, np.ndarray]:
        """A trial's stored artifacts by name (empty if it has none)."""
        async with self._reader.execute(
            "SELECT name, dtype, shape, codec, data FROM artifacts WHERE study_id = ? AND number = ?",
            (study_id, number),
        ) as cursor:
            rows = await cursor.fetchall()
        out: dict[str, np.ndarray] = {}
        for name, dtype, shape, codec, data in rows:
            if codec not in CODECS:
                raise StoreError(f"{self.path}: artifact {name} of trial {number}: unknown codec {codec!r}")
            out[name] = decode_array(dtype, shape, data, codec)
        return out
