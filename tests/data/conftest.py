"""Fixtures of the data tests: small reference bars and a file writer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from engine.data import Bars, load


@pytest.fixture
def hourly() -> Bars:
    """40 hourly synthetic bars: the reference the file round trips compare with."""
    return load("synthetic:bars=40,seed=3,timeframe=1h")


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write ``text`` to ``tmp_path/name`` and return the path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return _write
