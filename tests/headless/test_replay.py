"""Replay: playback control, the console on a recording (snapshot), a real run's figures replayed."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from engine.errors import InputError
from engine.headless.recording import Recording
from engine.headless.replay import ReplaySource, format_clock, parse_position
from genesis_tui import format as fmt
from genesis_tui.replay_app import ReplayApp
from tests.headless.conftest import genesis, write_study
from tests.headless.test_recording import _frames, _record


@pytest.fixture(autouse=True)
def _colour_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def recording(tmp_path: Path) -> tuple[Path, Recording]:
    db = tmp_path / "store.db"
    asyncio.run(_record(db, _frames(40), study="replayed"))
    return db, Recording.load(db, "replayed")


def test_playback_follows_the_clock_at_its_speed(recording) -> None:
    _, rec = recording
    clock = FakeClock()
    source = ReplaySource(rec, speed=2.0, clock=clock)
    assert source.playing and source.index == 0
    clock.now += 1.5  # 3 recorded seconds at 2x
    assert source.position == pytest.approx(3.0) and source.index == rec.index_at(3.0)
    assert source.telemetry() == dataclasses.replace(rec.frame(source.index), workspace=source.status())
    source.hold()
    clock.now += 100
    assert source.position == pytest.approx(3.0) and not source.playing
    source.play()
    clock.now += 100  # past the end: stops at the last frame
    assert source.position == rec.duration_s and not source.playing and source.index == len(rec) - 1


def test_step_jump_and_speed(recording) -> None:
    _, rec = recording
    source = ReplaySource(rec, playing=False, clock=FakeClock())
    assert source.step(5) == 5 and source.step(-2) == 3 and source.step(-100) == 0
    assert source.step(1000) == len(rec) - 1
    source.seek(parse_position("50%", rec.duration_s))
    assert source.index == rec.index_at(rec.duration_s / 2)
    source.seek(parse_position("0:07", rec.duration_s))
    assert source.position == 7.0
    assert source.faster() == 2.0 and source.faster() == 4.0 and source.slower() == 2.0
    assert parse_position("1:02:03", 1e9) == 3723 and parse_position("95s", 1e9) == 95
    assert format_clock(3723) == "1:02:03" and format_clock(95) == "01:35"
    with pytest.raises(InputError):
        parse_position("soon", 10)


async def test_keys_play_pause_step_and_jump(recording) -> None:
    _, rec = recording
    source = ReplaySource(rec, playing=False, clock=FakeClock())
    app = ReplayApp(source, poll=False, remember=False, theme="genesis-dark")
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("full_stop", "full_stop", "full_stop")
        assert source.index == 3 and app.last_telemetry == dataclasses.replace(
            rec.frame(3), workspace=source.status())
        await pilot.press("comma")
        assert source.index == 2
        await pilot.press("right_square_bracket")
        assert source.speed == 2.0
        await pilot.press("g")
        await pilot.pause()
        await pilot.press(*"0:05", "enter")
        await pilot.pause()
        assert source.position == 5.0
        await pilot.press("space")
        assert source.playing
        await pilot.press("p")  # the console's pause key pauses playback
        await app.workers.wait_for_complete()
        assert not source.playing


def test_a_replayed_frame_snapshot(snap_compare, recording) -> None:
    _, rec = recording
    source = ReplaySource(rec, playing=False, clock=FakeClock())
    source.seek(rec.times[24])

    async def run_before(pilot: Pilot) -> None:
        app = pilot.app
        assert isinstance(app, ReplayApp)
        app.action_show_pane("optimizer")
        await pilot.pause()
        await pilot.wait_for_scheduled_animations()
        await pilot.pause()

    app = ReplayApp(source, poll=False, remember=False, theme="genesis-dark")
    assert snap_compare(app, terminal_size=(140, 40), run_before=run_before)


async def test_a_real_runs_recording_replays_its_figures(tmp_path: Path) -> None:
    study = write_study(tmp_path, name="replay-me", bars=20_000)
    db = tmp_path / "s.db"
    result = await asyncio.to_thread(genesis, "run", study, "--db", db, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    rec = Recording.load(db, "replay-me")
    assert len(rec) == summary["recording"]["frames"] >= 2
    last = rec.frame(len(rec) - 1)
    assert last.study is not None and last.study.done == summary["trials"]
    assert last.study.best_value == pytest.approx(summary["best"]["objective"])
    assert rec.frame(0).study is not None and rec.frame(0).study.done < last.study.done

    source = ReplaySource(rec, db=db, playing=False)
    source.seek(rec.duration_s)
    app = ReplayApp(source, poll=False, remember=False, theme="genesis-dark")
    async with app.run_test(size=(140, 40)) as pilot:
        app.action_show_pane("optimizer")
        await pilot.pause()
        status = str(app.query_one("#status", Static).render())
        assert "replay" in status and f"{fmt.count(last.study.done)}/{fmt.count(last.study.total)}" in status
        assert f"best {fmt.num(last.study.best_value, 3)}" in status
        detail = await source.open_trial(summary["best"]["number"])
        assert detail.value == pytest.approx(summary["best"]["objective"]) and detail.equity


def test_replay_command_lists_recordings_and_names_what_is_missing(recording) -> None:
    db, rec = recording
    listed = genesis("replay", "replayed", "--db", db, "--list")
    assert listed.returncode == 0 and f"recording {rec.info.id}: " in listed.stdout and "40 frames" in listed.stdout
    missing = genesis("replay", "nope", "--db", db)
    assert missing.returncode == 2 and "no recording of study 'nope'" in missing.stderr
    assert "replayed" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1
    bad_speed = genesis("replay", "replayed", "--db", db, "--speed", "-1")
    assert bad_speed.returncode == 2 and "speed" in bad_speed.stderr
