"""Recording telemetry: deltas that rebuild every frame exactly, compact frames, frames in a real store."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import sqlite3
from pathlib import Path
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.headless.recording import (
    FrameEncoder,
    Recorder,
    Recording,
    apply,
    decode_body,
    diff,
)
from engine.store.recordings import list_recordings
from engine.store.study_sqlite import SCHEMA_VERSION, SqliteStore
from engine.telemetry import Telemetry
from tests.tui.fixtures import telemetry_fixture

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False), st.text(max_size=5)
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), children, max_size=4),
    ),
    max_leaves=25,
)


def _rebuild(old: Any, new: Any) -> Any:
    patch = diff(old, new)
    return old if patch is diff(0, 0) else apply(old, patch)


@settings(max_examples=300, deadline=None)
@given(values, values)
def test_a_patch_rebuilds_the_new_value(old: Any, new: Any) -> None:
    assert _rebuild(old, new) == new


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=False), max_size=60), st.integers(0, 20), st.lists(st.floats(allow_nan=False),
                                                                                       max_size=10))
def test_a_sliding_history_is_sent_as_a_shift_and_a_tail(history: list[float], drop: int, tail: list[float]) -> None:
    new = history[drop:] + tail
    patch = diff(history, new)
    assert _rebuild(history, new) == new
    if new != history and len(tail) < len(new) and history[drop:]:
        assert isinstance(patch, dict)  # never the whole list again


def _frames(n: int) -> list[Telemetry]:
    """A run's worth of changing snapshots: progress, sliding histories, a new best, a log line."""
    t = telemetry_fixture()
    frames = [t]
    for i in range(1, n):
        study = t.study
        assert study is not None and t.system is not None
        study = dataclasses.replace(
            study, done=study.done + 7 * i, best_value=(study.best_value or 0) + (0.01 if i % 9 == 0 else 0.0),
            convergence=(*study.convergence[1:], study.convergence[-1]), eta_s=math.inf if i == 3 else study.eta_s,
        )
        system = dataclasses.replace(t.system, cpu_history=(*t.system.cpu_history[1:], float(i % 100)))
        t = dataclasses.replace(t, seq=t.seq + 1, taken_at=t.taken_at + 0.25, study=study, system=system,
                                log=t.log[1:] + t.log[:1] if i % 4 == 0 else t.log)
        frames.append(t)
    return frames


def test_every_frame_decodes_back_to_the_snapshot_and_deltas_are_small() -> None:
    frames = _frames(30)
    encoder = FrameEncoder(keyframe_every=10)
    state = None
    sizes: dict[bool, list[int]] = {True: [], False: []}
    for frame in frames:
        keyframe, blob = encoder.encode(frame)
        sizes[keyframe].append(len(blob))
        body = decode_body(blob)
        state = body if keyframe else apply(state, body)
        assert msgspec.convert(state, Telemetry) == frame
    assert len(sizes[True]) == 3
    assert max(sizes[False]) * 4 < min(sizes[True])  # a delta is a fraction of a keyframe


async def _record(db: Path, frames: list[Telemetry], *, study: str = "rec") -> Recorder:
    clock = iter(0.25 * i for i in range(10_000))
    it = iter(frames)
    recorder = Recorder(db, study, lambda: next(it), keyframe_every=8, clock=lambda: next(clock))
    await recorder.start(timer=False)
    for _ in frames:
        recorder.capture()
    await recorder.stop(last_frame=False)
    return recorder


def test_a_recording_in_the_store_reads_back_frame_by_frame_in_any_order(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    frames = _frames(40)
    recorder = asyncio.run(_record(db, frames))
    assert recorder.frames == 40 and recorder.errors == 0
    [info] = list_recordings(db, "rec")
    assert info.frames == 40 and info.bytes == recorder.bytes and info.hz == 4.0
    recording = Recording.load(db, "rec")
    assert len(recording) == 40 and recording.times[0] == 0.25 and recording.duration_s == 10.0
    for index in [39, 0, 17, 18, 5, 33, 33, 12]:
        assert recording.frame(index) == frames[index]
    assert recording.index_at(2.6) == 9 and recording.index_at(-1) == 0 and recording.index_at(1e9) == 39


def test_the_study_store_opens_a_file_that_holds_recordings(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    asyncio.run(_record(db, _frames(3)))

    async def open_store() -> int:
        store = await SqliteStore.open(db)
        try:
            record = await store.create_study("s", 'name = "s"\n')
            return record.id
        finally:
            await store.close()

    assert asyncio.run(open_store()) >= 1
    with sqlite3.connect(db) as conn:
        components = dict(conn.execute("SELECT component, version FROM schema_versions").fetchall())
    assert components["recording"] == 1 and components["optimize"] == SCHEMA_VERSION


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=6, max_size=40), st.data())
def test_a_list_with_rows_moved_in_and_out_is_sent_as_runs(rows: list[int], data: st.DataObject) -> None:
    old = [{"n": i, "v": v} for i, v in enumerate(rows)]
    new = list(old)
    position = data.draw(st.integers(0, len(new)))
    new.insert(position, {"n": -1, "v": [1, 2]})  # a new leaderboard row
    if data.draw(st.booleans()):
        del new[data.draw(st.integers(0, len(new) - 1))]
    assert _rebuild(old, new) == new
    patch = diff(old, new)
    if new != old:
        assert isinstance(patch, dict)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=6, max_size=30), st.lists(st.integers(0, 4), min_size=6, max_size=30))
def test_runs_of_a_list_with_repeated_items_rebuild_it(old: list[int], new: list[int]) -> None:
    """Repeated items (a run may start at any copy of one) and items new to the list."""
    rows_old, rows_new = [[v] for v in old], [[v] for v in new]
    assert _rebuild(rows_old, rows_new) == rows_new


def test_a_row_moved_to_the_top_is_copied_not_sent_again() -> None:
    old = [{"n": i, "params": {"fast": i, "slow": 3 * i}} for i in range(12)]
    new = [old[9], *old[:9], *old[10:]]  # a leaderboard where row 9 became the best
    patch = diff(old, new)
    assert patch == {"~m": [[0, 9, 10], [0, 0, 9], [0, 10, 12]]}
    assert apply(old, patch) == new
