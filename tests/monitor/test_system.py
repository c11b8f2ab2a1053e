"""psutil sampling of this process, a real child process and the machine."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest

from engine.monitor.system import MB, RingBuffer, SystemSampler, _descendants
from tests.monitor.conftest import CHILD_MB


def test_ring_buffer_keeps_the_last_values_in_order() -> None:
    ring = RingBuffer(4)
    assert len(ring) == 0 and np.isnan(ring.last()) and ring.values().size == 0
    for v in range(1, 4):
        ring.append(float(v))
    assert ring.values().tolist() == [1.0, 2.0, 3.0]
    for v in range(4, 11):
        ring.append(float(v))
    assert ring.values().tolist() == [7.0, 8.0, 9.0, 10.0]
    assert (len(ring), ring.capacity, ring.last(), ring.max()) == (4, 4, 10.0, 10.0)
    with pytest.raises(ValueError):
        RingBuffer(0)


def test_samples_a_real_child_process(child: subprocess.Popen[str], tmp_path) -> None:
    sampler = SystemSampler(capacity=5, disk_path=tmp_path / "store" / "genesis.db")
    sample = sampler.sample()
    (worker,) = [w for w in sample.workers if w.pid == child.pid]
    assert worker.rss_bytes >= CHILD_MB * MB
    assert worker.threads >= 1 and worker.open_files >= 3  # stdin, stdout, stderr at least
    assert worker.rss_bytes == pytest.approx(psutil.Process(child.pid).memory_info().rss, rel=0.2)
    me = sample.process
    assert me.pid == os.getpid() and me.rss_bytes > 0 and me.threads >= 1
    assert sample.total_rss_bytes >= me.rss_bytes + CHILD_MB * MB
    assert len(sample.cpu_per_core) == psutil.cpu_count()
    assert 0 < sample.memory_available_bytes <= sample.memory_total_bytes
    assert sample.disk_free_bytes is not None and sample.disk_free_bytes > 0  # nearest existing parent
    snapshot = sampler.snapshot()
    assert snapshot.samples == 1 and snapshot.series["workers"][-1] >= 1
    assert snapshot.peaks["workers_rss_mb"] >= CHILD_MB
    assert snapshot.last == sample


def test_descendants_are_psutils_children_grandchildren_included() -> None:
    code = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'import sys; sys.stdin.read()'])"
    parents = [subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE) for _ in range(2)]
    try:
        me = psutil.Process()
        for _ in range(200):  # until the grandchildren are up
            expected = sorted(child.pid for child in me.children(recursive=True))
            if len(expected) >= 4:
                break
            time.sleep(0.02)
        assert len(expected) >= 4
        assert sorted(_descendants(me)) == expected
    finally:
        for parent in parents:
            assert parent.stdin is not None
            parent.stdin.close()  # the grandchild reads its end to EOF, then both exit
            parent.wait()


def test_watching_a_process_by_pid(child: subprocess.Popen[str]) -> None:
    """A worker that is not our child (a Dask worker, say) is sampled once watched."""
    sampler = SystemSampler(pid=os.getppid(), include_children=False)  # watch from "outside"
    sampler.watch([child.pid])
    sample = sampler.sample()
    assert [w.pid for w in sample.workers] == [child.pid]
    child.stdin.close()  # type: ignore[union-attr]
    child.wait(timeout=10)
    assert sampler.sample().workers == ()  # gone: dropped quietly


def test_ring_buffers_are_fixed_size_and_cpu_becomes_nonzero() -> None:
    sampler = SystemSampler(capacity=3)
    for _ in range(5):
        sum(i * i for i in range(200_000))  # some CPU between samples
        sampler.sample()
    snapshot = sampler.snapshot()
    assert snapshot.samples == 5
    assert all(len(values) == 3 for values in snapshot.series.values())
    assert all(len(core) == 3 for core in snapshot.cpu_per_core)
    assert len(snapshot.timestamps) == 3 and list(snapshot.timestamps) == sorted(snapshot.timestamps)
    assert max(snapshot.series["cpu_percent"]) > 0.0


async def test_the_async_task_samples_until_stopped() -> None:
    sampler = SystemSampler(interval_s=0.02, capacity=100)
    seen: list[float] = []
    sampler.on_sample(lambda s: seen.append(s.ts))
    sampler.start()
    assert sampler.running
    while len(seen) < 3:
        await asyncio.sleep(0.01)
    await sampler.stop()
    assert not sampler.running
    count = sampler.snapshot().samples
    await asyncio.sleep(0.05)
    assert sampler.snapshot().samples == count  # really stopped


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interval_s"):
        SystemSampler(interval_s=0)
