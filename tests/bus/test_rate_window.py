"""The sliding-window throughput counter against known sequences."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from engine.bus import RateWindow


def test_known_sequence() -> None:
    w = RateWindow(5)
    for sec, n in [(100, 10), (101, 20), (101, 5), (103, 40), (104, 1)]:
        w.add(sec, n)
    assert w.rate(105) == (10 + 25 + 40 + 1) / 5
    assert w.rate(106) == (25 + 40 + 1) / 5  # second 100 left the window
    assert w.rate(104) == (10 + 25 + 40) / 4  # counting began at 100
    assert w.rate(112) == 0.0
    assert w.rate(100) == 0.0  # no complete second yet


@given(
    window=st.integers(1, 8),
    adds=st.lists(st.tuples(st.integers(0, 30), st.integers(0, 50)), max_size=60),
    now=st.integers(0, 40),
)
def test_matches_brute_force(window: int, adds: list[tuple[int, int]], now: int) -> None:
    adds = sorted(adds)  # time moves forward
    w = RateWindow(window)
    for sec, n in adds:
        w.add(sec, n)
    if not adds or now < adds[-1][0]:
        return
    first = adds[0][0]
    begin = max(now - window, first)
    span = now - begin
    expected = sum(n for s, n in adds if begin <= s < now) / span if span > 0 else 0.0
    assert w.rate(now) == expected
