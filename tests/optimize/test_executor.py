"""Executor and backends: real worker processes, failure isolation, determinism, chunk sizing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine.errors import GenesisError
from engine.optimize import Study
from engine.optimize.executor import ChunkSizer
from engine.optimize.trial import FAULTS_ENV, parse_faults
from engine.store.records import TrialState
from engine.store.study_sqlite import SqliteStore


async def _trials(db: Path, name: str = "t") -> list:
    store = await SqliteStore.open(db, readonly=True)
    try:
        study = await store.require_study(name)
        return await store.trials(study.id)
    finally:
        await store.close()


def test_chunk_sizer_keeps_overhead_under_two_percent() -> None:
    sizer = ChunkSizer(max_overhead=0.02, target_chunk_s=0.05)
    assert sizer.size(10_000, 2) >= 1
    for _ in range(10):
        sizer.observe(trials=100, busy_s=100 * 0.0003, elapsed_s=100 * 0.0003 + 0.002)
    n = sizer.size(1_000_000, 2)
    assert sizer.overhead_s is not None and sizer.trial_s is not None
    assert sizer.overhead_s / (n * sizer.trial_s) <= 0.02 + 1e-9
    # the tail of a batch is cut finer so both workers end together: the last trials are shared out
    assert sizer.size(40, 2) <= 20


def _schedule(total: int, workers: int, trial_s: float, overhead_s: float, depth: int = 2) -> tuple[list[int], float]:
    """Chunk sizes and the longest idle of a worker at the end of a batch, in a model of the process
    backend: each worker holds ``depth`` chunks, a chunk is cut when a worker can take it, and a
    finished chunk costs ``overhead_s`` before its worker starts the next one."""
    sizer = ChunkSizer()
    for _ in range(20):  # a measured study: the EWMAs have settled
        sizer.observe(trials=100, busy_s=100 * trial_s, elapsed_s=100 * trial_s + overhead_s)
    free_at = [0.0] * workers  # when each worker finishes the chunks it holds
    held = [0] * workers
    remaining = total
    sizes: list[int] = []
    events: list[tuple[float, int]] = []
    while remaining > 0:
        # Hand chunks to the workers that can take one (fewest held first), as the backend does.
        for level in range(depth):
            for w in range(workers):
                if remaining > 0 and held[w] <= level:
                    size = sizer.size(remaining, workers)
                    sizes.append(size)
                    remaining -= size
                    free_at[w] += size * trial_s + overhead_s
                    held[w] += 1
                    events.append((free_at[w], w))
        if remaining > 0:
            events.sort()
            _, w = events.pop(0)
            held[w] -= 1
    return sizes, max(free_at) - min(free_at)


@pytest.mark.parametrize("trial_s", [0.0002, 0.002])
def test_the_tail_shrinks_to_a_floor_so_the_workers_end_together(trial_s: float) -> None:
    """Guided self-scheduling: chunks shrink with the trials left, never below the floor (a chunk's
    round trip would cost more than it balances) and the workers finish within about one floor chunk."""
    from engine.optimize.executor import MIN_CHUNK_S

    sizes, spread = _schedule(4096, 2, trial_s, overhead_s=0.002)
    assert sum(sizes) == 4096
    floor = ChunkSizer()
    for _ in range(20):
        floor.observe(trials=100, busy_s=100 * trial_s, elapsed_s=100 * trial_s + 0.002)
    smallest = floor.floor()
    assert smallest * trial_s >= MIN_CHUNK_S and smallest * trial_s >= 4 * 0.002 * 0.99
    # no round trip for a handful of trials: none below a share of the floor but the remainder
    assert all(size >= smallest / 4 for size in sizes[:-1])
    assert sizes[-1] < sizes[0] / 4  # ...but the last chunks are small
    assert spread <= smallest * trial_s + 0.002 + 1e-9


def test_a_small_batch_is_shared_out_between_the_workers() -> None:
    """The floor never gives one worker every trial of a small batch (the top-N curves, a rung)."""
    sizer = ChunkSizer()
    for _ in range(20):
        sizer.observe(trials=100, busy_s=100 * 0.0002, elapsed_s=100 * 0.0002 + 0.002)
    assert sizer.floor() > 20
    assert sizer.size(20, 2) == 10 and sizer.size(3, 2) == 3 and sizer.size(1, 2) == 1


class _InstantBackend:
    """Every chunk's results come back at once (two workers holding two chunks each); records the
    chunks submitted and how many it held at most."""

    name = "instant"
    depth = 2
    workers = 2

    def __init__(self) -> None:
        import asyncio

        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.held = 0
        self.most_held = 0
        self.submitted: list[list[int]] = []

    async def start(self, bars: object, setup: object) -> None:
        return None

    def submit(self, chunk: Any) -> None:
        from engine.optimize.backends.base import ChunkDone
        from engine.store.records import TrialResult
        from engine.store.result_batch import ResultBatch

        self.held += 1
        self.most_held = max(self.most_held, self.held)
        self.submitted.append([t.number for t in chunk.tasks])
        results = [TrialResult(t.number, TrialState.COMPLETE, {}, 1.0, 0.0, 0.001, "w0") for t in chunk.tasks]
        self.queue.put_nowait(ChunkDone(chunk.id, ResultBatch.from_results(results, "w0"), {}, "w0", 0.0))

    async def results(self) -> Any:
        while True:
            event = await self.queue.get()
            self.held -= 1
            yield event

    def cancel_pending(self) -> list:
        return []

    def interrupt_start(self) -> None:
        return None

    async def close(self) -> None:
        return None


def _numbered(start: int, n: int) -> list[Any]:
    from engine.store.records import TrialTask

    return [TrialTask(i, {}, f"k{i}") for i in range(start, start + n)]


async def test_the_executor_cuts_no_chunk_beyond_what_the_workers_can_hold() -> None:
    """With ``depth`` 2 and 2 workers, 4 chunks are cut at once; the next only when one comes back
    (so it is sized from the trials left then, not from the count at the start of the batch)."""
    from engine.optimize.executor import Executor

    backend = _InstantBackend()
    executor = Executor(backend)  # type: ignore[arg-type]
    await executor.start(None, None)  # type: ignore[arg-type]
    numbers: list[int] = []

    async def on_done(event: Any) -> None:
        numbers.extend(event.batch.numbers.tolist())

    outcome = await executor.run_batch(_numbered(0, 200), on_done)
    assert outcome.reported == 200 and sorted(numbers) == list(range(200))
    assert backend.most_held == 4


async def test_a_prefetched_batch_runs_on_free_workers_and_reports_after_the_current_one() -> None:
    """The next batch's chunks go to workers the current batch leaves free; their results are kept
    for the run of that batch (never reported with the current one), and a discarded prefetch
    reports nothing."""
    from engine.optimize.executor import Executor

    backend = _InstantBackend()
    executor = Executor(backend)  # type: ignore[arg-type]
    await executor.start(None, None)  # type: ignore[arg-type]
    first, second = _numbered(0, 40), _numbered(40, 40)
    seen: dict[str, list[int]] = {"first": [], "second": [], "other": []}

    def collect(name: str) -> Any:
        async def on_done(event: Any) -> None:
            seen[name].extend(event.batch.numbers.tolist())
            if name == "first" and executor.queued == 0:
                executor.prefetch(second)

        return on_done

    one = await executor.run_batch(first, collect("first"))
    assert one.reported == 40 and sorted(seen["first"]) == list(range(40))
    early = {n for chunk in backend.submitted for n in chunk if n >= 40}
    assert early  # the next batch started before the current one was over
    two = await executor.run_batch(second, collect("second"))
    assert two.reported == 40 and sorted(seen["second"]) == list(range(40, 80))
    assert sorted(n for chunk in backend.submitted for n in chunk) == list(range(80))  # none run twice

    executor.prefetch(_numbered(80, 40))
    seen["first"].clear()
    await executor.run_batch(_numbered(200, 8), collect("other"))  # type: ignore[arg-type]
    executor.discard_prefetch()
    third = await executor.run_batch(_numbered(300, 8), collect("first"))
    assert third.reported == 8 and sorted(seen["first"]) == list(range(300, 308))


def test_fault_hook_parsing() -> None:
    assert parse_faults("3:raise, 7:hang,11:exit") == {3: "raise", 7: "hang", 11: "exit"}
    assert parse_faults(None) == {}


async def test_process_backend_isolates_raise_hang_and_worker_death(
    study_file: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One trial raises, one hangs past its timeout, one kills its worker: each is failed, the rest complete."""
    monkeypatch.setenv(FAULTS_ENV, "3:raise,7:hang,11:exit")
    db = tmp_path / "s.db"
    path = study_file(backend="process", workers=2, timeout=2, batch_size=40, max_failures=5)
    summary = await Study.from_file(path, db=db).run()
    trials = await _trials(db)
    by_number = {t.number: t for t in trials}
    assert sorted(by_number) == list(range(len(trials)))  # none lost, none repeated
    assert summary.failed == 3 and summary.complete == len(trials) - 3
    assert by_number[3].state is TrialState.FAILED and "injected failure" in (by_number[3].error or "")
    assert by_number[7].state is TrialState.FAILED and "timeout" in (by_number[7].error or "")
    assert by_number[11].state is TrialState.FAILED and "exit code 13" in (by_number[11].error or "")
    others = [t for n, t in by_number.items() if n not in (3, 7, 11)]
    assert all(t.state is TrialState.COMPLETE for t in others)
    assert len({t.worker for t in trials}) >= 2

    from engine.optimize.report import render_markdown, report_from_db

    report = await report_from_db(db, "t")
    reasons = {f["error"]: f["count"] for f in report["failures"]}
    assert sum(reasons.values()) == 3 and any("injected failure" in r for r in reasons)
    assert "## Failures" in render_markdown(report)


async def test_consecutive_failures_stop_the_study_with_a_clear_error(
    study_file: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FAULTS_ENV, ",".join(f"{n}:raise" for n in range(200)))
    db = tmp_path / "s.db"
    with pytest.raises(GenesisError, match="5 consecutive trials failed") as info:
        await Study.from_file(study_file(max_failures=5, batch_size=4), db=db).run()
    assert "injected failure" in str(info.value)
    store = await SqliteStore.open(db, readonly=True)
    record = await store.require_study("t")
    assert record.state.value == "failed"
    await store.close()


async def test_inline_and_process_give_the_same_trials_and_best(
    study_file: Callable[..., Path], tmp_path: Path
) -> None:
    path = study_file(sampler="genetic", trials=40, search_extra="population = 10\ngenerations = 4\n")
    inline = await Study.from_file(path, db=tmp_path / "a.db", backend="inline").run()
    process = await Study.from_file(path, db=tmp_path / "b.db", backend="process", workers=2).run()
    a = {t.key: (t.number, t.objective) for t in await _trials(tmp_path / "a.db")}
    b = {t.key: (t.number, t.objective) for t in await _trials(tmp_path / "b.db")}
    assert a == b and len(a) == inline.trials == process.trials
    assert inline.best is not None and process.best is not None
    assert inline.best.key == process.best.key


async def test_workers_ship_their_stage_timings_when_profiling(
    study_file: Callable[..., Path], tmp_path: Path
) -> None:
    from engine.profile import profiler

    was = profiler.enabled
    profiler.reset()
    profiler.enabled = True
    try:
        summary = await Study.from_file(study_file(backend="process"), db=tmp_path / "s.db").run()
        stages = {s.name: s.count for s in profiler.stats()}
    finally:
        profiler.enabled = was
        profiler.reset()
    # one kernel call per trial, measured in the workers and merged here (validation adds a few)
    assert stages.get("backtest.kernel", 0) >= summary.trials
    assert stages.get("optimize.dispatch", 0) > 0 and stages.get("optimize.store_write", 0) > 0
