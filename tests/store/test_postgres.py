"""PostgreSQL as the study store: URL forms, the schema registry, redaction, and a study run end to end."""

from __future__ import annotations

import asyncio
import json
import subprocess
import urllib.parse
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from engine.errors import StoreError
from engine.store.factory import open_study_store
from engine.store.postgres import PostgresStore
from engine.store.study_sqlite import SqliteStore
from engine.store.url import DatabaseUrl, is_database_url, redacted, scrub, store_location
from tests import pg_server
from tests.headless.conftest import genesis, stored_trials, write_study
from tests.optimize.store_conformance import make_trial

SECRET = pg_server.PASSWORD


def _with_password(url: str) -> str:
    """``url`` as the password role, with the password written in it."""
    parts = urllib.parse.urlsplit(url)
    host = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
    netloc = f"{pg_server.PASSWORD_ROLE}:{urllib.parse.quote(SECRET, safe='')}@{host}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


# -- URL forms and redaction (no server needed) ---------------------------------


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://alice:pa55@db.example:5432/genesis", "postgresql://alice:***@db.example:5432/genesis"),
    ("postgres://alice:p%40ss@db/genesis?sslmode=require", "postgres://alice:***@db/genesis?sslmode=require"),
    ("postgresql://db/genesis?user=alice&password=pa55", "postgresql://db/genesis?user=alice&password=***"),
    ("postgresql://alice@db/genesis", "postgresql://alice@db/genesis"),
    ("postgresql:///genesis", "postgresql:///genesis"),
])
def test_redacted_hides_every_password_form(url: str, shown: str) -> None:
    assert redacted(url) == shown
    location = store_location(url)
    assert isinstance(location, DatabaseUrl)
    assert str(location) == shown and shown in repr(location)
    assert location.dsn == url


def test_a_url_never_becomes_a_path_and_a_path_never_a_url(tmp_path: Path) -> None:
    assert isinstance(store_location("postgresql://u@h/db"), DatabaseUrl)
    assert isinstance(store_location("POSTGRES://u@h/db"), DatabaseUrl)
    assert store_location(str(tmp_path / "s.db")) == tmp_path / "s.db"
    assert store_location("postgresql.db") == Path("postgresql.db")  # a file named like the scheme
    assert not is_database_url(Path("postgresql://u@h/db"))


def test_scrub_removes_the_password_from_a_driver_message() -> None:
    url = "postgresql://alice:p%40ss@db/genesis"
    message = f"could not connect to {url}: password p@ss rejected (p%40ss)"
    cleaned = scrub(message, url)
    assert "p@ss" not in cleaned and "p%40ss" not in cleaned
    assert "postgresql://alice:***@db/genesis" in cleaned


# -- the store on a real server -------------------------------------------------


async def test_both_url_schemes_open_a_postgres_store_and_a_path_sqlite(postgres_url: str, tmp_path: Path) -> None:
    other = "postgres://" + postgres_url.split("://", 1)[1]
    for url in (postgres_url, other):
        store = await open_study_store(url, batch_size=10)
        try:
            assert isinstance(store, PostgresStore)
            await store.create_study("alpha", "x")
        finally:
            await store.close()
    sqlite = await open_study_store(tmp_path / "s.db")
    try:
        assert isinstance(sqlite, SqliteStore)
    finally:
        await sqlite.close()


async def test_a_newer_schema_is_refused_in_one_line(postgres_url: str) -> None:
    store = await PostgresStore.open(postgres_url)
    await store.close()
    connection = await asyncpg.connect(postgres_url)
    try:
        await connection.execute("UPDATE schema_versions SET version = 99 WHERE component = 'optimize'")
    finally:
        await connection.close()
    for readonly in (False, True):
        with pytest.raises(StoreError, match="version 99 is newer") as caught:
            await PostgresStore.open(postgres_url, readonly=readonly)
        assert "\n" not in str(caught.value)


async def test_another_applications_schema_is_refused_untouched(postgres_url: str) -> None:
    connection = await asyncpg.connect(postgres_url)
    try:
        await connection.execute("CREATE TABLE invoices (id int)")
        with pytest.raises(StoreError, match="another application's tables \\(invoices"):
            await PostgresStore.open(postgres_url)
        tables = {r[0] for r in await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}
    finally:
        await connection.close()
    assert tables == {"invoices"}


async def test_reading_an_empty_database_says_it_holds_no_studies(postgres_url: str) -> None:
    with pytest.raises(StoreError, match="holds no Genesis studies"):
        await PostgresStore.open(postgres_url, readonly=True)


async def test_a_batch_is_one_transaction_and_the_first_write_of_a_key_wins(postgres_url: str) -> None:
    async with await PostgresStore.open(postgres_url, batch_size=250, batch_interval_s=60) as store:
        study = await store.create_study("alpha", "x")
        commits = store.commits
        first = [make_trial(i) for i in range(1000)]
        await store.add_trials(study.id, first)
        await store.flush()
        assert store.commits - commits <= 5  # batches, not one transaction per trial
        changed = [make_trial(i, objective=-1.0) for i in range(10)]
        await store.add_trials(study.id, changed)
        await store.flush()
        stored = await store.trials(study.id)
        metric = await store.metric_values(study.id, "trades")
    assert len(stored) == 1000
    assert [t.objective for t in stored[:10]] == [t.objective for t in first[:10]]
    assert sorted(metric) == sorted(t.metrics["trades"] for t in first if t.metrics)


async def test_a_wrong_password_is_one_line_without_the_password(postgres_server: Any) -> None:
    url = _with_password(postgres_server.url()).replace(urllib.parse.quote(SECRET, safe=""), "not-" + SECRET)
    with pytest.raises(StoreError) as caught:
        await PostgresStore.open(url)
    message = str(caught.value)
    assert "password authentication failed" in message
    assert SECRET not in message and "not-" + SECRET not in message
    assert message.startswith(f"postgresql://{pg_server.PASSWORD_ROLE}:***@")


async def test_the_store_never_shows_its_password(postgres_server: Any, postgres_url: str) -> None:
    schema = urllib.parse.parse_qs(urllib.parse.urlsplit(postgres_url).query)["search_path"][0]
    url = pg_server.with_search_path(_with_password(postgres_server.url()), schema)
    async with await PostgresStore.open(url) as store:
        await store.create_study("alpha", "x")
        with pytest.raises(StoreError) as caught:
            await store.require_study("beta")
        shown = [repr(store), str(store.path), str(store.url), repr(store.url), str(caught.value)]
    assert all(SECRET not in text for text in shown), shown


# -- a study end to end ---------------------------------------------------------


def _pg_trials(url: str, study: str) -> dict[str, tuple[int, str, float | None]]:
    async def read() -> dict[str, tuple[int, str, float | None]]:
        store = await PostgresStore.open(url, readonly=True)
        try:
            record = await store.require_study(study)
            return {t.key: (t.number, t.state.value, t.objective) for t in await store.trials(record.id)}
        finally:
            await store.close()

    return asyncio.run(read())


def test_genesis_run_on_postgres_stores_the_trials_sqlite_stores_and_never_shows_the_password(
    postgres_server: Any, postgres_url: str, tmp_path: Path
) -> None:
    schema = urllib.parse.parse_qs(urllib.parse.urlsplit(postgres_url).query)["search_path"][0]
    url = pg_server.with_search_path(_with_password(postgres_server.url()), schema)
    study = write_study(tmp_path, name="pg-e2e", oos=0.25)
    reports = tmp_path / "reports"

    on_pg = genesis("run", study, "--db", url, "--report", reports, "--json", "--backend", "inline")
    assert on_pg.returncode == 0, on_pg.stderr[-2000:]
    summary = json.loads(on_pg.stdout)
    assert summary["state"] == "complete" and summary["db"] == redacted(url)
    assert "not supported on a PostgreSQL store yet" in on_pg.stderr  # one line says what is missing

    sqlite_db = tmp_path / "s.db"
    on_sqlite = genesis("run", study, "--db", sqlite_db, "--json", "--backend", "inline", "--no-record")
    assert on_sqlite.returncode == 0, on_sqlite.stderr[-2000:]
    assert _pg_trials(postgres_url, "pg-e2e") == stored_trials(sqlite_db, "pg-e2e")
    assert json.loads(on_sqlite.stdout)["best"] == summary["best"]

    again = genesis("report", "pg-e2e", "--db", url, "--format", "json")
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads(again.stdout)["study"] == "pg-e2e"
    export = tmp_path / "trials.csv"
    exported = genesis("trials", "pg-e2e", "--db", url, "--export", export)
    assert exported.returncode == 0, exported.stderr[-2000:]

    # Every output, log file and report: the password appears nowhere.
    outputs = [p.stdout + p.stderr for p in (on_pg, again, exported)]
    assert all(SECRET not in text for text in outputs)
    import os

    roots = [tmp_path, Path(os.environ["XDG_DATA_HOME"]), Path(os.environ["XDG_CACHE_HOME"])]
    written = [p for root in roots if root.exists() for p in root.rglob("*") if p.is_file()]
    assert any(p.suffix == ".log" for p in written) and any(p.suffix == ".md" for p in written)
    leaks = subprocess.run(["grep", "-rlF", SECRET, *map(str, (r for r in roots if r.exists()))],
                           capture_output=True, text=True, check=False).stdout.split()
    assert leaks == []


def _study_with_db(directory: Path, db: str) -> Path:
    path = write_study(directory, name="with-db")
    text = path.read_text().replace('artifacts = "top:3"\n', f'artifacts = "top:3"\ndb = "{db}"\n')
    path.write_text(text)
    return path


def test_execution_db_in_a_study_file_selects_the_store(tmp_path: Path) -> None:
    from engine.optimize.study import Study

    url = Study.from_file(_study_with_db(tmp_path, "postgresql://alice:pa55@db/genesis"), backend="inline").db
    assert isinstance(url, DatabaseUrl) and url.dsn == "postgresql://alice:pa55@db/genesis"
    relative = Study.from_file(_study_with_db(tmp_path, "stores/s.db"), backend="inline").db
    assert relative == tmp_path / "stores" / "s.db"  # relative to the study file, not the working directory
    flag = Study.from_file(_study_with_db(tmp_path, "postgresql://db/x"), db=str(tmp_path / "o.db"), backend="inline")
    assert flag.db == tmp_path / "o.db"  # --db wins


async def test_the_postgres_layout_keeps_its_own_version_and_unique_key(postgres_url: str) -> None:
    """SQLite's schema 2 (first write wins in the writer's memory) is not PostgreSQL's: several drivers
    write one study there, so the unique constraint stays and the registry keeps saying version 1."""
    store = await PostgresStore.open(postgres_url)
    await store.close()
    connection = await asyncpg.connect(postgres_url)
    try:
        version = await connection.fetchval("SELECT version FROM schema_versions WHERE component = 'optimize'")
        unique = await connection.fetchval(
            "SELECT count(*) FROM pg_indexes WHERE tablename = 'trials' AND indexdef LIKE '%UNIQUE%key%'"
        )
    finally:
        await connection.close()
    assert version == 1 and unique >= 1
