"""Shared fixtures: determinism and isolation for every test."""

from __future__ import annotations

import os
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
