"""The SQLite store against the store conformance suite."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from engine.optimize.store import SqliteStore
from tests.optimize.store_conformance import StoreConformance


@contextlib.asynccontextmanager
async def _sqlite(path: Path) -> AsyncIterator[SqliteStore]:
    store = await SqliteStore.open(path, batch_size=64, batch_interval_s=0.05)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def store_factory() -> Any:
    return _sqlite


class TestSqliteStore(StoreConformance):
    pass
