"""numba's on-disk cache: a second process loads every kernel of a run instead of compiling."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import json
from engine.backtest import nb, run
from engine.data import load
bars = load("synthetic:bars=500,seed=1")
run(bars, "sma_cross", {"fast": 5, "slow": 20}, fee=0.001, stop_loss=0.02, equity=True, trades=True)
kernels = [nb.simulate_variant(False, True, cross_long=True), nb.sma_nb]  # the kernel run() takes here
print(json.dumps({
    "hits": sum(sum(k.stats.cache_hits.values()) for k in kernels),
    "misses": sum(sum(k.stats.cache_misses.values()) for k in kernels),
}))
"""


def run_fresh(cache_dir: Path) -> dict[str, int]:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_second_process_loads_kernels_from_disk(tmp_path: Path) -> None:
    first = run_fresh(tmp_path)
    assert first["misses"] >= 2 and first["hits"] == 0  # compiled and written
    assert any(tmp_path.rglob("*.nbi"))
    second = run_fresh(tmp_path)
    assert second["misses"] == 0
    assert second["hits"] >= 2
