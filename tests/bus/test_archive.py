"""The SQLite event archive: batched writes through aiosqlite, retention by delete or compression."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from engine.bus import EventBus, Lane
from engine.bus.archive import NS_PER_DAY, ArchiveConfig, EventArchive
from engine.errors import ConfigError, StoreError
from engine.store import bus_archive
from engine.store.study_sqlite import SCHEMA_VERSION, SqliteStore
from tests.waiting import until


async def test_chosen_topics_are_written_in_batches(tmp_path) -> None:
    db = tmp_path / "store.sqlite"
    bus = EventBus()
    archive = await EventArchive(
        db, ArchiveConfig(topics=["orders.*", "orders.#", "risk.#"], batch_size=100)
    ).open()
    archive.attach(bus)
    await bus.start()
    for i in range(1_000):
        bus.publish_nowait("orders.new", {"id": i, "px": np.float64(1.5), "tags": {"a"}}, Lane.HIGH)
        bus.publish_nowait("bars.btc", i, Lane.NORMAL)  # not archived
        if i % 10 == 0:
            bus.publish_nowait("risk.stop.hit", [i], Lane.CRITICAL)
    await bus.stop(drain=True)
    await archive.close()

    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        topics = dict(
            con.execute("SELECT topic, COUNT(*) FROM bus_events GROUP BY topic").fetchall()
        )
    assert topics == {
        "orders.new": 1_000,
        "risk.stop.hit": 100,
    }  # each event once, though two patterns match
    stats = archive.stats()
    assert stats.written == 1_100 and stats.dropped == 0 and stats.errors == 0
    assert 1 <= stats.batches <= 1_100 // 100 + 3  # one transaction per batch, not per event

    reader = await EventArchive(db).open()
    got = await reader.query("orders.*")
    assert [e.payload["id"] for e in got] == list(range(1_000))
    assert got[0].payload == {"id": 0, "px": 1.5, "tags": ["a"]} and got[0].lane is Lane.HIGH
    assert [e.seq for e in got] == sorted(e.seq for e in got)
    await reader.close()


@pytest.mark.parametrize("mode", ["delete", "compress"])
async def test_retention_moves_or_deletes_old_events(tmp_path, mode: str) -> None:
    cfg = ArchiveConfig(
        topics=["x.#"], retention_days=1.0, retention_mode=mode, retention_interval_s=3600
    )  # type: ignore[arg-type]
    archive = await EventArchive(tmp_path / "a.sqlite", cfg).open()
    bus = EventBus()
    events = [bus.publish_nowait("x.y", {"i": i}, Lane.LOW) for i in range(12_000)]
    old_offset = 10 * NS_PER_DAY
    now = events[-1].ts_ns + old_offset
    archive.add(events[:11_000], wall_offset_ns=old_offset - 3 * NS_PER_DAY)  # three days old
    archive.add(events[11_000:], wall_offset_ns=old_offset)  # fresh
    await archive.flush()
    deleted, moved = await archive.retain(now_ns=now)
    live, packed = await archive.counts()
    assert live == 1_000
    if mode == "delete":
        assert (deleted, moved, packed) == (11_000, 0, 0)
    else:
        assert (deleted, moved, packed) == (0, 11_000, 11_000)
        assert archive.stats().chunks == 3  # 5,000-row transactions
        restored = await archive.query_compressed("x.*")
        assert [e.payload["i"] for e in restored] == list(range(11_000))
        assert restored[5].seq == events[5].seq and restored[5].lane is Lane.LOW
    assert [e.payload["i"] for e in await archive.query()] == list(range(11_000, 12_000))
    assert await archive.retain(now_ns=now) == (0, 0)  # idempotent
    await archive.close()


async def test_retention_runs_in_the_background(tmp_path) -> None:
    cfg = ArchiveConfig(
        topics=["x"], retention_days=1e-9, retention_interval_s=0.01, retention_mode="delete"
    )
    archive = await EventArchive(tmp_path / "b.sqlite", cfg).open()
    bus = EventBus()
    archive.add([bus.publish_nowait("x", i, Lane.LOW) for i in range(50)], bus._wall_offset)
    await archive.flush()
    await until(lambda: archive.stats().deleted == 50)
    assert await archive.counts() == (0, 0)
    await archive.close()


async def test_archive_shares_a_file_with_the_study_store(tmp_path) -> None:
    db = tmp_path / "shared.sqlite"
    async with await SqliteStore.open(db) as store:
        await store.create_study("s", "spec")
    archive = await EventArchive(db, ArchiveConfig(topics=["a"])).open()
    bus = EventBus()
    archive.add([bus.publish_nowait("a", 1, Lane.LOW)])
    await archive.close()
    async with await SqliteStore.open(db, readonly=True) as store:
        assert [s.name for s in await store.studies()] == ["s"]
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT COUNT(*) FROM bus_events").fetchone()[0] == 1
        versions = dict(con.execute("SELECT component, version FROM schema_versions").fetchall())
    assert versions == {"optimize": SCHEMA_VERSION, "blocks": 1, "bus": 1}


async def test_an_archive_from_before_the_registry_is_adopted_with_its_rows(tmp_path) -> None:
    db = tmp_path / "old.sqlite"
    with sqlite3.connect(db) as con:
        con.executescript(bus_archive.SCHEMA)
        con.execute("INSERT INTO bus_events (ts_ns, seq, lane, topic, payload) VALUES (5, 1, 3, 'a', '7')")
    archive = await EventArchive(db, ArchiveConfig(topics=["a"])).open()
    rows = await archive.query("a")
    await archive.close()
    assert [(r.ts_ns, r.payload) for r in rows] == [(5, 7)]
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT version FROM schema_versions WHERE component = 'bus'").fetchone() == (1,)


async def test_another_applications_database_is_refused_untouched(tmp_path) -> None:
    db = tmp_path / "other.sqlite"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE trials (id INTEGER PRIMARY KEY, value REAL)")
    before = db.read_bytes()
    with pytest.raises(StoreError, match=r"another application"):
        await EventArchive(db, ArchiveConfig(topics=["a"])).open()
    assert db.read_bytes() == before


def test_bad_config_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"bus\.archive\.topics"):
        ArchiveConfig(topics=["a..b"]).validate()
    with pytest.raises(ConfigError, match=r"bus\.archive\.batch_size"):
        ArchiveConfig(batch_size=0).validate()


async def test_big_ints_survive_and_cycles_are_stored_as_text(tmp_path) -> None:
    archive = await EventArchive(tmp_path / "c.sqlite", ArchiveConfig(topics=["a"])).open()
    bus = EventBus()
    cyclic: list[object] = []
    cyclic.append(cyclic)
    archive.add([bus.publish_nowait("a", p, Lane.LOW) for p in (10**100, cyclic, {"ok": 1})])
    await archive.flush()
    rows = await archive.query("a")
    await archive.close()
    assert [r.payload for r in rows] == [10**100, "[[...]]", {"ok": 1}]
    assert archive.stats().errors == 0
