"""Shared fixtures: determinism and isolation for every test."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep tests away from the user's real data and config directories."""
    home = tmp_path_factory.mktemp("xdg")
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.delenv("GENESIS_DEBUG", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("GENESIS_WARM", "0")  # no background cache warming unless a test asks for it
    # The process-wide L1 market-data cache starts empty for every test: a series an earlier
    # test loaded must not answer a later test's load (its server, its progress, its faults).
    hyperliquid = sys.modules.get("engine.data.hyperliquid")
    if hyperliquid is not None:
        monkeypatch.setattr(hyperliquid, "_SHARED_MEMORY", None)


@pytest.fixture(scope="session", autouse=True)
def _no_shared_memory_left() -> Iterator[None]:
    """Fail the session when its tests leave ``genesis-*`` shared-memory blocks behind.

    Left: blocks of this process (a pool not closed) and blocks whose owner is
    gone that were not there when the session began. They are removed, and the
    test that leaks them must be fixed (each one held a copy of a study's data).
    """
    from engine.optimize.backends.shared_bars import PREFIX, SHM_DIR, orphans

    def blocks() -> set[str]:
        return {path.name for path in SHM_DIR.glob(f"{PREFIX}*")} if SHM_DIR.is_dir() else set()

    before = blocks()
    yield
    left = {path.name for path in orphans() if path.name not in before}
    left |= {name for name in blocks() if name.startswith(f"{PREFIX}{os.getpid()}-")}
    for name in left:
        with contextlib.suppress(OSError):
            (SHM_DIR / name).unlink()
    if left:
        pytest.fail(f"tests left shared-memory blocks in {SHM_DIR} (removed now): {', '.join(sorted(left))}")


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded random generator."""
    return np.random.default_rng(12345)


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("NUMBA_DISABLE_PERFORMANCE_WARNINGS", "1")


# -- PostgreSQL ---------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server() -> Any:
    """A PostgreSQL server's superuser URL: ``GENESIS_TEST_POSTGRES_URL``, else a throwaway local cluster.

    No server is a failure that says what is missing, never a silent skip.
    """
    from tests import pg_server

    given = os.environ.get("GENESIS_TEST_POSTGRES_URL")
    if given:
        yield pg_server.ExternalServer(given)
        return
    try:
        server = pg_server.start()
    except pg_server.ServerUnavailable as error:
        pytest.fail(f"PostgreSQL tests need a server: {error}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: Any) -> Any:
    """A URL whose ``search_path`` is a fresh schema of this test's own (dropped afterwards)."""
    from tests import pg_server

    schema = pg_server.new_schema(postgres_server.url())
    try:
        yield pg_server.with_search_path(postgres_server.url(), schema)
    finally:
        pg_server.drop_schema(postgres_server.url(), schema)
