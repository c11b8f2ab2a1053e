"""SQLite specifics: batched transactions, the incremental reader under a live writer, bad files."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.errors import StoreError, StoreWriteError
from engine.store.records import StudyState
from engine.store.study_sqlite import SqliteStore
from tests.optimize.store_conformance import make_trial


def _committed(path: Path) -> int:
    """Rows visible to an independent connection (what a crash would keep)."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return db.execute("SELECT count(*) FROM trials").fetchone()[0]


async def _writer_woken(store: SqliteStore) -> None:
    """Wake the writer task as a new trial would, and return once it has looked at what is queued."""
    store._wake.set()
    for _ in range(1000):
        if not store._wake.is_set():
            return
        await asyncio.sleep(0)
    raise AssertionError("the writer task never woke up")


async def test_trials_are_written_in_batches_not_one_transaction_each(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = await SqliteStore.open(path, batch_size=100, batch_interval_s=60.0)
    study = await store.create_study("alpha", "x")
    commits_before = store.commits
    for i in range(99):
        await store.add_trial(study.id, make_trial(i))
    await _writer_woken(store)
    assert store.commits == commits_before and _committed(path) == 0  # below the batch size and the interval
    for i in range(99, 1000):
        await store.add_trial(study.id, make_trial(i))
        if i % 100 == 99:
            await asyncio.sleep(0)  # let the writer task take the full batch
    await store.flush()
    transactions = store.commits - commits_before
    assert _committed(path) == 1000
    assert 1 <= transactions <= 10 + 1  # 1,000 trials in batches of 100 (and at most one flush)
    assert store.trials_written == 1000
    await store.close()


async def test_the_interval_flushes_a_small_batch(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = await SqliteStore.open(path, batch_size=10_000, batch_interval_s=0.1)
    study = await store.create_study("alpha", "x")
    commits_before = store.commits
    await store.add_trials(study.id, [make_trial(i) for i in range(5)])
    await _writer_woken(store)
    deadline = asyncio.get_running_loop().time() + 60  # a safety limit: the interval is 0.1 s
    while store.commits == commits_before:
        assert asyncio.get_running_loop().time() < deadline, "the interval never flushed the batch"
        await asyncio.sleep(0.01)
    assert _committed(path) == 5 and store.commits == commits_before + 1
    await store.close()


async def test_total_changes_count_one_row_per_trial(tmp_path: Path) -> None:
    """The writer never rewrites rows: total_changes grows by one per trial (plus the checkpoint row)."""
    path = tmp_path / "s.db"
    store = await SqliteStore.open(path, batch_size=50, batch_interval_s=60.0)
    study = await store.create_study("alpha", "x")
    assert store._writer is not None
    before = store._writer.total_changes
    await store.add_trials(study.id, [make_trial(i) for i in range(300)])
    await store.checkpoint(study.id, {"cursor": 300}, 1, 300)
    assert store._writer.total_changes - before == 300 + 1
    await store.close()


READER = """
import asyncio, sys
from engine.store.study_sqlite import SqliteStore

async def main(path, expected):
    cursor, seen = 0, []
    for _ in range(4000):
        try:
            store = await SqliteStore.open(path, readonly=True)
        except Exception:
            await asyncio.sleep(0.01)
            continue
        break
    study = None
    while study is None:
        study = await store.get_study("alpha")
        await asyncio.sleep(0.005)
    while len(seen) < expected:
        page = await store.trials_after(study.id, cursor, limit=333)
        if page:
            cursor = page[-1].rowid
            seen.extend(t.number for t in page)
        else:
            await asyncio.sleep(0.005)
    await store.close()
    assert seen == sorted(set(seen)), "out of order or repeated"
    print(len(seen))

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


async def test_incremental_reader_in_another_process_while_a_writer_runs(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    n = 6000
    store = await SqliteStore.open(path, batch_size=200, batch_interval_s=0.02)
    study = await store.create_study("alpha", "x")
    reader = await asyncio.create_subprocess_exec(
        sys.executable, "-c", READER, str(path), str(n),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    for start in range(0, n, 150):
        await store.add_trials(study.id, [make_trial(i) for i in range(start, min(n, start + 150))])
        await asyncio.sleep(0.002)
    await store.flush()
    out, err = await asyncio.wait_for(reader.communicate(), 120)
    await store.close()
    assert reader.returncode == 0, err.decode()[-2000:]
    assert out.decode().strip() == str(n)


async def test_reading_needs_no_writer(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = await SqliteStore.open(path)
    study = await store.create_study("alpha", "x")
    await store.add_trials(study.id, [make_trial(i) for i in range(20)])
    await store.close()
    reader = await SqliteStore.open(path, readonly=True)
    assert len(await reader.trials(study.id)) == 20
    with pytest.raises(StoreError, match="read-only"):
        await reader.add_trial(study.id, make_trial(99))
    await reader.close()


def _foreign(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE trials (id INTEGER PRIMARY KEY, payload TEXT)")
        db.execute("INSERT INTO trials (payload) VALUES ('not ours')")


@pytest.mark.parametrize("readonly", [False, True])
async def test_foreign_sqlite_database_is_refused(tmp_path: Path, readonly: bool) -> None:
    path = tmp_path / "other.db"
    _foreign(path)
    with pytest.raises(StoreError, match="another application") as info:
        await SqliteStore.open(path, readonly=readonly)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize("readonly", [False, True])
async def test_a_file_that_is_not_sqlite_is_refused(tmp_path: Path, readonly: bool) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not a database\n" * 100)
    with pytest.raises(StoreError, match="not a SQLite database"):
        await SqliteStore.open(path, readonly=readonly)


async def test_a_corrupt_sqlite_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = await SqliteStore.open(path)
    study = await store.create_study("alpha", "x")
    await store.add_trials(study.id, [make_trial(i) for i in range(500)])
    await store.close()
    raw = bytearray(path.read_bytes())
    raw[100:4096] = b"\xff" * (4096 - 100)  # smash the schema page, keep the magic header
    path.write_bytes(bytes(raw))
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    with pytest.raises(StoreError, match="corrupt") as info:
        await SqliteStore.open(path)
    assert "\n" not in str(info.value)


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = await SqliteStore.open(path)
    await store.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE schema_versions SET version = 99 WHERE component = 'optimize'")
    with pytest.raises(StoreError, match="newer"):
        await SqliteStore.open(path)


@pytest.mark.parametrize("command", ["report", "trials"])
def test_cli_on_a_foreign_database_exits_2_with_one_line(tmp_path: Path, command: str) -> None:
    path = tmp_path / "other.db"
    _foreign(path)
    args = [sys.executable, "-m", "genesis_tui.cli", command, "alpha", "--db", str(path)]
    if command == "trials":
        args += ["--export", str(tmp_path / "out.csv")]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("genesis: ") and "another application" in lines[0]
    assert not (tmp_path / "out.csv").exists()


KILLED_WRITER = """
import asyncio, os, signal, sys
from engine.store.study_sqlite import SqliteStore
from tests.optimize.store_conformance import make_trial

async def main(path):
    store = await SqliteStore.open(path, batch_size=100, batch_interval_s=3600)
    study = await store.create_study("alpha", "x")
    for start in range(0, 300, 100):
        await store.add_trials(study.id, [make_trial(i) for i in range(start, start + 100)])
        await store.flush()
    await store.add_trials(study.id, [make_trial(i) for i in range(300, 350)])  # queued, never committed
    await store.checkpoint(study.id, {"cursor": 350}, 7, 350)
    await store.add_trials(study.id, [make_trial(i) for i in range(350, 399)])  # queued again
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main(sys.argv[1]))
"""


def test_sigkill_loses_only_the_unflushed_batch(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(path)], cwd=root, timeout=120, check=False)
    assert result.returncode == -9
    assert _committed(path) == 350  # three flushed batches and the checkpoint's; not the 49 after it
    with sqlite3.connect(path) as db:
        state, seq = db.execute("SELECT sampler_state, checkpoint_seq FROM studies").fetchone()
        numbers = [row[0] for row in db.execute("SELECT number FROM trials ORDER BY number")]
    assert (state, seq) == ('{"cursor":350}', 7)
    assert numbers == list(range(350))


async def test_a_store_made_before_block_figures_gains_their_table(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    async with await SqliteStore.open(path) as store:
        study = await store.create_study("alpha", "x")
        await store.add_trials(study.id, [make_trial(1)])
    with sqlite3.connect(path) as db:  # as an older Genesis left it: no blocks part
        db.execute("DROP TABLE trial_blocks")
        db.execute("DELETE FROM schema_versions WHERE component = 'blocks'")
    async with await SqliteStore.open(path, readonly=True) as store:
        numbers, figures = await store.trial_blocks(study.id)  # read-only: none, no error
        assert numbers.size == 0 and figures.size == 0
    async with await SqliteStore.open(path) as store:  # writable: the table is created, trials untouched
        assert len(await store.trials(study.id)) == 1
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version FROM schema_versions WHERE component = 'blocks'").fetchone() == (1,)
        assert db.execute("SELECT count(*) FROM trial_blocks").fetchone() == (0,)


def test_blocks_builder_sorts_by_number_keeps_the_common_length_across_chunks() -> None:
    from engine.store.study_sqlite import BlocksBuilder, blocks_matrix

    def row(number: int, *values: float) -> tuple[int, bytes]:
        return number, np.array(values, dtype="<f4").tobytes()

    rows = [row(5, 1.0, 2.0), row(2, 3.0, 4.0), row(9, 7.0), row(3, 5.0, 6.0)]  # 9: another block count
    builder = BlocksBuilder()
    builder.add(rows[:2])
    builder.add(rows[2:])  # chunk by chunk, as the reader fetches
    numbers, figures = builder.result()
    assert numbers.tolist() == [2, 3, 5]
    assert figures.dtype == np.float64 and figures.tolist() == [[3.0, 4.0], [5.0, 6.0], [1.0, 2.0]]
    same_numbers, same_figures = blocks_matrix(rows)
    assert same_numbers.tolist() == numbers.tolist() and same_figures.tolist() == figures.tolist()
    empty_numbers, empty_figures = BlocksBuilder().result()
    assert empty_numbers.shape == (0,) and empty_figures.shape == (0, 0)


async def test_after_a_failed_batch_no_other_is_tried_and_the_final_state_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk fails a batch while more is queued behind it (an unawaited checkpoint): the writer
    tries nothing more, so the study's final state, written after the failure on the same connection,
    is not interleaved with (and rolled back by) a batch (a full-disk run once ended 'running')."""
    path = tmp_path / "s.db"
    store = await SqliteStore.open(path, batch_size=10, batch_interval_s=60.0)
    study = await store.create_study("alpha", "x")
    real = store._transaction
    attempts: list[int] = []

    async def fails_first(pending: Any) -> None:
        attempts.append(len(pending.trials))
        if len(attempts) == 1:
            await store.add_trial(study.id, make_trial(99))
            await store.checkpoint(study.id, {"seed": 1}, 1, 100, wait=False)
            raise sqlite3.OperationalError("disk I/O error")
        await real(pending)

    monkeypatch.setattr(store, "_transaction", fails_first)
    try:
        for i in range(10):
            await store.add_trial(study.id, make_trial(i))
        with pytest.raises(StoreWriteError, match="disk I/O error"):
            await store.flush()
        await _writer_woken(store)
        assert attempts == [10]  # the batch queued during the failure was not tried
        await store.set_study_state(study.id, StudyState.STOPPED, "full", after_failure=True)
    finally:
        with contextlib.suppress(StoreWriteError):
            await store.close()  # (an open store's thread would keep the process alive)
    assert _committed(path) == 0
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        assert db.execute("SELECT state, checkpoint_seq FROM studies").fetchone() == ("stopped", 0)


#: The trials schema of version 1 (before 2026-12-04): first write wins through a unique index.
_V1_DDL = """
CREATE TABLE schema_versions (component TEXT PRIMARY KEY, version INTEGER NOT NULL);
CREATE TABLE studies (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, spec_toml TEXT NOT NULL, spec_hash TEXT NOT NULL,
    created REAL NOT NULL, updated REAL NOT NULL, state TEXT NOT NULL, sampler_state TEXT,
    checkpoint_seq INTEGER NOT NULL DEFAULT 0, next_number INTEGER NOT NULL DEFAULT 0, validation TEXT,
    summary TEXT, error TEXT
);
CREATE TABLE trials (
    id INTEGER PRIMARY KEY, study_id INTEGER NOT NULL REFERENCES studies(id), number INTEGER NOT NULL,
    key TEXT NOT NULL, params TEXT NOT NULL, state TEXT NOT NULL, metrics TEXT, objective REAL, started REAL,
    duration_s REAL, worker TEXT, error TEXT, step INTEGER, batch INTEGER NOT NULL DEFAULT 0,
    UNIQUE (study_id, key)
);
CREATE TABLE artifacts (
    study_id INTEGER NOT NULL REFERENCES studies(id), number INTEGER NOT NULL, name TEXT NOT NULL,
    dtype TEXT NOT NULL, shape TEXT NOT NULL, codec TEXT NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (study_id, number, name)
);
INSERT INTO schema_versions VALUES ('optimize', 1);
INSERT INTO studies (name, spec_toml, spec_hash, created, updated, state, sampler_state, checkpoint_seq, next_number)
    VALUES ('old', 'x', '7ed8ab7f3cd1f0a5', 1.0, 1.0, 'running', '{"cursor":2}', 1, 2);
INSERT INTO trials (study_id, number, key, params, state, metrics, objective, started, duration_s, worker, step, batch)
    VALUES (1, 0, '0000000000000000', '{"fast":2}', 'complete', '{"sharpe":1.5}', 1.5, 1.0, 0.1, 'w0', 0, 0),
           (1, 1, '0000000000000001', '{"fast":3}', 'complete', '{"sharpe":2.5}', 2.5, 1.0, 0.1, 'w1', 0, 0);
"""


async def test_a_store_written_by_schema_version_1_opens_resumes_and_keeps_its_index(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as db:
        db.executescript(_V1_DDL)
    async with await SqliteStore.open(path) as store:
        study = await store.require_study("old")
        assert study.sampler_state == {"cursor": 2} and study.next_number == 2
        outcomes = await store.trial_outcomes(study.id)
        assert {key: value[2] for key, value in outcomes.items()} == {"0000000000000000": 0, "0000000000000001": 1}
        # A resumed run writes a committed key again (first write wins) and a new one.
        await store.add_trials(study.id, [dataclasses.replace(make_trial(1, 9.0), number=7), make_trial(2)])
        await store.flush()
        trials = await store.trials(study.id, order="rowid")
    assert [(t.number, t.key, t.objective) for t in trials] == [
        (0, "0000000000000000", 1.5), (1, "0000000000000001", 2.5), (2, "0000000000000002", make_trial(2).objective),
    ]
    with sqlite3.connect(path) as db:  # still a version-1 store, which an older Genesis can open as before
        assert db.execute("SELECT version FROM schema_versions WHERE component = 'optimize'").fetchone() == (1,)
        assert db.execute("SELECT count(*) FROM sqlite_master WHERE name LIKE 'sqlite_autoindex_trials%'").fetchone()[0]


async def test_a_new_store_has_no_unique_key_index_but_an_append_only_study_index(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with await SqliteStore.open(path) as store:
        await store.create_study("alpha", "x")
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version FROM schema_versions WHERE component = 'optimize'").fetchone() == (2,)
        indexes = {row[1]: row[2] for row in db.execute("PRAGMA index_list(trials)")}
    assert indexes == {"trials_study": 0}


async def test_first_write_wins_against_another_connection_writing_the_same_study(tmp_path: Path) -> None:
    """The filter in memory learns what another connection (another process) committed in between."""
    path = tmp_path / "s.db"
    ours = await SqliteStore.open(path)
    study = await ours.create_study("alpha", "x")
    await ours.add_trials(study.id, [make_trial(0)])
    await ours.flush()  # ours now holds the study's keys in memory
    async with await SqliteStore.open(path) as theirs:
        await theirs.add_trials(study.id, [make_trial(1), make_trial(0, 99.0)])  # key 0: theirs is ignored
    await ours.add_trials(study.id, [make_trial(1, 42.0), make_trial(2)])  # key 1: theirs came first
    await ours.flush()
    trials = await ours.trials(study.id, order="rowid")
    await ours.close()
    assert [(t.number, t.objective) for t in trials] == [(0, make_trial(0).objective), (1, make_trial(1).objective),
                                                         (2, make_trial(2).objective)]


async def test_one_batch_of_several_studies_keeps_queue_order_and_first_writes(tmp_path: Path) -> None:
    async with await SqliteStore.open(tmp_path / "s.db", batch_size=1000) as store:
        a = await store.create_study("a", "x")
        b = await store.create_study("b", "y")
        await store.add_trials(a.id, [make_trial(1)])
        await store.add_trials(b.id, [make_trial(1, 5.0), make_trial(2)])
        await store.add_trials(a.id, [make_trial(1, 7.0), make_trial(3)])
        await store.add_trials(b.id, [make_trial(2, 8.0)])
        await store.flush()
        rows = [(t.rowid, t.number, t.objective) for s in (a, b) for t in await store.trials(s.id, order="rowid")]
    assert sorted(rows) == [(1, 1, make_trial(1).objective), (2, 1, 5.0), (3, 2, make_trial(2).objective),
                            (4, 3, make_trial(3).objective)]


async def test_artifacts_written_before_the_shuffle_codec_still_read_and_an_unknown_one_is_refused(
    tmp_path: Path,
) -> None:
    import zlib

    from engine.store.artifacts import CODEC

    path = tmp_path / "old.db"
    equity = np.cumsum(np.random.default_rng(4).normal(size=500)) + 1e4
    async with await SqliteStore.open(path) as store:
        study = await store.create_study("alpha", "x")
        store.put_artifacts(study.id, 1, {"equity": equity})
        await store.flush()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT codec FROM artifacts WHERE number = 1").fetchone() == (CODEC,)
        # As an older Genesis wrote them: zlib over the raw bytes.
        row = (study.id, 2, "equity", "<f8", "[500]", "zlib", zlib.compress(equity.tobytes(), 1))
        db.execute("INSERT INTO artifacts (study_id, number, name, dtype, shape, codec, data) VALUES (?,?,?,?,?,?,?)", row)
        db.execute("INSERT INTO artifacts (study_id, number, name, dtype, shape, codec, data) VALUES (?,?,?,?,?,?,?)",
                   (study.id, 3, "equity", "<f8", "[500]", "lz4", b"?"))
    async with await SqliteStore.open(path, readonly=True) as store:
        for number in (1, 2):
            assert (await store.artifacts(study.id, number))["equity"].tobytes() == equity.tobytes()
        with pytest.raises(StoreError, match="unknown codec 'lz4'"):
            await store.artifacts(study.id, 3)


FILLED_WAL = r"""
import asyncio, contextlib, os, resource, signal, sqlite3, sys, tempfile
from engine.errors import StoreWriteError
from engine.store.records import StudyState
from engine.store.study_sqlite import SqliteStore
from tests.optimize.store_conformance import make_trial

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead


async def one(path, limit):
    store = await SqliteStore.open(path, batch_size=7, batch_interval_s=60.0)
    study = await store.create_study("alpha", "x")
    await store.set_study_state(study.id, StudyState.RUNNING)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    try:
        number = 0
        with contextlib.suppress(StoreWriteError):
            while True:
                await store.add_trials(study.id, [make_trial(number + i) for i in range(7)])
                number += 7
                await store.flush()
        with contextlib.suppress(Exception):
            await store.set_study_state(study.id, StudyState.STOPPED, "full", after_failure=True)
        with contextlib.suppress(Exception):
            await store.close()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return db.execute("SELECT state FROM studies").fetchone()[0]


folder = tempfile.mkdtemp(dir=sys.argv[1])
states = [asyncio.run(one(os.path.join(folder, f"{limit}.db"), limit)) for limit in range(160_000, 184_000, 1024)]
print(" ".join(states))
"""


def test_a_write_limit_that_leaves_the_wal_no_room_for_the_state_still_ends_the_study_stopped(
    tmp_path: Path,
) -> None:
    """Under a file-size limit a failed batch can leave the WAL too close to the limit for even the
    study's final state (a full-disk run once ended 'running', about one in twelve): the state write
    folds the WAL into the database and tries again. The limits step through more than a batch's
    bytes one page at a time, so some leave the WAL with less than a page to spare."""
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", FILLED_WAL, str(tmp_path)], cwd=root, capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    states = result.stdout.split()
    assert len(states) == 24 and set(states) == {"stopped"}, states


async def test_a_large_batch_is_written_in_queue_order_many_rows_a_statement(tmp_path: Path) -> None:
    """Rows go in many to an INSERT: ids still follow the queue, and the first write of a key or block wins."""
    from engine.store.records import TrialResult, TrialTask

    numbers = [(n * 37) % 500 for n in range(500)]  # shuffled, not a multiple of a statement's rows
    numbers += numbers[:3]  # queued twice in one batch: the first write wins
    pairs = []
    for at, number in enumerate(numbers):
        trial = make_trial(number, objective=float(at))
        blocks = np.full(4, at, dtype="<f4").tobytes()
        result = TrialResult(number, trial.state, trial.metrics, trial.objective, trial.started, trial.duration_s,
                             trial.worker, blocks=blocks)
        pairs.append((result, TrialTask(number, trial.params, trial.key)))
    async with await SqliteStore.open(tmp_path / "s.db", batch_size=10_000) as store:
        study = await store.create_study("alpha", "x")
        await store.add_results(study.id, 1, pairs)
        await store.flush()
        trials = await store.trials(study.id, order="rowid")
        block_numbers, figures = await store.trial_blocks(study.id)
    assert [(t.rowid, t.number, t.objective) for t in trials] == [(i + 1, n, float(i)) for i, n in enumerate(numbers[:500])]
    assert block_numbers.tolist() == list(range(500))
    assert figures[:, 0].tolist() == [float(numbers.index(n)) for n in range(500)]
