"""The PBO's child of the fork server: forked and warmed ahead of its call, reading its figures itself."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from engine.optimize.fork_server import ForkedCall
from engine.optimize.overfitting import pbo_figures, warm_pbo
from engine.optimize.study import Study, _pbo
from engine.store.study_sqlite import SqliteStore, read_trial_blocks

WARMED = "GENESIS_TEST_FORKED_CALL_WARMED"


def _mark_warmed() -> None:
    """(In the child) leave a mark the call can read back: the warm-up ran in the process that answers."""
    os.environ[WARMED] = str(os.getpid())


def test_a_forked_call_warms_up_then_answers_the_call_sent_later() -> None:
    forked = ForkedCall(_mark_warmed)
    assert forked.call(os.getenv, WARMED) not in (None, str(os.getpid()))
    assert os.environ.get(WARMED) is None  # (this process was never marked)


def test_a_forked_call_reports_the_failure_and_the_pid_of_another_process() -> None:
    with pytest.raises(RuntimeError, match="int: ValueError"):
        ForkedCall().call(int, "not a number")
    assert ForkedCall().call(os.getpid) != os.getpid()


def test_a_forked_call_never_called_ends_when_closed() -> None:
    forked = ForkedCall()
    forked.close()
    forked._child.join(timeout=120)  # a bound for a hung child, not a synchronisation
    assert forked._child.exitcode == 0


@pytest.fixture
async def finished(study_file: Callable[..., Path], tmp_path: Path) -> tuple[Path, int]:
    """A finished study with per-block figures: its store and id."""
    db = tmp_path / "s.db"
    await Study.from_file(study_file(), db=db).run()
    store = await SqliteStore.open(db, readonly=True)
    try:
        return db, (await store.require_study("t")).id
    finally:
        await store.close()


async def test_the_blocks_read_without_an_event_loop_are_the_stores(finished: tuple[Path, int]) -> None:
    db, study_id = finished
    store = await SqliteStore.open(db, readonly=True)
    try:
        numbers, figures = await store.trial_blocks(study_id)
    finally:
        await store.close()
    read_numbers, read_figures = read_trial_blocks(db, study_id)
    assert figures.shape[0] > 2 and figures.shape[1] == 16
    assert np.array_equal(read_numbers, numbers) and np.array_equal(read_figures, figures)
    assert read_trial_blocks(db, study_id + 1)[1].shape == (0, 0)


async def test_the_pbo_child_gives_the_figures_computed_here(finished: tuple[Path, int]) -> None:
    db, study_id = finished
    store = await SqliteStore.open(db)
    try:
        _, figures = await store.trial_blocks(study_id)
        child = asyncio.create_task(asyncio.to_thread(ForkedCall, warm_pbo))
        found = await _pbo(store, study_id, 7, fork_server=True, child=child)
    finally:
        await store.close()
    assert found == pbo_figures(figures, 7) and found is not None and found["splits"] == 12_870


async def test_a_pbo_child_that_died_leaves_the_pbo_to_this_process(
    finished: tuple[Path, int], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, study_id = finished
    # (an in-process headless run earlier in the session may have stopped the study's log at its own handler)
    monkeypatch.setattr(logging.getLogger("engine.optimize.study"), "propagate", True)
    forked = ForkedCall()
    forked._child.kill()
    forked._child.join()
    done: asyncio.Future[ForkedCall] = asyncio.get_running_loop().create_future()
    done.set_result(forked)
    store = await SqliteStore.open(db)
    try:
        _, figures = await store.trial_blocks(study_id)
        with caplog.at_level(logging.WARNING):
            found = await _pbo(store, study_id, 7, fork_server=True, child=done)  # type: ignore[arg-type]
    finally:
        await store.close()
    assert found == pbo_figures(figures, 7)
    assert "the PBO's process failed" in caplog.text


async def test_a_pbo_child_is_forked_only_for_a_cscv_past_numpys_share_in_a_driver_without_numba(
    study_file: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from engine.optimize import study as study_module

    monkeypatch.setattr(study_module, "_forks_from_server", lambda backend: True)
    small = Study.from_file(study_file(), db=tmp_path / "s.db")  # 73 trials: numpy's
    large = Study.from_file(study_file(name="big", fast_high=40, fast_step=1, slow_high=200), db=tmp_path / "s.db")
    assert small._start_pbo_child(None) is None  # type: ignore[arg-type]
    monkeypatch.setitem(sys.modules, "numba", sys.modules.get("numba") or object())
    assert large._start_pbo_child(None) is None  # type: ignore[arg-type]  # (the driver computes it itself)
    monkeypatch.delitem(sys.modules, "numba")
    child = large._start_pbo_child(None)  # type: ignore[arg-type]
    assert child is not None
    forked = await child
    assert forked.call(os.getpid) != os.getpid()
