"""The Engine facade over studies run one after another: every store it opened is closed."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from engine.runtime import Engine
from tests.tui.test_console_engine import STUDY


def sqlite_threads() -> int:
    """aiosqlite runs each connection on a non-daemon thread: one left open hangs the interpreter at exit."""
    threads = [t for t in threading.enumerate() if "_connection_worker_thread" in t.name]
    for thread in threads:
        thread.join(timeout=2.0)  # a closed connection's thread ends right after its close
    return sum(thread.is_alive() for thread in threads)


def write(tmp_path: Path, name: str, trials: int) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(STUDY.format(trials=trials, bars=3000).replace('name = "pilot"', f'name = "{name}"'))
    return path


async def test_studies_run_in_sequence_close_every_store(tmp_path: Path) -> None:
    before = sqlite_threads()
    engine = Engine(db=tmp_path / "s.db", profile=False, monitor=False)
    await engine.start()
    try:
        await engine.start_study(write(tmp_path, "first", 30), then=[write(tmp_path, "second", 40)])
        deadline = asyncio.get_running_loop().time() + 60
        while not (engine.study.name == "second" and engine.study.progress().state == "complete"):
            assert asyncio.get_running_loop().time() < deadline, "the second study did not complete"
            await asyncio.sleep(0.05)
        second = engine._study_task
        assert second is not None
        await asyncio.wait_for(second, 60)  # its run ends with the watch's last read of the finished study
        study = engine.telemetry().study
        assert study is not None and study.name == "second" and study.done == 40
        # each stored trial counted once, however many reads raced at the end
        assert len(study.convergence) == 40
    finally:
        await engine.close()
    assert sqlite_threads() == before


def test_the_demo_warns_about_memory_only_beyond_its_own_footprint() -> None:
    """The demo's workers each fill an indicator cache on 1M bars: its memory warning leaves room
    for every worker's full cache (the 1 GB default warned on every launch), and no forecast
    mistakes the caches filling up for a leak."""
    from engine.backtest.indicators import indicator_cache_budget
    from engine.demo import demo_engine

    for workers in (1, 2, 8):
        spec = demo_engine(workers=workers)._alerts_spec
        caches_mb = workers * indicator_cache_budget() / 2**20
        assert spec.memory_mb.warning >= 1024 + caches_mb
        assert spec.memory_mb.critical > spec.memory_mb.warning
        assert spec.memory_forecast is False
    assert demo_engine(workers=8)._alerts_spec.memory_mb.warning > demo_engine(workers=2)._alerts_spec.memory_mb.warning
