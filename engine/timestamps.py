"""Timestamps as text: the one ISO-8601 UTC form that reports, run records and lock files write."""

from __future__ import annotations

import datetime as dt
from typing import overload


@overload
def iso_utc(epoch: float) -> str: ...
@overload
def iso_utc(epoch: None) -> None: ...
def iso_utc(epoch: float | None) -> str | None:
    """``2026-11-22T03:51:09+00:00`` for seconds since the epoch (``None`` stays ``None``)."""
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC).isoformat(timespec="seconds")
