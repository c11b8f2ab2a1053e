"""The conformance suite every study-store backend must pass.

A backend's test module imports :func:`conformance_tests` and binds it to a
``store_factory`` fixture: an async context manager factory ``factory(path)``
yielding an open store. See ``test_store_conformance.py`` for SQLite.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from typing import Any

import numpy as np
import pytest

from engine.errors import StoreError
from engine.store.records import (
    CompleteTrials,
    StudyState,
    TrialRecord,
    TrialResult,
    TrialState,
    TrialTask,
)
from engine.store.result_batch import ResultBatch


def make_trial(number: int, objective: float | None = None, *, state: TrialState = TrialState.COMPLETE,
               batch: int = 1) -> TrialRecord:
    """A trial with deterministic params/metrics derived from ``number``."""
    value = float(number % 97) / 7.0 if objective is None and state is TrialState.COMPLETE else objective
    return TrialRecord(
        number=number,
        key=f"{number:016x}",
        params={"fast": number % 50 + 2, "slow": number % 300 + 60, "kind": "sma", "frac": number / 3},
        state=state,
        metrics=None if state is TrialState.FAILED else {"sharpe": value, "trades": number % 11, "total_return": 0.25},
        objective=value,
        started=1_700_000_000.0 + number,
        duration_s=0.001 * (number % 5 + 1),
        worker=f"w{number % 2}",
        error="RuntimeError: boom" if state is TrialState.FAILED else None,
        step=1 if state is TrialState.PRUNED else 0,
        batch=batch,
    )


def _same(stored: TrialRecord, original: TrialRecord) -> bool:
    fields = ("number", "key", "params", "state", "metrics", "objective", "started", "duration_s", "worker",
              "error", "step", "batch")
    return all(getattr(stored, f) == getattr(original, f) for f in fields)


class StoreConformance:
    """Subclass in a test module and provide the ``store_factory`` fixture."""

    async def test_create_study_is_idempotent_for_the_same_spec(self, store_factory: Any, tmp_path: Any) -> None:
        async with store_factory(tmp_path / "s.db") as store:
            first = await store.create_study("alpha", "name = 'alpha'\n")
            again = await store.create_study("alpha", "name = 'alpha'\n")
            assert first.id == again.id
            assert first.state is StudyState.CREATED
            assert first.sampler_state is None and first.checkpoint_seq == 0

    async def test_same_name_with_another_spec_is_refused(self, store_factory: Any, tmp_path: Any) -> None:
        async with store_factory(tmp_path / "s.db") as store:
            await store.create_study("alpha", "a = 1\n")
            with pytest.raises(StoreError, match="different spec"):
                await store.create_study("alpha", "a = 2\n")

    async def test_trials_round_trip_exactly(self, store_factory: Any, tmp_path: Any) -> None:
        originals = [make_trial(i) for i in range(40)]
        originals += [make_trial(40, state=TrialState.FAILED), make_trial(41, 0.5, state=TrialState.PRUNED)]
        async with store_factory(tmp_path / "s.db") as store:
            study = await store.create_study("alpha", "x")
            await store.add_trials(study.id, originals)
            await store.flush()
            stored = await store.trials(study.id)
        assert len(stored) == len(originals)
        for got, want in zip(stored, originals, strict=True):
            assert _same(got, want), (got, want)

    async def test_a_key_is_stored_once(self, store_factory: Any, tmp_path: Any) -> None:
        async with store_factory(tmp_path / "s.db") as store:
            study = await store.create_study("alpha", "x")
            await store.add_trials(study.id, [make_trial(1), make_trial(1)])
            await store.flush()
            await store.add_trial(study.id, make_trial(1))
            await store.flush()
            assert [t.number for t in await store.trials(study.id)] == [1]

    async def test_the_first_write_of_a_key_wins(self, store_factory: Any, tmp_path: Any) -> None:
        """A key written again with another outcome (a trial retried after a resume) keeps the first
        record, and its place in write order: a reader paging by rowid has already seen it."""
        first = make_trial(1)
        other = dataclasses.replace(make_trial(2, 42.0), key=first.key)  # another number, params, objective
        async with store_factory(tmp_path / "s.db") as store:
            study = await store.create_study("alpha", "x")
            await store.add_trials(study.id, [first, make_trial(3)])
            await store.flush()
            before = await store.trials(study.id, order="rowid")
            await store.add_trials(study.id, [other, dataclasses.replace(first, state=TrialState.FAILED, metrics=None)])
            await store.flush()
            after = await store.trials(study.id, order="rowid")
        assert [t.number for t in after] == [1, 3]
        assert _same(after[0], first), after[0]
        assert [t.rowid for t in after] == [t.rowid for t in before]

    async def test_studies_are_separate(self, store_factory: Any, tmp_path: Any) -> None:
        async with store_factory(tmp_path / "s.db") as store:
            a = await store.create_study("a", "x")
            b = await store.create_study("b", "y")
            await store.add_trials(a.id, [make_trial(i) for i in range(5)])
            await store.add_trials(b.id, [make_trial(i) for i in range(3)])  # same keys, other study
            await store.flush()
            assert len(await store.trials(a.id)) == 5
            assert len(await store.trials(b.id)) == 3
            assert [s.name for s in await store.studies()] == ["a", "b"]

    async def test_trials_after_pages_through_everything_in_write_order(self, store_factory: Any, tmp_path: Any) -> None:
        async with store_factory(tmp_path / "s.db") as store:
            study = await store.create_study("alpha", "x")
            numbers = list(range(250))[::-1]  # written in descending number order
            await store.add_trials(study.id, [make_trial(i) for i in numbers])
            await store.flush()
            seen: list[int] = []
            cursor = 0
            while page := await store.trials_after(study.id, cursor, limit=37):
                assert all(a.rowid < b.rowid for a, b in itertools.pairwise(page))
                assert page[0].rowid > cursor
                cursor = page[-1].rowid
                seen += [t.number for t in page]
        assert seen == numbers

    async def test_points_after_pages_the_complete_trials_as_trials_after_reads_them(
        self, store_factory: Any, tmp_path: Any
    ) -> None:
        async with store_factory(tmp_path / "s.db") as store:
            study = await store.create_study("alpha", "x")
            states = [TrialState.COMPLETE, TrialState.FAILED, TrialState.PRUNED]
            await store.add_trials(study.id, [make_trial(i, state=states[i % 5 % 3]) for i in range(120)])
            await store.flush()
            records = await store.trials_after(study.id, 0, limit=1000)
            cursor, params, objectives = 0, [], []
            while (page := await store.points_after(study.id, cursor, limit=37)).read:
                assert page.rowid > cursor and len(page.params) == len(page.objectives) <= page.read
                cursor = page.rowid
                params += page.params
                objectives += page.objectives
            assert page.rowid == cursor == records[-1].rowid  # an empty page keeps the cursor
        complete = [t for t in records if t.state is TrialState.COMPLETE]
        assert 0 < len(complete) < len(records)
        assert params == [t.params for t in complete]  # failed and pruned rows are passed over, in write order
        assert objectives == [t.objective for t in complete]

    async def test_complete_trials_are_the_complete_records_as_columns_in_write_order(
        self, store_factory: Any, tmp_path: Any
    ) -> None:
        async with store_factory(tmp_path / "s.db") as store:
            study = await store.create_study("alpha", "x")
            other = await store.create_study("beta", "y")
            assert len(await store.complete_trials(study.id)) == 0
            states = [TrialState.COMPLETE, TrialState.FAILED, TrialState.PRUNED]
            numbers = [(i * 37) % 90 for i in range(90)]  # written out of number order
            await store.add_trials(study.id, [make_trial(n, state=states[n % 5 % 3]) for n in numbers])
            await store.add_trials(other.id, [make_trial(n) for n in range(5)])
            await store.flush()
            written = await store.trials(study.id, order="rowid")
            by_number = await store.trials(study.id, states=[TrialState.COMPLETE])
            columns = await store.complete_trials(study.id)
        complete = [t for t in written if t.state is TrialState.COMPLETE]
        assert 0 < len(complete) < len(written) and columns.numbers != sorted(columns.numbers)
        assert columns == CompleteTrials.of(complete)  # failed and pruned rows and other studies left out
        assert columns.by_number() == CompleteTrials.of(by_number)
        assert columns.durations == [t.duration_s for t in complete] and len(set(columns.durations)) > 1

    async def test_metric_values_come_by_trial_number_whatever_the_write_order(
        self, store_factory: Any, tmp_path: Any
    ) -> None:
        """The validation's Sharpe variance sums them: two runs whose workers finished in another order
        must store the same figure to the bit."""
        numbers = [(i * 37) % 90 for i in range(90)]  # written out of number order
        async with store_factory(tmp_path / "s.db") as store:
            study = await store.create_study("alpha", "x")
            await store.add_trials(study.id, [make_trial(n, state=TrialState.FAILED if n % 7 == 0 else TrialState.COMPLETE)
                                              for n in numbers])
            await store.flush()
            values = await store.metric_values(study.id, "sharpe")
        assert values == [float(n % 97) / 7.0 for n in sorted(numbers) if n % 7 != 0]

    async def test_an_unwaited_checkpoint_is_committed_with_the_trials_before_it(
        self, store_factory: Any, tmp_path: Any
    ) -> None:
        async with store_factory(tmp_path / "s.db") as store:
            study = await store.create_study("alpha", "x")
            await store.add_trials(study.id, [make_trial(i) for i in range(5)])
            await store.checkpoint(study.id, {"cursor": 5}, 1, 5, wait=False)
            await store.add_trials(study.id, [make_trial(i) for i in range(5, 8)])  # the next batch's
            await store.flush()
            reread = await store.get_study("alpha")
            assert reread is not None and reread.sampler_state == {"cursor": 5}
            assert (reread.checkpoint_seq, reread.next_number) == (1, 5)
            assert sorted(t.number for t in await store.trials(study.id)) == list(range(8))

    async def test_checkpoint_commits_state_with_the_queued_trials(self, store_factory: Any, tmp_path: Any) -> None:
        async with store_factory(tmp_path / "s.db") as store:
            study = await store.create_study("alpha", "x")
            await store.add_trials(study.id, [make_trial(i) for i in range(7)])
            await store.checkpoint(study.id, {"cursor": 7, "rng": [1, 2, 3]}, 1, 7)
            reread = await store.get_study("alpha")
            assert reread is not None
            assert reread.sampler_state == {"cursor": 7, "rng": [1, 2, 3]}
            assert (reread.checkpoint_seq, reread.next_number) == (1, 7)
            assert len(await store.trials(study.id)) == 7

    async def test_best_and_counts(self, store_factory: Any, tmp_path: Any) -> None:
        trials = [make_trial(i, float(v)) for i, v in enumerate([3.0, 9.0, -1.0, 9.0, 5.0])]
        trials += [make_trial(5, state=TrialState.FAILED), make_trial(6, 100.0, state=TrialState.PRUNED)]
        trials.append(dataclasses.replace(make_trial(7), objective=None))  # complete, no objective
        async with store_factory(tmp_path / "s.db") as store:
            study = await store.create_study("alpha", "x")
            await store.add_trials(study.id, trials)
            await store.flush()
            best_max = await store.best(study.id, maximize=True, k=3)
            best_min = await store.best(study.id, maximize=False, k=2)
            counts = await store.counts(study.id)
            outcomes = await store.trial_outcomes(study.id)
        assert [t.number for t in best_max] == [1, 3, 4]  # ties: lower number first; pruned excluded
        assert [t.number for t in best_min] == [2, 0]
        assert counts == {TrialState.COMPLETE: 6, TrialState.FAILED: 1, TrialState.PRUNED: 1}
        assert outcomes[f"{1:016x}"] == (TrialState.COMPLETE, 9.0, 1, 1)

    async def test_artifacts_round_trip_and_eviction(self, store_factory: Any, tmp_path: Any) -> None:
        equity = np.cumsum(np.random.default_rng(1).normal(size=1000)) + 1e4
        trades = np.zeros(3, dtype=np.dtype([("entry_idx", "<i8"), ("pnl", "<f8")], align=True))
        trades["entry_idx"] = [1, 5, 9]
        trades["pnl"] = [1.5, -2.0, 0.25]
        async with store_factory(tmp_path / "s.db") as store:
            study = await store.create_study("alpha", "x")
            store.put_artifacts(study.id, 3, {"equity": equity, "trades": trades})
            store.put_artifacts(study.id, 4, {"equity": equity[:10]})
            await store.flush()
            got = await store.artifacts(study.id, 3)
            assert np.array_equal(got["equity"], equity) and got["equity"].dtype == equity.dtype
            assert got["trades"].dtype == trades.dtype and np.array_equal(got["trades"], trades)
            store.drop_artifacts(study.id, 3)
            await store.flush()
            assert await store.artifacts(study.id, 3) == {}
            assert await store.artifact_numbers(study.id) == [4]

    async def test_block_figures_round_trip_with_their_trials(self, store_factory: Any, tmp_path: Any) -> None:
        figures = np.random.default_rng(2).normal(0.0, 0.01, size=(5, 16)).astype("<f4")
        pairs = []
        for number in (4, 0, 3, 1, 2):  # arrival order is not trial order
            blocks = None if number == 3 else figures[number].tobytes()
            result = TrialResult(number, TrialState.COMPLETE, {"sharpe": 1.0}, 1.0, 0.0, 0.01, "w", blocks=blocks)
            pairs.append((result, TrialTask(number, {"fast": number}, f"k{number}")))
        async with store_factory(tmp_path / "s.db") as store:
            study = await store.create_study("alpha", "x")
            other = await store.create_study("beta", "y")
            await store.add_results(study.id, 0, pairs)
            again = TrialResult(0, TrialState.COMPLETE, {"sharpe": 2.0}, 2.0, 0.0, 0.01, "w", blocks=bytes(64))
            await store.add_results(study.id, 0, [(again, TrialTask(0, {"fast": 0}, "k0"))])  # first write wins
            await store.flush()
            numbers, got = await store.trial_blocks(study.id)
            assert numbers.tolist() == [0, 1, 2, 4]  # sorted; trial 3 recorded none
            assert np.array_equal(got, figures[[0, 1, 2, 4]].astype(np.float64))
            empty_numbers, empty = await store.trial_blocks(other.id)
            assert empty_numbers.size == 0 and empty.size == 0

    async def test_a_result_batch_is_stored_row_by_row_in_step_with_its_tasks(
        self, store_factory: Any, tmp_path: Any
    ) -> None:
        # Rows arrive out of trial order, with a failure, NaN metrics and per-block figures: every stored
        # trial must carry its own key, params, metrics, objective and blocks (a shuffled column breaks it).
        figures = np.random.default_rng(3).normal(0.0, 0.01, size=(6, 4)).astype("<f4")
        results = []
        for number in (5, 2, 0, 4, 1, 3):
            if number == 4:
                results.append(TrialResult(number, TrialState.FAILED, None, None, 10.0 + number, 0.5, "w1",
                                           "RuntimeError: boom", 0))
                continue
            metrics = {"sharpe": number / 3, "trades": number * 2, "total_return": math.nan if number == 1 else -number}
            results.append(TrialResult(number, TrialState.COMPLETE, metrics, number / 3, 10.0 + number, 0.01 * number,
                                       "w1", None, 0, figures[number].tobytes()))
        batch = ResultBatch.from_results(results)
        tasks = [TrialTask(r.number, {"fast": r.number + 2, "slow": 10 * r.number}, f"key{r.number}") for r in results]
        async with store_factory(tmp_path / "s.db") as store:
            study = await store.create_study("alpha", "x")
            with pytest.raises(ValueError, match="out of step"):
                await store.add_batch(study.id, 1, batch, tasks[::-1])
            await store.add_batch(study.id, 1, batch, tasks)
            await store.flush()
            stored = {t.number: t for t in await store.trials(study.id)}
            numbers, blocks = await store.trial_blocks(study.id)
        assert sorted(stored) == [0, 1, 2, 3, 4, 5]
        for result in results:
            trial = stored[result.number]
            assert trial.key == f"key{result.number}"
            assert trial.params == {"fast": result.number + 2, "slow": 10 * result.number}
            assert trial.state is result.state and trial.objective == result.objective
            assert trial.started == result.started and trial.duration_s == result.duration_s
            assert trial.error == result.error and trial.worker == "w1" and trial.batch == 1
            if result.metrics is None:
                assert trial.metrics is None
            else:
                assert trial.metrics is not None
                assert trial.metrics["sharpe"] == result.metrics["sharpe"]
                assert trial.metrics["trades"] == result.metrics["trades"]
                assert type(trial.metrics["trades"]) is int
                assert trial.metrics["total_return"] == (None if result.number == 1 else -result.number)
        assert numbers.tolist() == [0, 1, 2, 3, 5]
        assert np.array_equal(blocks, figures[[0, 1, 2, 3, 5]].astype(np.float64))

    async def test_object_arrays_are_refused(self, store_factory: Any, tmp_path: Any) -> None:
        async with store_factory(tmp_path / "s.db") as store:
            study = await store.create_study("alpha", "x")
            with pytest.raises(StoreError, match="object dtype"):
                store.put_artifacts(study.id, 1, {"bad": np.array([object()], dtype=object)})

    async def test_close_flushes_and_reopen_sees_everything(self, store_factory: Any, tmp_path: Any) -> None:
        path = tmp_path / "s.db"
        async with store_factory(path) as store:
            study = await store.create_study("alpha", "x")
            await store.add_trials(study.id, [make_trial(i) for i in range(11)])
            await store.set_study_state(study.id, StudyState.STOPPED, "interrupted")
            await store.save_validation(study.id, {"deflated_sharpe": 0.5})
            await store.save_summary(study.id, {"elapsed_s": 1.0})
        async with store_factory(path) as store:
            study = await store.require_study("alpha")
            assert study.state is StudyState.STOPPED and study.error == "interrupted"
            assert study.validation == {"deflated_sharpe": 0.5} and study.summary == {"elapsed_s": 1.0}
            assert len(await store.trials(study.id, states=[TrialState.COMPLETE])) == 11
            assert study.updated >= study.created - 1 and study.created <= time.time()

    async def test_missing_study_is_a_clear_error(self, store_factory: Any, tmp_path: Any) -> None:
        async with store_factory(tmp_path / "s.db") as store:
            await store.create_study("alpha", "x")
            with pytest.raises(StoreError, match=r"no study named .beta.*alpha"):
                await store.require_study("beta")

    async def test_a_study_nobody_shared_lists_no_drivers(self, store_factory: Any, tmp_path: Any) -> None:
        async with store_factory(tmp_path / "s.db") as store:
            study = await store.create_study("alpha", "x")
            assert await store.drivers(study.id) == []
