"""numba's disk cache for a user's file: reused by a fresh process, invalidated when the file changes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.strategy.conftest import FILES

SCRIPT = """
import json, sys
from engine.backtest import run
from engine.data import load
from engine.strategy import load_spec
record = load_spec(sys.argv[1] + ":momentum")
run(load("synthetic:bars=300,seed=1"), record, {"window": 10})
module = sys.modules[record.function.__module__]
stats = module.momentum_nb.stats
print(json.dumps({"hits": sum(stats.cache_hits.values()), "misses": sum(stats.cache_misses.values()),
                  "file": module.__file__}))
"""


def run_fresh(path: Path, home: Path) -> dict:
    env = dict(os.environ, XDG_CACHE_HOME=str(home / "cache"), XDG_CONFIG_HOME=str(home / "config"))
    env.pop("NUMBA_CACHE_DIR", None)  # next to the content-addressed copy
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(path)], capture_output=True, text=True, env=env,
                          timeout=300, check=True)  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_user_numba_code_is_compiled_once_per_content(tmp_path: Path) -> None:
    path = tmp_path / "mine.py"
    path.write_text((FILES / "clean.py").read_text())
    first = run_fresh(path, tmp_path)
    assert first["misses"] == 1 and first["hits"] == 0  # compiled and written
    index = list(Path(first["file"]).parent.rglob("*momentum_nb*.nbi"))
    assert len(index) == 1
    second = run_fresh(path, tmp_path)
    assert second == {**first, "misses": 0, "hits": 1}  # loaded from disk in a new process

    path.write_text(path.read_text().replace("close[i] / close[i - window] - 1.0", "close[i] / close[i - window] - 1.5"))
    edited = run_fresh(path, tmp_path)
    assert edited["file"] != first["file"]  # a new content folder
    assert edited["misses"] == 1 and edited["hits"] == 0  # the edit is compiled, not the stale code loaded
    assert run_fresh(path, tmp_path)["hits"] == 1
