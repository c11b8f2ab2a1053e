"""Topic names and wildcard patterns.

Topics are dotted lowercase names (``orders.filled``). In a pattern ``*``
matches exactly one segment and ``#`` matches zero or more segments, so
``orders.*`` matches ``orders.filled`` but not ``orders`` or
``orders.filled.partial``, and ``orders.#`` matches all three.
"""

from __future__ import annotations

from functools import lru_cache

ONE = "*"
MANY = "#"


def is_pattern(topic: str) -> bool:
    """Whether ``topic`` holds a wildcard segment."""
    return any(segment in (ONE, MANY) for segment in topic.split("."))


def validate_topic(topic: str, *, pattern: bool) -> str:
    """``topic`` if it is a valid topic (or pattern when ``pattern``), else ``ValueError``."""
    if not isinstance(topic, str) or not topic:
        raise ValueError(f"topic {topic!r}: expected a non-empty dotted name")
    for segment in topic.split("."):
        if not segment:
            raise ValueError(f"topic {topic!r}: empty segment")
        if segment in (ONE, MANY):
            if not pattern:
                raise ValueError(f"topic {topic!r}: wildcards are only allowed in subscriptions")
        elif ONE in segment or MANY in segment:
            raise ValueError(f"topic {topic!r}: a wildcard must be a whole segment")
    return topic


@lru_cache(maxsize=4096)
def _split(text: str) -> tuple[str, ...]:
    return tuple(text.split("."))


def matches(pattern: str, topic: str) -> bool:
    """Whether ``topic`` matches ``pattern`` (see the module docstring)."""
    if pattern == topic:
        return True
    return _match(_split(pattern), 0, _split(topic), 0)


def _match(pat: tuple[str, ...], i: int, top: tuple[str, ...], j: int) -> bool:
    while i < len(pat):
        segment = pat[i]
        if segment == MANY:
            if i == len(pat) - 1:
                return True
            return any(_match(pat, i + 1, top, k) for k in range(j, len(top) + 1))
        if j >= len(top) or (segment != ONE and segment != top[j]):
            return False
        i += 1
        j += 1
    return j == len(top)
