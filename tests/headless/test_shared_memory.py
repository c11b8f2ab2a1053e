"""Shared memory of killed runs: a group kill leaves the data block, the next start removes it;
workers of a killed parent end quietly (real ``genesis run`` processes).

Each run is interrupted while a trial of it waits at a gate (:func:`gated_study`), so it
cannot have completed (and removed its block) before the kill or the signal.
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from engine.optimize.backends.shared_bars import SHM_DIR, orphans, sweep_orphans
from tests.headless.conftest import (
    GENESIS,
    HOLD_LATE,
    committed,
    env,
    gated_study,
    one_json,
    wait_for,
)

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.skipif(not SHM_DIR.is_dir(), reason="shared-memory blocks are listed in /dev/shm (Linux)"),
]


def _start_in_own_group(*args: str | Path) -> subprocess.Popen[str]:
    return subprocess.Popen([*GENESIS, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env(), start_new_session=True)


def _blocks_of(pid: int) -> list[Path]:
    return sorted(SHM_DIR.glob(f"genesis-{pid}-*"))


def _kill_group(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    proc.communicate(timeout=60)
    # The group's processes may outlive the leader for a moment: wait until none is left.
    deadline = time.monotonic() + 60
    while any(p.info["pid"] for p in psutil.process_iter(["pid"]) if _in_group(p, proc.pid)):
        assert time.monotonic() < deadline, "the killed group did not go away"
        time.sleep(0.05)


def _in_group(process: psutil.Process, pgid: int) -> bool:
    try:
        return os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE
    except (ProcessLookupError, psutil.Error):
        return False


def test_a_group_kill_leaves_the_block_and_the_next_start_removes_it(tmp_path: Path) -> None:
    study, gate = gated_study(tmp_path, bars=200_000)
    db = tmp_path / "s.db"
    proc = _start_in_own_group("run", study, "--db", db, "--headless")
    try:
        wait_for(lambda: gate.held() and committed(db) >= 20, proc)
        [block] = _blocks_of(proc.pid)  # named after its owner
        assert block.stat().st_size >= 200_000 * 6 * 8
    finally:
        _kill_group(proc)  # what systemd or the out-of-memory killer do: the resource tracker dies too
        gate.open()
    assert block.exists()  # nobody was left to unlink it
    assert block.name in {p.name for p in orphans()}

    again = subprocess.Popen([*GENESIS, "run", str(study), "--db", str(db), "--headless", "--json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    out, err = again.communicate(timeout=200)
    assert again.returncode == 0, err[-3000:]
    assert one_json(out)["state"] == "complete"
    assert not block.exists()  # the next start removed the orphan
    assert not _blocks_of(again.pid)  # and its own block went with its normal end


def test_the_sweep_leaves_blocks_of_live_owners_and_foreign_names_alone(tmp_path: Path) -> None:
    from engine.data import load
    from engine.optimize.backends.shared_bars import SharedBars

    shared = SharedBars(load("synthetic:bars=300,seed=1,timeframe=1m"))
    try:
        reused = tmp_path / f"genesis-{os.getpid()}-00"  # our pid, another start time: a reused pid
        reused.write_bytes(struct.pack("<8sd", b"GENESIS1", 1.0) + bytes(48))
        dead = tmp_path / "genesis-999999999-01"
        dead.write_bytes(b"")
        foreign = tmp_path / "genesis-notours"
        foreign.write_bytes(b"")
        assert sorted(sweep_orphans(tmp_path)) == sorted([reused.name, dead.name])
        assert foreign.exists()
        assert Path(SHM_DIR, shared.name).exists() and shared.name not in sweep_orphans()
    finally:
        shared.close()
    assert not Path(SHM_DIR, shared.name).exists()


def test_workers_of_a_killed_parent_exit_without_a_traceback(tmp_path: Path) -> None:
    study, gate = gated_study(tmp_path, bars=200_000, hold=HOLD_LATE)
    db = tmp_path / "s.db"
    proc = _start_in_own_group("run", study, "--db", db, "--headless")
    try:
        # Well into the run: chunks have grown; one worker holds the gated trial and its chunks queued.
        wait_for(lambda: gate.held() and committed(db) >= 300, proc)
        [block] = _blocks_of(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)  # only the parent: its workers are busy with chunks
        gate.open()  # the held worker finishes its trial for a parent that is gone
        # stderr closes when the last holder (a worker, the fork server, the resource tracker) is gone
        _out, err = proc.communicate(timeout=120)
    finally:
        gate.open()
        _kill_group(proc)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err[-3000:]
    assert not block.exists()  # the resource tracker outlived the parent and unlinked it


def test_a_second_signal_exits_at_once_and_leaves_no_block(tmp_path: Path) -> None:
    """The second signal kills the children at once, the resource tracker among them: the run
    unlinks its block itself first."""
    study, gate = gated_study(tmp_path, bars=200_000)
    db = tmp_path / "s.db"
    proc = _start_in_own_group("run", study, "--db", db, "--headless")
    try:
        wait_for(lambda: gate.held() and committed(db) >= 50, proc)
        [block] = _blocks_of(proc.pid)
        proc.send_signal(signal.SIGINT)
        assert proc.stdout is not None
        for line in proc.stdout:  # the first signal is taken; the held trial keeps the run from ending
            if "SIGINT: no new trials" in line:
                break
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        gate.open()
        _kill_group(proc)
    assert proc.returncode == 130 and "again: exiting now" in err, err[-3000:]
    assert not block.exists()
