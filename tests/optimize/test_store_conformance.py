"""The study stores (SQLite, and PostgreSQL on a real server) against the store conformance suite."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from engine.store.factory import open_study_store
from tests.optimize.store_conformance import StoreConformance


def _factory(locate: Callable[[Path], Any]) -> Any:
    @contextlib.asynccontextmanager
    async def factory(path: Path) -> AsyncIterator[Any]:
        store = await open_study_store(locate(path), batch_size=64, batch_interval_s=0.05)
        try:
            yield store
        finally:
            await store.close()

    return factory


@pytest.fixture(params=["sqlite", "postgres"])
def store_factory(request: pytest.FixtureRequest) -> Any:
    """``factory(path)``: SQLite opens the file; PostgreSQL maps every path to this test's own schema."""
    if request.param == "sqlite":
        return _factory(lambda path: path)
    url = request.getfixturevalue("postgres_url")
    return _factory(lambda path: url)


class TestStudyStore(StoreConformance):
    pass
