"""The in-memory first-write-wins filter of the SQLite store: canonical keys as integers, others as text."""

from __future__ import annotations

import numpy as np

from engine.optimize.space import trial_key
from engine.store.known_keys import KnownKeys, key_ints


def test_canonical_keys_become_their_64_bit_value_and_others_do_not() -> None:
    key = trial_key({"fast": 5, "slow": 20})
    ints = key_ints([key, "ffffffffffffffff"])
    assert ints is not None and ints.dtype == np.int64
    assert int(ints[0]) & (2**64 - 1) == int(key, 16) and int(ints[1]) == -1
    # Upper case, short, long or non-hex keys are other texts: "ABCD..." must not collide with "abcd...".
    for other in ("ABCDEF0123456789", "abc", "0123456789abcdef0", "k0", "0123456789abcdeg"):
        assert key_ints([key, other]) is None


def test_the_first_occurrence_wins_in_a_batch_and_across_batches() -> None:
    known = KnownKeys()
    keys = [f"{n:016x}" for n in (3, 1, 3, 2, 1)]
    keep = known.fresh(keys)
    assert keep == [True, True, False, True, False]
    known.add([k for k, fresh in zip(keys, keep, strict=True) if fresh])
    assert known.fresh([f"{n:016x}" for n in (2, 4, 4, 1)]) == [False, True, False, False]


def test_other_texts_and_canonical_keys_mix() -> None:
    known = KnownKeys()
    known.add(["k0", "0000000000000001", "ABCDEF0123456789"])
    assert known.fresh(["k0", "k1", "0000000000000001", "abcdef0123456789", "ABCDEF0123456789", "k1"]) == [
        False, True, False, True, False, False,
    ]
    assert known.count == 3


def test_keys_stay_known_after_many_runs_are_merged() -> None:
    rng = np.random.default_rng(7)
    values = rng.integers(0, 2**63, size=5_000, dtype=np.int64)
    keys = [f"{int(v):016x}" for v in values]
    known = KnownKeys()
    for start in range(0, len(keys), 250):  # 20 commits: more runs than are kept apart
        known.add(keys[start : start + 250])
    assert all(not fresh for fresh in known.fresh(keys))
    others = [f"{int(v):016x}" for v in rng.integers(0, 2**63, size=500, dtype=np.int64)]
    assert known.fresh(others) == [key not in set(keys) for key in others]
