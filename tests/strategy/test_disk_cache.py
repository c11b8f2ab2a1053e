"""numba's disk cache for a user's file: reused by a fresh process, invalidated when the file changes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from engine.kernel_cache import sources_hash
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
    env.pop("NUMBA_CACHE_DIR", None)  # the engine's own: <cache>/numba/<kernel sources hash>
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(path)], capture_output=True, text=True, env=env,
                          timeout=300, check=True)  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_user_numba_code_is_compiled_once_per_content(tmp_path: Path) -> None:
    path = tmp_path / "mine.py"
    path.write_text((FILES / "clean.py").read_text())
    first = run_fresh(path, tmp_path)
    assert first["misses"] == 1 and first["hits"] == 0  # compiled and written
    index = list((tmp_path / "cache" / "genesis" / "numba").rglob("*momentum_nb*.nbi"))
    assert len(index) == 1 and sources_hash() in str(index[0])
    second = run_fresh(path, tmp_path)
    assert second == {**first, "misses": 0, "hits": 1}  # loaded from disk in a new process

    path.write_text(path.read_text().replace("close[i] / close[i - window] - 1.0", "close[i] / close[i - window] - 1.5"))
    edited = run_fresh(path, tmp_path)
    assert edited["file"] != first["file"]  # a new content folder
    assert edited["misses"] == 1 and edited["hits"] == 0  # the edit is compiled, not the stale code loaded
    assert run_fresh(path, tmp_path)["hits"] == 1


def test_kernels_are_cached_per_version_of_their_sources(tmp_path: Path) -> None:
    """An edit of a kernel module in one file must not load another file's kernel compiled against the
    old one (numba checks only the defining file's time): the cache folder follows every kernel source."""
    import engine.kernel_cache as kernel_cache

    root = tmp_path / "engine"
    for package in kernel_cache.KERNEL_PACKAGES:
        (root / package).mkdir(parents=True)
        (root / package / "nb.py").write_text(f"# {package}\n")
    original = kernel_cache.__file__
    try:
        kernel_cache.__file__ = str(root / "kernel_cache.py")
        before = kernel_cache.sources_hash()
        (root / "backtest" / "nb.py").write_text("# backtest, edited\n")
        assert kernel_cache.sources_hash() != before
    finally:
        kernel_cache.__file__ = original
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "c"))
    env.pop("NUMBA_CACHE_DIR", None)
    folder = subprocess.run([sys.executable, "-c", "import os, engine; print(os.environ['NUMBA_CACHE_DIR'])"],
                            capture_output=True, text=True, env=env, check=True).stdout.strip()
    assert folder == str(tmp_path / "c" / "genesis" / "numba" / sources_hash())
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "mine")  # the user's choice stands
    folder = subprocess.run([sys.executable, "-c", "import os, engine; print(os.environ['NUMBA_CACHE_DIR'])"],
                            capture_output=True, text=True, env=env, check=True).stdout.strip()
    assert folder == str(tmp_path / "mine")
