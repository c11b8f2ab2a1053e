"""Timeframe strings (``1m``, ``4h``, ``1d``, ``1M``) and their lengths.

Minutes are ``m`` and months are ``M``, as on exchanges.
"""

from __future__ import annotations

import re

from engine.errors import DataError

_UNIT_SECONDS = {
    "s": 1,
    "m": 60,
    "h": 3_600,
    "d": 86_400,
    "w": 7 * 86_400,
    "M": 30 * 86_400,  # a nominal month, for annualisation and paging only
}
_PATTERN = re.compile(r"^(\d+)([smhdwM])$")
SECONDS_PER_YEAR = 365 * 86_400


def timeframe_seconds(timeframe: str) -> int:
    """Length of one bar of ``timeframe`` in seconds (``"1h"`` -> 3600)."""
    match = _PATTERN.match(timeframe.strip())
    if match is None or int(match.group(1)) == 0:
        raise DataError(
            f"timeframe {timeframe!r}: expected a count and a unit such as 1m, 15m, 1h, 4h, 1d, 1w, 1M"
        )
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def timeframe_ns(timeframe: str) -> int:
    """Length of one bar of ``timeframe`` in nanoseconds."""
    return timeframe_seconds(timeframe) * 1_000_000_000


def periods_per_year(timeframe: str) -> float:
    """Bars per year for ``timeframe``: the annualisation factor of the metrics.

    Markets that trade around the clock are assumed (crypto); a daily timeframe
    therefore annualises with 365 bars, not 252.
    """
    return SECONDS_PER_YEAR / timeframe_seconds(timeframe)
