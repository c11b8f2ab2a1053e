"""Alert raises and clears as rows of an ``alerts`` table in the SQLite store.

The table is this module's own (created if missing) and lives in whichever
store file it is given, beside the studies and trials. WAL mode and a busy
timeout let the console read it while a headless run writes.

    async with AlertStore(path, study="nightly") as store:
        await store.write(alerts)
        recent = await store.recent(50)
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

import aiosqlite

from engine.errors import StoreError
from engine.monitor.alerts import Alert
from engine.store import schema as registry
from engine.store import sqlite as sqlite_policy
from engine.store.schema import Schema

SCHEMA_COMPONENT = "alerts"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    raised_at REAL NOT NULL,
    study TEXT,
    rule TEXT NOT NULL,
    level TEXT NOT NULL CHECK (level IN ('warning', 'critical')),
    state TEXT NOT NULL CHECK (state IN ('raised', 'cleared')),
    value REAL,
    threshold REAL NOT NULL,
    direction TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_study_ts ON alerts (study, ts);
"""

ALERTS_SCHEMA = Schema(SCHEMA_COMPONENT, SCHEMA_VERSION, frozenset({"alerts"}), _SCHEMA)

_COLUMNS = "ts, raised_at, study, rule, level, state, value, threshold, direction, message"


class AlertStore:
    """Appends alerts to, and reads them back from, one SQLite file."""

    def __init__(self, path: str | Path, *, study: str | None = None, readonly: bool = False) -> None:
        self.path = Path(path)
        self.study = study
        self.readonly = readonly
        self._db: aiosqlite.Connection | None = None
        self._empty = False  # read-only on a store that has no alerts table yet

    async def open(self) -> AlertStore:
        if self._db is not None:
            return self
        try:
            if self.readonly:
                db = await sqlite_policy.connect(self.path, readonly=True)
                tables, _ = await registry.inspect(db, SCHEMA_COMPONENT)
                self._empty = "alerts" not in tables
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = await sqlite_policy.connect(self.path, schema=ALERTS_SCHEMA)
        except aiosqlite.DatabaseError as error:
            raise StoreError(f"{self.path}: not a usable SQLite store: {error}") from None
        except (OSError, aiosqlite.Error) as error:
            raise StoreError(f"{self.path}: cannot open the alerts table: {error}") from None
        self._db = db
        return self

    async def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            await db.close()

    async def __aenter__(self) -> AlertStore:
        return await self.open()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError(f"{self.path}: alert store is not open")
        return self._db

    async def write(self, alerts: Iterable[Alert]) -> int:
        """Append alerts in one transaction; returns how many were written."""
        rows = [
            (a.ts, a.raised_at, self.study, a.rule, a.level, a.state, a.value, a.threshold, a.direction, a.message)
            for a in alerts
        ]
        if not rows:
            return 0
        db = self._conn()
        await db.execute("BEGIN IMMEDIATE")
        try:
            await db.executemany(f"INSERT INTO alerts ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise
        return len(rows)

    async def __call__(self, alerts: Iterable[Alert]) -> None:
        """The persistence hook form: ``Monitor(persist=store)``."""
        await self.write(alerts)

    async def recent(self, limit: int = 100, *, study: str | None = None, all_studies: bool = False) -> list[Alert]:
        """The latest ``limit`` alerts, oldest first (this store's study unless told otherwise)."""
        if self._empty:
            return []
        db = self._conn()
        where = ""
        params: list[str] = []
        if not all_studies:
            who = study if study is not None else self.study
            where, params = ("WHERE study IS NULL", []) if who is None else ("WHERE study = ?", [who])
        sql = f"SELECT {_COLUMNS} FROM alerts {where} ORDER BY id DESC LIMIT ?"
        async with db.execute(sql, (*params, int(limit))) as cursor:
            rows = await cursor.fetchall()
        return [
            Alert(
                rule=row[3],
                level=row[4],
                state=row[5],
                value=row[6],
                threshold=row[7],
                direction=row[8],
                message=row[9],
                ts=row[0],
                raised_at=row[1],
            )
            for row in reversed(list(rows))
        ]
