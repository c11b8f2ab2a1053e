"""The one SQLite connection policy: every connection Genesis opens to a database file.

Several processes share one store (two cron runs of two studies, the console
reading a headless run). SQLite supports that through POSIX advisory locks,
and POSIX drops *every* lock a process holds on a file as soon as the process
closes *any* descriptor of that file. So nothing in Genesis opens a database
file except through SQLite itself (never Python's ``open()`` to peek at a
header), and every connection gets the same policy: WAL, one busy timeout,
``synchronous = NORMAL`` for writers.
"""

from __future__ import annotations

import os
import sqlite3
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiosqlite

from engine.errors import StoreError
from engine.store import schema as registry

BUSY_TIMEOUT_S = 30.0
"""How long a connection waits for another process's write lock before failing."""

_NOT_A_DATABASE = "file is not a database"


def uri(path: str | Path, *, readonly: bool) -> str:
    """The ``file:`` URI of ``path`` (quoted, so ``?``, ``#`` and ``%`` in names are safe).

    A reader of a store in a folder it cannot write (a read-only mount, another
    user's files) could not create the WAL index beside it; when no log is
    waiting to be read the file is complete, and it is opened as immutable.
    """
    path = Path(path)
    quoted = urllib.parse.quote(str(path), safe="/")
    if not readonly:
        return f"file:{quoted}?mode=rwc"
    wal = path.with_name(path.name + "-wal")
    if not os.access(path.parent, os.W_OK) and not wal.exists():
        return f"file:{quoted}?mode=ro&immutable=1"
    return f"file:{quoted}?mode=ro"


# The schema is touched first, so that a corrupt or foreign file fails (or is
# refused by the caller's check) before WAL mode changes its header.
_OPEN = (f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}", "SELECT count(*) FROM sqlite_master")
_WRITER = ("PRAGMA journal_mode = WAL", "PRAGMA synchronous = NORMAL")


def check_path(path: Path) -> None:
    """Refuse a path that cannot be a store file, without opening it (see the module docstring)."""
    if path.is_dir():
        raise StoreError(f"{path}: is a directory, expected a SQLite store file")


def store_error(path: str | Path, error: BaseException, what: str = "store") -> StoreError:
    """One line naming the file for a SQLite failure while opening it."""
    message = str(error)
    if _NOT_A_DATABASE in message:
        return StoreError(f"{path}: not a SQLite database (corrupt or another kind of file)")
    if "unable to open" in message:
        return StoreError(f"{path}: cannot open the {what} (missing directory or no permission)")
    if "readonly" in message or "read-only" in message:
        return StoreError(f"{path}: the {what} is read-only")
    return StoreError(f"{path}: corrupt or unreadable SQLite {what} ({message})")


def connect_sync(
    path: str | Path,
    *,
    readonly: bool = False,
    check_same_thread: bool = True,
    schema: registry.Schema | None = None,
    check: Callable[[sqlite3.Connection], None] | None = None,
) -> sqlite3.Connection:
    """A ``sqlite3`` connection under the policy (autocommit; ``BEGIN`` explicitly).

    A writer given a ``schema`` checks the file against it before anything is
    written (a foreign or newer file is refused untouched), then creates and
    registers the schema's tables. ``check`` (the caller's own checks) runs
    just before, so that its message can name what the file should have been.
    """
    path = Path(path)
    check_path(path)
    connection = sqlite3.connect(
        uri(path, readonly=readonly),
        uri=True,
        timeout=BUSY_TIMEOUT_S,
        isolation_level=None,
        check_same_thread=check_same_thread,
    )
    try:
        for pragma in _OPEN:
            connection.execute(pragma).fetchall()
        if check is not None:
            check(connection)
        create = False
        if schema is not None and not readonly:
            create = registry.needs_create(path, schema, *registry.inspect_sync(connection, schema.component))
        for pragma in () if readonly else _WRITER:
            connection.execute(pragma).fetchall()
        if create and schema is not None:
            registry.create_sync(connection, schema)
    except BaseException:
        connection.close()
        raise
    return connection


async def connect(
    path: str | Path,
    *,
    readonly: bool = False,
    schema: registry.Schema | None = None,
    check: Callable[[aiosqlite.Connection], Awaitable[None]] | None = None,
) -> aiosqlite.Connection:
    """An ``aiosqlite`` connection under the policy (``schema`` and ``check`` as in :func:`connect_sync`)."""
    path = Path(path)
    check_path(path)
    connection = await aiosqlite.connect(
        uri(path, readonly=readonly), uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None
    )
    try:
        for pragma in _OPEN:
            async with connection.execute(pragma) as cursor:
                await cursor.fetchall()
        if check is not None:
            await check(connection)
        create = False
        if schema is not None and not readonly:
            create = registry.needs_create(path, schema, *await registry.inspect(connection, schema.component))
        for pragma in () if readonly else _WRITER:
            async with connection.execute(pragma) as cursor:
                await cursor.fetchall()
        if create and schema is not None:
            await registry.create(connection, schema)
    except BaseException:
        await connection.close()
        raise
    return connection
