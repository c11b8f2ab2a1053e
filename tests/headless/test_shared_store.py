"""One store, several processes: runs of different studies share a file without corrupting it."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.errors import LockHeldError, StoreError
from engine.optimize.lock import StudyLock
from engine.store.study_sqlite import SqliteStore
from tests.headless.conftest import (
    big_study,
    committed,
    gated_study,
    genesis,
    start,
    stored_trials,
    wait_for,
)

WRITE_AND_CLOSE = (
    "import sqlite3, sys\n"
    "connection = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)\n"
    "connection.execute('CREATE TABLE IF NOT EXISTS scratch (x)')\n"
    "connection.close()\n"
)


async def test_opening_the_store_again_keeps_this_process_locks(tmp_path: Path) -> None:
    """POSIX drops every lock a process holds on a file when any descriptor of that file closes.

    A run opens its store a second time (read-only) while its writer is
    connected. If that open touched the file outside SQLite, the run's shared
    lock on the file was gone, and another process closing its last
    connection believed itself the last user: it checkpointed and deleted
    the write-ahead log under the run, and the file was corrupt.
    """
    db = tmp_path / "s.db"
    wal = tmp_path / "s.db-wal"
    writer = await SqliteStore.open(db)
    try:
        await writer.create_study("a", "x")
        second = await SqliteStore.open(db, readonly=True)
        await second.close()
        other = subprocess.run(
            [sys.executable, "-c", WRITE_AND_CLOSE, str(db)], capture_output=True, text=True, timeout=60
        )
        assert other.returncode == 0, other.stderr
        assert wal.exists(), "another process took this process's store for unused and removed its log"
    finally:
        await writer.close()


def test_a_symlinked_store_meets_the_same_study_lock(tmp_path: Path) -> None:
    real = tmp_path / "s.db"
    link = tmp_path / "link.db"
    link.symlink_to(real)
    with StudyLock(real, "a"), pytest.raises(LockHeldError):
        StudyLock(link, "a").acquire()
    with StudyLock(tmp_path / "sub" / ".." / "s.db", "a"), pytest.raises(LockHeldError):
        StudyLock(link, "a").acquire()


def _grid_size(fast_high: int, slow_high: int) -> int:
    return sum(1 for fast in range(2, fast_high + 1) for slow in range(10, slow_high + 1, 10) if fast < slow)


def test_two_studies_written_at_once_into_one_store_both_complete(tmp_path: Path) -> None:
    """The second run starts writing while the first is held mid-study (trial ~300 of 716 waits at a
    gate), then the gate opens and both write; so the first cannot have finished before the second began."""
    space: dict[str, Any] = dict(bars=200_000, fast_high=40, slow_high=200, artifacts="top:5")
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    first, gate = gated_study(tmp_path / "first", name="first", **space)
    second, _open = gated_study(tmp_path / "second", name="second", opened=True, **space)
    db = tmp_path / "shared.db"
    link = tmp_path / "link.db"
    link.symlink_to(db)
    proc = start("run", first, "--db", db, "--headless")
    try:
        wait_for(lambda: gate.held() and committed(db) >= 1, proc)  # the first run has written, and waits
        other = start("run", second, "--db", link, "--headless")
        wait_for(lambda: len(stored_trials(db, "second")) >= 1, other)  # the second run is writing
        assert proc.poll() is None
    finally:
        gate.open()
    _out, err = proc.communicate(timeout=300)
    _other_out, other_err = other.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    assert other.returncode == 0, other_err[-2000:]
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    size = _grid_size(40, 200)
    a, b = stored_trials(db, "first"), stored_trials(db, "second")
    assert len(a) == len(b) == size
    # Same space and data under two names: every trial must agree, key for key.
    assert {k: v[2] for k, v in a.items()} == {k: v[2] for k, v in b.items()}


def test_a_foreign_sqlite_file_is_refused_untouched(tmp_path: Path) -> None:
    db = tmp_path / "theirs.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO customers VALUES (1, 'x')")
    conn.close()
    before = db.read_bytes()
    study = big_study(tmp_path, name="f", bars=5_000, fast_high=10, slow_high=40)
    result = genesis("run", study, "--db", db, "--headless")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"genesis: {db}: a SQLite database of another application (tables customers; no Genesis schema)"
    ]
    assert db.read_bytes() == before
    assert sorted(p.name for p in tmp_path.glob("theirs.db*") if not p.name.endswith(".lock")) == ["theirs.db"]


async def test_every_part_that_keeps_tables_refuses_a_foreign_file(tmp_path: Path) -> None:
    from engine.store.alerts import AlertStore
    from engine.store.run_history import RunHistory

    db = tmp_path / "theirs.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
    conn.close()
    before = db.read_bytes()
    with pytest.raises(StoreError, match="another application"):
        await SqliteStore.open(db)
    with pytest.raises(StoreError, match="another application"):
        await AlertStore(db).open()
    with pytest.raises(StoreError, match="another application"):
        RunHistory(db).begin("s", trials_before=0, max_runtime_s=None, pid=1)
    assert db.read_bytes() == before
