"""A run checks its store before it changes anything: a newer or damaged store is refused untouched."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from engine.store.study_sqlite import SCHEMA_VERSION
from tests.headless.conftest import genesis, write_study


@pytest.fixture
def finished_store(tmp_path: Path) -> tuple[Path, Path]:
    study = write_study(tmp_path, name="again")
    db = tmp_path / "s.db"
    result = genesis("run", study, "--db", db, "--quiet")
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file, so bytes can be flipped
    conn.close()
    return study, db


def _names(db: Path) -> list[str]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        names = [row[0] for row in conn.execute("SELECT name FROM studies ORDER BY id")]
    conn.close()
    return names


def test_rerun_on_a_newer_store_is_refused_before_the_study_is_renamed(finished_store) -> None:
    study, db = finished_store
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE schema_versions SET version = 99 WHERE component = 'optimize'")
    conn.close()
    before = db.read_bytes()
    result = genesis("run", study, "--db", db, "--rerun")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"genesis: {db}: optimize schema version 99 is newer than this Genesis supports ({SCHEMA_VERSION})"
    ]
    assert _names(db) == ["again"]
    assert db.read_bytes() == before


def test_a_damaged_store_is_refused_and_not_written(finished_store) -> None:
    study, db = finished_store
    page_size = 4096
    with db.open("r+b") as handle:  # the cell pointers of a b-tree page: quick_check finds it, opening does not
        handle.seek(page_size * 9 + 8)
        handle.write(b"\xff" * 16)
    before = db.read_bytes()
    result = genesis("run", study, "--db", db, "--rerun")
    assert result.returncode == 2, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "the store is damaged" in lines[0] and "nothing was written" in lines[0]
    assert db.read_bytes() == before
