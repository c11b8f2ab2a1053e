"""The study lock: exclusive, names its holder, released on exit; the console's engine honours it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.errors import ConfigError, LockHeldError
from engine.optimize.lock import StudyLock, lock_path, read_holder
from engine.runtime import Engine
from tests.headless.conftest import write_study


def test_one_holder_at_a_time_and_the_second_is_told_who(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    with StudyLock(db, "s") as held:
        holder = read_holder(held.path)
        assert holder is not None and holder.pid == os.getpid() and holder.started is not None
        with pytest.raises(LockHeldError) as caught:
            StudyLock(db, "s").acquire()
        assert f"pid {os.getpid()}" in str(caught.value) and holder.started_iso in str(caught.value)
        assert caught.value.exit_code == 75
        StudyLock(db, "other").acquire().release()  # another study of the same store is free
    assert read_holder(lock_path(db, "s")) is None  # cleared on release
    StudyLock(db, "s").acquire().release()  # and free again


def test_the_kernel_releases_the_lock_of_a_killed_process(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    code = (
        "import os, sys\n"
        "from engine.optimize.lock import StudyLock\n"
        f"StudyLock({str(db)!r}, 's').acquire()\n"
        "print('held', flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == -9 and "held" in result.stdout
    holder = json.loads(lock_path(db, "s").read_text())  # the record stays behind ...
    assert holder["pid"] != os.getpid()
    StudyLock(db, "s").acquire().release()  # ... but the lock does not


def test_lock_file_names_are_the_study_name_and_unsafe_names_are_refused(tmp_path: Path) -> None:
    assert lock_path(tmp_path / "g.db", "nightly-1.x").name == "g.db.nightly-1.x.lock"
    for unsafe in ("a/b", "a\x00b", "a b", ".."):
        with pytest.raises(ConfigError):
            lock_path(tmp_path / "g.db", unsafe)


async def test_the_console_engine_will_not_start_a_study_a_cron_run_holds(tmp_path: Path) -> None:
    study = write_study(tmp_path, name="held")
    db = tmp_path / "store.db"
    engine = Engine(db=db, workspace="t", profile=False, monitor=False)
    await engine.start()
    try:
        with StudyLock(db, "held"):
            with pytest.raises(LockHeldError):
                await engine.start_study(study)
            assert engine.study is None
    finally:
        await engine.close()
