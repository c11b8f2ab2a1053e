"""The schema registry: one ``schema_versions`` table in which each part registers its tables.

A store file is Genesis's when it has no tables yet or has ``schema_versions``.
Each part (studies and trials, alerts, run history, recordings) declares a
:class:`Schema`; opening a file for writing checks it *before* anything is
written (a foreign file is refused untouched, a newer version is refused),
then creates the part's tables and registers its version.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from engine.errors import StoreError

REGISTRY_DDL = """
CREATE TABLE IF NOT EXISTS schema_versions (
    component TEXT PRIMARY KEY,
    version   INTEGER NOT NULL
);
"""

_TABLES_SQL = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
_VERSION_SQL = "SELECT version FROM schema_versions WHERE component = ?"
_REGISTER_SQL = "INSERT OR REPLACE INTO schema_versions (component, version) VALUES (?, ?)"


@dataclass(frozen=True, slots=True)
class Schema:
    """One part's tables: its registry name, version, table names and DDL (``IF NOT EXISTS``)."""

    component: str
    version: int
    tables: frozenset[str]
    ddl: str
    unregistered: bool = False
    """Whether files written before the registry hold these tables unregistered (then adopted as they are)."""


def refuse_foreign(path: str | Path, tables: Iterable[str]) -> None:
    """Raise when a file holds tables but no Genesis registry (another application's database)."""
    tables = set(tables)
    if tables and "schema_versions" not in tables:
        shown = ", ".join(sorted(tables)[:4]) + (", ..." if len(tables) > 4 else "")
        raise StoreError(f"{path}: a SQLite database of another application (tables {shown}; no Genesis schema)")


def needs_create(path: str | Path, schema: Schema, tables: Iterable[str], version: int | None) -> bool:
    """Check ``schema`` against what the file holds; ``True`` when its tables are still to be created."""
    tables = set(tables)
    if version is None and schema.unregistered and tables <= schema.tables | {"schema_versions"}:
        return True  # this part's own file from before the registry: registered as it is
    refuse_foreign(path, tables)
    if version is None:
        clash = schema.tables & tables
        if clash and not schema.unregistered:
            raise StoreError(f"{path}: tables {', '.join(sorted(clash))} belong to another schema")
        return True
    if version > schema.version:
        raise StoreError(
            f"{path}: {schema.component} schema version {version} is newer than this Genesis supports "
            f"({schema.version})"
        )
    missing = schema.tables - tables
    if missing:
        raise StoreError(f"{path}: damaged Genesis store (missing tables: {', '.join(sorted(missing))})")
    return False


def inspect_sync(connection: sqlite3.Connection, component: str) -> tuple[set[str], int | None]:
    """The file's tables and ``component``'s registered version (reads only)."""
    tables = {row[0] for row in connection.execute(_TABLES_SQL)}
    if "schema_versions" not in tables:
        return tables, None
    row = connection.execute(_VERSION_SQL, (component,)).fetchone()
    return tables, None if row is None else int(row[0])


async def inspect(connection: aiosqlite.Connection, component: str) -> tuple[set[str], int | None]:
    """:func:`inspect_sync` on an ``aiosqlite`` connection."""
    async with connection.execute(_TABLES_SQL) as cursor:
        tables = {row[0] for row in await cursor.fetchall()}
    if "schema_versions" not in tables:
        return tables, None
    async with connection.execute(_VERSION_SQL, (component,)) as cursor:
        row = await cursor.fetchone()
    return tables, None if row is None else int(row[0])


def create_sync(connection: sqlite3.Connection, schema: Schema) -> None:
    """Create ``schema``'s tables and register its version."""
    connection.executescript(REGISTRY_DDL + schema.ddl)
    connection.execute(_REGISTER_SQL, (schema.component, schema.version))


async def create(connection: aiosqlite.Connection, schema: Schema) -> None:
    """:func:`create_sync` on an ``aiosqlite`` connection."""
    await connection.executescript(REGISTRY_DDL + schema.ddl)
    await connection.execute(_REGISTER_SQL, (schema.component, schema.version))
