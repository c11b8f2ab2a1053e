"""``genesis run`` on a study file switched from process to dask, against a real cluster; a worker killed from outside."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.optimize.conftest import write_study
from tests.optimize.test_dask_cluster import Cluster

GENESIS = [sys.executable, "-m", "genesis_tui.cli"]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    running = Cluster(tmp_path)
    try:
        yield running
    finally:
        running.close()



def _committed(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return conn.execute("SELECT count(*) FROM trials").fetchone()[0]
    except sqlite3.Error:
        return 0


def _stored(db: Path) -> dict[str, tuple[int, str, float | None]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT key, number, state, objective, worker FROM trials").fetchall()
    assert len(rows) == len({r[0] for r in rows}), "a trial was stored twice"
    return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}


def test_genesis_run_on_a_cluster_survives_a_worker_kill_from_outside(cluster: Cluster, tmp_path: Path) -> None:
    """The study file switched from process to dask (one line) gives the same trials and best; a worker is killed."""
    address = cluster.start(workers=2)
    path = write_study(tmp_path, name="outside", bars=50_000, fast_high=40, fast_step=1, slow_high=200,
                       batch_size=32, checkpoint_every=16, checkpoint_interval_s=0.1, backend="process")
    reference = subprocess.run([*GENESIS, "run", str(path), "--db", str(tmp_path / "ref.db"), "--json"],
                               capture_output=True, text=True, timeout=300, env=cluster.env)
    assert reference.returncode == 0, reference.stderr[-3000:]
    expected = _stored(tmp_path / "ref.db")

    text = path.read_text().replace('backend = "process"', f'backend = "dask"\nscheduler = "{address}"')
    path.write_text(text)
    db = tmp_path / "dask.db"
    run = subprocess.Popen([*GENESIS, "run", str(path), "--db", str(db), "--headless", "--json"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cluster.env, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while _committed(db) < len(expected) // 4:
            assert run.poll() is None, run.stderr.read().decode()[-3000:] if run.stderr else ""
            assert time.monotonic() < deadline, "the study never got going"
            time.sleep(0.02)
        Cluster.kill(cluster.workers[0])
        assert _committed(db) < len(expected), "killed too late to test anything"
        out, err = run.communicate(timeout=300)
    finally:
        Cluster.kill(run)  # type: ignore[arg-type]
    assert run.returncode == 0, err.decode()[-3000:]
    summary = json.loads(out)
    assert summary["backend"] == "dask" and summary["state"] == "complete"
    got = _stored(db)
    assert {k: v[:3] for k, v in got.items()} == {k: v[:3] for k, v in expected.items()}
    assert {v[3] for v in got.values()} == {"dask:w0", "dask:w1"}  # the cluster's workers, both
    assert json.loads(reference.stdout)["best"]["key"] == summary["best"]["key"]


def test_genesis_run_losing_the_scheduler_exits_1_then_resumes_on_the_process_backend(
    cluster: Cluster, tmp_path: Path
) -> None:
    address = cluster.start(workers=1)
    path = write_study(tmp_path, name="lost", bars=50_000, fast_high=40, fast_step=1, slow_high=200,
                       batch_size=32, checkpoint_every=16, checkpoint_interval_s=0.1, backend="process")
    reference = subprocess.run([*GENESIS, "run", str(path), "--db", str(tmp_path / "ref.db"), "--json"],
                               capture_output=True, text=True, timeout=300, env=cluster.env)
    assert reference.returncode == 0, reference.stderr[-3000:]
    expected = _stored(tmp_path / "ref.db")

    path.write_text(path.read_text().replace('backend = "process"', f'backend = "dask"\nscheduler = "{address}"'))
    db = tmp_path / "dask.db"
    run = subprocess.Popen([*GENESIS, "run", str(path), "--db", str(db), "--headless"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cluster.env, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while _committed(db) < len(expected) // 4:
            assert run.poll() is None, run.stderr.read().decode()[-3000:] if run.stderr else ""
            assert time.monotonic() < deadline, "the study never got going"
            time.sleep(0.02)
        Cluster.kill(cluster.scheduler)
        _, err = run.communicate(timeout=120)
    finally:
        Cluster.kill(run)  # type: ignore[arg-type]
    assert run.returncode == 1, err.decode()[-3000:]
    lines = [line for line in err.decode().splitlines() if line.startswith("genesis: ")]
    assert len(lines) == 1 and "lost the dask scheduler" in lines[0]
    assert "Traceback" not in err.decode()  # Dask's reconnect noise stays out of the user's way
    assert 0 < _committed(db) < len(expected)

    resumed = subprocess.run([*GENESIS, "resume", "lost", "--db", str(db), "--backend", "process", "--json"],
                             capture_output=True, text=True, timeout=300, env=cluster.env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    got = _stored(db)
    assert {k: v[:3] for k, v in got.items()} == {k: v[:3] for k, v in expected.items()}
    assert json.loads(reference.stdout)["best"]["key"] == json.loads(resumed.stdout)["best"]["key"]
