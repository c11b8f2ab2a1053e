"""Alerts as rows of the SQLite store (real aiosqlite)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from engine.errors import StoreError
from engine.monitor.alert_spec import AlertsSpec
from engine.monitor.alerts import Alert, AlertRules
from engine.store.alerts import AlertStore


def some_alerts() -> list[Alert]:
    clock = iter(float(t) for t in range(10))
    rules = AlertRules(AlertsSpec(min_duration_s=0.0), clock=lambda: next(clock), wall_clock=lambda: 1234.5)
    return rules.evaluate({"memory_mb": 3000.0, "error_rate": 0.02}) + rules.evaluate({"memory_mb": 10.0})


async def test_round_trip_per_study(tmp_path: Path) -> None:
    path = tmp_path / "store" / "genesis.db"
    alerts = some_alerts()
    assert [(a.rule, a.level, a.state) for a in alerts] == [
        ("memory_mb", "warning", "raised"),
        ("memory_mb", "critical", "raised"),
        ("error_rate", "warning", "raised"),
        ("memory_mb", "warning", "cleared"),
        ("memory_mb", "critical", "cleared"),
    ]
    async with AlertStore(path, study="nightly") as store:
        assert await store.write(alerts) == 5
        assert await store.write([]) == 0
    async with AlertStore(path, study="other") as other:
        await other(alerts[:1])  # the persistence-hook form
        assert await other.recent() == alerts[:1]
        back = await other.recent(study="nightly")
        assert back == alerts
        assert len(await other.recent(all_studies=True)) == 6
        assert await other.recent(2, study="nightly") == alerts[-2:]
    with sqlite3.connect(path) as db:  # another reader sees committed rows
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT count(*) FROM alerts WHERE level = 'critical'").fetchone()[0] == 2


async def test_errors_are_store_errors(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "x.db")
    with pytest.raises(StoreError, match="not open"):
        await store.write(some_alerts())
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError, match="cannot open"):
        await AlertStore(blocker / "sub" / "x.db").open()


async def test_shares_a_store_file_with_the_study_store(tmp_path: Path) -> None:
    """Alerts first, studies second (and the other way round): both schemas coexist."""
    from engine.store.study_sqlite import SqliteStore

    first = tmp_path / "alerts-first.db"
    async with AlertStore(first, study="s") as store:
        await store.write(some_alerts()[:1])
    studies = await SqliteStore.open(first)
    await studies.close()
    async with AlertStore(first, study="s") as store:
        assert len(await store.recent()) == 1

    second = tmp_path / "studies-first.db"
    studies = await SqliteStore.open(second)
    await studies.close()
    async with AlertStore(second) as store:
        assert await store.write(some_alerts()) == 5
    with sqlite3.connect(second) as db:
        components = dict(db.execute("SELECT component, version FROM schema_versions"))
    assert components["alerts"] == 1 and set(components) == {"alerts", "optimize", "blocks"}


async def test_refuses_a_foreign_alerts_table(tmp_path: Path) -> None:
    path = tmp_path / "foreign.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE alerts (x TEXT)")
    with pytest.raises(StoreError, match=r"another application \(tables alerts"):
        await AlertStore(path).open()
    path.write_text("not sqlite at all, just text that is long enough to be a header")
    with pytest.raises(StoreError, match=str(path.name)):
        await AlertStore(path).open()
