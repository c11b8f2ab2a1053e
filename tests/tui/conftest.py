"""Console test fixtures: colour on (the root conftest sets NO_COLOR), no remembered state."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _colour_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Snapshots are in colour: themes are part of what they check."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")
