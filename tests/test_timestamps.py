"""The one ISO-8601 UTC formatter: UTC whatever the local zone, whole seconds, None kept."""

from __future__ import annotations

import time

import pytest

from engine.timestamps import iso_utc


def test_iso_utc_is_utc_to_the_second_and_keeps_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/New_York")  # a local-time formatter would say 17:13:20-05:00
    time.tzset()
    try:
        assert iso_utc(1_700_000_000.9) == "2023-11-14T22:13:20+00:00"
        assert iso_utc(None) is None
    finally:
        monkeypatch.undo()
        time.tzset()
