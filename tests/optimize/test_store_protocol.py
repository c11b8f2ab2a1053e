"""The ``StudyStore`` protocol is exactly ``SqliteStore``'s public surface, signatures included."""

from __future__ import annotations

import inspect
from pathlib import Path

from engine.store.postgres import PostgresStore
from engine.store.protocol import StudyStore
from engine.store.study_sqlite import SqliteStore


def _public(cls: type) -> set[str]:
    """Public names defined on ``cls`` or a base of ours (the write queue is shared by both stores)."""
    ours = [c for c in cls.__mro__ if c.__module__.startswith("engine.")]
    return {name for c in ours for name in vars(c) if not name.startswith("_")} | {"__aenter__", "__aexit__"}


def test_the_protocol_names_every_public_method_of_each_store() -> None:
    # ``open`` is the constructor (each backend opens its own kind of location), not a seam method.
    for store in (SqliteStore, PostgresStore):
        assert _public(store) - {"open"} == _public(StudyStore) - {"path"}, store.__name__


def test_the_protocol_signatures_match_the_sqlite_store() -> None:
    for name in _public(StudyStore) - {"path", "queued"}:
        ours = inspect.signature(getattr(StudyStore, name))
        sqlite = inspect.signature(getattr(SqliteStore, name))
        assert list(ours.parameters) == list(sqlite.parameters), name
        for parameter in ours.parameters.values():
            assert parameter.kind == sqlite.parameters[parameter.name].kind, (name, parameter.name)
            assert parameter.default == sqlite.parameters[parameter.name].default, (name, parameter.name)


async def test_an_open_sqlite_store_is_a_study_store(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "s.db")
    try:
        assert isinstance(store, StudyStore)
        assert store.path == tmp_path / "s.db"
    finally:
        await store.close()
