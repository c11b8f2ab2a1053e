"""Which study store a ``--db`` names: PostgreSQL for a ``postgresql://`` URL, the SQLite file otherwise."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.store.url import DatabaseUrl, store_location

if TYPE_CHECKING:
    from engine.store.postgres import PostgresStore
    from engine.store.study_sqlite import SqliteStore


async def open_study_store(db: str | Path | DatabaseUrl, **options: Any) -> SqliteStore | PostgresStore:
    """Open the study store at ``db`` (``readonly``, ``batch_size``, ``batch_interval_s`` as ``SqliteStore.open``)."""
    location = store_location(db)
    if isinstance(location, DatabaseUrl):
        from engine.store.postgres import PostgresStore

        return await PostgresStore.open(location, **options)
    from engine.store.study_sqlite import SqliteStore

    return await SqliteStore.open(location, **options)
