"""Topic validation and wildcard matching, against a regex reference."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.bus.topics import is_pattern, matches, validate_topic


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        ("orders.*", "orders.filled", True),
        ("orders.*", "orders", False),
        ("orders.*", "orders.filled.partial", False),
        ("orders.#", "orders", True),
        ("orders.#", "orders.filled.partial", True),
        ("*.filled", "orders.filled", True),
        ("*.filled", "fills.filled.x", False),
        ("#", "anything.at.all", True),
        ("a.#.z", "a.z", True),
        ("a.#.z", "a.b.c.z", True),
        ("a.#.z", "a.b.c", False),
        ("a.*.c", "a.b.c", True),
        ("bars", "bars", True),
        ("bars", "bars.btc", False),
    ],
)
def test_matches_table(pattern: str, topic: str, expected: bool) -> None:
    assert matches(pattern, topic) is expected


def _reference(pattern: str, topic: str) -> bool:
    """Regex reference over "." + topic: ``*`` is one ``.segment``, ``#`` any number."""
    pieces = {"*": r"\.[^.]+", "#": r"(?:\.[^.]+)*"}
    regex = "".join(pieces.get(part, r"\." + re.escape(part)) for part in pattern.split("."))
    return re.fullmatch(regex, "." + topic) is not None


segments = st.sampled_from(["a", "b", "c"])


@given(
    pattern=st.lists(st.sampled_from(["a", "b", "*", "#"]), min_size=1, max_size=4),
    topic=st.lists(segments, min_size=1, max_size=5),
)
def test_matches_agrees_with_regex_reference(pattern: list[str], topic: list[str]) -> None:
    p, t = ".".join(pattern), ".".join(topic)
    assert matches(p, t) == _reference(p, t), (p, t)


def test_validation() -> None:
    assert validate_topic("orders.*", pattern=True) == "orders.*"
    assert is_pattern("a.#") and not is_pattern("a.b")
    for bad in ["", "a..b", "a.b*", ".a"]:
        with pytest.raises(ValueError):
            validate_topic(bad, pattern=True)
    with pytest.raises(ValueError, match="only allowed in subscriptions"):
        validate_topic("orders.*", pattern=False)
