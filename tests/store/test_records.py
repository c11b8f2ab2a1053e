"""Trial records across the worker pipe: a pickled result comes back equal, its state still the enum member."""

from __future__ import annotations

import pickle

import pytest

from engine.store.records import TrialResult, TrialState


@pytest.mark.parametrize("state", list(TrialState))
def test_a_result_survives_pickling(state: TrialState) -> None:
    result = TrialResult(7, state, {"sharpe": 1.25, "trades": 3}, 1.25, 1.7e9, 0.002, "w1", "boom", 2, b"\x00\x01")
    back = pickle.loads(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    assert back == result
    assert back.state is state  # the member itself: callers compare with `is`
