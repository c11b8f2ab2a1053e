"""Result batches: columns that keep every trial's figures with its number, from the worker into the store."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import msgspec
import numpy as np
import pytest

from engine.optimize import Study
from engine.optimize.space import parse_space
from engine.store.batching import metrics_texts
from engine.store.records import TrialResult, TrialState
from engine.store.result_batch import ResultBatch
from engine.store.study_sqlite import SqliteStore


def _mixed() -> list[TrialResult]:
    blocks = np.arange(8, dtype="<f4").reshape(2, 4)
    return [
        TrialResult(7, TrialState.COMPLETE, {"sharpe": 1.5, "trades": 3}, 1.5, 100.0, 0.25, "w0", None, 0,
                    blocks[0].tobytes()),
        TrialResult(2, TrialState.FAILED, None, None, 101.0, 0.5, "w0", "RuntimeError: boom", 0),
        TrialResult(9, TrialState.PRUNED, {"sharpe": math.nan, "trades": 0}, None, 102.0, 0.125, "w0", None, 1),
        TrialResult(4, TrialState.COMPLETE, {"sharpe": -2.0, "trades": 11}, -2.0, 103.0, 0.0625, "w0", None, 0,
                    blocks[1].tobytes()),
        TrialResult(5, TrialState.FAILED, {"sharpe": 0.5}, None, 104.0, 0.0, "w0", "objective 'x' is not a metric", 0),
    ]


def _same(a: TrialResult, b: TrialResult) -> bool:
    """Equal, NaN metrics included, and integer counts still integers."""
    if a.metrics is not None and b.metrics is not None:
        if list(a.metrics) != list(b.metrics):
            return False
        for name, value in a.metrics.items():
            other = b.metrics[name]
            if type(value) is not type(other) or not (value == other or (value != value and other != other)):
                return False
        a = TrialResult(a.number, a.state, None, a.objective, a.started, a.duration_s, a.worker, a.error, a.step, a.blocks)
        b = TrialResult(b.number, b.state, None, b.objective, b.started, b.duration_s, b.worker, b.error, b.step, b.blocks)
    return a == b


def test_results_round_trip_through_columns() -> None:
    results = _mixed()
    batch = ResultBatch.from_results(results)
    assert batch.numbers.tolist() == [7, 2, 9, 4, 5]
    assert batch.count(TrialState.COMPLETE) == 2 and batch.count(TrialState.FAILED) == 2
    back = batch.to_results()
    assert all(_same(a, b) for a, b in zip(results, back, strict=True)), (results, back)
    assert back[1].blocks is None and back[4].metrics == {"sharpe": 0.5}  # only the names it had


def test_concatenated_batches_keep_each_row_whole() -> None:
    table = np.arange(12, dtype=np.float64).reshape(4, 3)
    names = ("sharpe", "trades", "total_return")
    first = ResultBatch.from_columns([3, 1], [0, 0], names, table[:2], "sharpe", started=1.0, duration_s=0.5,
                                     worker="w", int_metrics=frozenset({"trades"}))
    second = ResultBatch.from_columns([0, 2], [0, 0], names, table[2:], "sharpe", started=2.0, duration_s=0.25,
                                      worker="w", int_metrics=frozenset({"trades"}))
    failed = ResultBatch.from_results([TrialResult(8, TrialState.FAILED, None, None, 3.0, 0.0, "w", "boom")], "w")
    joined = ResultBatch.concat([first, second, failed])
    rows = joined.to_results()
    assert [r.number for r in rows] == [3, 1, 0, 2, 8]
    assert [r.metrics for r in rows[:4]] == [
        {"sharpe": 0.0, "trades": 1, "total_return": 2.0},
        {"sharpe": 3.0, "trades": 4, "total_return": 5.0},
        {"sharpe": 6.0, "trades": 7, "total_return": 8.0},
        {"sharpe": 9.0, "trades": 10, "total_return": 11.0},
    ]
    assert [r.objective for r in rows[:4]] == [0.0, 3.0, 6.0, 9.0]
    assert [r.started for r in rows] == [1.0, 1.0, 2.0, 2.0, 3.0]
    assert rows[4].state is TrialState.FAILED and rows[4].error == "boom" and rows[4].metrics is None
    fast = ResultBatch.concat([first, second])  # same layout: plain array joins, errors re-based
    assert [r.metrics for r in fast.to_results()] == [r.metrics for r in rows[:4]]


def test_an_objective_that_is_no_metric_fails_every_row() -> None:
    batch = ResultBatch.from_columns([0, 1], [0, 0], ("sharpe",), np.ones((2, 1)), "calmar", started=0.0,
                                     duration_s=0.1, worker="w")
    rows = batch.to_results()
    assert all(r.state is TrialState.FAILED and r.objective is None and "calmar" in (r.error or "") for r in rows)


def test_metrics_text_is_what_the_dict_encodes_to() -> None:
    encode = msgspec.json.encode
    results = _mixed()
    texts = metrics_texts(ResultBatch.from_results(results))
    assert texts == [None if r.metrics is None else encode(r.metrics).decode() for r in results]
    names = ("final_value", "sharpe", "trades")
    table = np.array([[1e4, 0.1, 3.0], [9999.5, math.inf, 0.0], [1.0, math.nan, 7.0]])
    batch = ResultBatch.from_columns([0, 1, 2], [0, 0, 0], names, table, "sharpe", started=0.0, duration_s=0.0,
                                     worker="w", int_metrics=frozenset({"trades"}))
    assert metrics_texts(batch) == [
        encode({"final_value": v[0], "sharpe": v[1], "trades": int(v[2])}).decode() for v in table.tolist()
    ]


def test_grid_points_are_the_grid_point_of_each_index() -> None:
    space = parse_space(
        {"fast": {"int": [2, 40], "step": 3}, "k": {"float": [0.5, 2.0], "step": 0.25}, "m": ["a", 2, 0.5]},
        "s",
        fixed={"z": 1},
    )
    indices = np.random.default_rng(0).integers(0, space.grid_size, size=200)
    points = space.grid_points(indices)
    expected = [space.grid_point(int(i)) for i in indices]
    assert points == expected
    assert [[type(v) for v in p.values()] for p in points] == [[type(v) for v in p.values()] for p in expected]
    with pytest.raises(IndexError):
        space.grid_points(np.array([space.grid_size]))


@pytest.mark.parametrize("backend", ["inline", "process"])
async def test_every_stored_trial_is_the_backtest_of_its_params(
    study_file: Callable[..., Path], tmp_path: Path, backend: str
) -> None:
    # Random points in chunks of many trials: a batch that shuffled numbers, params or metrics
    # against each other stores figures that are not the backtest of the stored params.
    from engine import backtest
    from engine.backtest.enums import METRIC_NAMES
    from engine.data import load

    db = tmp_path / "s.db"
    path = study_file(sampler="random", trials=60, backend=backend, batch_size=40, fast_high=40, fast_step=1)
    await Study.from_file(path, db=db).run()
    store = await SqliteStore.open(db, readonly=True)
    try:
        trials = await store.trials((await store.require_study("t")).id)
    finally:
        await store.close()
    assert len(trials) == 60 and len({t.key for t in trials}) == 60
    bars = load("synthetic:bars=3000,seed=11,timeframe=1m")
    for trial in trials:
        assert trial.state is TrialState.COMPLETE and trial.metrics is not None
        direct = backtest.run(bars, "sma_cross", dict(trial.params), fee=0.001).metrics.as_dict()
        assert set(trial.metrics) == set(METRIC_NAMES)
        for name, value in direct.items():
            stored = trial.metrics[name]
            if value is None or (isinstance(value, float) and not np.isfinite(value)):
                assert stored is None or not np.isfinite(stored), (trial.number, name)
                continue
            assert stored == pytest.approx(value, rel=1e-12, abs=1e-12), (trial.number, name)
        assert type(trial.metrics["trades"]) is int
        assert trial.objective == pytest.approx(direct["sharpe"], rel=1e-12, abs=1e-12)


def test_batch_trial_keys_are_the_single_keys() -> None:
    from engine.optimize.space import trial_key, trial_keys

    points = [
        {"fast": 5, "slow": 20.0, "fee": 0.001},
        {"slow": 20, "fee": 0.001, "fast": 5.0},  # another key order, integral floats: the same key
        {"fast": True, "slow": 1},  # a bool is not the int it equals
        {"fast": 1, "slow": True},
        {"x": 1.5, "y": -0.0, "z": 1e300, "w": "a\"b"},
        {"k": [1, 2.0, {"b": 1, "a": 2}]},  # unhashable: not memoised, same text
    ]
    keys = trial_keys(points * 2)
    assert keys == [trial_key(p) for p in points * 2]
    assert keys[0] == keys[1] and keys[2] != keys[3]
